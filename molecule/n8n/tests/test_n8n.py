"""Verify n8n in queue mode: owner, imported workflows through Traefik, workers,
the webhook processor, task runners and their allow-lists, credentials.

Runs twice: after converge, and after side_effect (which scaled the workers
2 -> 3, edited a workflow file between two converges and recreated every n8n
container).
"""

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import (assert_no_secret_in, assert_no_secret_in_container_config, assert_owner_never_claimed, assert_rate_limited_at_the_edge,  # noqa: E402
                     connectivity, container_ip, pebble_root as fetch_pebble_root, phase, probe, secret, stack_networks)

HOSTNAME = "n8n.aistack.test"
LOGIN = json.dumps({"emailOrLdapLoginId": "owner@aistack.test", "password": "Molecule-Owner-Passw0rd"})
RUNNER_JS = "/opt/runners/task-runner-javascript/dist/start.js"
# What n8n's processes hold and a Code node must never see.
N8N_SECRET_VARS = {"N8N_ENCRYPTION_KEY", "N8N_USER_MANAGEMENT_JWT_SECRET", "N8N_RUNNERS_AUTH_TOKEN",
                   "DB_POSTGRESDB_PASSWORD", "QUEUE_BULL_REDIS_PASSWORD"}


@pytest.fixture(scope="module")
def pebble_root(host) -> str:
    return fetch_pebble_root(host)


def webhook(host, cafile: str, n: int, path: str = "/webhook/aistack-e2e") -> dict:
    result = None
    for _ in range(20):  # the certificate or the webhook registration may still be settling
        try:
            result = probe(host, HOSTNAME, 443, path, cafile, "--post", json.dumps({"n": n}))
            if result["status"] == 200:
                break
        except AssertionError:
            pass
        host.run("sleep 3")
    assert result is not None and result["status"] == 200, result
    return json.loads(result["body"])


def revision(host) -> int:
    """side_effect edits the e2e workflow file (revision 1 -> 2) between two converges."""
    return 2 if phase(host) == "after-side-effect" else 1


def post_direct(host, ip: str, path: str, body: dict) -> tuple[int, str]:
    """POST to one n8n process on the stack network, bypassing Traefik."""
    script = (
        "import json,sys,urllib.request,urllib.error\n"
        f"req=urllib.request.Request('http://{ip}:5678{path}',data=json.dumps({body!r}).encode(),"
        "method='POST',headers={'Content-Type':'application/json'})\n"
        "try:\n r=urllib.request.urlopen(req,timeout=60); print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n print(e.code); print(e.read().decode()[:500])\n"
    )
    out = host.check_output(f"python3 -c {shlex.quote(script)}")
    status, _, text = out.partition("\n")
    return int(status), text


@pytest.fixture(scope="module")
def runner_facts(host, pebble_root) -> dict:
    """What the Code node of the runner-facts workflow saw of its own process."""
    return webhook(host, pebble_root, 0, "/webhook/aistack-runner-facts")


@pytest.fixture(scope="module")
def host_secrets(host) -> dict:
    """Every secret the roles persisted on this host (/etc/aistack/secrets)."""
    names = host.check_output("ls /etc/aistack/secrets").split()
    return {name: secret(host, name) for name in names}


