"""persistent_secrets: operator value, else persisted, else generated once."""

import os
import stat

import pytest

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
