"""The single_container image's entrypoint (roles/single_container/files/boot.py).

The n8n CLI is replaced by a recorder (the runner boot.py is handed), so these
tests check which commands run in which situation: fresh vs. existing SQLite
database, changed vs. unchanged seed, Postgres, the export at shutdown. The
real n8n CLI inside the built image is exercised by the single_container
molecule scenario. The owner step (``boot.py proxy``) talks real HTTP to a
small fake of the three n8n endpoints it uses (settings, owner setup, login),
with n8n's behaviour: setup offered until an owner exists, then refused.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

OWNER = {"email": "owner@example.com", "password": "Secret1234"}
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
            "N8N_ENCRYPTION_KEY": "k" * 48, "AISTACK_OWNER_EMAIL": OWNER["email"],
            "AISTACK_OWNER_PASSWORD": OWNER["password"]}


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


def test_missing_owner_is_refused(env):
    del env["AISTACK_OWNER_PASSWORD"]
    runner = Recorder()
    with pytest.raises(ValueError, match="AISTACK_OWNER_EMAIL and AISTACK_OWNER_PASSWORD"):
        boot.boot(env, runner)
    assert runner.calls == []


@pytest.mark.parametrize("email,password,message", [
    ("owner", "Secret1234", "not an e-mail address"),
    ("owner@example.com", "Short1", "n8n's rules"),
    ("owner@example.com", "nodigitsHERE", "n8n's rules"),
    ("owner@example.com", "nouppercase123", "n8n's rules"),
    ("owner@example.com", "A1" + "x" * 63, "n8n's rules"),
])
def test_owner_n8n_would_reject_is_refused_at_boot(env, email, password, message):
    env.update(AISTACK_OWNER_EMAIL=email, AISTACK_OWNER_PASSWORD=password)
    with pytest.raises(ValueError, match=message):
        boot.boot(env, Recorder())


def test_owner_names_default_and_can_be_set():
    owner = boot.owner_from_env({"AISTACK_OWNER_EMAIL": "a@b.io", "AISTACK_OWNER_PASSWORD": "Secret1234"})
    assert owner == {"email": "a@b.io", "password": "Secret1234", "firstName": "Owner", "lastName": "aistack"}
    owner = boot.owner_from_env({"AISTACK_OWNER_EMAIL": "a@b.io", "AISTACK_OWNER_PASSWORD": "Secret1234",
                                 "AISTACK_OWNER_FIRST_NAME": "Ada", "AISTACK_OWNER_LAST_NAME": "L"})
    assert (owner["firstName"], owner["lastName"]) == ("Ada", "L")


@pytest.mark.parametrize("present", [True, False])
def test_icu_data_only_when_the_n8n_image_has_full_icu(env, tmp_path, monkeypatch, present):
    icu = tmp_path / "full-icu"
    if present:
        icu.mkdir()
    monkeypatch.setattr(boot, "FULL_ICU", str(icu))
    boot.boot(env, Recorder())
    assert env.get("NODE_ICU_DATA") == (str(icu) if present else None)


class FakeN8n:
    """n8n's settings, owner setup and login endpoints, on a real local port.

    ``ready_after`` GETs of /rest/settings answer 503 first (n8n starting).
    """

    def __init__(self, owner: dict | None = None, ready_after: int = 0) -> None:
        self.owner = owner
        self.ready_after = ready_after
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append(("GET", self.path))
                if self.path != "/rest/settings":
                    return self.answer(404, {"message": "not found"})
                if fake.ready_after > 0:
                    fake.ready_after -= 1
                    return self.answer(503, {"message": "starting"})
                self.answer(200, {"data": {"userManagement": {"showSetupOnFirstLoad": fake.owner is None}}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(("POST", self.path))
                if self.path == "/rest/owner/setup":
                    if fake.owner is not None:
                        return self.answer(400, {"message": "Instance owner already setup"})
                    fake.owner = body
                    return self.answer(200, {"data": {"email": body["email"], "role": "global:owner"}})
                if self.path == "/rest/login":
                    ok = fake.owner and body == {"emailOrLdapLoginId": fake.owner["email"],
                                                 "password": fake.owner["password"]}
                    return self.answer(200, {"data": {}}) if ok else self.answer(401, {"message": "Wrong"})
                self.answer(404, {"message": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def n8n():
    servers = []

    def start(**kwargs) -> FakeN8n:
        servers.append(FakeN8n(**kwargs))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


def owner_env(env: dict, port: int) -> dict:
    return {**env, "N8N_PORT": str(port), "AISTACK_OWNER_FIRST_NAME": "Ada", "AISTACK_OWNER_LAST_NAME": "L"}


def test_proxy_creates_the_owner_before_nginx_starts(env, n8n, capsys):
    fake = n8n(ready_after=2)
    env = owner_env(env, fake.port)
    opened = []

    def exec_proxy():
        # At the moment nginx would take over, n8n no longer offers its setup.
        opened.append(boot.setup_pending(boot.n8n_http(env)))

    boot.proxy(env, boot.n8n_http(env), exec_proxy, interval=0.01)
    assert opened == [False]
    assert fake.owner == {"email": OWNER["email"], "password": OWNER["password"], "firstName": "Ada", "lastName": "L"}
    assert [r for r in fake.requests if r[0] == "POST"] == [("POST", "/rest/owner/setup"), ("POST", "/rest/login")]
    err = capsys.readouterr().err
    assert err.index(f"owner account {OWNER['email']} created") < err.index("opening the public port")


def test_existing_owner_is_kept(env, n8n, capsys):
    fake = n8n(owner={"email": OWNER["email"], "password": OWNER["password"]})
    assert boot.ensure_owner(boot.owner_from_env(env), boot.n8n_http(owner_env(env, fake.port))) is False
    assert ("POST", "/rest/owner/setup") not in fake.requests
    assert f"owner account {OWNER['email']} exists" in capsys.readouterr().err


def test_owner_with_a_changed_password_still_opens_with_a_warning(env, n8n, capsys):
    fake = n8n(owner={"email": OWNER["email"], "password": "ChangedInTheUi1"})
    opened = []
    boot.proxy(owner_env(env, fake.port), boot.n8n_http(owner_env(env, fake.port)), lambda: opened.append(True))
    assert opened == [True] and fake.owner["password"] == "ChangedInTheUi1"
    assert "does not log in (HTTP 401)" in capsys.readouterr().err


def test_refused_setup_keeps_the_port_closed(env, n8n):
    fake = n8n()
    http = boot.n8n_http(owner_env(env, fake.port))

    def refusing(method, path, body):
        if path == "/rest/owner/setup":
            return 400, {"message": "Invalid email"}
        return http(method, path, body)

    with pytest.raises(RuntimeError, match="refused the owner setup.*HTTP 400: Invalid email"):
        boot.proxy(owner_env(env, fake.port), refusing, lambda: pytest.fail("nginx started"))


def test_setup_that_does_not_stick_keeps_the_port_closed(env, n8n):
    fake = n8n()
    http = boot.n8n_http(owner_env(env, fake.port))

    def forgetful(method, path, body):
        if path == "/rest/owner/setup":
            return 200, {"data": {}}  # accepted, but n8n still offers the setup
        return http(method, path, body)

    with pytest.raises(RuntimeError, match="still offers its owner setup"):
        boot.proxy(owner_env(env, fake.port), forgetful, lambda: pytest.fail("nginx started"))


def test_n8n_that_never_answers_keeps_the_port_closed(env):
    now = [0.0]
    http = boot.n8n_http({"N8N_PORT": "9"}, timeout=1)  # nothing listens on the discard port
    with pytest.raises(RuntimeError, match="did not answer /rest/settings on 127.0.0.1 within 60s"):
        boot.ensure_owner(boot.owner_from_env(env), http, timeout=60, interval=5,
                          sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])


def test_main_proxy_without_owner_does_not_start_nginx(env, monkeypatch, capsys):
    monkeypatch.setattr(boot.os, "environ", {k: v for k, v in env.items() if k != "AISTACK_OWNER_EMAIL"})
    monkeypatch.setattr(boot.os, "execvp", lambda *a: pytest.fail("nginx started"))
    assert boot.main(["boot.py", "proxy"]) == 1
    assert "AISTACK_OWNER_EMAIL and AISTACK_OWNER_PASSWORD are not both set" in capsys.readouterr().err
