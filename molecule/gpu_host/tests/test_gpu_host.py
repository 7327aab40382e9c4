"""Verify the gpu_host layout in CPU mode, end to end.

Runs twice: after converge (+ idempotence + check mode), and after
side_effect (`--tags n8n` on the converged host: 0 changed, no container
restarted). Everything is reached the way operators and users reach it:
public names through Traefik with the certificate Pebble issued, internal
APIs from inside their own containers.
"""

import json
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import (assert_no_docker_socket_on_the_edge, assert_no_secret_in_container_config, assert_owner_never_claimed,  # noqa: E402
                     assert_rate_limited_at_the_edge, connectivity, container_ip, pebble_root as fetch_pebble_root,
                     probe, secret, stack_networks)

N8N = "n8n.aistack.test"
APP = "app.aistack.test"
GRAFANA = "grafana.aistack.test"
COMFY = "comfy.aistack.test"
CHAT = "chat.aistack.test"
# Scrape jobs the monitoring role must generate for the roles this layout enables
# (cAdvisor and DCGM are off: no image for them in the kit / no GPU).
# The capabilities kept by the containers whose image starts as root (docs/security.md).
CAP_ADD = {"aistack-traefik": ["NET_BIND_SERVICE"],
           "aistack-postgres": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
           "aistack-redis": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]}
EXPECTED_JOBS = {"prometheus", "node", "traefik", "n8n", "n8n-worker", "postgres", "redis", "celery", "grafana"}


@pytest.fixture(scope="module")
def pebble_root(host) -> str:
    return fetch_pebble_root(host)


def in_container(host, container: str, url: str) -> dict:
    """GET a JSON API from inside a container (the internal services publish no port)."""
    return json.loads(host.check_output(f"docker exec {container} wget -qO- '{url}'"))


def host_get_json(host, url: str) -> dict:
    """GET a JSON API from the host itself (images without wget/curl, e.g. Ollama's)."""
    return json.loads(host.check_output(
        "python3 -c \"import urllib.request,sys;sys.stdout.write("
        f"urllib.request.urlopen('{url}',timeout=10).read().decode())\""))


def open_webui_sql(host, sql: str) -> list[str]:
    """Rows of a query in Open WebUI's database, as its owner (in-container connections are trusted)."""
    return host.check_output(f"docker exec aistack-postgres psql -U open_webui -d open_webui -qtA -c \"{sql}\"").split()


def cap_names(values) -> list[str]:
    """Capabilities as compose writes them (Docker may report them with a CAP_ prefix)."""
    return sorted(value.removeprefix("CAP_") for value in values or [])


def retry(check, attempts: int = 30, delay: float = 3.0):
    """Call check() until it stops raising AssertionError (services settle after converge)."""
    for attempt in range(attempts):
        try:
            return check()
        except AssertionError:
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
    return None