class TestN8n:
    def test_owner_logs_in_through_traefik(self, host, pebble_root):
        result = probe(host, HOSTNAME, 443, "/rest/login", pebble_root, "--post", LOGIN)
        assert result["status"] == 200, result
        assert json.loads(result["body"])["data"]["email"] == "owner@aistack.test"
        assert "Pebble" in result["issuer"]

    def test_imported_workflow_answers_through_traefik(self, host, pebble_root):
        assert webhook(host, pebble_root, 7) == {"square": 49, "backend": True, "revision": revision(host)}

    def test_main_serves_no_production_webhook(self, host):
        # N8N_DISABLE_PRODUCTION_MAIN_PROCESS: main has no /webhook/ endpoint,
        # so the 200s through Traefik came from the webhook processor.
        status, body = post_direct(host, container_ip(host, "aistack-n8n"), "/webhook/aistack-e2e", {"n": 2})
        assert status == 404, (status, body)
        assert "square" not in body

    def test_webhook_processor_serves_production_webhooks(self, host):
        status, body = post_direct(host, container_ip(host, "aistack-n8n-webhook-1"), "/webhook/aistack-e2e", {"n": 4})
        assert status == 200, (status, body)
        assert json.loads(body)["square"] == 16

    def test_traefik_sends_webhooks_to_the_processor(self, host):
        # The routes file the n8n role wrote for Traefik's file provider (Traefik has no Docker socket).
        http = yaml.safe_load(host.file("/opt/aistack/traefik/dynamic/routes-n8n.yml").content_string)["http"]
        servers = {name: [s["url"] for s in service["loadBalancer"]["servers"]] for name, service in http["services"].items()}
        webhook_rules = [r["rule"] for r in http["routers"].values() if servers[r["service"]] == ["http://aistack-n8n-webhook-1:5678"]]
        # Every endpoint main disables with N8N_DISABLE_PRODUCTION_MAIN_PROCESS.
        for path in ("/webhook/", "/webhook-waiting/", "/webhook-waiting-slack", "/webhook-waiting-telegram",
                     "/form/", "/form-waiting/", "/mcp/"):
            assert webhook_rules and all(f"PathPrefix(`{path}`)" in rule for rule in webhook_rules), (path, http)
        main_rules = [r["rule"] for r in http["routers"].values() if servers[r["service"]] == ["http://aistack-n8n:5678"]]
        assert main_rules and not any("/webhook/" in rule for rule in main_rules), main_rules

    def test_execution_ran_on_a_worker(self, host, pebble_root):
        webhook(host, pebble_root, 3)
        logs = host.check_output("for c in $(docker ps --format '{{.Names}}' | grep -E '^aistack-n8n-worker-[0-9]+$'); "
                                 "do docker logs $c 2>&1; done")
        assert re.search(r"started execution \d+", logs, re.I), logs[-2000:]
        main_logs = host.check_output("docker logs aistack-n8n 2>&1")
        assert not re.search(r"Worker started execution", main_logs)

    def test_code_node_ran_on_an_external_runner(self, host, runner_facts):
        facts = runner_facts
        # The runners image's user; n8n's own image runs as `node` (also uid 1000).
        assert (facts["user"], facts["uid"], facts["gid"], facts["home"]) == ("runner", 1000, 1000, "/home/runner"), facts
        assert facts["argv"][1] == RUNNER_JS, facts["argv"]
        # The code's host name is its runner container's: a runner of a worker (the
        # workers execute production runs), in a namespace of its own.
        rows = host.check_output("docker ps --filter label=org.aistack.role=n8n "
                                 "--format '{{.Names}}' | xargs docker inspect --format '{{.Name}} {{.Config.Hostname}}'")
        owners = [name.lstrip("/") for name, hostname in (row.split() for row in rows.splitlines())
                  if hostname == facts["hostname"]]
        assert len(owners) == 1 and re.fullmatch(r"aistack-worker-\d+-runner", owners[0]), owners
        runner = owners[0]
        network = host.check_output(f"docker inspect --format '{{{{.HostConfig.NetworkMode}}}}' {runner}")
        assert not network.startswith("container:"), network
        cmdline = host.check_output(f"docker exec {runner} cat /proc/{facts['pid']}/cmdline").split("\0")
        assert RUNNER_JS in cmdline, cmdline
        status = host.check_output(f"docker exec {runner} cat /proc/{facts['pid']}/status")
        assert re.search(r"^Uid:\s+1000\s", status, re.M), status
        # The runner's parent is the launcher, not an n8n process.
        parent = host.check_output(f"docker exec {runner} cat /proc/{facts['ppid']}/cmdline").split("\0")
        assert any(arg.endswith("task-runner-launcher") for arg in parent), parent

    def test_runners_reach_their_own_broker_and_nothing_else(self, host):
        """Each runner's network holds its n8n process alone, whose task broker listens
        there only: no data store, no other process, no Traefik, no internet route."""
        processes = {"aistack-worker-1-runner": "aistack-n8n-worker-1", "aistack-worker-2-runner": "aistack-n8n-worker-2"}
        ports = {"aistack-postgres": [5432], "aistack-redis": [6379], "aistack-traefik": [443], "aistack-n8n": [5678],
                 "aistack-n8n-webhook-1": [5678], **{process: [5678, 5679] for process in processes.values()}}
        actual, networks = connectivity(host, ports), stack_networks(host)
        for runner, process in processes.items():
            assert actual[runner] == {f"{process}:5678", f"{process}:5679"}, runner
            joined = networks[runner]
            assert joined == [f"n8n_runner-{process.removeprefix('aistack-').removeprefix('n8n-')}"], joined
            assert host.check_output(f"docker network inspect --format '{{{{.Internal}}}}' {joined[0]}") == "true"
        # The broker is bound to the runner network's address alone: even the data
        # stores' neighbours (main and the webhook processor share postgres and redis) miss it.
        for neighbour in ("aistack-n8n", "aistack-n8n-webhook-1"):
            assert not {f"{p}:5679" for p in processes.values()} & actual[neighbour], neighbour
        # Main executes no code in queue mode (manual runs go to workers): n8n starts no
        # task broker there, so the role gives it no runner.
        assert "aistack-n8n-runner" not in networks

    def test_runner_env_holds_no_n8n_secret(self, host, runner_facts, host_secrets):
        assert {"n8n_encryption_key", "n8n_runners_auth_token", "n8n_jwt_secret", "postgres_user_n8n",
                "redis_password"} <= set(host_secrets), sorted(host_secrets)
        env = runner_facts["env"]
        assert not N8N_SECRET_VARS & set(env), sorted(env)
        seen = json.dumps(runner_facts)
        leaked = [name for name, value in host_secrets.items() if len(value) >= 8 and value in seen]
        assert not leaked, f"secrets visible to Code nodes: {leaked}"
        # Only what the launcher passes: the config's allowed-env and env-overrides
        # plus the runtime variables it sets itself.
        config = json.loads(host.file("/opt/aistack/n8n/n8n-task-runners.json").content_string)
        js = next(r for r in config["task-runners"] if r["runner-type"] == "javascript")
        allowed = set(js["allowed-env"]) | set(js["env-overrides"]) | {
            "LANG", "PATH", "TZ", "TERM", "N8N_RUNNERS_TASK_BROKER_URI", "N8N_RUNNERS_GRANT_TOKEN",
            "N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED", "N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT",
            "N8N_RUNNERS_TASK_TIMEOUT", "N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT"}
        assert set(env) <= allowed, sorted(set(env) - allowed)

    def test_javascript_allow_lists(self, host, runner_facts):
        modules = runner_facts["modules"]
        assert modules["crypto"] == "loaded" and modules["moment"] == "loaded", modules
        for name in ("child_process", "fs", "lodash"):
            assert modules[name] != "loaded" and re.search(rf"Cannot find module '{name}'|disallowed", modules[name]), modules
        # lodash IS installed for the runner: the allow-list refused it, not its absence.
        host.run_expect([0], "docker exec aistack-worker-1-runner node -e \"require.resolve('lodash', "
                             "{paths: [require('fs').realpathSync('/opt/runners/task-runner-javascript/dist')]})\"")

    def test_python_allow_lists_rendered(self, host):
        rendered = host.file("/opt/aistack/n8n/n8n-task-runners.json").content_string
        mounted = host.check_output("docker exec aistack-worker-1-runner cat /etc/n8n-task-runners.json")
        assert json.loads(mounted) == json.loads(rendered)
        runners = {r["runner-type"]: r for r in json.loads(rendered)["task-runners"]}
        assert runners["python"]["env-overrides"] == {"N8N_RUNNERS_STDLIB_ALLOW": "json,math,datetime",
                                                      "N8N_RUNNERS_EXTERNAL_ALLOW": "*"}
        overrides = runners["javascript"]["env-overrides"]
        assert overrides["NODE_FUNCTION_ALLOW_BUILTIN"] == "crypto,os,process"
        assert overrides["NODE_FUNCTION_ALLOW_EXTERNAL"] == "moment"

    def test_broker_port_is_not_on_the_network(self, host):
        ip = container_ip(host, "aistack-n8n-worker-1")
        cmd = host.run(f"python3 -c \"import socket; socket.create_connection(('{ip}', 5679), timeout=3)\"")
        assert cmd.rc != 0, "the task broker answers on the stack network"

    def test_all_processes_healthy_and_same_version(self, host):
        rows = host.check_output("docker ps --filter label=org.aistack.role=n8n --format '{{.Names}} {{.Image}} {{.Status}}'")
        lines = rows.splitlines()
        assert len(lines) >= 6, rows  # main + 2 workers, each with its runner, + 1 webhook processor
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

    def test_edited_workflow_still_answers(self, host, pebble_root):
        # side_effect checked the new revision right after the PATCH; it survives the recreate.
        assert webhook(host, pebble_root, 12) == {"square": 144, "backend": True, "revision": 2}


