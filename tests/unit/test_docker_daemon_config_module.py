"""The docker_daemon_config module end to end on temporary files."""

import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.hosting.plugins.modules import docker_daemon_config


def run_module(args: dict, check_mode: bool = False) -> dict:
    """Run main() with args and return the JSON it exits with."""
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            docker_daemon_config.main()
    return LAST_RESULT.pop()


LAST_RESULT: list = []


@pytest.fixture(autouse=True)
def capture_exit(monkeypatch):
    def exit_json(self, **kwargs):
        LAST_RESULT.append({"failed": False, **kwargs})
        raise SystemExit(0)

    def fail_json(self, msg, **kwargs):
        LAST_RESULT.append({"failed": True, "msg": msg, **kwargs})
        raise SystemExit(1)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    # No dockerd on the test machine's PATH: validation falls back to JSON.
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)


@pytest.fixture()
def paths(tmp_path):
    frag = tmp_path / "daemon.d"
    frag.mkdir()
    return {
        "path": str(tmp_path / "daemon.json"),
        "fragments_dir": str(frag),
        "state_path": str(tmp_path / "managed.json"),
    }


def read(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_first_run_merges_keeps_foreign_and_is_idempotent(paths):
    with open(paths["path"], "w", encoding="utf-8") as handle:
        handle.write('{"labels": ["foreign"]}')
    with open(f"{paths['fragments_dir']}/nvidia.json", "w", encoding="utf-8") as handle:
        handle.write('{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}')
    args = {**paths, "options": {"live-restore": True}}

    first = run_module(args)
    assert first["changed"] is True
    assert read(paths["path"]) == {
        "labels": ["foreign"],
        "live-restore": True,
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
    }
    assert first["managed_keys"] == ["live-restore", "runtimes"]

    second = run_module(args)
    assert second["changed"] is False


def test_check_mode_reports_but_does_not_write(paths):
    result = run_module({**paths, "options": {"debug": True}}, check_mode=True)
    assert result["changed"] is True
    assert result["config"] == {"debug": True}
    with pytest.raises(FileNotFoundError):
        read(paths["path"])


def test_dropped_option_is_removed_on_next_run(paths):
    run_module({**paths, "options": {"debug": True, "live-restore": True}})
    result = run_module({**paths, "options": {"live-restore": True}})
    assert result["changed"] is True
    assert read(paths["path"]) == {"live-restore": True}


def test_absent_keeps_foreign_keys_and_deletes_an_empty_file(paths):
    with open(paths["path"], "w", encoding="utf-8") as handle:
        handle.write('{"labels": ["foreign"]}')
    run_module({**paths, "options": {"debug": True}})
    result = run_module({**paths, "state": "absent"})
    assert result["changed"] is True
    assert read(paths["path"]) == {"labels": ["foreign"]}

    only_ours = {**paths, "path": paths["path"] + ".2", "state_path": paths["state_path"] + ".2"}
    run_module({**only_ours, "options": {"debug": True}})
    run_module({**only_ours, "state": "absent"})
    with pytest.raises(FileNotFoundError):
        read(only_ours["path"])


def test_invalid_existing_file_fails_with_its_path(paths):
    with open(paths["path"], "w", encoding="utf-8") as handle:
        handle.write("{broken")
    result = run_module({**paths, "options": {}})
    assert result["failed"] is True
    assert paths["path"] in result["msg"]
