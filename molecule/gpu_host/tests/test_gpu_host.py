"""Verify the gpu_host layout in CPU mode, end to end.

Runs twice: after converge (+ idempotence + check mode), and after
side_effect (`--tags n8n` on the converged host: 0 changed, no container
restarted). Everything is reached the way operators and users reach it:
public names through Traefik with the certificate Pebble issued, internal
APIs from inside their own containers.
"""

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import pebble_root as fetch_pebble_root, probe, secret  # noqa: E402

N8N = "n8n.aistack.test"
APP = "app.aistack.test"
GRAFANA = "grafana.aistack.test"
COMFY = "comfy.aistack.test"
# Scrape jobs the monitoring role must generate for the roles this layout enables
# (cAdvisor and DCGM are off: no image for them in the kit / no GPU).
EXPECTED_JOBS = {"prometheus", "node", "traefik", "n8n", "n8n-worker", "postgres", "redis", "celery", "grafana"}


@pytest.fixture(scope="module")
def pebble_root(host) -> str:
    return fetch_pebble_root(host)


def in_container(host, container: str, url: str) -> dict:
    """GET a JSON API from inside a container (the internal services publish no port)."""
    return json.loads(host.check_output(f"docker exec {container} wget -qO- '{url}'"))


def container_ip(host, name: str) -> str:
    return host.check_output(
        "docker inspect --format '{{(index .NetworkSettings.Networks \"aistack\").IPAddress}}' " + name)


def host_get_json(host, url: str) -> dict:
    """GET a JSON API from the host itself (images without wget/curl, e.g. Ollama's)."""
    return json.loads(host.check_output(
        "python3 -c \"import urllib.request,sys;sys.stdout.write("
        f"urllib.request.urlopen('{url}',timeout=10).read().decode())\""))


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

    def test_no_gpu_means_cpu_mode(self, host):
        daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
        assert "nvidia" not in daemon.get("runtimes", {})
        assert "deploy" not in host.file("/opt/aistack/ollama/compose.yml").content_string


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
                "GpuTemperatureHigh", "N8nQueueBacklog"} <= names, names

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

    def test_n8n_webhook_calls_the_app_through_traefik(self, host, pebble_root):
        def call():
            result = probe(host, N8N, 443, "/webhook/app-roundtrip", pebble_root,
                           "--post", json.dumps({"message": "ping"}))
            assert result["status"] == 200, result
            return json.loads(result["body"])
        answer = retry(call, attempts=20)
        assert answer["via"] == "n8n"
        assert answer["app"]["echo"] == {"message": "ping"}, answer


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
