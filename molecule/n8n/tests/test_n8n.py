"""Verify n8n in queue mode: owner, imported workflow through Traefik, workers, runners, credentials.

Runs twice: after converge, and after side_effect (which scaled the workers
2 -> 3 and recreated every n8n container).
"""

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import pebble_root as fetch_pebble_root, phase, probe, secret  # noqa: E402

HOSTNAME = "n8n.aistack.test"
LOGIN = json.dumps({"emailOrLdapLoginId": "owner@aistack.test", "password": "Molecule-Owner-Passw0rd"})


@pytest.fixture(scope="module")
def pebble_root(host) -> str:
    return fetch_pebble_root(host)


def webhook(host, cafile: str, n: int) -> dict:
    result = None
    for _ in range(20):  # the certificate or the webhook registration may still be settling
        try:
            result = probe(host, HOSTNAME, 443, "/webhook/aistack-e2e", cafile, "--post", json.dumps({"n": n}))
            if result["status"] == 200:
                break
        except AssertionError:
            pass
        host.run("sleep 3")
    assert result is not None and result["status"] == 200, result
    return json.loads(result["body"])


class TestN8n:
    def test_owner_logs_in_through_traefik(self, host, pebble_root):
        result = probe(host, HOSTNAME, 443, "/rest/login", pebble_root, "--post", LOGIN)
        assert result["status"] == 200, result
        assert json.loads(result["body"])["data"]["email"] == "owner@aistack.test"
        assert "Pebble" in result["issuer"]

    def test_imported_workflow_answers_through_traefik(self, host, pebble_root):
        assert webhook(host, pebble_root, 7) == {"square": 49, "backend": True}

    def test_execution_ran_on_a_worker(self, host, pebble_root):
        webhook(host, pebble_root, 3)
        logs = host.check_output("for c in $(docker ps --format '{{.Names}}' | grep -E '^aistack-n8n-worker-[0-9]+$'); "
                                 "do docker logs $c 2>&1; done")
        assert re.search(r"started execution \d+", logs, re.I), logs[-2000:]
        main_logs = host.check_output("docker logs aistack-n8n 2>&1")
        assert not re.search(r"Worker started execution", main_logs)

    def test_code_node_ran_on_an_external_runner(self, host):
        # N8N_RUNNERS_MODE=external has no in-process fallback: the Code node
        # could only have run on a runner; its logs show the task too.
        logs = host.check_output("for c in $(docker ps --format '{{.Names}}' | grep -E 'runner$'); "
                                 "do docker logs $c 2>&1; done")
        assert re.search(r"task", logs, re.I), logs[-2000:]

    def test_broker_port_is_not_on_the_network(self, host):
        ip = host.check_output(
            "docker inspect --format '{{(index .NetworkSettings.Networks \"aistack\").IPAddress}}' aistack-n8n-worker-1"
        )
        cmd = host.run(f"python3 -c \"import socket; socket.create_connection(('{ip}', 5679), timeout=3)\"")
        assert cmd.rc != 0, "the task broker answers on the stack network"

    def test_all_processes_healthy_and_same_version(self, host):
        rows = host.check_output("docker ps --filter label=org.aistack.role=n8n --format '{{.Names}} {{.Image}} {{.Status}}'")
        lines = rows.splitlines()
        assert len(lines) >= 6, rows  # main + 2 workers, each with its runner
        for line in lines:
            name, image, status = line.split(" ", 2)
            assert image.endswith(":2.41.1"), line
            assert "(healthy)" in status, line

    def test_only_traefik_publishes_ports(self, host):
        published = [line for line in host.check_output("docker ps --format '{{.Names}} {{.Ports}}'").splitlines()
                     if "->" in line]
        assert [line.split()[0] for line in published] == ["aistack-traefik"]

    def test_encryption_key_generated_once(self, host):
        assert len(secret(host, "n8n_encryption_key")) == 48
        assert host.file("/etc/aistack/secrets/n8n_encryption_key").mode == 0o600


class TestAfterRecreate:
    @pytest.fixture(autouse=True)
    def after_side_effect(self, host):
        if phase(host) != "after-side-effect":
            pytest.skip("runs after side_effect scaled and recreated n8n")

    def test_third_worker_joined(self, host):
        status = host.check_output("docker inspect --format '{{.State.Health.Status}}' aistack-n8n-worker-3")
        assert status == "healthy"

    def test_credential_still_decrypts(self, host):
        # The REST API redacts secret fields; n8n's own CLI decrypts with the
        # key the recreated containers got from the persisted secret.
        out = host.check_output(
            "docker exec aistack-n8n sh -c 'n8n export:credentials --all --decrypted --output=/tmp/c.json "
            ">/dev/null 2>&1; cat /tmp/c.json; rm -f /tmp/c.json'"
        )
        creds = {c["name"]: c for c in json.loads(out)}
        assert creds["aistack-test-header-auth"]["data"]["value"] == "vault-secret-value-42"

    def test_workflow_still_answers(self, host, pebble_root):
        assert webhook(host, pebble_root, 12) == {"square": 144, "backend": True}
