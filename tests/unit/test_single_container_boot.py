"""The single_container image's entrypoint (roles/single_container/files/boot.py).

The n8n CLI is replaced by a recorder (the runner boot.py is handed), so these
tests check which commands run in which situation: fresh vs. existing SQLite
database, changed vs. unchanged seed, Postgres, the export at shutdown. The
real n8n CLI inside the built image is exercised by the single_container
molecule scenario.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Sequence

import pytest

BOOT = Path(__file__).resolve().parents[2] / "roles" / "single_container" / "files" / "boot.py"


def load_boot():
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("single_container_boot", BOOT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


boot = load_boot()

WORKFLOW = {"id": "wfActive1", "name": "a", "active": True, "nodes": [], "connections": {}}
INACTIVE = {"id": "wfIdle2", "name": "b", "active": False, "nodes": [], "connections": {}}


class Recorder:
    """Records n8n commands; export commands write one file so the export has content."""

    def __init__(self, fail: Sequence[str] = ()) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        if argv[1] in self.fail:
            return 1
        if argv[1].startswith("export:"):
            out = Path(argv[-1].split("=", 1)[1])
            (out / f"{argv[1]}.json").write_text("{}")
        return 0

    def commands(self) -> list[str]:
        return [c[1] + ("" if not c[1].startswith("publish") else " " + c[2]) for c in self.calls]


@pytest.fixture()
def env(tmp_path) -> dict:
    workflows = tmp_path / "seed"
    workflows.mkdir()
    (workflows / "a.json").write_text(json.dumps(WORKFLOW))
    (workflows / "b.json").write_text(json.dumps([INACTIVE]))
    (tmp_path / "home" / ".n8n").mkdir(parents=True)
    return {"HOME": str(tmp_path / "home"), "AISTACK_WORKFLOWS_DIR": str(workflows), "AISTACK_PORT": "7860",
            "N8N_ENCRYPTION_KEY": "k" * 48}


@pytest.mark.parametrize("given,url,secure", [
    ({}, "http://localhost:7860/", "false"),
    ({"SPACE_HOST": "me-agent.hf.space"}, "https://me-agent.hf.space/", None),
    ({"SPACE_HOST": "me-agent.hf.space", "AISTACK_PUBLIC_URL": "https://n8n.example.com/base"},
     "https://n8n.example.com/base/", None),
])
def test_public_url_derivation(given, url, secure):
    derived = boot.n8n_url_env({"AISTACK_PORT": "7860", **given})
    assert derived["WEBHOOK_URL"] == derived["N8N_WEBHOOK_URL"] == derived["N8N_EDITOR_BASE_URL"] == url
    assert derived["N8N_PROTOCOL"] == url.split(":")[0]
    assert derived.get("N8N_SECURE_COOKIE") == secure


def test_explicit_settings_win():
    derived = boot.n8n_url_env({"SPACE_HOST": "x.hf.space", "WEBHOOK_URL": "https://hooks.example.com/"})
    assert "WEBHOOK_URL" not in derived and derived["N8N_HOST"] == "x.hf.space"


def test_bad_public_url_is_refused():
    with pytest.raises(ValueError, match="AISTACK_PUBLIC_URL"):
        boot.public_url({"AISTACK_PUBLIC_URL": "ftp://example.com"})


def test_missing_encryption_key_is_refused(env):
    del env["N8N_ENCRYPTION_KEY"]
    with pytest.raises(ValueError, match="N8N_ENCRYPTION_KEY"):
        boot.boot(env, Recorder())


def test_first_boot_imports_and_publishes_active_workflows(env):
    runner = Recorder()
    boot.boot(env, runner)
    assert runner.commands() == ["import:workflow", "publish:workflow --id=wfActive1"]
    assert env["WEBHOOK_URL"] == "http://localhost:7860/"


def test_second_boot_with_unchanged_seed_imports_nothing(env):
    boot.boot(dict(env), Recorder())
    (Path(env["HOME"]) / ".n8n" / "database.sqlite").write_text("db")
    runner = Recorder()
    boot.boot(dict(env), runner)
    assert runner.calls == []


def test_changed_seed_is_imported_again(env):
    boot.boot(dict(env), Recorder())
    (Path(env["HOME"]) / ".n8n" / "database.sqlite").write_text("db")
    (Path(env["AISTACK_WORKFLOWS_DIR"]) / "a.json").write_text(json.dumps({**WORKFLOW, "name": "renamed"}))
    runner = Recorder()
    boot.boot(dict(env), runner)
    assert runner.commands() == ["import:workflow", "publish:workflow --id=wfActive1"]


def test_credentials_from_the_secret_are_imported_and_not_left_on_disk(env, tmp_path, monkeypatch):
    monkeypatch.setattr(boot.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    seen = {}

    def runner(argv):
        if argv[1] == "import:credentials":
            path = Path(argv[2].split("=", 1)[1])
            seen["data"] = json.loads(path.read_text())
            seen["mode"] = path.stat().st_mode & 0o777
        return 0

    env["N8N_CREDENTIALS_JSON"] = json.dumps([{"id": "c1", "name": "api", "type": "httpHeaderAuth", "data": {"value": "s"}}])
    boot.boot(env, runner)
    assert seen == {"data": [{"id": "c1", "name": "api", "type": "httpHeaderAuth", "data": {"value": "s"}}], "mode": 0o600}
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("value", ["{", '{"id": 1}', '[{"name": "x"}]'])
def test_bad_credentials_secret_is_refused(env, value):
    env["N8N_CREDENTIALS_JSON"] = value
    with pytest.raises(ValueError, match="N8N_CREDENTIALS_JSON"):
        boot.boot(env, Recorder())


def test_workflow_without_id_is_refused(env):
    (Path(env["AISTACK_WORKFLOWS_DIR"]) / "c.json").write_text(json.dumps({"name": "no id"}))
    with pytest.raises(ValueError, match="stable \"id\""):
        boot.boot(env, Recorder())


def test_failed_import_stops_the_boot(env):
    with pytest.raises(RuntimeError, match="import:workflow"):
        boot.boot(env, Recorder(fail=["import:workflow"]))


def test_export_then_fresh_database_restores_it(env):
    runner = Recorder()
    boot.export(env, runner)
    backup = Path(env["HOME"]) / ".n8n" / "backup"
    assert sorted(p.relative_to(backup).as_posix() for p in backup.rglob("*.json")) == [
        "credentials/export:credentials.json", "workflows/export:workflow.json"]
    # A fresh disk (no database.sqlite) with that backup: restore, then the seed (forced), then publish.
    (backup / "workflows" / "export:workflow.json").write_text(json.dumps({**INACTIVE, "id": "wfUser3", "active": True}))
    runner = Recorder()
    boot.boot(env, runner)
    assert runner.commands() == ["import:workflow", "import:credentials", "import:workflow",
                                 "publish:workflow --id=wfUser3", "publish:workflow --id=wfActive1"]


def test_failed_export_keeps_the_previous_one(env):
    boot.export(env, Recorder())
    boot.export(env, Recorder(fail=["export:workflow", "export:credentials"]))
    backup = Path(env["HOME"]) / ".n8n" / "backup"
    assert (backup / "workflows" / "export:workflow.json").exists()
    assert (backup / "credentials" / "export:credentials.json").exists()
    assert [p.name for p in backup.parent.iterdir() if p.name.startswith(".export-")] == []


def test_postgres_neither_restores_nor_exports(env):
    env["DB_TYPE"] = "postgresdb"
    runner = Recorder()
    boot.export(env, runner)
    assert runner.calls == []
    boot.boot(env, runner)
    assert runner.commands() == ["import:workflow", "publish:workflow --id=wfActive1"]


def test_backup_dir_can_point_at_persistent_storage(env, tmp_path):
    env["AISTACK_BACKUP_DIR"] = str(tmp_path / "data" / "n8n-backup")
    boot.export(env, Recorder())
    assert (tmp_path / "data" / "n8n-backup" / "workflows").is_dir()


def test_main_reports_errors_without_starting_supervisord(env, monkeypatch, capsys):
    monkeypatch.setattr(boot.os, "environ", {k: v for k, v in env.items() if k != "N8N_ENCRYPTION_KEY"})
    monkeypatch.setattr(boot.os, "execvp", lambda *a: pytest.fail("supervisord started"))
    assert boot.main(["boot.py"]) == 1
    assert "N8N_ENCRYPTION_KEY is not set" in capsys.readouterr().err
    assert boot.main(["boot.py", "nonsense"]) == 64