class TestLayout:
    def test_every_container_is_healthy(self, host):
        lines = host.check_output("docker ps -a --format '{{.Names}} {{.Status}}'").splitlines()
        stack = [line for line in lines if line.startswith("aistack-")]
        assert len(stack) >= 12, lines
        unhealthy = [line for line in stack if "(healthy)" not in line]
        assert not unhealthy, unhealthy

    def test_only_traefik_publishes_ports(self, host):
        published = host.check_output("docker ps --format '{{.Names}} {{.Ports}}' | grep -- '->' || true")
        owners = {line.split()[0] for line in published.splitlines() if line.strip()}
        assert owners <= {"aistack-traefik", "pebble"}, published

    def test_every_stack_container_is_limited_and_watched(self, host):
        ids = host.check_output("docker ps -q --filter label=org.aistack.role").split()
        containers = json.loads(host.check_output("docker inspect " + " ".join(ids)))
        assert len(containers) >= 12
        for container in containers:
            config, name = container["HostConfig"], container["Name"]
            assert config["PidsLimit"] == 4096, name  # aistack_container_pids_limit
            assert "no-new-privileges:true" in (config["SecurityOpt"] or []), name
            assert config["Memory"] > 0, name  # aistack_container_memory_percent of the host's memory
            assert config["NanoCpus"] > 0, name  # aistack_container_cpu_percent of the host's CPUs
            # Read-only root with a tmpfs /tmp, but for the documented exceptions (docs/security.md, CIS 5.13).
            writable = name.lstrip("/") in {"aistack-ollama", "aistack-comfyui", "aistack-open-webui"} or name.endswith("-runner")
            assert config["ReadonlyRootfs"] is (not writable), name
            assert writable or "/tmp" in (config["Tmpfs"] or {}), name
            if name.lstrip("/") in {"aistack-ollama", "aistack-comfyui"}:
                assert not config["CapDrop"], name  # the documented exceptions keep Docker's set
            else:
                assert cap_names(config["CapDrop"]) == ["ALL"], name
                assert cap_names(config["CapAdd"]) == CAP_ADD.get(name.lstrip("/"), []), name
        # Docker only marks a container unhealthy; the docker role's timer restarts it.
        assert host.service("aistack-autoheal.timer").is_running
        daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
        assert daemon["icc"] is False and daemon["no-new-privileges"] is True and daemon["live-restore"] is True

    def test_docker_inspect_shows_no_secret(self, host):
        """Every image that reads VARIABLE_FILE gets its secrets as files of its own; the
        exceptions (images that read none) are listed in docs/security.md."""
        assert_no_secret_in_container_config(host)

    def test_no_network_facing_container_mounts_the_docker_socket(self, host):
        assert_no_docker_socket_on_the_edge(host)
        # Every routed service is in a routes file Ansible wrote (Traefik has no other source).
        routes = host.check_output("ls /opt/aistack/traefik/dynamic").split()
        assert {"routes-n8n.yml", "routes-comfyui.yml", "routes-fastapi_celery.yml", "routes-monitoring.yml",
                "routes-open_webui.yml"} <= set(routes)

    def test_no_gpu_means_cpu_mode(self, host):
        daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
        assert "nvidia" not in daemon.get("runtimes", {})
        assert "deploy" not in host.file("/opt/aistack/ollama/compose.yml").content_string


# The intended segmentation of this layout (docs/security.md, "Networks"): which
# networks each container joins. "aistack" is the edge network Traefik serves
# from; aistack_<dep> are internal, one per dependency; <project>_default is a
# project's own network with outbound access. Each task runner shares an internal
# network (n8n_runner-<process>) with its own n8n process and nothing else.
INTERNAL = {"postgres", "redis", "ollama", "comfyui", "app", "monitoring"}
N8N_DEPS = {"aistack_postgres", "aistack_redis", "aistack_ollama", "aistack_comfyui", "aistack_app",
            "aistack_monitoring", "n8n_default"}
