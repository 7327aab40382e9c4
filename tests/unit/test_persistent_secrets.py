"""persistent_secrets: operator value, else persisted, else generated once."""

import os
import stat

import pytest

from conftest import play_on_localhost

from ansible_collections.aistack.hosting.plugins.modules import persistent_secrets


@pytest.fixture()
def run(run_module):
    def runner(directory, secrets, check_mode=False) -> dict:
        return run_module(persistent_secrets, {"dir": str(directory), "secrets": secrets}, check_mode)
    return runner


def test_generated_once_then_reused(run, tmp_path):
    first = run(tmp_path, {"redis_password": {}, "key": {"length": 48, "charset": "hex"}})
    assert first["changed"] and sorted(first["generated"]) == ["key", "redis_password"]
    assert len(first["secrets"]["redis_password"]) == 32
    assert len(first["secrets"]["key"]) == 48 and set(first["secrets"]["key"]) <= set("0123456789abcdef")
    second = run(tmp_path, {"redis_password": {}, "key": {"length": 48, "charset": "hex"}})
    assert not second["changed"] and second["secrets"] == first["secrets"]


def test_files_are_root_only(run, tmp_path):
    run(tmp_path / "secrets", {"a_secret": {}})
    assert stat.S_IMODE(os.stat(tmp_path / "secrets").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "secrets" / "a_secret").st_mode) == 0o600


def test_operator_value_wins_and_is_persisted(run, tmp_path):
    run(tmp_path, {"pw": {}})
    result = run(tmp_path, {"pw": {"value": "from-vault-0123456789"}})
    assert result["changed"] and result["updated"] == ["pw"]
    assert (tmp_path / "pw").read_text().strip() == "from-vault-0123456789"
    assert not run(tmp_path, {"pw": {"value": "from-vault-0123456789"}})["changed"]


def test_immutable_secret_is_never_rotated_implicitly(run, tmp_path):
    run(tmp_path, {"encryption_key": {"immutable": True}})
    result = run(tmp_path, {"encryption_key": {"immutable": True, "value": "something-else-entirely"}})
    assert result["failed"] and "immutable" in result["msg"] and "encryption_key" in result["msg"]
    assert "something-else" not in result["msg"]


def test_check_mode_writes_nothing(run, tmp_path):
    result = run(tmp_path / "s", {"pw": {}}, check_mode=True)
    assert result["changed"] and result["generated"] == ["pw"]
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("secrets", [{"../escape": {}}, {"short": {"length": 8}}, {"x": {"charset": "emoji"}}])
def test_bad_requests_fail(run, tmp_path, secrets):
    assert run(tmp_path, secrets)["failed"]


def guarded(count_cmd: str) -> dict:
    return {"length": 48, "immutable": True,
            "guard": {"argv": ["sh", "-c", count_cmd], "msg": "key missing but {count} credential(s) exist"}}


def test_guard_refuses_generation_and_writes_nothing(run, tmp_path):
    result = run(tmp_path, {"other": {}, "key": guarded("echo 3")})
    assert not result["failed"] and not result["changed"]
    assert result["refused"] == ["key missing but 3 credential(s) exist"]
    assert "key" not in result["secrets"] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("count_cmd", ["echo 0", "exit 1", "echo 'relation does not exist'"])
def test_guard_lets_generation_through_when_nothing_is_at_stake(run, tmp_path, count_cmd):
    result = run(tmp_path, {"key": guarded(count_cmd)})
    assert result["changed"] and result["generated"] == ["key"] and result["refused"] == []


def test_guard_runs_only_when_a_value_would_be_generated(run, tmp_path):
    run(tmp_path, {"key": {}})
    marker = tmp_path.parent / "guard-ran"
    result = run(tmp_path, {"key": guarded(f"touch {marker}; echo 3")})
    assert result["refused"] == [] and "key" in result["secrets"] and not marker.exists()
    result = run(tmp_path / "fresh", {"key": guarded(f"touch {marker}; echo 3") | {"value": "from-vault-0123456789"}})
    assert result["refused"] == [] and not marker.exists()


def test_guard_needs_argv_and_msg(run, tmp_path):
    result = run(tmp_path, {"key": {"guard": {"argv": []}}})
    assert result["failed"] and "guard needs argv" in result["msg"]


def test_concurrent_generation_keeps_the_first_writers_value(run, tmp_path, monkeypatch):
    """Two hosts resolving one secret on a shared secrets host (multi_host) end with one value."""
    original = persistent_secrets.read_secret
    calls = []

    def read_then_lose_the_race(path):
        value = original(path)
        if not calls:
            calls.append(path)
            # Another run creates the file after this one found it missing.
            (tmp_path / "n8n_encryption_key").write_text("the-other-runs-key-0123456789\n")
        return value

    monkeypatch.setattr(persistent_secrets, "read_secret", read_then_lose_the_race)
    result = run(tmp_path, {"n8n_encryption_key": {"length": 48}})
    assert result["secrets"]["n8n_encryption_key"] == "the-other-runs-key-0123456789"
    assert result["generated"] == [] and not result["changed"]
    assert (tmp_path / "n8n_encryption_key").read_text() == "the-other-runs-key-0123456789\n"
    assert [p.name for p in tmp_path.iterdir()] == ["n8n_encryption_key"]  # no temporary file left


