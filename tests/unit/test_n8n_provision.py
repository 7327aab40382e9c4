"""n8n_provision against the FAKE n8n REST API (tests/fakes/n8n_rest.py): owner, workflows, credentials, check mode."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from n8n_rest import FakeN8n, serve  # noqa: E402

from ansible_collections.aistack.hosting.plugins.modules import n8n_provision  # noqa: E402

OWNER = {"email": "ops@example.com", "password": "S3cret-owner-pw", "first_name": "Ops", "last_name": "Team"}
HELLO = {"id": "wfHello000000001", "name": "hello", "nodes": [{"name": "Webhook", "type": "n8n-nodes-base.webhook"}],
         "connections": {}, "settings": {"executionOrder": "v1"}, "tags": ["not sent"]}
IDLE = {"id": "wfIdle0000000002", "name": "idle", "nodes": [], "connections": {}}
CRED = {"name": "pg", "type": "postgres", "data": {"host": "postgres", "password": "db-secret"}}


@pytest.fixture()
def n8n() -> Iterator[tuple[FakeN8n, str]]:
    with serve() as running:
        yield running


@pytest.fixture()
def args(n8n, tmp_path) -> dict:
    return {"url": n8n[1] + "/", "owner": dict(OWNER), "state_path": str(tmp_path / "n8n" / "provisioned.json"),
            "session_path": str(tmp_path / "run" / "aistack" / "n8n-session.json"),
            "workflows": [{"content": dict(HELLO), "active": True}, {"content": dict(IDLE), "active": False}],
            "credentials": [json.loads(json.dumps(CRED))]}


def test_first_run_sets_up_owner_imports_activates_and_creates_credentials(run_module, n8n, args):
    fake, _url = n8n
    result = run_module(n8n_provision, args)
    assert not result["failed"], result
    assert result["changed"] is True and result["owner_created"] is True
    assert result["imported"] == [HELLO["id"], IDLE["id"]]
    assert result["activated"] == [HELLO["id"]]
    assert result["credentials"] == ["pg"]
    assert fake.owner["email"] == OWNER["email"] and fake.owner["firstName"] == "Ops"
    assert fake.workflows[HELLO["id"]]["active"] is True and fake.workflows[IDLE["id"]]["active"] is False
    # Only the fields the REST API accepts are sent (an export's "tags" is not).
    assert "tags" not in fake.workflows[HELLO["id"]]
    assert [c["data"] for c in fake.credentials.values()] == [CRED["data"]]
    # Credentials first: workflows may reference them by name.
    assert fake.mutations() == ["POST /rest/owner/setup", "POST /rest/credentials", "POST /rest/workflows",
                                "POST /rest/workflows/wfHello000000001/activate", "POST /rest/workflows"]
    # The Secure auth cookie from setup/login came back over plain HTTP on every authenticated call.
    assert any(path == "/rest/login" for _m, path, _b in fake.calls)
    state_file = Path(args["state_path"])
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    state = json.loads(state_file.read_text())
    assert set(state["workflows"]) == {HELLO["id"], IDLE["id"]} and set(state["credentials"]) == {"pg"}
    # Hashes only: no credential value or password reaches the host's disk.
    assert "db-secret" not in state_file.read_text() and OWNER["password"] not in state_file.read_text()
    assert [p for p in os.listdir(state_file.parent) if p != state_file.name] == []


def test_second_run_changes_nothing_and_sends_no_mutation(run_module, n8n, args):
    fake, _url = n8n
    run_module(n8n_provision, args)
    before = len(fake.calls)
    result = run_module(n8n_provision, args)
    assert result["changed"] is False and result["owner_created"] is False
    assert result["imported"] == [] and result["activated"] == [] and result["credentials"] == []
    # The kept session is resumed: no login (n8n rate-limits them per address), nothing but reads.
    assert [c for c in fake.calls[before:] if c[0] != "GET"] == []
    assert ("GET", "/rest/login", {}) in fake.calls[before:]


def test_the_session_is_kept_private_and_without_the_password(run_module, n8n, args):
    run_module(n8n_provision, args)
    session = Path(args["session_path"])
    assert stat.S_IMODE(session.stat().st_mode) == 0o600 and stat.S_IMODE(session.parent.stat().st_mode) == 0o700
    kept = json.loads(session.read_text())
    assert set(kept["cookies"]) == {"n8n-auth"} and set(kept["owner"]) == {"salt", "scrypt"}
    assert OWNER["password"] not in session.read_text()


def test_a_session_n8n_no_longer_accepts_is_replaced_by_a_login(run_module, n8n, args):
    fake, _url = n8n
    run_module(n8n_provision, args)
    old = json.loads(Path(args["session_path"]).read_text())["cookies"]
    fake.sessions.clear()  # expired, or the owner's password changed
    before = len(fake.calls)
    result = run_module(n8n_provision, args)
    assert not result["failed"] and result["changed"] is False
    assert [p for m, p, _b in fake.calls[before:] if m == "POST"] == ["/rest/login"]
    assert json.loads(Path(args["session_path"]).read_text())["cookies"] != old


def test_without_session_path_every_run_logs_in(run_module, n8n, args):
    fake, _url = n8n
    del args["session_path"]
    run_module(n8n_provision, args)
    before = len(fake.calls)
    assert run_module(n8n_provision, args)["changed"] is False
    assert [c for c in fake.calls[before:] if c[0] != "GET"] == [("POST", "/rest/login", {"emailOrLdapLoginId": OWNER["email"],
                                                                                        "password": OWNER["password"]})]


def test_a_rate_limited_login_waits_as_n8n_asks_then_gives_up_naming_the_limit(run_module, n8n, args, monkeypatch):
    fake, _url = n8n
    run_module(n8n_provision, args)
    Path(args["session_path"]).unlink()
    slept = []
    monkeypatch.setattr(n8n_provision.time, "sleep", slept.append)
    fake.refuse_logins = 2
    assert run_module(n8n_provision, args)["failed"] is False
    assert slept == [1.0, 1.0]  # Retry-After: 1, twice
    Path(args["session_path"]).unlink()
    fake.refuse_logins = 1000
    result = run_module(n8n_provision, args)
    assert result["failed"] and "HTTP 429" in result["msg"] and "limits logins per client address" in result["msg"]
    assert sum(slept) == 2 + n8n_provision.LOGIN_RATE_LIMIT_WAIT


def test_changed_workflow_is_patched_with_the_live_version_and_reactivated(run_module, n8n, args):
    fake, _url = n8n
    run_module(n8n_provision, args)
    old_version = fake.workflows[HELLO["id"]]["versionId"]
    before = len(fake.calls)
    args["workflows"][0]["content"]["nodes"] = [{"name": "Webhook v2", "type": "n8n-nodes-base.webhook"}]
    result = run_module(n8n_provision, args)
    assert result["changed"] is True and result["imported"] == [HELLO["id"]] and result["activated"] == [HELLO["id"]]
    calls = [(m, p) for m, p, _b in fake.calls[before:] if m != "GET"]
    assert ("PATCH", f"/rest/workflows/{HELLO['id']}?forceSave=true") in calls
    patch_body = next(b for m, p, b in fake.calls[before:] if m == "PATCH")
    assert patch_body["versionId"] == old_version
    live = fake.workflows[HELLO["id"]]
    assert live["nodes"][0]["name"] == "Webhook v2" and live["active"] is True and live["versionId"] != old_version
    assert fake.mutations()[-2:] == [f"PATCH /rest/workflows/{HELLO['id']}?forceSave=true", f"POST /rest/workflows/{HELLO['id']}/activate"]
    assert run_module(n8n_provision, args)["changed"] is False


def test_workflow_deleted_in_n8n_is_imported_again(run_module, n8n, args):
    fake, _url = n8n
    run_module(n8n_provision, args)
    del fake.workflows[IDLE["id"]]
    result = run_module(n8n_provision, args)
    assert result["changed"] is True and result["imported"] == [IDLE["id"]] and result["activated"] == []
    assert IDLE["id"] in fake.workflows


def test_changed_credential_is_updated_in_place(run_module, n8n, args):
    fake, _url = n8n
    run_module(n8n_provision, args)
    (cred_id,) = fake.credentials
    args["credentials"][0]["data"]["password"] = "rotated"
    result = run_module(n8n_provision, args)
    assert result["changed"] is True and result["credentials"] == ["pg"] and result["imported"] == []
    assert list(fake.credentials) == [cred_id] and fake.credentials[cred_id]["data"]["password"] == "rotated"
    assert fake.mutations()[-1] == f"PATCH /rest/credentials/{cred_id}"


def test_check_mode_on_a_fresh_n8n_predicts_everything_and_changes_nothing(run_module, n8n, args):
    fake, _url = n8n
    result = run_module(n8n_provision, args, check_mode=True)
    assert result["changed"] is True and result["owner_created"] is True
    assert result["imported"] == [HELLO["id"], IDLE["id"]] and result["credentials"] == ["pg"]
    # Without an owner there is nobody to log in as: only the settings are read.
    assert [(m, p) for m, p, _b in fake.calls] == [("GET", "/rest/settings")]
    assert fake.owner is None and not fake.workflows and not fake.credentials
    assert not Path(args["state_path"]).exists()


def test_check_mode_with_drift_reports_it_and_mutates_nothing(run_module, n8n, args):
    fake, _url = n8n
    run_module(n8n_provision, args)
    state_before = Path(args["state_path"]).read_text()
    Path(args["session_path"]).unlink()  # check mode logs in, but keeps no session
    mutations_before = fake.mutations()
    args["workflows"][0]["content"]["name"] = "hello renamed"
    args["credentials"].append({"name": "redis", "type": "redis", "data": {"password": "r3dis-secret-pw"}})
    result = run_module(n8n_provision, args, check_mode=True)
    assert result["changed"] is True and result["owner_created"] is False
    assert result["imported"] == [HELLO["id"]] and result["activated"] == [] and result["credentials"] == ["redis"]
    assert fake.mutations() == mutations_before
    assert fake.workflows[HELLO["id"]]["name"] == "hello" and len(fake.credentials) == 1
    assert Path(args["state_path"]).read_text() == state_before
    assert not Path(args["session_path"]).exists()


def test_wrong_owner_password_fails_without_echoing_it(run_module, n8n, args):
    run_module(n8n_provision, args)
    args["owner"]["password"] = "not-the-password"
    result = run_module(n8n_provision, args)
    assert result["failed"] is True
    assert "POST /rest/login -> HTTP 401" in result["msg"]
    assert "not-the-password" not in json.dumps(result)


def test_workflow_without_id_fails(run_module, n8n, args):
    args["workflows"] = [{"content": {"name": "no id", "nodes": []}}]
    result = run_module(n8n_provision, args)
    assert result["failed"] is True and "has no id" in result["msg"]


def test_owner_without_password_fails_before_any_call(run_module, n8n, args):
    fake, _url = n8n
    args["owner"] = {"email": "ops@example.com"}
    result = run_module(n8n_provision, args)
    assert result["failed"] is True and "missing required arguments: password found in owner" in result["msg"]
    assert fake.calls == []


def test_only_secrets_are_masked_in_the_result(run_module, n8n, args):
    """The owner's names and the credentials' names are not no_log: Ansible would mask them inside
    every returned value (a last name "aistack" turned workflow id aistackE2eQueue1 into ********E2eQueue1)."""
    args["owner"]["last_name"] = "aistack"
    args["workflows"] = [{"content": {**HELLO, "id": "aistackE2eQueue1"}, "active": True}]
    args["credentials"][0]["name"] = "aistack-pg"
    result = run_module(n8n_provision, args)
    assert not result["failed"], result
    assert result["imported"] == ["aistackE2eQueue1"] and result["credentials"] == ["aistack-pg"], result
    assert "db-secret" not in json.dumps(result) and OWNER["password"] not in json.dumps(result)


def test_unreachable_n8n_fails_with_a_message(run_module, args):
    with serve() as (_fake, url):
        pass  # the port is closed again: nothing listens there
    args["url"] = url
    result = run_module(n8n_provision, args)
    assert result["failed"] is True and result["msg"].startswith("n8n_provision: ")


def test_requests_go_through_ansible_urls(monkeypatch, n8n):
    """HTTP goes through ansible.module_utils.urls (proxy, TLS, User-Agent), not a raw urlopen."""
    from ansible.module_utils.urls import Request

    _fake, url = n8n
    seen = []
    original = Request.open

    def spy(self, method, target, *a, **kw):
        seen.append((method, target, (kw.get("headers") or {}).get("User-Agent"), self.http_agent))
        return original(self, method, target, *a, **kw)

    monkeypatch.setattr(Request, "open", spy)
    client = n8n_provision.N8nClient(url)
    assert client.call("GET", "/rest/settings") == {"userManagement": {"showSetupOnFirstLoad": True}}
    assert seen and seen[0][:2] == ("GET", url + "/rest/settings") and seen[0][3] == "aistack.hosting"


def by_container(args: dict, url: str, monkeypatch, network: str = "aistack", decoy: str = "0_default") -> dict:
    """The same call, with the main process found from its container instead of a URL.

    The container is on `network` (where n8n answers) and on `decoy` (an address where nothing does).
    """
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    monkeypatch.setenv("FAKE_DOCKER_NETWORKS", json.dumps({decoy: {"IPAddress": "192.0.2.1"},
                                                           network: {"IPAddress": host}}))
    found = dict(args)
    del found["url"]
    found.update(container="aistack-n8n", network="aistack", port=int(port), wait_timeout=30)
    return found


def test_container_address_and_readiness_wait(run_module, n8n, args, docker, monkeypatch):
    fake, url = n8n
    fake.unready = 2  # n8n still migrating its database: two 503 answers first
    result = run_module(n8n_provision, by_container(args, url, monkeypatch))
    assert not result["failed"], result
    assert result["url"] == url.rstrip("/") and result["owner_created"] is True
    assert [path for _m, path, _b in fake.calls[:3]] == ["/healthz/readiness"] * 3
    assert fake.unready == 0


def test_container_on_another_network_is_found_there(run_module, n8n, args, docker, monkeypatch):
    _fake, url = n8n
    # Without a public host name the main process is not on the stack network: any network it is on
    # (sorted by name). With the stack network, the decoy that sorts first is not used (test above).
    result = run_module(n8n_provision, by_container(args, url, monkeypatch, network="n8n_postgres", decoy="zz_monitoring") | {"network": "aistack"})
    assert not result["failed"], result


def test_readiness_timeout_names_the_url(run_module, n8n, args, docker, monkeypatch):
    fake, url = n8n
    fake.unready = 1000
    result = run_module(n8n_provision, by_container(args, url, monkeypatch) | {"wait_timeout": 2})
    assert result["failed"] and "not ready after 2 s" in result["msg"] and "/healthz/readiness" in result["msg"]
    assert fake.mutations() == []


def test_missing_container_is_a_no_op_in_check_mode_and_an_error_otherwise(run_module, n8n, args, docker, monkeypatch):
    fake, url = n8n
    found = by_container(args, url, monkeypatch)
    monkeypatch.delenv("FAKE_DOCKER_NETWORKS")
    result = run_module(n8n_provision, found, check_mode=True)
    assert not result["failed"] and result["changed"] is False and result["url"] is None
    result = run_module(n8n_provision, found)
    assert result["failed"] and "there is no container aistack-n8n" in result["msg"]
    assert fake.calls == []


SENDER = {"id": "wfSender00000001", "name": "sender", "connections": {},
          "nodes": [{"name": "Send", "type": "n8n-nodes-base.httpRequest",
                     "credentials": {"postgres": {"id": "id-on-the-exporting-instance", "name": "pg"}}}]}


def test_credential_references_are_resolved_by_name(run_module, n8n, args):
    fake, _url = n8n
    args["workflows"] = [{"content": json.loads(json.dumps(SENDER)), "active": False}]
    result = run_module(n8n_provision, args)
    assert not result["failed"], result
    created = next(iter(fake.credentials.values()))
    assert fake.workflows[SENDER["id"]]["nodes"][0]["credentials"] == {"postgres": {"id": created["id"], "name": "pg"}}
    # Nothing changed: nothing re-imported.
    assert run_module(n8n_provision, args)["changed"] is False
    # The credential recreated under another id (deleted in the UI, provisioned again): the workflow follows.
    fake.credentials.clear()
    Path(args["state_path"]).unlink()
    result = run_module(n8n_provision, args)
    recreated = next(iter(fake.credentials.values()))
    assert recreated["id"] != created["id"] and result["imported"] == [SENDER["id"]]
    assert fake.workflows[SENDER["id"]]["nodes"][0]["credentials"]["postgres"]["id"] == recreated["id"]


def test_unknown_credential_fails_naming_workflow_node_and_credential(run_module, n8n, args):
    fake, _url = n8n
    sender = json.loads(json.dumps(SENDER))
    sender["nodes"][0]["credentials"] = {"httpHeaderAuth": {"name": "WhatsApp Cloud API"}}
    args["workflows"] = [{"content": sender, "active": True}]
    result = run_module(n8n_provision, args)
    assert result["failed"]
    assert "workflow 'sender', node 'Send': credential 'WhatsApp Cloud API' of type httpHeaderAuth" in result["msg"]
    assert SENDER["id"] not in fake.workflows


def test_check_mode_resolves_against_the_credentials_it_would_create(run_module, n8n, args):
    fake, _url = n8n
    run_module(n8n_provision, dict(args, workflows=[]))  # owner exists; no credential yet
    fake.credentials.clear()
    Path(args["state_path"]).unlink()
    args["workflows"] = [{"content": json.loads(json.dumps(SENDER)), "active": False}]
    result = run_module(n8n_provision, args, check_mode=True)
    assert not result["failed"], result
    assert result["imported"] == [SENDER["id"]] and result["credentials"] == ["pg"] and fake.credentials == {}