MEMBERSHIP = {
    "pebble": {"aistack"},  # test fixture: the ACME CA, validating through Traefik
    "aistack-traefik": {"aistack", "aistack_monitoring"},
    "aistack-postgres": {"aistack_postgres"},
    "aistack-redis": {"aistack_redis"},
    "aistack-n8n": {"aistack"} | N8N_DEPS,
    "aistack-n8n-worker-1": {"n8n_runner-worker-1"} | N8N_DEPS,
    # Main has no runner here: in queue mode with manual runs offloaded it starts no task broker.
    "aistack-worker-1-runner": {"n8n_runner-worker-1"},
    "aistack-ollama": {"aistack_ollama", "ollama_default"},
    "aistack-comfyui": {"aistack", "aistack_comfyui", "comfyui_default"},
    "aistack-fastapi-web": {"aistack", "aistack_app", "aistack_postgres", "aistack_redis", "fastapi_celery_default"},
    "aistack-fastapi-worker-gpu": {"aistack_postgres", "aistack_redis", "aistack_ollama", "aistack_comfyui",
                                   "fastapi_celery_default"},
    "aistack-fastapi-worker-render": {"aistack_postgres", "aistack_redis", "aistack_ollama", "aistack_comfyui",
                                      "fastapi_celery_default"},
    "aistack-prometheus": {"aistack_monitoring"},
    "aistack-alertmanager": {"aistack_monitoring", "monitoring_default"},  # notifications go out
    "aistack-grafana": {"aistack", "aistack_monitoring"},
    "aistack-node-exporter": {"aistack_monitoring"},
    "aistack-postgres-exporter": {"aistack_monitoring", "aistack_postgres"},
    "aistack-redis-exporter": {"aistack_monitoring", "aistack_redis"},
    "aistack-flower": {"aistack_monitoring", "aistack_redis"},
    "aistack-open-webui": {"aistack", "aistack_postgres", "aistack_ollama", "open_webui_default"},
}
RUNNERS = {"aistack-worker-1-runner": "aistack-n8n-worker-1"}
# The task broker (5679) listens on its process's address on the runner network only.
BROKERS = {"aistack-n8n-worker-1": "n8n_runner-worker-1"}
PORTS = {"aistack-traefik": [80, 443, 8082], "aistack-postgres": [5432], "aistack-redis": [6379],
         "aistack-n8n": [5678], "aistack-n8n-worker-1": [5678, 5679], "aistack-ollama": [11434], "aistack-comfyui": [8188],
         "aistack-fastapi-web": [8000], "aistack-prometheus": [9090], "aistack-alertmanager": [9093], "aistack-grafana": [3000],
         "aistack-node-exporter": [9100], "aistack-postgres-exporter": [9187], "aistack-redis-exporter": [9121],
         "aistack-flower": [5555], "aistack-open-webui": [8080]}


class TestNetworks:
    def test_each_container_joins_exactly_its_networks(self, host):
        joined = stack_networks(host)
        assert {name: set(joined.get(name, [])) for name in MEMBERSHIP} == MEMBERSHIP
        for name in [f"aistack_{key}" for key in INTERNAL] + list(BROKERS.values()):
            assert host.check_output(f"docker network inspect --format '{{{{.Internal}}}}' {name}") == "true", name
        assert host.check_output("docker network inspect --format '{{.Internal}}' aistack") == "false"

    def test_connectivity_matrix_is_the_intended_one(self, host):
        """Every container (as a source, in its own network namespace) against every service
        port: it connects exactly where the two share a network, in both directions."""
        actual = connectivity(host, PORTS)

        def reaches(source: str, target: str, port: int) -> bool:
            if source == target:
                return True
            shared = MEMBERSHIP[source] & MEMBERSHIP[target]
            return BROKERS[target] in shared if port == 5679 else bool(shared)
        expected = {source: {f"{target}:{port}" for target, ports in PORTS.items() for port in ports
                             if reaches(source, target, port)}
                    for source in MEMBERSHIP}
        assert {source: actual.get(source) for source in MEMBERSHIP} == expected
        # A runner (workflow code) reaches its own n8n process and nothing else.
        for runner, process in RUNNERS.items():
            assert actual[runner] == {f"{process}:5678", f"{process}:5679"}, runner

        def clients(target: str) -> set:
            return {source for source, hits in actual.items() if target in hits} - {target.split(":")[0]}
        n8n = {"aistack-n8n", "aistack-n8n-worker-1"}
        app = {"aistack-fastapi-web", "aistack-fastapi-worker-gpu", "aistack-fastapi-worker-render"}
        workers = app - {"aistack-fastapi-web"}
        # The data stores: their consumers and their exporter, nobody else (not Traefik, not Grafana).
        chat = {"aistack-open-webui"}
        assert clients("aistack-postgres:5432") == n8n | app | chat | {"aistack-postgres-exporter"}
        assert clients("aistack-redis:6379") == n8n | app | {"aistack-redis-exporter", "aistack-flower"}
        # The model APIs: the workflows and the app's workers (Ollama is not routed here).
        assert clients("aistack-ollama:11434") == n8n | workers | chat
        # Prometheus' unauthenticated API: the monitoring network only.
        assert "aistack-traefik:8082" in actual["aistack-prometheus"]
        assert not {"aistack-postgres:5432", "aistack-redis:6379"} & actual["aistack-traefik"]


