"""The assistant layout end to end: Meta's webhook -> n8n -> the app -> the (FAKE) WhatsApp Cloud API.

The inbound side is real: Meta's webhook shapes posted through Traefik (a real
certificate from Pebble) to n8n's production webhook. The outbound side is a
FAKE of the Cloud API's send endpoint (tests/fakes/whatsapp_cloud.py), which
records what it receives and can be told to fail; it proves the workflows'
payloads, credential and retries, not Meta's behaviour. The tests run in
order: each drives the workflows and waits (bounded) for their effect.
"""

import hashlib
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import pebble_root as fetch_pebble_root, probe  # noqa: E402

HOSTNAME = "n8n.assistant.test"
VERIFY_TOKEN = "Meta-Verify-Token-0123"
ACCESS_TOKEN = "Fake-WhatsApp-Access-Token-0123"
FAKE = "http://127.0.0.1:18080/_fake"


@pytest.fixture(scope="module")
def pebble_root(host) -> str:
    return fetch_pebble_root(host)


def fake(host, action: str, body: dict | None = None) -> dict:
    """The fake's control endpoints (its port is on the host's loopback)."""
    # The body as hex: no quote of it can meet the shell's.
    data = "None" if body is None else f"bytes.fromhex('{json.dumps(body).encode().hex()}')"
    out = host.check_output(
        "python3 -c \"import urllib.request; "
        f"print(urllib.request.urlopen(urllib.request.Request('{FAKE}/{action}', data={data})).read().decode())\"")
    return json.loads(out)


def psql(host, sql: str) -> list[str]:
    """The assistant's database, as its owner (loopback is trusted in the official image)."""
    out = host.check_output(f"docker exec aistack-postgres psql -U assistant -d assistant -qtA -c \"{sql}\"")
    return [line for line in out.splitlines() if line]


def inbound(host, pebble_root: str, sender: str, text: str, message_id: str) -> dict:
    """One text message as Meta's webhook posts it."""
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "123456789012345"},
        "contacts": [{"wa_id": sender, "profile": {"name": "Test"}}],
        "messages": [{"from": sender, "id": message_id, "timestamp": str(int(time.time())), "type": "text",
                      "text": {"body": text}}]}}]}]}
    return probe(host, HOSTNAME, 443, "/webhook/whatsapp", pebble_root, "--post", json.dumps(payload))


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(2)


