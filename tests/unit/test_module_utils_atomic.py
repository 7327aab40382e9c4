"""module_utils/atomic: the one atomic-write helper the modules share."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.aistack.hosting.plugins.module_utils import atomic


def test_writes_content_with_the_mode_and_creates_the_directory(tmp_path):
    target = tmp_path / "new" / "dir" / "daemon.json"
    atomic.write_atomically(str(target), '{"a": 1}\n', 0o644)
    assert target.read_text() == '{"a": 1}\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["daemon.json"]


def test_default_mode_is_0600_and_an_existing_file_is_replaced(tmp_path):
    target = tmp_path / "secret"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    atomic.write_atomically(str(target), "new\n")
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_temporary_file_is_private_while_it_is_written(tmp_path, monkeypatch):
    modes = []
    real_replace = os.replace

    def replace(src, dst):
        modes.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "chmod", lambda path, mode: modes.append(stat.S_IMODE(os.stat(path).st_mode)))
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.write_atomically(str(tmp_path / "s"), "v", 0o644)
    assert modes == [0o600, 0o600]  # before chmod and (chmod stubbed) at the rename


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomically(str(target), "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]


def test_json_is_indented_and_sorted(tmp_path):
    target = tmp_path / "state.json"
    atomic.write_json_atomically(str(target), {"b": 1, "a": {"d": 2, "c": 3}})
    assert target.read_text() == json.dumps({"a": {"c": 3, "d": 2}, "b": 1}, indent=2)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_the_check_sees_the_complete_candidate_with_its_owner_and_mode(tmp_path):
    target = tmp_path / "routes.yml"
    seen = {}

    def check(candidate):
        info = os.stat(candidate)
        seen.update(content=open(candidate, encoding="utf-8").read(), mode=stat.S_IMODE(info.st_mode),
                    owner=(info.st_uid, info.st_gid), same_dir=os.path.dirname(candidate) == str(tmp_path))
    owner = (os.getuid(), os.getgid())
    atomic.write_atomically(str(target), "http: {}\n", 0o640, owner=owner, check=check)
    assert seen == {"content": "http: {}\n", "mode": 0o640, "owner": owner, "same_dir": True}
    assert target.read_text() == "http: {}\n"


def test_a_failing_check_keeps_the_old_file_and_leaves_no_candidate(tmp_path):
    target = tmp_path / "redis.conf"
    target.write_text("old\n")

    def refuse(candidate):
        raise SystemExit(1)  # what AnsibleModule.fail_json does
    with pytest.raises(SystemExit):
        atomic.write_atomically(str(target), "broken\n", 0o644, check=refuse)
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["redis.conf"]