class TestMonitoring:
    def test_every_generated_target_is_up(self, host):
        def check():
            targets = in_container(host, "aistack-prometheus", "http://127.0.0.1:9090/api/v1/targets")
            active = targets["data"]["activeTargets"]
            jobs = {target["labels"]["job"] for target in active}
            assert EXPECTED_JOBS <= jobs, jobs
            down = [(t["labels"]["job"], t["scrapeUrl"], t["lastError"]) for t in active if t["health"] != "up"]
            assert not down, down
            return active
        active = retry(check, attempts=40)
        # the queue-mode worker is scraped on its own container name
        assert [t["labels"]["instance"] for t in active if t["labels"]["job"] == "n8n-worker"] == ["aistack-n8n-worker-1:5678"]

    def test_alert_rules_loaded(self, host):
        rules = in_container(host, "aistack-prometheus", "http://127.0.0.1:9090/api/v1/rules?type=alert")
        names = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
        assert {"TargetDown", "HostDiskAlmostFull", "ContainerRestarting", "GpuMemoryAlmostFull",
                "GpuTemperatureHigh", "N8nQueueBacklog", "StackNotBackAfterBoot", "StackContainerDown",
                "StackWatcherSilent", "HostDiskFillingUp"} <= names, names

    def test_the_hosts_boot_check_is_scraped(self, host):
        """The docker role's watcher writes the stack's health for node-exporter's textfile
        collector: Prometheus sees every stack container up and the boot check passed."""
        def query(expr: str) -> list:
            result = in_container(host, "aistack-prometheus", f"http://127.0.0.1:9090/api/v1/query?query={expr}")
            return result["data"]["result"]

        def check():
            ok = query("aistack_stack_boot_check_ok")
            assert [(r["metric"]["job"], r["value"][1]) for r in ok] == [("node", "1")], ok
            assert [r["value"][1] for r in query("aistack_stack_healthy")] == ["1"]
            up = {r["metric"]["container"]: r["value"][1] for r in query("aistack_container_up")}
            running = set(host.check_output("docker ps --filter label=org.aistack.role --format '{{.Names}}'").split())
            assert set(up) == running and set(up.values()) == {"1"}, up
        retry(check, attempts=40)
        after = float(query("aistack_stack_healthy_after_boot_seconds")[0]["value"][1])
        assert after > 0, after

    def test_grafana_datasource_is_provisioned_and_healthy(self, host, pebble_root):
        auth = f"admin:{secret(host, 'grafana_admin_password')}"
        result = probe(host, GRAFANA, 443, "/api/datasources/uid/prometheus/health", pebble_root, "--auth", auth)
        assert result["status"] == 200, result
        assert json.loads(result["body"])["status"] == "OK"
        assert probe(host, GRAFANA, 443, "/api/datasources", pebble_root)["status"] == 401

    def test_grafana_dashboards_are_provisioned(self, host, pebble_root):
        auth = f"admin:{secret(host, 'grafana_admin_password')}"
        result = probe(host, GRAFANA, 443, "/api/search?type=dash-db&tag=aistack", pebble_root, "--auth", auth)
        assert {"aistack-host", "aistack-containers", "aistack-n8n", "aistack-data", "aistack-celery",
                "aistack-gpu"} <= {d["uid"] for d in json.loads(result["body"])}, result


