"""Verify the docker role on real systemd hosts, installed and after uninstall.

The side_effect step uninstalls Docker and writes /etc/aistack-test-phase, so
the second verify run checks that everything is gone (and foreign
daemon.json keys survived even that).
"""

import json
import time

import pytest

MIRROR = "http://registry.kit.aistack.test:5000"
FOREIGN = ["aistack.test=foreign-key"]


def phase(host) -> str:
    f = host.file("/etc/aistack-test-phase")
    return f.content_string.strip() if f.exists else "installed"


def daemon_json(host) -> dict:
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


@pytest.fixture()
def installed(host):
    if phase(host) != "installed":
        pytest.skip("host is in the uninstalled phase")


@pytest.fixture()
def uninstalled(host):
    if phase(host) != "uninstalled":
        pytest.skip("host is in the installed phase")


@pytest.mark.usefixtures("installed")
class TestInstalled:
    def test_services_enabled_and_running(self, host):
        for name in ("docker", "containerd"):
            service = host.service(name)
            assert service.is_enabled, name
            assert service.is_running, name

    def test_daemon_json_merged(self, host):
        config = daemon_json(host)
        assert config["labels"] == FOREIGN, "a key no input mentions was clobbered"
        assert config["registry-mirrors"] == [MIRROR]
        assert config["insecure-registries"] == ["registry.kit.aistack.test:5000"]
        assert config["log-driver"] == "json-file"
        assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
        assert config["live-restore"] is True
        assert config["icc"] is False and config["no-new-privileges"] is True
        assert config["metrics-addr"] == "127.0.0.1:9323"

    def test_daemon_runs_with_that_config(self, host):
        info = json.loads(host.check_output("docker info --format '{{json .}}'"))
        assert f"{MIRROR}/" in info["RegistryConfig"]["Mirrors"]
        assert info["LiveRestoreEnabled"] is True
        assert info["LoggingDriver"] == "json-file"
        assert "aistack.test=foreign-key" in info["Labels"]

    def test_metrics_endpoint_for_prometheus(self, host):
        out = host.check_output(
            "python3 -c \"import urllib.request;"
            "print(urllib.request.urlopen('http://127.0.0.1:9323/metrics').read().decode())\""
        )
        assert "engine_daemon_engine_info" in out

    def test_operator_in_docker_group(self, host):
        assert "docker" in host.user("aistack-ops").groups
        assert host.run("runuser -u aistack-ops -- docker ps").rc == 0

    def test_compose_v2_plugin(self, host):
        out = host.check_output("docker compose version --short")
        assert out.lstrip("v").split(".")[0] == "2"

    def test_engine_packages_held(self, host):
        held = host.check_output("apt-mark showhold").split()
        assert "docker.io" in held

    def test_stack_network_and_base_dir(self, host):
        assert host.run("docker network inspect aistack").rc == 0
        base = host.file("/opt/aistack")
        assert base.is_directory and base.user == "root" and base.mode == 0o755

    def test_image_pulled_through_mirror_serves_http_200(self, host):
        assert host.run("docker image inspect nginx:1.22.1").rc == 0
        status = host.check_output(
            "python3 -c \"import urllib.request;"
            "print(urllib.request.urlopen('http://127.0.0.1:8080/').status)\""
        )
        assert status == "200"


    def test_unhealthy_container_is_restarted(self, host):
        """The autoheal timer restarts a stack container that turned unhealthy, and only those."""
        assert host.service("aistack-autoheal.timer").is_running
        names = {"heal-stack": "--label org.aistack.role=autoheal-test", "heal-foreign": ""}
        for name, label in names.items():
            host.run(f"docker rm -f {name}")
            # /tmp is a tmpfs: a restart cures the container, as restarting a wedged process would.
            host.check_output(f"docker run -d --name {name} {label} --tmpfs /tmp --health-cmd 'test ! -e /tmp/sick' "
                              "--health-interval 2s --health-retries 1 nginx:1.22.1")

        def state(name: str) -> tuple[str, str]:
            out = host.check_output(f"docker inspect --format '{{{{.State.StartedAt}}}} {{{{.State.Health.Status}}}}' {name}")
            started, health = out.split()
            return started, health

        try:
            deadline = time.time() + 60
            while any(state(name)[1] != "healthy" for name in names) and time.time() < deadline:
                time.sleep(2)
            before = {name: state(name)[0] for name in names}
            for name in names:
                host.check_output(f"docker exec {name} touch /tmp/sick")
            deadline = time.time() + 120  # min uptime 10 s, timer every 5 s
            while time.time() < deadline and state("heal-stack")[0] == before["heal-stack"]:
                time.sleep(3)
            started, _ = state("heal-stack")
            assert started != before["heal-stack"], "the unhealthy stack container was never restarted"
            assert state("heal-foreign") == (before["heal-foreign"], "unhealthy"), "a container without the label was touched"
            journal = host.check_output("journalctl -u aistack-autoheal.service --no-pager -o cat")
            assert "heal-stack: unhealthy" in journal and "restarting" in journal, journal[-500:]
        finally:
            host.run("docker rm -f " + " ".join(names))


@pytest.mark.usefixtures("uninstalled")
class TestUninstalled:
    def test_engine_gone(self, host):
        for pkg in ("docker.io", "docker-ce", "containerd", "containerd.io", "docker-compose"):
            assert not host.package(pkg).is_installed, pkg
        assert not host.exists("dockerd")
        assert not host.file("/usr/local/lib/docker/cli-plugins/docker-compose").exists
        for path in ("/usr/local/sbin/aistack-autoheal", "/etc/systemd/system/aistack-autoheal.timer"):
            assert not host.file(path).exists, path

    def test_nothing_listens_on_the_workload_port(self, host):
        assert not host.socket("tcp://0.0.0.0:8080").is_listening

    def test_only_foreign_daemon_keys_remain(self, host):
        assert daemon_json(host) == {"labels": FOREIGN}
        assert not host.file("/etc/aistack/docker/daemon.managed.json").exists
