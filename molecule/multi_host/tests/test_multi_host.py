"""Verify the multi_host layout over four systemd test hosts, then after the side effect.

Runs twice: after converge (+ idempotence + check mode: 0 changed), and after
side_effect, which added a fifth host with --limit (no container elsewhere
recreated), killed worker1 under load, then drained the fifth host's n8n
workers under load. Every test runs once, from the
controller, reaching each host through the molecule inventory; public names
are reached through Traefik on the edge host with Pebble's certificate.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import assert_no_secret_in, pebble_root as fetch_pebble_root, phase, probe, secret  # noqa: E402
import data_tls_check  # noqa: E402
import wireguard_check  # noqa: E402

# Each test runs once (on the edge host's connection); the others are reached through node().
testinfra_hosts = ["ansible://aistack-multi-edge"]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", str(EPHEMERAL / "inventory" / "ansible_inventory.yml"))
N8N = "n8n.aistack.test"
APP = "app.aistack.test"
GRAFANA = "grafana.aistack.test"
COMFY = "comfy.aistack.test"
PATH = "/webhook/multi-host-where"
HOSTS = ["edge", "data", "worker1", "gpu"]
# converge.yml's WireGuard play (molecule.yml host_vars).
MESH = {"edge": "10.77.0.1", "data": "10.77.0.2", "worker1": "10.77.0.3", "gpu": "10.77.0.4"}


def node(name: str):
    return testinfra.get_host(f"ansible://aistack-multi-{name}", ansible_inventory=INVENTORY)


def address(name: str) -> str:
    """The host's address on the kit network (its default route): its private address in this scenario."""
    return subprocess.run(["docker", "inspect", "--format", '{{(index .NetworkSettings.Networks "aistack-kit").IPAddress}}',
                           f"aistack-multi-{name}"], check=True, capture_output=True, text=True).stdout.strip()


def containers(name: str) -> set[str]:
    return set(node(name).check_output("docker ps --format '{{.Names}}'").split())


def healthy(name: str) -> dict:
    rows = node(name).check_output("docker ps --format '{{.Names}} {{.Status}}'").splitlines()
    return {row.split()[0]: row for row in rows}


def runner_owners(names) -> dict:
    owners = {}
    for name in names:
        for container in node(name).check_output(
                "docker ps -q --filter label=org.aistack.n8n-process=runner").split():
            owners[container[:12]] = name
    return owners


def tcp_open(source: str, target_ip: str, port: int) -> bool:
    code = (f"import socket; s=socket.socket(); s.settimeout(4); "
            f"print(s.connect_ex(('{target_ip}', {port})))")
    return node(source).check_output(f"python3 -c \"{code}\"").strip() == "0"


@pytest.fixture(scope="module")
def scaled(host) -> bool:
    return phase(host) == "scaled"


@pytest.fixture(scope="module")
def pebble_root(host) -> str:
    return fetch_pebble_root(host)