def test_read_all_returns_every_persisted_secret_and_nothing_else(run_module, tmp_path):
    (tmp_path / "redis_password").write_text("r" * 32 + "\n")
    (tmp_path / "n8n_encryption_key").write_text("k" * 48 + "\n")
    (tmp_path / "not a name").write_text("x")
    (tmp_path / "big").write_text("b" * (65 * 1024))
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "subdir").mkdir()
    result = run_module(persistent_secrets, {"dir": str(tmp_path), "read_all": True})
    assert not result["changed"] and result["dir"] == str(tmp_path)
    assert result["secrets"] == {"n8n_encryption_key": "k" * 48, "redis_password": "r" * 32}
    assert run_module(persistent_secrets, {"dir": str(tmp_path / "none"), "read_all": True})["secrets"] == {}


def test_secrets_are_required_without_read_all(run_module, tmp_path):
    result = run_module(persistent_secrets, {"dir": str(tmp_path)})
    assert result["failed"] and "secrets is required" in result["msg"]


def test_an_empty_request_resolves_nothing(run, tmp_path):
    # A host of a layout whose roles need none of the secrets (a monitoring agent host).
    result = run(tmp_path, {})
    assert not result["failed"] and not result["changed"] and result["secrets"] == {}


# The action plugin, through ansible-playbook: a call is answered from the run's
# read_all when nothing has to be written, and goes to the module otherwise.
KNOWN_PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    dir: "{{ playbook_dir }}/secrets"
    other_dir: "{{ playbook_dir }}/other"
  tasks:
    - name: Read once
      aistack.hosting.persistent_secrets: {dir: "{{ dir }}", read_all: true}
      register: known

    # The file changes under the run: an answer from the read still says "old",
    # which shows no module ran for it.
    - ansible.builtin.copy: {dest: "{{ dir }}/pw", content: "changed-behind-the-runs-back-0123\\n", mode: "0600"}

    - name: Nothing to write, answered from the read
      aistack.hosting.persistent_secrets: {dir: "{{ dir }}", known: "{{ known }}", secrets: {pw: {}, same: {value: same-value-0123456789abcdef}}}
      register: answered

    - name: Read in another directory, the module reads its own
      aistack.hosting.persistent_secrets: {dir: "{{ other_dir }}", known: "{{ known }}", secrets: {pw: {}}}
      register: elsewhere

    - name: An operator value to write, the module writes it
      aistack.hosting.persistent_secrets: {dir: "{{ dir }}", known: "{{ known }}", secrets: {same: {value: new-value-0123456789abcdef}}}
      register: updated

    - name: Written in this run, read again and not answered from the stale read
      aistack.hosting.persistent_secrets: {dir: "{{ dir }}", known: "{{ known }}", secrets: {same: {}}}
      register: after

    - name: Not read at the start, the module generates it
      aistack.hosting.persistent_secrets: {dir: "{{ dir }}", known: "{{ known }}", secrets: {fresh: {}}}
      register: generated

    # A guarded key whose file went missing after the read: the host is asked,
    # the guard runs (it counts 1 here) and the generation is refused.
    - ansible.builtin.file: {path: "{{ dir }}/pw", state: absent}

    - name: A guarded secret, always resolved on the host
      aistack.hosting.persistent_secrets:
        dir: "{{ dir }}"
        known: "{{ known }}"
        secrets: {pw: {immutable: true, guard: {argv: [echo, "1"], msg: "pw is missing but {count} thing(s) need it"}}}
      register: guarded

    - name: Nothing asked, nothing answered
      aistack.hosting.persistent_secrets: {dir: "{{ dir }}", known: "{{ known }}", secrets: {}}
      register: nothing

    - name: A malformed request fails as the module does, known or not
      aistack.hosting.persistent_secrets: {dir: "{{ dir }}", known: "{{ known }}", secrets: {pw: {length: 8}}}
      register: malformed
      ignore_errors: true

    - ansible.builtin.assert:
        that:
          - known.secrets | dict2items | map(attribute='key') | sort == ['pw', 'same']
          - known.secrets.pw == 'old-value-0123456789abcdef'
          - known.host == 'localhost'
          - answered.secrets.pw == 'old-value-0123456789abcdef'
          - answered.secrets.same == 'same-value-0123456789abcdef'
          - not answered.changed
          - elsewhere.secrets.pw == 'other-dir-value-0123456789'
          - updated.changed and updated.updated == ['same']
          - after.secrets.same == 'new-value-0123456789abcdef'
          - not after.changed
          - nothing.secrets == {} and not nothing.changed
          - guarded.refused == ['pw is missing but 1 thing(s) need it'] and 'pw' not in guarded.secrets
          - generated.generated == ['fresh']
          - malformed.failed and 'length must be an integer' in malformed.msg
"""


def test_action_answers_from_the_runs_read_only_when_nothing_is_written(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("old-value-0123456789abcdef\n")
    (tmp_path / "secrets" / "same").write_text("same-value-0123456789abcdef\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "pw").write_text("other-dir-value-0123456789\n")
    (tmp_path / "play.yml").write_text(KNOWN_PLAY)
    play_on_localhost(tmp_path)
    assert (tmp_path / "secrets" / "same").read_text() == "new-value-0123456789abcdef\n"