class TestSampleApp:
    def test_render_task_completes_on_the_cpu_worker(self, host, pebble_root):
        queued = probe(host, APP, 443, "/api/render", pebble_root, "--post", json.dumps({"prompt": "a red cube"}))
        assert queued["status"] in (200, 201, 202), queued
        task_id = json.loads(queued["body"])["task_id"]

        def done():
            state = probe(host, APP, 443, f"/api/tasks/{task_id}", pebble_root)
            body = json.loads(state["body"])
            assert body["state"] == "SUCCESS", body
            return body
        retry(done)
        logs = host.check_output("docker logs aistack-fastapi-worker-render 2>&1")
        assert task_id in logs, logs[-2000:]

    def test_seed_002_defaults_reach_the_processes(self, host):
        """Render worker one task at a time; DATABASE_URL in the psycopg 3 form seed 002's app reads."""
        cmd = json.loads(host.check_output("docker inspect --format '{{json .Config.Cmd}}' aistack-fastapi-worker-render"))
        assert cmd[cmd.index("--concurrency") + 1] == "1", cmd
        env = host.check_output("docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' aistack-fastapi-web")
        url = next((line.split("=", 1)[1] for line in env.splitlines() if line.startswith("DATABASE_URL=")), "")
        well_formed = url.startswith("postgresql+psycopg://app:") and url.endswith("@postgres:5432/app")
        assert well_formed, "DATABASE_URL is not postgresql+psycopg://app:<password>@postgres:5432/app"  # hides the password

    def test_n8n_webhook_calls_the_app_through_traefik(self, host, pebble_root):
        def call():
            result = probe(host, N8N, 443, "/webhook/app-roundtrip", pebble_root,
                           "--post", json.dumps({"message": "ping"}))
            assert result["status"] == 200, result
            return json.loads(result["body"])
        answer = retry(call, attempts=20)
        assert answer["via"] == "n8n"
        assert answer["app"]["echo"] == {"message": "ping"}, answer

    def test_n8n_echo_webhook_answers_through_traefik(self, host, pebble_root):
        """The two-node example the benchmark loads (examples/n8n-workflows/webhook-echo.json)."""
        def call():
            result = probe(host, N8N, 443, "/webhook/echo", pebble_root, "--post", json.dumps({"message": "pong"}))
            assert result["status"] == 200, result
            return json.loads(result["body"])
        assert retry(call, attempts=20) == {"via": "n8n", "echo": {"message": "pong"}}


class TestAiServices:
    def test_models_pulled_once(self, host):
        """Pulled by converge; idempotence, check mode and --tags n8n pulled nothing."""
        tags = host_get_json(host, f"http://{container_ip(host, 'aistack-ollama')}:11434/api/tags")
        assert [m["name"] for m in tags["models"]] == ["tinyllama:latest"], tags
        logs = host.check_output("docker logs aistack-ollama 2>&1")
        pulls = [line for line in logs.splitlines() if "/api/pull" in line]
        assert len(pulls) == 1, pulls

    def test_comfyui_answers_system_stats_in_cpu_mode(self, host):
        stats = json.loads(host.check_output(
            "docker exec aistack-comfyui python3 -c \"import urllib.request,sys;sys.stdout.write("
            "urllib.request.urlopen('http://127.0.0.1:8188/system_stats',timeout=10).read().decode())\""))
        assert "system" in stats and "devices" in stats
        assert "--cpu" in stats["system"]["argv"], stats["system"]

    def test_comfyui_behind_basic_auth(self, host, pebble_root):
        assert probe(host, COMFY, 443, "/system_stats", pebble_root)["status"] == 401
        auth = "comfyui:" + secret(host, "comfyui_web_password")
        answer = probe(host, COMFY, 443, "/system_stats", pebble_root, "--auth", auth)
        assert answer["status"] == 200 and "system" in json.loads(answer["body"]), answer