class TestPlacement:
    """Each group runs its part and nothing else; every container is healthy."""

    EXPECTED = {
        "edge": ({"aistack-traefik", "aistack-n8n", "aistack-fastapi-web", "aistack-prometheus", "aistack-grafana",
                  "aistack-node-exporter"},
                 {"aistack-postgres", "aistack-redis", "aistack-n8n-worker-1", "aistack-ollama", "aistack-comfyui"}),
        "data": ({"aistack-postgres", "aistack-redis", "aistack-node-exporter"},
                 {"aistack-n8n", "aistack-traefik", "aistack-prometheus", "aistack-n8n-worker-1"}),
        "worker1": ({"aistack-n8n-worker-1", "aistack-worker-1-runner", "aistack-fastapi-worker-cpu",
                     "aistack-node-exporter"},
                    {"aistack-n8n", "aistack-postgres", "aistack-traefik", "aistack-fastapi-web", "aistack-ollama"}),
        "gpu": ({"aistack-ollama", "aistack-comfyui", "aistack-fastapi-worker-gpu", "aistack-fastapi-worker-cpu",
                 "aistack-n8n-worker-1", "aistack-node-exporter"},
                {"aistack-n8n", "aistack-postgres", "aistack-traefik", "aistack-fastapi-web"}),
    }

    @pytest.mark.parametrize("name", HOSTS)
    def test_each_host_runs_its_groups_roles(self, name, scaled):
        if scaled and name == "worker1":
            pytest.skip("worker1 was killed by the side effect")
        running = containers(name)
        wanted, unwanted = self.EXPECTED[name]
        assert wanted <= running, wanted - running
        assert not running & unwanted, running & unwanted
        assert not [row for row in healthy(name).values() if "unhealthy" in row or "starting" in row], healthy(name)

    def test_secrets_live_on_the_data_host_and_every_n8n_process_shares_the_key(self, scaled):
        assert node("data").file("/etc/aistack/secrets/n8n_encryption_key").exists
        assert not node("edge").file("/etc/aistack/secrets/n8n_encryption_key").exists
        key = node("data").file("/etc/aistack/secrets/n8n_encryption_key").content_string.strip()
        digest = "sha256sum {} | cut -c1-64"
        edge = node("edge").check_output(digest.format("/opt/aistack/n8n/secrets/n8n/N8N_ENCRYPTION_KEY"))
        workers = ["gpu"] + ([] if scaled else ["worker1"])  # worker1 killed, worker2's n8n drained and removed
        for name in workers:
            theirs = node(name).check_output(digest.format("/opt/aistack/n8n/secrets/worker-1/N8N_ENCRYPTION_KEY"))
            assert theirs == edge, name
        assert len(key) == 48


class TestPrivateNetwork:
    """Data services listen on the private address only; the firewall admits their users only."""

    def test_data_ports_are_published_on_the_private_address_only(self):
        data = address("data")
        assert node("data").check_output("docker port aistack-postgres").splitlines() == [f"5432/tcp -> {data}:5432"]
        # With TLS between hosts, the published 6379 is Redis' TLS listener (6380 in the container).
        assert node("data").check_output("docker port aistack-redis").splitlines() == [f"6380/tcp -> {data}:6379"]
        assert node("gpu").check_output("docker port aistack-ollama").splitlines() == \
            [f"11434/tcp -> {address('gpu')}:11434"]
        # Nothing of the stack is published on the edge but Traefik's 80/443.
        ports = node("edge").check_output("docker ps --format '{{.Names}} {{.Ports}}'").splitlines()
        published = [row for row in ports if "->" in row and not row.startswith(("aistack-traefik", "pebble",
                                                                                   "aistack-node-exporter"))]
        assert published == [], published

    def test_members_reach_the_data_ports(self):
        data = address("data")
        for source in ("edge", "gpu"):
            assert tcp_open(source, data, 5432), source
            assert tcp_open(source, data, 6379), source

    def test_a_host_outside_the_layout_is_refused(self, scaled):
        if scaled:
            pytest.skip("worker2 has joined the layout (checked in TestScaleOut)")
        data = address("data")
        assert not tcp_open("worker2", data, 5432)
        assert not tcp_open("worker2", data, 6379)
        assert not tcp_open("worker2", address("gpu"), 11434)
        # The data host uses no Ollama: the GPU host's firewall does not admit it.
        assert not tcp_open("data", address("gpu"), 11434)
        assert tcp_open("edge", address("gpu"), 11434)


class TestDataTLS:
    """Postgres and Redis between hosts over TLS (multi_host_data_tls), verified against the data host's private CA."""

    def test_the_ca_key_stays_on_the_data_host(self):
        data_tls_check.assert_ca_key_only_on_data_host(node("data"), [node("edge"), node("gpu")])

    def test_consumer_hosts_verify_postgres_and_redis_with_the_private_ca(self):
        for name in ("edge", "gpu"):
            data_tls_check.assert_tls_verified(node(name), address("data"))

    def test_plain_text_redis_gets_no_answer_on_the_published_port(self):
        data_tls_check.assert_redis_plaintext_refused(node("edge"), address("data"))

    def test_every_postgres_connection_from_another_host_is_encrypted(self):
        # n8n main (edge) and the n8n worker (gpu) hold connections at least.
        data_tls_check.assert_remote_postgres_clients_use_tls(node("data"), minimum=2)


