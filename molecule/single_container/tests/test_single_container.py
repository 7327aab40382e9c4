"""Verify the single container through its ONE published port (7860).

Runs twice: after converge, and after side_effect (which SIGKILLed the n8n
process inside the container; supervisord must have restarted it).
"""

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import phase, probe, secret  # noqa: E402

CONTAINER = "aistack-single-container"
PORT = 7860
PUBLIC_HOST = "agents.aistack.test"
OWNER = "owner@aistack.test"
N8N_IMAGE = "n8nio/n8n:2.41.1"
BASE_IMAGE = "python:3.13-slim-trixie"


def get(host, path: str, *extra: str) -> dict:
    return probe(host, PUBLIC_HOST, PORT, path, "", *extra)


def ask_webhook(host, question: str) -> dict:
    result = None
    for _ in range(20):  # the production webhook registers just after readiness
        result = get(host, "/webhook/agent-ask", "--post", json.dumps({"question": question}))
        if result["status"] == 200:
            break
        host.run("sleep 3")
    assert result is not None and result["status"] == 200, result
    return json.loads(result["body"])


def supervisor_status(host) -> dict:
    out = host.run(f"docker exec {CONTAINER} supervisorctl -c /opt/aistack/supervisord.conf status").stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


class TestOnePort:
    def test_n8n_ready_through_the_port(self, host):
        assert get(host, "/healthz/readiness")["status"] == 200

    def test_editor_ui_loads(self, host):
        result = get(host, "/")
        assert result["status"] == 200, result
        assert "<html" in result["body"].lower() and "n8n" in result["body"].lower()

    def test_agent_health(self, host):
        result = get(host, "/agent/health")
        assert result["status"] == 200
        assert json.loads(result["body"]) == {"status": "ok", "agent": "sample_agent"}

    def test_imported_workflow_calls_the_agent(self, host):
        assert ask_webhook(host, "is the UI reachable") == {
            "workflow": "agent-ask",
            "agent": {"agent": "sample_agent", "question": "is the UI reachable",
                      "answer": "reachable UI the is", "words": 4},
        }

    def test_agent_calls_n8n_which_calls_the_agent(self, host):
        result = get(host, "/agent/ask", "--post", json.dumps({"question": "round trip"}))
        assert result["status"] == 200, result
        body = json.loads(result["body"])
        assert body["via"] == "n8n" and body["n8n"]["agent"]["answer"] == "trip round"

    def test_only_the_one_port_is_published(self, host):
        ports = host.check_output(f"docker port {CONTAINER}")
        assert ports.splitlines() == [f"{PORT}/tcp -> 0.0.0.0:{PORT}"], ports
        # n8n and the agent listen on loopback inside the container only.
        ip = host.check_output(f"docker inspect --format '{{{{.NetworkSettings.IPAddress}}}}' {CONTAINER}")
        for inner in (5678, 8000):
            cmd = host.run(f"python3 -c \"import socket; socket.create_connection(('{ip}', {inner}), timeout=3)\"")
            assert cmd.rc != 0, f"port {inner} answers outside the container"

    def test_webhook_url_is_the_public_url(self, host):
        env = host.check_output(f"docker exec {CONTAINER} sh -c 'tr \"\\0\" \"\\n\" < /proc/1/environ'")
        assert "AISTACK_PUBLIC_URL=http://agents.aistack.test:7860/" in env
        logs = host.check_output(f"docker logs {CONTAINER} 2>&1 | head -50")
        assert "public URL http://agents.aistack.test:7860/ (SQLite)" in logs

    def test_everything_runs_as_uid_1000_under_supervisord(self, host):
        assert host.check_output(f"docker exec {CONTAINER} id -u") == "1000"
        assert supervisor_status(host) == {"agent": "RUNNING", "n8n": "RUNNING", "proxy": "RUNNING"}
        # pid, uid and name of every process, taken twice: an exec'd process (the health check's,
        # this test's own) passes through uid 0 while runc starts it; only one that stays counts.
        snapshot = (f"docker exec {CONTAINER} sh -c \"awk '/^Name:/{{n=\\$2}} /^Pid:/{{p=\\$2}} "
                    f"/^Uid:/{{print p, \\$2, n}}' /proc/[0-9]*/status\"")
        first = host.check_output(snapshot).splitlines()
        time.sleep(2)
        second = set(host.check_output(snapshot).splitlines())
        lasting_root = [row for row in first if row.split()[1] != "1000" and row in second]
        assert lasting_root == [], lasting_root

    def test_container_healthy_and_restarts(self, host):
        out = host.check_output(
            f"docker inspect --format '{{{{.State.Health.Status}}}} {{{{.HostConfig.RestartPolicy.Name}}}}' {CONTAINER}")
        assert out == "healthy unless-stopped"

    def test_credential_imported_from_the_secret_env(self, host):
        out = host.check_output(
            f"docker exec {CONTAINER} sh -c 'n8n export:credentials --all --decrypted --output=/tmp/c.json "
            ">/dev/null 2>&1; cat /tmp/c.json; rm -f /tmp/c.json'"
        )
        creds = {c["name"]: c for c in json.loads(out)}
        assert creds["aistack-sc-header-auth"]["data"]["value"] == "vault-secret-value-7860"
        # The secret is in the container's environment, not in the build context.
        assert host.run("grep -r vault-secret-value-7860 /opt/aistack/single_container").rc == 1

    def test_encryption_key_generated_once(self, host):
        assert len(secret(host, "single_container_encryption_key")) == 48

    def test_build_context_is_what_a_space_needs(self, host):
        build = "/opt/aistack/single_container/build"
        readme = host.file(f"{build}/README.md").content_string
        assert "sdk: docker" in readme and "app_port: 7860" in readme
        dockerfile = host.file(f"{build}/Dockerfile").content_string
        # A Space builds with the Dockerfile's defaults: they are the role's settings.
        assert f"ARG N8N_IMAGE={N8N_IMAGE}" in dockerfile
        assert f"ARG SINGLE_CONTAINER_BASE={BASE_IMAGE}" in dockerfile
        assert 'ARG AGENT_OS_PACKAGES="libsndfile1"' in dockerfile
        assert host.file(f"{build}/agent/agent.py").exists
        assert not host.file(f"{build}/agent/__pycache__").exists