class TestOpenWebUI:
    """Open WebUI (the real package) through Traefik, on Ollama's TEST DOUBLE and Postgres."""

    def signin(self, host, pebble_root) -> dict:
        login = {"email": "admin@aistack.test", "password": secret(host, "open_webui_admin_password")}
        answer = probe(host, CHAT, 443, "/api/v1/auths/signin", pebble_root, "--post", json.dumps(login))
        assert answer["status"] == 200, answer["status"]
        return json.loads(answer["body"])

    def test_answers_through_traefik_at_the_pinned_version(self, host, pebble_root):
        health = probe(host, CHAT, 443, "/health", pebble_root)
        assert health["status"] == 200 and json.loads(health["body"]) == {"status": True}, health
        assert json.loads(probe(host, CHAT, 443, "/api/version", pebble_root)["body"])["version"] == "0.12.4"
        assert probe(host, CHAT, 443, "/", pebble_root)["status"] == 200

    def test_the_role_created_admin_signs_in(self, host, pebble_root):
        user = self.signin(host, pebble_root)
        assert user["role"] == "admin" and user["email"] == "admin@aistack.test", user["role"]

    def test_no_first_visitor_window(self, host, pebble_root):
        """Sign-up is off and the admin existed before Open WebUI served its first request:
        the account was created during start-up (its log says so before the first
        request uvicorn logged), and an anonymous sign-up is refused."""
        signup = {"email": "eve@example.com", "password": "Eve-Passw0rd-123", "name": "Eve"}
        answer = probe(host, CHAT, 443, "/api/v1/auths/signup", pebble_root, "--post", json.dumps(signup))
        assert answer["status"] == 403, answer
        assert json.loads(probe(host, CHAT, 443, "/api/config", pebble_root)["body"])["features"]["enable_signup"] is False
        logs = host.check_output("docker logs aistack-open-webui 2>&1").splitlines()
        created = next(i for i, line in enumerate(logs) if "Admin account created successfully" in line)
        # Open WebUI routes uvicorn's log through its own (no "startup complete" line);
        # its health checks are not logged, every other request is.
        served = next((i for i, line in enumerate(logs) if re.search(r' HTTP/1\.[01]" [0-9]{3}$', line)), len(logs))
        assert created < served, logs[max(0, created - 2):served + 2]
        users = open_webui_sql(host, "SELECT email || ':' || role FROM public.user")
        assert users == ["admin@aistack.test:admin"], users

    def test_a_chat_reaches_ollama_and_is_stored_in_postgres(self, host, pebble_root):
        token = self.signin(host, pebble_root)["token"]
        models = json.loads(probe(host, CHAT, 443, "/api/models", pebble_root, "--bearer", token)["body"])
        assert "tinyllama:latest" in [model["id"] for model in models["data"]], models
        marker = f"molecule-{int(time.time())}"
        new = {"chat": {"title": marker, "models": ["tinyllama:latest"], "messages": [],
                        "history": {"messages": {}, "currentId": None}}}
        chat = json.loads(probe(host, CHAT, 443, "/api/v1/chats/new", pebble_root, "--bearer", token,
                                "--post", json.dumps(new))["body"])
        request = {"model": "tinyllama:latest", "stream": False, "chat_id": chat["id"], "id": "reply-1",
                   "messages": [{"role": "user", "content": marker}]}
        answer = probe(host, CHAT, 443, "/api/chat/completions", pebble_root, "--bearer", token,
                       "--post", json.dumps(request))
        assert answer["status"] == 200, answer
        reply = json.loads(answer["body"])["choices"][0]["message"]["content"]
        # The double's deterministic echo: the prompt went to Ollama and back.
        assert reply == f"[aistack test double] tinyllama:latest received: {marker}", reply

        def stored():
            rows = open_webui_sql(host, f"SELECT count(*) FROM chat WHERE id = '{chat['id']}' "
                                        f"AND chat::text LIKE '%received: {marker}%'")
            assert rows == ["1"], rows
        retry(stored, attempts=10, delay=1)
        # Ollama's own log shows the request it answered.
        assert "/api/chat" in host.check_output("docker logs aistack-ollama 2>&1")

    def test_pgvector_is_its_vector_store_and_state_is_backed_up(self, host):
        env = host.check_output("docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' aistack-open-webui")
        settings = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
        assert settings["VECTOR_DB"] == "pgvector" and settings["ENABLE_SIGNUP"] == "false"
        assert settings["OLLAMA_BASE_URLS"] == "http://ollama:11434"
        extensions = open_webui_sql(host, "SELECT extname FROM pg_extension")
        assert "vector" in extensions, extensions
        config = json.loads(host.file("/etc/aistack/backup/config.json").content_string)
        assert "aistack_open_webui_data" in [volume["name"] for volume in config["volumes"]], config["volumes"]

    def test_the_stack_watcher_reports_it(self, host):
        def check():
            result = in_container(host, "aistack-prometheus", "http://127.0.0.1:9090/api/v1/query?"
                                  "query=aistack_container_up%7Bcontainer%3D%22aistack-open-webui%22%7D")
            assert [r["value"][1] for r in result["data"]["result"]] == ["1"], result
        retry(check, attempts=20)