class TestMesh:
    """The WireGuard role's mesh of the four hosts (wireguard-go: no kernel module in the test hosts)."""

    def test_every_member_peers_with_every_other_and_shakes_hands(self, scaled):
        if scaled:
            pytest.skip("worker1 was killed by the side effect")
        # The firewalls drop the probes (policy drop on input, only UDP 51820 let in): the
        # handshakes the probes cause are asserted for every pair.
        states = wireguard_check.assert_mesh({name: node(name) for name in HOSTS}, replies=False)
        assert {name: state["address"] for name, state in states.items()} == MESH

    def test_the_private_key_stays_on_its_host_and_out_of_the_config(self):
        for name in ("edge", "gpu"):
            key = node(name).file("/etc/wireguard/wg0.key")
            assert key.exists and key.user == "root" and key.mode == 0o600, name
            assert "PrivateKey" not in node(name).file("/etc/wireguard/wg0.conf").content_string, name

    def test_no_kernel_or_initramfs_came_with_the_packages(self):
        # apt's recommends of wireguard-tools pulled a kernel image and initramfs-tools (minutes per host).
        listed = node("data").run("dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' 'linux-image-*' initramfs-tools")
        assert not [line for line in listed.stdout.splitlines() if line.startswith("ii")], listed.stdout
        assert node("data").package("wireguard-tools").is_installed


class TestWork:
    """Webhooks through Traefik run on the worker hosts; the GPU task runs on the GPU host."""

    def test_webhook_executes_on_the_worker_hosts(self, host, scaled):
        if scaled:
            pytest.skip("after the side effect: TestWorkerLoss counts who served")
        workers = ["worker1", "gpu"]
        owners = runner_owners(workers)
        served = []
        for seq in range(10):
            result = probe(host, N8N, 443, PATH, fetch_pebble_root(host), "--post", json.dumps({"seq": seq}))
            assert result["status"] == 200, result
            body = json.loads(result["body"])
            assert body["seq"] == seq
            served.append(owners.get(body["runner"], body["runner"]))
        assert set(served) <= set(workers), served

    def test_the_gpu_task_runs_on_the_gpu_hosts_celery_worker(self, host, pebble_root):
        queued = probe(host, APP, 443, "/api/generate", pebble_root, "--post", json.dumps({"prompt": "a blue cube",
                                                                                         "steps": 1}))
        assert queued["status"] == 202, queued
        task_id = json.loads(queued["body"])["task_id"]
        for _ in range(60):
            state = json.loads(probe(host, APP, 443, f"/api/tasks/{task_id}", pebble_root)["body"])
            if state["ready"]:
                break
            time.sleep(3)
        assert state["state"] == "SUCCESS", state
        assert state["result"]["worker"] == "gpu@fastapi-worker-gpu.aistack-multi-gpu", state
        assert task_id in node("gpu").check_output("docker logs aistack-fastapi-worker-gpu 2>&1")

    def test_comfyui_on_the_gpu_host_is_routed_by_traefik_on_the_edge(self, host, pebble_root):
        # The edge's Traefik routes the public name to the GPU host's private address,
        # from a routes file the GPU host's run wrote there; the edge's own files are untouched.
        routes = node("edge").file("/opt/aistack/traefik/dynamic/routes-comfyui-aistack-multi-gpu.yml")
        assert routes.mode == 0o600 and f"http://{address('gpu')}:8188" in routes.content_string
        assert not node("gpu").file("/opt/aistack/traefik/dynamic/routes-comfyui.yml").exists
        assert probe(host, COMFY, 443, "/system_stats", pebble_root)["status"] == 401
        auth = "comfyui:" + secret(node("data"), "comfyui_web_password")
        answer = probe(host, COMFY, 443, "/system_stats", pebble_root, "--auth", auth)
        assert answer["status"] == 200 and "system" in json.loads(answer["body"]), answer

    def test_prometheus_scrapes_every_hosts_node_exporter(self, host, scaled):
        expected = {f"aistack-multi-{name}" for name in HOSTS} | ({"aistack-multi-worker2"} if scaled else set())
        if scaled:
            expected.discard("aistack-multi-worker1")  # killed: its target is down
        query = "up{job=\"node\"}"
        for _ in range(30):
            raw = host.check_output(
                "docker exec aistack-prometheus wget -qO- 'http://127.0.0.1:9090/api/v1/query?query=%s'" % query)
            results = json.loads(raw)["data"]["result"]
            up = {r["metric"].get("host") for r in results if r["value"][1] == "1"}
            if expected <= up:
                break
            time.sleep(5)
        assert expected <= up, results