def expected_reply(sender: str, text: str) -> str:
    """What the sample app's /api/echo answers as sha256 (its canonical JSON: sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps({"from": sender, "text": text}, sort_keys=True,
                                     separators=(",", ":")).encode()).hexdigest()


def test_meta_handshake_answers_the_challenge_only_to_the_verify_token(host, pebble_root):
    good = probe(host, HOSTNAME, 443, f"/webhook/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"
                 "&hub.challenge=1158201444", pebble_root)
    assert good["status"] == 200 and good["body"] == "1158201444", good
    bad = probe(host, HOSTNAME, 443, "/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
                pebble_root)
    assert bad["status"] == 403 and "1" not in bad["body"], bad


def test_inbound_message_is_answered_through_the_app(host, pebble_root):
    fake(host, "reset", {})
    answer = inbound(host, pebble_root, "5215550001111", "hola", "wamid.IN.one")
    assert answer["status"] == 200, answer
    sent = wait_for(lambda: fake(host, "sent")["sent"], 60, "a reply sent to the Cloud API")
    assert sent == [{"path": "/v21.0/123456789012345/messages", "body": {
        "messaging_product": "whatsapp", "to": "5215550001111", "type": "text",
        "text": {"body": expected_reply("5215550001111", "hola")}}}]
    rows = wait_for(lambda: psql(host, "SELECT direction || ':' || wa_id FROM assistant_messages "
                                       "WHERE wa_id = '5215550001111' ORDER BY id"), 30, "both messages recorded")
    assert rows == ["in:5215550001111", "out:5215550001111"]


def test_a_delivery_meta_retries_is_answered_once(host, pebble_root):
    fake(host, "reset", {})
    assert inbound(host, pebble_root, "5215550001111", "hola", "wamid.IN.one")["status"] == 200
    time.sleep(8)
    assert fake(host, "sent") == {"sent": [], "attempts": 0, "failures": 0}


def test_a_failing_send_is_retried(host, pebble_root):
    fake(host, "reset", {})
    fake(host, "fail", {"count": 2})
    assert inbound(host, pebble_root, "5215550002222", "retry", "wamid.IN.two")["status"] == 200
    state = wait_for(lambda: (lambda s: s if s["sent"] else None)(fake(host, "sent")), 60, "the third attempt")
    assert state["attempts"] == 3 and state["failures"] == 2
    assert state["sent"][0]["body"]["text"]["body"] == expected_reply("5215550002222", "retry")


def test_a_send_that_keeps_failing_reaches_the_error_workflow(host, pebble_root):
    fake(host, "reset", {})
    fake(host, "fail", {"count": 10})
    assert inbound(host, pebble_root, "5215550003333", "down", "wamid.IN.three")["status"] == 200
    rows = wait_for(lambda: psql(host, "SELECT workflow || '|' || node FROM assistant_failures "
                                       "WHERE node = 'Send the reply'"), 60, "the failure recorded")
    assert rows == ["WhatsApp assistant: intake (Meta webhook -> app -> reply)|Send the reply"]
    state = fake(host, "sent")
    assert state["sent"] == [] and state["attempts"] == 3  # n8n_whatsapp_send_tries
    fake(host, "fail", {"count": 0})


def test_a_due_reminder_is_sent_once(host):
    fake(host, "reset", {})
    psql(host, "INSERT INTO assistant_reminders (wa_id, body, due_at) VALUES ('5215550004444', 'Su cita es mañana', now())")
    sent = wait_for(lambda: fake(host, "sent")["sent"], 60, "the reminder sent")
    assert [item["body"] for item in sent] == [{"messaging_product": "whatsapp", "to": "5215550004444", "type": "text",
                                               "text": {"body": "Su cita es mañana"}}]
    assert psql(host, "SELECT count(*) FROM assistant_reminders WHERE sent_at IS NULL") == ["0"]
    time.sleep(15)  # later schedule runs find nothing due
    assert len(fake(host, "sent")["sent"]) == 1


def test_the_day_is_counted(host):
    row = wait_for(lambda: psql(host, "SELECT messages_in || ':' || failures FROM assistant_daily_stats "
                                      "WHERE day = current_date AND messages_in >= 3"), 90, "the day's counts")
    messages_in, failures = map(int, row[0].split(":"))
    assert messages_in == 3 and failures >= 1


def test_no_secret_is_in_a_workflow(host):
    workflows = host.check_output("docker exec aistack-postgres psql -U postgres -d n8n -qtA "
                                  "-c 'SELECT nodes::text FROM workflow_entity'")
    assert "Check the verify token" in workflows  # the assistant's workflows are there
    assert ACCESS_TOKEN not in workflows  # the token lives in an encrypted n8n credential
    secret = host.file("/etc/aistack/secrets/n8n_whatsapp_verify_token")
    assert secret.mode == 0o600 and secret.content_string.strip() == VERIFY_TOKEN


def test_the_app_runs_web_only_without_a_database(host):
    names = host.check_output("docker ps --format '{{.Names}}'").split()
    assert [name for name in names if name.startswith("aistack-fastapi")] == ["aistack-fastapi-web"]
    env = json.loads(host.check_output("docker inspect --format '{{json .Config.Env}}' aistack-fastapi-web"))
    assert not [item for item in env if item.startswith("DATABASE_URL=")]
    mounts = json.loads(host.check_output("docker inspect --format '{{json .Mounts}}' aistack-fastapi-web"))
    assert [m["Name"] for m in mounts if m["Destination"] == "/models"] == ["aistack_models_cache"]
