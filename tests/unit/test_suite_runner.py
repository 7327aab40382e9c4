"""The suite runner (tests/run.py): the cause it reports for a failed scenario."""

import run

REFUSAL_TESTED = """\
TASK [Converge n8n (must refuse)] ***
fatal: [host]: FAILED! => {"msg": "n8n_encryption_key is missing"}
TASK [It refused, naming the key file and the fix] ***
ok: [host]
TASK [Probe a port] ***
fatal: [host]: FAILED! => {"msg": "connection refused"}
...ignoring
TASK [Everything came back by itself] ***
fatal: [host]: FAILED! => {"msg": "aistack-redis did not come back"}
TASK [Cleanup] ***
fatal: [host]: FAILED! => {"msg": "optional"}
...ignoring
"""


def test_the_failure_that_ended_the_play_is_reported_not_a_rescued_or_ignored_one():
    assert run.first_error(REFUSAL_TESTED) == (
        'Everything came back by itself: fatal: [host]: FAILED! => {"msg": "aistack-redis did not come back"}')


def test_a_failed_task_outranks_a_failed_test_and_the_first_assertion_line_is_kept():
    assert run.first_error("E   assert 1 == 2\nE   where\n") == "E   assert 1 == 2"
    assert run.first_error("E   assert 1 == 2\nfatal: [h]: FAILED! => {}\n") == "fatal: [h]: FAILED! => {}"


def test_only_ignored_failures_fall_through_to_the_next_kind():
    assert run.first_error("fatal: [h]: FAILED! => {}\n...ignoring\nCRITICAL Ansible return code was 2\n") == \
        "CRITICAL Ansible return code was 2"


def test_a_multi_line_result_keeps_its_message():
    output = ('TASK [Everything came back by itself] ***\nfatal: [h]: FAILED! => {\n    "assertion": "x",\n'
              '    "msg": [\n        "FAIL: aistack-redis: 2 of 9 requests failed"\n    ]\n}\nPLAY RECAP ***\n')
    assert run.first_error(output) == ('Everything came back by itself: fatal: [h]: FAILED! => { "assertion": "x", '
                                       '"msg": [ "FAIL: aistack-redis: 2 of 9 requests failed" ] }')