class TestScaleOut:
    """The fifth host, added with --limit, joined and takes executions; nothing else was recreated."""

    def test_the_scale_out_run_succeeded_and_changed_nothing_on_the_edge(self, scaled):
        if not scaled:
            pytest.skip("runs after the side effect")
        recap = (EPHEMERAL / "scale_out_recap.txt").read_text()
        assert "aistack-multi-worker2" in recap and "failed=0" in recap, recap
        edge = [line for line in recap.splitlines() if line.startswith("aistack-multi-edge")]
        assert edge and "unreachable=0" in edge[0] and "failed=0" in edge[0], recap

    def test_the_scale_out_run_at_vvv_printed_no_secret(self, scaled):
        # The new host's secrets came from the data host (aistack_secrets_host) in that run.
        if not scaled:
            pytest.skip("runs after the side effect")
        output = (EPHEMERAL / "scale_out_vvv.txt").read_text()
        assert "ESTABLISH" in output, "not a -vvv output"
        assert_no_secret_in(node("data"), output, "the scale-out run at -vvv")

    def test_the_new_host_reaches_the_data_ports(self, scaled):
        # Its worker took executions (TestWorkerLoss) until its drain removed it (TestDrain).
        if not scaled:
            pytest.skip("runs after the side effect")
        assert tcp_open("worker2", address("data"), 5432)
        assert tcp_open("worker2", address("data"), 6379)


class TestWorkerLoss:
    """worker1 killed during a bounded load run: the rest served every request accepted after it."""

    def test_every_request_started_after_the_kill_was_served(self, scaled):
        if not scaled:
            pytest.skip("runs after the side effect")
        report = json.loads((EPHEMERAL / "worker_loss.json").read_text())
        print(json.dumps(report, indent=2))
        assert report["before"]["hosts"].get("aistack-multi-worker1", 0) > 0, report  # it was serving
        assert report["after"]["sent"] > 0, report
        assert report["after"]["failed"] == 0, report
        assert "aistack-multi-worker1" not in report["after"]["hosts"], report
        # The new host takes executions.
        assert report["after"]["hosts"].get("aistack-multi-worker2", 0) > 0, report

    def test_redis_drops_a_dead_worker_hosts_connections_in_seconds(self):
        # A dead host's pending "next job" commands take jobs until Redis gives up
        # retransmitting to it: redis_tcp_retries2 (4, ~6 s), not Linux's 15 (~15 min).
        retries = node("data").check_output("docker exec aistack-redis cat /proc/sys/net/ipv4/tcp_retries2")
        assert retries.strip() == "4"


class TestDrain:
    """The fifth host's n8n workers removed under load, worker1 still dead: what they held
    was finished by them, nothing was lost, the GPU host served the rest."""

    def test_removal_drained_the_host(self, scaled):
        if not scaled:
            pytest.skip("runs after the side effect")
        report = json.loads((EPHEMERAL / "drain.json").read_text())
        print(json.dumps(report, indent=2))
        assert report["removal_rc"] == 0, report
        assert report["failed"] == 0 and report["sent"] > 0, report
        # Requests the host held when its SIGTERM came were answered by it: its workers drained.
        assert report["in_flight_at_drain"]["hosts"].get("aistack-multi-worker2", 0) > 0, report
        assert report["hosts"].get("aistack-multi-gpu", 0) > 0, report
        assert report["drain_seconds"] is not None and report["drain_seconds"] <= 40, report
        assert report["n8n_containers_left"] == 0, report
        assert not {name for name in containers("worker2") if "n8n" in name or "runner" in name}