def get_direct(host, ip: str, path: str) -> tuple[int, str]:
    """GET from one n8n process on the stack network, bypassing Traefik."""
    script = (
        "import urllib.request,urllib.error\n"
        f"try:\n r=urllib.request.urlopen('http://{ip}:5678{path}',timeout=30); print(r.status); print(r.read().decode()[:2000])\n"
        "except urllib.error.HTTPError as e:\n print(e.code); print(e.read().decode()[:500])\n"
    )
    status, _, text = host.check_output(f"python3 -c {shlex.quote(script)}").partition("\n")
    return int(status), text


# Last in the file: the rate-limit test spends the login router's burst.
class TestEdge:
    def test_owner_was_never_claimable_through_traefik(self, host):
        # The prober (molecule/shared/owner_claim_probe.py) has POSTed /rest/owner/setup
        # through Traefik every second since before the first converge.
        assert_owner_never_claimed(host)

    def test_n8n_created_its_owner_at_startup_main_process_only(self, host):
        """N8N_INSTANCE_OWNER_* (owner.env, 0600, and the hash's file) reach the main process only;
        n8n made the owner itself."""
        owner_env = host.file("/opt/aistack/n8n/owner.env")
        assert owner_env.mode == 0o600 and owner_env.user == "root"
        assert "Molecule-Owner-Passw0rd" not in owner_env.content_string  # the bcrypt hash only

        def env(name: str) -> dict:
            rows = json.loads(host.check_output(f"docker inspect --format '{{{{json .Config.Env}}}}' {name}"))
            return dict(row.split("=", 1) for row in rows)
        main = env("aistack-n8n")
        assert main["N8N_INSTANCE_OWNER_MANAGED_BY_ENV"] == "true"
        assert main["N8N_INSTANCE_OWNER_EMAIL"] == "owner@aistack.test"
        # The password hash: a file main alone mounts (N8N_INSTANCE_OWNER_PASSWORD_HASH_FILE).
        assert "N8N_INSTANCE_OWNER_PASSWORD_HASH" not in main
        hash_file = host.file("/opt/aistack/n8n/secrets/n8n/N8N_INSTANCE_OWNER_PASSWORD_HASH")
        assert hash_file.content_string.startswith("$2a$10$") and hash_file.uid == 1000 and hash_file.mode == 0o400
        assert main["N8N_INSTANCE_OWNER_PASSWORD_HASH_FILE"] == "/run/secrets/N8N_INSTANCE_OWNER_PASSWORD_HASH"
        worker = env("aistack-n8n-worker-1")
        assert not {"N8N_INSTANCE_OWNER_PASSWORD_HASH", "N8N_INSTANCE_OWNER_PASSWORD_HASH_FILE"} & set(worker)

    def test_metrics_and_owner_setup_are_internal_only(self, host, pebble_root):
        ip = container_ip(host, "aistack-n8n")
        status, body = get_direct(host, ip, "/metrics")
        assert status == 200 and "n8n_" in body, (status, body[:200])  # served on the stack network
        assert probe(host, HOSTNAME, 443, "/metrics", pebble_root)["status"] == 404
        # The owner exists (n8n refuses a second setup) and the edge never forwards the attempt.
        status, body = post_direct(host, ip, "/rest/owner/setup", {"email": "x@example.com", "firstName": "x",
                                                                      "lastName": "x", "password": "Xx-123456789"})
        assert status == 400, (status, body)
        result = probe(host, HOSTNAME, 443, "/rest/owner/setup", pebble_root, "--post", "{}")
        assert result["status"] == 404, result

    def test_strict_sni_and_intermediate_tls(self, host):
        def handshake(*options: str):
            return host.run("openssl s_client -connect 127.0.0.1:443 " + " ".join(options) + " </dev/null 2>&1")
        ok = handshake(f"-servername {HOSTNAME}", "-tls1_2", "-cipher ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256")
        assert ok.rc == 0 and "Cipher is ECDHE-" in ok.stdout, ok.stdout[-800:]
        no_sni = handshake("-noservername")
        assert no_sni.rc != 0 and "unrecognized name" in no_sni.stdout, no_sni.stdout[-800:]
        cbc = handshake(f"-servername {HOSTNAME}", "-tls1_2", "-cipher ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA")
        assert cbc.rc != 0 and "alert handshake failure" in cbc.stdout, cbc.stdout[-800:]
        old = handshake(f"-servername {HOSTNAME}", "-tls1_1", "-cipher 'DEFAULT:@SECLEVEL=0'")
        assert old.rc != 0 and "alert protocol version" in old.stdout, old.stdout[-800:]

    def test_login_path_is_rate_limited_at_the_edge(self, host, pebble_root):
        # GET /rest/login (n8n's "who am I", 401 without a session) is on the
        # login router but outside n8n's own limiter, so every 429 here is Traefik's.
        answers = probe(host, HOSTNAME, 443, "/rest/login", pebble_root, "--repeat", "12")["answers"]
        assert_rate_limited_at_the_edge(answers, passed_status=401)
        routers = yaml.safe_load(host.file("/opt/aistack/traefik/dynamic/routes-n8n.yml").content_string)["http"]["routers"]
        assert "PathPrefix(`/rest/login`)" in routers["n8n-login"]["rule"]
        assert routers["n8n-login"]["middlewares"][0] == "login-rate-limit@file"


class TestSecretsInOutput:
    def test_docker_inspect_shows_no_secret(self, host):
        """n8n, Postgres: every secret from a file of its own (VARIABLE_FILE); the runners'
        launcher and Redis are the documented exceptions."""
        assert_no_secret_in_container_config(host)

    def test_first_converge_at_vvv_printed_no_secret(self, host):
        """tests/run.py runs this scenario's first converge at -vvv (VERBOSE_CONVERGE) and keeps
        its output: no stored secret and no inventory secret may appear in it."""
        path = os.environ.get("AISTACK_CONVERGE_LOG")
        if not path:
            pytest.skip("run through tests/run.py, which keeps the -vvv converge output")
        output = open(path, encoding="utf-8").read()
        assert "ESTABLISH" in output or "<127.0.0.1>" in output or "EXEC" in output, "the converge did not run at -vvv"
        inventory = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "molecule.yml"), encoding="utf-8"))
        assert_no_secret_in(host, output, "the first converge at -vvv",
                            inventory["provisioner"]["inventory"]["group_vars"]["all"])