def image_layers(host, ref: str) -> list:
    return json.loads(host.check_output(f"docker image inspect --format '{{{{json .RootFS.Layers}}}}' {ref}"))


class TestBuiltWithoutAPackageManagerInN8n:
    def test_the_n8n_image_has_no_package_manager(self, host):
        # The kit's n8nio/n8n, like the official one (no apk since 2.1.0): the
        # build cannot have installed anything into it.
        cmd = host.run(f"docker run --rm --entrypoint sh {N8N_IMAGE} -c "
                       "'command -v apt-get || command -v apt || command -v dpkg || command -v apk'")
        assert cmd.rc != 0, f"{N8N_IMAGE} has a package manager: {cmd.stdout}"
        assert host.run(f"docker run --rm --entrypoint n8n {N8N_IMAGE} --version").stdout.strip() == "2.41.1"

    def test_image_is_the_n8n_image_plus_the_base_runtime(self, host):
        image = host.check_output(f"docker inspect --format '{{{{.Config.Image}}}}' {CONTAINER}")
        built = image_layers(host, image)
        n8n = image_layers(host, N8N_IMAGE)
        # n8n's layers are reused as they are (its ~300k files are never copied) ...
        assert built[:len(n8n)] == n8n, "the image does not start from the n8n image's layers"
        # ... and what the n8n image lacks came from the base's package manager.
        lacking = "command -v supervisord || command -v nginx"
        assert host.run(f"docker run --rm --entrypoint sh {N8N_IMAGE} -c '{lacking}'").rc != 0
        for tool in ("supervisord", "nginx", "tini", "python3"):
            assert host.run(f"docker exec {CONTAINER} sh -c 'command -v {tool}'").rc == 0, tool
        base_python = host.check_output(f"docker run --rm {BASE_IMAGE} python3 --version")
        assert host.check_output(f"docker exec {CONTAINER} python3 --version") == base_python

    def test_node_and_n8n_are_the_n8n_images(self, host):
        version = host.check_output(f"docker exec {CONTAINER} n8n --version")
        assert version == "2.41.1"
        same = host.run(
            f"docker exec {CONTAINER} sha256sum /usr/local/bin/node | cut -d' ' -f1 > /opt/node.in-container && "
            f"docker run --rm --entrypoint sha256sum {N8N_IMAGE} /usr/local/bin/node | cut -d' ' -f1 | "
            "cmp - /opt/node.in-container")
        assert same.rc == 0, same.stdout + same.stderr

    def test_agent_os_packages_are_installed(self, host):
        find = "import ctypes.util; print(ctypes.util.find_library('sndfile'))"
        assert host.check_output(f"docker exec {CONTAINER} python3 -c \"{find}\"") == "libsndfile.so.1"
        # ... by the option, not by the base image.
        assert host.check_output(f"docker run --rm {BASE_IMAGE} python3 -c \"{find}\"") == "None"


