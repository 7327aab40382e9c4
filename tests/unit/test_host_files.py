"""host_files: a role's files and units in one call; written only when they differ,
validated first, secrets never shown, units enabled/started after their files and
stopped before them.

`systemctl` is a small stand-in on PATH that keeps each unit's enabled/active
state as marker files and records its arguments; the real systemd runs the
converted roles (backup, docker's watcher, unattended-upgrades, firewall) in the
molecule scenarios.
"""

import os
import stat
from pathlib import Path

import pytest

from ansible_collections.aistack.hosting.plugins.modules import host_files

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module chowns files to root")

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$@" >> "$FAKE_SYSTEMD/log"
state="$FAKE_SYSTEMD/state"
case "$1" in
  is-enabled) [ -e "$state/$3.enabled" ] ;;
  is-active) [ -e "$state/$3.active" ] ;;
  enable) touch "$state/$2.enabled" ;;
  disable) rm -f "$state/$2.enabled" ;;
  start|restart) touch "$state/$2.active" ;;
  stop) rm -f "$state/$2.active" ;;
  daemon-reload) exit 0 ;;
  *) exit 1 ;;
esac
"""


@pytest.fixture()
def systemd(tmp_path, monkeypatch) -> Path:
    bindir, root = tmp_path / "bin", tmp_path / "systemd"
    bindir.mkdir()
    (root / "state").mkdir(parents=True)
    (root / "log").write_text("")
    (bindir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bindir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMD", str(root))
    return root


def calls(systemd: Path) -> list[str]:
    """The systemctl calls that change something (queries left out), then forgotten."""
    lines = [line for line in (systemd / "log").read_text().splitlines() if not line.startswith("is-")]
    (systemd / "log").write_text("")
    return lines


@pytest.fixture()
def args(tmp_path) -> dict:
    etc = tmp_path / "etc"
    return {
        "directories": [{"path": str(etc / "aistack" / "backup"), "mode": "0700"}],
        "files": [{"dest": str(tmp_path / "usr/local/lib/aistack/tool.py"), "content": "print('tool')\n"},
                  {"dest": str(etc / "systemd/system/aistack-backup.timer"), "content": "[Timer]\nOnCalendar=daily\n"}],
        "secret_files": [{"dest": str(etc / "aistack/backup/config.json"), "content": '{"key": "the-s3-secret-key"}\n'}],
        "units": [{"name": "aistack-backup.timer", "state": "started"}],
    }


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_run_places_everything_and_starts_the_unit_then_nothing_changes(run_module, args, systemd, monkeypatch):
    monkeypatch.setattr(host_files, "UNIT_DIRS", (os.path.dirname(args["files"][1]["dest"]) + "/",))
    first = run_module(host_files, args)
    assert first["changed"] and not first["failed"]
    assert first["files_changed"] == [args["directories"][0]["path"], args["secret_files"][0]["dest"],
                                      args["files"][0]["dest"], args["files"][1]["dest"]]
    assert mode(args["directories"][0]["path"]) == 0o700 and mode(args["secret_files"][0]["dest"]) == 0o600
    assert mode(args["files"][0]["dest"]) == 0o644
    assert first["daemon_reloaded"]
    assert calls(systemd) == ["daemon-reload", "enable aistack-backup.timer", "start aistack-backup.timer"]
    second = run_module(host_files, args)
    assert not second["changed"] and second["files_changed"] == [] and second["units_changed"] == []
    assert not second["daemon_reloaded"] and calls(systemd) == []


def test_a_stopped_unit_is_started_again_and_a_mode_change_is_repaired(run_module, args, systemd):
    run_module(host_files, args)
    calls(systemd)
    (systemd / "state" / "aistack-backup.timer.active").unlink()
    os.chmod(args["files"][0]["dest"], 0o600)
    again = run_module(host_files, args)
    assert again["files_changed"] == [args["files"][0]["dest"]] and mode(args["files"][0]["dest"]) == 0o644
    assert again["units_changed"] == ["aistack-backup.timer start"]
    assert not again["daemon_reloaded"] and calls(systemd) == ["start aistack-backup.timer"]


def test_secrets_are_never_shown_and_plain_files_are_diffed(run_module, args, systemd):
    run_module(host_files, args)
    args["secret_files"][0]["content"] = '{"key": "a-rotated-secret-key"}\n'
    args["files"][0]["content"] = "print('tool v2')\n"
    args["_ansible_diff"] = True
    result = run_module(host_files, args)
    shown = repr(result)
    assert "the-s3-secret-key" not in shown and "a-rotated-secret-key" not in shown
    assert [d["after"] for d in result["diff"]] == ["print('tool v2')\n"]


def test_check_mode_writes_and_starts_nothing_but_reports_both(run_module, args, systemd, tmp_path):
    result = run_module(host_files, args, check_mode=True)
    assert result["changed"] and len(result["files_changed"]) == 4
    assert result["units_changed"] == ["aistack-backup.timer enable", "aistack-backup.timer start"]
    assert not (tmp_path / "etc").exists() and not (tmp_path / "usr").exists()
    assert calls(systemd) == []


def test_a_candidate_that_fails_validation_keeps_the_old_file_and_starts_nothing(run_module, args, systemd):
    run_module(host_files, args)
    calls(systemd)
    (systemd / "state" / "aistack-backup.timer.active").unlink()
    args["files"][0].update(content="broken\n", validate="grep -q print %s")
    result = run_module(host_files, args)
    assert result["failed"] and "failed its validation" in result["msg"]
    assert Path(args["files"][0]["dest"]).read_text() == "print('tool')\n"
    assert calls(systemd) == []


def test_units_stop_before_their_files_go_and_restarted_means_only_after_a_change(run_module, args, systemd, tmp_path):
    run_module(host_files, args)
    timer = args["files"][1]["dest"]
    args["units"] = [{"name": "aistack-backup.timer", "state": "restarted"}]
    assert not run_module(host_files, args)["changed"]  # nothing written: not restarted
    args["files"][1]["content"] = "[Timer]\nOnCalendar=hourly\n"
    calls(systemd)
    assert run_module(host_files, args)["units_changed"] == ["aistack-backup.timer restart"]
    calls(systemd)
    removed = run_module(host_files, {"absent": [timer, str(tmp_path / "never-there")],
                                      "units": [{"name": "aistack-backup.timer", "state": "stopped", "enabled": False}]})
    assert removed["files_changed"] == [timer] and not os.path.exists(timer)
    assert removed["units_changed"] == ["aistack-backup.timer stop", "aistack-backup.timer disable"]
    assert calls(systemd)[:2] == ["stop aistack-backup.timer", "disable aistack-backup.timer"]
