"""The docker_daemon_config module end to end on temporary files."""

import json

import pytest
from ansible.module_utils import basic

from ansible_collections.aistack.hosting.plugins.modules import docker_daemon_config


@pytest.fixture(autouse=True)
def no_dockerd(monkeypatch):
    """No dockerd on the test machine's PATH: validation falls back to JSON."""
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)


@pytest.fixture()
def run(run_module):
    def runner(args: dict, check_mode: bool = False) -> dict:
        return run_module(docker_daemon_config, args, check_mode)
    return runner


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


def test_first_run_merges_keeps_foreign_and_is_idempotent(run, paths):
    with open(paths["path"], "w", encoding="utf-8") as handle:
        handle.write('{"labels": ["foreign"]}')
    with open(f"{paths['fragments_dir']}/nvidia.json", "w", encoding="utf-8") as handle:
        handle.write('{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}')
    args = {**paths, "options": {"live-restore": True}}

    first = run(args)
    assert first["changed"] is True
    assert read(paths["path"]) == {
        "labels": ["foreign"],
        "live-restore": True,
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
    }
    assert first["managed_keys"] == ["live-restore", "runtimes"]

    second = run(args)
    assert second["changed"] is False


def test_check_mode_reports_but_does_not_write(run, paths):
    result = run({**paths, "options": {"debug": True}}, check_mode=True)
    assert result["changed"] is True
    assert result["config"] == {"debug": True}
    with pytest.raises(FileNotFoundError):
        read(paths["path"])


def test_dropped_option_is_removed_on_next_run(run, paths):
    run({**paths, "options": {"debug": True, "live-restore": True}})
    result = run({**paths, "options": {"live-restore": True}})
    assert result["changed"] is True
    assert read(paths["path"]) == {"live-restore": True}


def test_absent_keeps_foreign_keys_and_deletes_an_empty_file(run, paths):
    with open(paths["path"], "w", encoding="utf-8") as handle:
        handle.write('{"labels": ["foreign"]}')
    run({**paths, "options": {"debug": True}})
    result = run({**paths, "state": "absent"})
    assert result["changed"] is True
    assert read(paths["path"]) == {"labels": ["foreign"]}

    only_ours = {**paths, "path": paths["path"] + ".2", "state_path": paths["state_path"] + ".2"}
    run({**only_ours, "options": {"debug": True}})
    run({**only_ours, "state": "absent"})
    with pytest.raises(FileNotFoundError):
        read(only_ours["path"])


def test_invalid_existing_file_fails_with_its_path(run, paths):
    with open(paths["path"], "w", encoding="utf-8") as handle:
        handle.write("{broken")
    result = run({**paths, "options": {}})
    assert result["failed"] is True
    assert paths["path"] in result["msg"]


def test_makes_the_directories_with_their_modes_once(run, tmp_path):
    import os
    import stat

    args = {"path": str(tmp_path / "etc-docker" / "daemon.json"), "fragments_dir": str(tmp_path / "aistack" / "daemon.d"),
            "state_path": str(tmp_path / "managed.json"), "options": {"log-driver": "local"}}
    checked = run(args, check_mode=True)
    assert checked["changed"] and len(checked["directories"]) == 2 and not (tmp_path / "etc-docker").exists()
    first = run(args)
    assert first["changed"] and sorted(first["directories"]) == sorted([str(tmp_path / "etc-docker"),
                                                                        str(tmp_path / "aistack" / "daemon.d")])
    assert stat.S_IMODE(os.stat(tmp_path / "etc-docker").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "aistack" / "daemon.d").st_mode) == 0o700
    os.chmod(tmp_path / "aistack" / "daemon.d", 0o755)
    again = run(args)
    assert again["changed"] and again["directories"] == [str(tmp_path / "aistack" / "daemon.d")]
    assert stat.S_IMODE(os.stat(tmp_path / "aistack" / "daemon.d").st_mode) == 0o700
    assert not run(args)["changed"]