class TestOwnerBeforeThePublicPort:
    def test_owner_exists(self, host):
        result = get(host, "/rest/settings")
        assert result["status"] == 200, result
        settings = json.loads(result["body"])["data"]
        assert settings["userManagement"]["showSetupOnFirstLoad"] is False

    def test_owner_logs_in_with_the_generated_password(self, host):
        password = secret(host, "single_container_owner_password")
        login = get(host, "/rest/login", "--post", json.dumps({"emailOrLdapLoginId": OWNER, "password": password}))
        assert login["status"] == 200, login
        user = json.loads(login["body"])["data"]
        role = user.get("role")
        assert user["email"] == OWNER and (role.get("slug") if isinstance(role, dict) else role) == "global:owner", user

    def test_owner_setup_is_refused_through_the_port(self, host):
        intruder = {"email": "intruder@example.com", "password": "Intruder1234", "firstName": "I", "lastName": "X"}
        result = get(host, "/rest/owner/setup", "--post", json.dumps(intruder))
        assert result["status"] == 403, result
        login = get(host, "/rest/login", "--post", json.dumps({"emailOrLdapLoginId": intruder["email"],
                                                               "password": intruder["password"]}))
        assert login["status"] == 401, login

    def test_proxy_opened_only_after_the_owner_existed(self, host):
        logs = host.check_output(f"docker logs {CONTAINER} 2>&1")
        created = logs.find(f"aistack-boot: owner account {OWNER} created")
        opened = logs.find("aistack-boot: opening the public port")
        assert 0 <= created < opened, logs[-3000:]
        # Before that, nothing answered on the public port (no request was logged by nginx).
        assert '" 200 ' not in logs[:opened] and '" 502 ' not in logs[:opened]


class TestAfterKill:
    @pytest.fixture(autouse=True)
    def after_side_effect(self, host):
        if not phase(host).startswith("after-side-effect"):
            pytest.skip("runs after side_effect killed n8n")

    def test_supervisord_restarted_n8n_only(self, host):
        _, killed_pid, agent_pid = phase(host).split()
        status = supervisor_status(host)
        assert status == {"agent": "RUNNING", "n8n": "RUNNING", "proxy": "RUNNING"}
        assert host.check_output(f"docker exec {CONTAINER} supervisorctl -c /opt/aistack/supervisord.conf pid agent") == agent_pid
        assert host.run(f"docker exec {CONTAINER} test -e /proc/{killed_pid}").rc != 0
        assert host.check_output(f"docker inspect --format '{{{{.RestartCount}}}}' {CONTAINER}") == "0"

    def test_workflow_answers_again(self, host):
        assert ask_webhook(host, "back again")["agent"]["answer"] == "again back"