# --------------------------------------------------------------------------
# Every dashboard panel's PromQL against the real Prometheus
# --------------------------------------------------------------------------
# Last in the file: the sample app's render task and the n8n webhook above have
# run by now, so the Celery and n8n execution metrics exist.
DASHBOARDS = sorted(p.name for p in (Path(__file__).resolve().parents[3]
                                     / "roles/monitoring/files/dashboards").glob("*.json"))
# Dashboards whose series this scenario cannot have. Their queries must still
# parse; returning series is not required.
NO_SERIES_HERE = {
    "aistack-gpu.json": "DCGM exporter metrics need an NVIDIA GPU; this host has none (CPU mode)",
    "aistack-containers.json": "cAdvisor metrics: its image is on gcr.io, which the kit cannot mirror "
                               "(monitoring_cadvisor_enabled: false)",
}
PROMQL_SCRIPT = r"""
import json, sys, urllib.error, urllib.parse, urllib.request
base, queries = sys.argv[1], json.load(sys.stdin)
out = []
for query in queries:
    # POST, as the provisioned datasource sends them (httpMethod: POST).
    data = urllib.parse.urlencode({"query": query}).encode()
    try:
        with urllib.request.urlopen(base + "/api/v1/query", data=data, timeout=30) as response:
            out.append(json.load(response))
    except urllib.error.HTTPError as exc:
        out.append(json.load(exc))
print(json.dumps(out))
"""


def prometheus_query(host, queries: list[str]) -> list[dict]:
    """Evaluate instant queries on the stack's Prometheus (one round trip for all of them)."""
    host.run("mkdir -p /opt/aistack-tests && cat > /opt/aistack-tests/promql.py <<'EOF'\n" + PROMQL_SCRIPT + "\nEOF")
    payload = json.dumps(queries).replace("'", "'\\''")
    base = f"http://{container_ip(host, 'aistack-prometheus')}:9090"
    return json.loads(host.check_output(f"echo '{payload}' | python3 /opt/aistack-tests/promql.py {base}"))


