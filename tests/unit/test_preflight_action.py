"""aistack.hosting.preflight: every check evaluated as assert would, each failure with its own message.

One real ansible-playbook (localhost, no host access) runs the action on checks
that pass, fail, apply only under a condition, cannot be evaluated, or are
malformed; each result is kept (ignore_errors) and compared here. The
collection is imported by name (ansible_collections.aistack.hosting.plugins)
so it runs under every tested ansible-core.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from ansible.release import __version__ as ANSIBLE_VERSION
from conftest import play_on_localhost

PLUGIN = "ansible_collections.aistack.hosting.plugins.action.preflight"
CORE_218 = ANSIBLE_VERSION.startswith("2.18.")

CASES = {
    "all pass": """
      - that:
          - workers >= 1
          - name is match('^[a-z]+$')
        msg: "never shown"
      - that: workers < 10
        msg: "never shown either"
""",
    # A message is rendered only for a failed check (2.19), so it may name what is undefined then.
    "lazy message": """
      - that: workers >= 1
        msg: "{{ not_defined_anywhere.attribute }}"
""",
    "two fail": """
      - that: workers >= 5
        msg: "workers ({{ workers }}) must be >= 5"
      - that:
          - name | length > 0
          - name is match('^[0-9]+$')
        msg: "name={{ name }} must be digits"
      - that: true
        msg: "passes"
""",
    "when false skips": """
      - that: workers >= 5
        when: name == 'other'
        msg: "applies only to other"
      - that: workers >= 5
        when: [name == 'alpha', workers > 100]
        msg: "applies only to many"
""",
    "when true applies": """
      - that: workers >= 5
        when: name == 'alpha'
        msg: "alpha needs 5 workers, has {{ workers }}"
""",
    # The second check relies on what the first checked: only the first is reported.
    "stops after a failure it depends on": """
      - that: settings is mapping
        msg: "settings must be a dict"
      - that: settings.size > 1
        msg: "settings.size must be > 1"
""",
    "cannot be evaluated": """
      - that: undefined_here > 1
        msg: "unused"
""",
    "malformed": """
      - that: workers > 1
""",
}

PLAYBOOK_HEAD = """\
- hosts: localhost
  gather_facts: false
  vars:
    workers: 2
    name: alpha
    settings: not-a-dict
  tasks:
"""

TASK = """\
    - name: {case}
      aistack.hosting.preflight:
        checks:{checks}
      register: result
      ignore_errors: true

    - name: Keep {case}
      ansible.builtin.set_fact:
        results: "{{{{ results | default({{}}) | combine({{{case!r}: result}}) }}}}"
"""

PLAYBOOK_TAIL = """\
    - name: Keep them for the test
      ansible.builtin.copy:
        content: "{{ results | to_json }}"
        dest: "{{ playbook_dir }}/results.json"
        mode: "0600"
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("preflight")
    (base / "play.yml").write_text(PLAYBOOK_HEAD + "".join(TASK.format(case=name, checks=textwrap.indent(checks, "    ").rstrip("\n"))
                                                           for name, checks in CASES.items()) + PLAYBOOK_TAIL)
    play_on_localhost(base)
    return json.loads((base / "results.json").read_text())


def test_the_plugin_is_the_collections():
    __import__(PLUGIN)


def test_passing_checks_pass_without_change(results):
    assert not results["all pass"].get("failed") and results["all pass"]["changed"] is False
    assert results["all pass"]["msg"] == "2 checks passed"


def test_a_passing_checks_message_is_rendered_only_where_the_core_allows(results):
    # 2.19 renders a message only for a failed check (finalize_task_arg); 2.18 renders every task
    # argument before the action runs, which is why the roles' messages must render for any input.
    result = results["lazy message"]
    if CORE_218:
        assert result["failed"] and "not_defined_anywhere" in result["msg"], result
    else:
        assert not result.get("failed"), result


def test_every_failed_check_reports_its_own_message_in_order(results):
    result = results["two fail"]
    assert result["failed"] is True
    assert result["failures"] == ["workers (2) must be >= 5", "name=alpha must be digits"]
    assert result["msg"] == "(1) workers (2) must be >= 5 (2) name=alpha must be digits"


def test_a_check_applies_only_when_all_its_conditions_hold(results):
    assert not results["when false skips"].get("failed"), results["when false skips"]
    assert results["when true applies"]["failures"] == ["alpha needs 5 workers, has 2"]
    assert results["when true applies"]["msg"] == "alpha needs 5 workers, has 2"


def test_evaluation_stops_at_a_check_that_relies_on_a_failed_one(results):
    assert results["stops after a failure it depends on"]["failures"] == ["settings must be a dict"]


def test_a_check_that_cannot_be_evaluated_is_named(results):
    result = results["cannot be evaluated"]
    assert result["failed"] is True
    assert "preflight check 1 (undefined_here > 1) could not be evaluated" in result["msg"], result["msg"]


def test_a_malformed_check_is_refused(results):
    assert results["malformed"]["failed"] is True
    assert "check 1 must be a dict of that, msg and (optionally) when" in results["malformed"]["msg"]