def regex_escape(value: str) -> str:
    """Grafana's escaping of a variable value inside a Prometheus regex matcher."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)


def dashboard_queries(host, dashboard: dict) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """(panel title, query) pairs with the template variables substituted as Grafana does with
    the dashboards' current selection, "All": a multi-value variable becomes (v1|v2|...) of the
    values its own label_values() query finds. $__rate_interval is max($__interval + scrape
    interval, 4 x scrape interval) with $__interval at the datasource's minimum, the scrape
    interval (monitoring_scrape_interval)."""
    prometheus_yml = host.file("/opt/aistack/monitoring/prometheus/prometheus.yml").content_string
    scrape = re.search(r"scrape_interval:\s*['\"]?(\d+)s", prometheus_yml)
    assert scrape, "no scrape_interval in seconds in prometheus.yml"
    seconds = int(scrape.group(1))
    builtins = {"$__rate_interval": f"{4 * seconds}s", "$__interval": f"{seconds}s",
                "$__range": "1h", "${__rate_interval}": f"{4 * seconds}s"}
    variables: dict[str, list[str]] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
        assert match, f"variable {variable['name']}: unsupported definition {variable['definition']}"
        selector, label = match.groups()
        result = prometheus_query(host, [f"group by ({label}) ({selector})"])[0]
        assert result["status"] == "success", (variable["name"], result)
        variables[variable["name"]] = sorted(s["metric"][label] for s in result["data"]["result"]
                                             if label in s["metric"])
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in builtins.items():
                expr = expr.replace(name, value)
            for name, values in variables.items():
                alternation = "(" + "|".join(regex_escape(v) for v in values) + ")" if values else ""
                expr = expr.replace("${" + name + "}", alternation).replace("$" + name, alternation)
            assert "$" not in expr, f"{panel['title']}: unsubstituted variable in {expr}"
            queries.append((panel["title"], expr))
    return queries, variables


class TestDashboards:
    def test_every_dashboard_is_checked_or_excused(self):
        assert set(NO_SERIES_HERE) <= set(DASHBOARDS), "stale entries in NO_SERIES_HERE"
        assert len(DASHBOARDS) >= 6, DASHBOARDS

    @pytest.mark.parametrize("name", DASHBOARDS)
    def test_panel_queries_parse_and_return_series(self, host, name):
        """As deployed on the host (what Grafana serves), every panel query is valid PromQL, and,
        unless the dashboard is in NO_SERIES_HERE, returns series -- as does every variable."""
        dashboard = json.loads(host.file(f"/opt/aistack/monitoring/grafana/dashboards/{name}").content_string)
        expect_series = name not in NO_SERIES_HERE

        def check():
            queries, variables = dashboard_queries(host, dashboard)
            assert queries, f"{name}: no panel queries"
            if expect_series:
                empty_vars = [var for var, values in variables.items() if not values]
                assert not empty_vars, f"{name}: variables without values: {empty_vars}"
            results = prometheus_query(host, [expr for _, expr in queries])
            problems = []
            for (title, expr), result in zip(queries, results):
                if result.get("status") != "success":
                    problems.append(f"{title}: {expr} -> {result.get('errorType')}: {result.get('error')}")
                elif expect_series and not result["data"]["result"]:
                    problems.append(f"{title}: {expr} -> no series")
            assert not problems, f"{name}:\n" + "\n".join(problems)
        # rate() needs two samples inside the window: give a fresh stack a few scrapes.
        retry(check, attempts=8, delay=15)


# Last in the file: the rate-limit test spends Grafana's login burst.
class TestEdge:
    def test_owner_was_never_claimable_through_traefik(self, host):
        # molecule/shared/owner_claim_probe.py: POST /rest/owner/setup through Traefik every
        # second from before the first converge; every HTTP answer must be the deny router's.
        assert_owner_never_claimed(host)

    @pytest.mark.parametrize("hostname,container,port", [(N8N, "aistack-n8n", 5678), (GRAFANA, "aistack-grafana", 3000)])
    def test_metrics_served_inside_but_not_public(self, host, pebble_root, hostname, container, port):
        inside = host.run(f"python3 -c \"import urllib.request;print(urllib.request.urlopen("
                          f"'http://{container_ip(host, container)}:{port}/metrics',timeout=10).status)\"")
        assert inside.stdout.strip() == "200", inside.stderr
        assert probe(host, hostname, 443, "/metrics", pebble_root)["status"] == 404

    def test_grafana_login_is_rate_limited_at_the_edge(self, host, pebble_root):
        answers = probe(host, GRAFANA, 443, "/login", pebble_root, "--repeat", "12")["answers"]
        assert_rate_limited_at_the_edge(answers, passed_status=200)
