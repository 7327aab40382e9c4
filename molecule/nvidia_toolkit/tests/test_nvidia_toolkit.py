"""Verify the nvidia_toolkit role on a host without a GPU.

Runs twice: after converge (toolkit installed from the kit's TEST DOUBLE apt
repository with nvidia_toolkit_install_without_gpu, nvidia the default
runtime), and after side_effect (toolkit removed, then the default no-GPU
path ran and installed nothing).
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import phase  # noqa: E402

PACKAGES = ["libnvidia-container1", "libnvidia-container-tools", "nvidia-container-toolkit-base", "nvidia-container-toolkit"]
NVIDIA_CTK_ENTRY = {"args": [], "path": "nvidia-container-runtime"}
SOURCES = "/etc/apt/sources.list.d/nvidia-container-toolkit.sources"
KEYRING = "/etc/apt/keyrings/nvidia-container-toolkit.asc"
FRAGMENT = "/etc/aistack/docker/daemon.d/nvidia.json"


def daemon_json(host) -> dict:
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


def docker_info(host) -> dict:
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


@pytest.fixture(scope="module")
def installed(host) -> bool:
    return phase(host) == "converged"


class TestDaemonJson:
    def test_foreign_key_kept(self, host):
        assert daemon_json(host)["labels"] == ["aistack.test=foreign-key"]

    def test_docker_role_defaults_kept(self, host):
        config = daemon_json(host)
        assert config["log-driver"] == "json-file"
        assert config["registry-mirrors"] == ["http://registry.kit.aistack.test:5000"]

    def test_nvidia_runtime_exactly_once(self, host, installed):
        text = host.file("/etc/docker/daemon.json").content_string
        config = json.loads(text)
        if installed:
            # The hand-written entry prepare seeded and the role's fragment are one entry.
            assert config["runtimes"] == {"nvidia": NVIDIA_CTK_ENTRY}
            assert text.count('"nvidia"') == 2  # the runtime's name and default-runtime's value
            assert config["default-runtime"] == "nvidia"
            assert json.loads(host.file(FRAGMENT).content_string)["runtimes"] == {"nvidia": NVIDIA_CTK_ENTRY}
        else:
            assert "runtimes" not in config and "default-runtime" not in config
            assert not host.file(FRAGMENT).exists

    def test_running_daemon_uses_it(self, host, installed):
        info = docker_info(host)
        if installed:
            assert "nvidia" in info["Runtimes"]
            assert info["DefaultRuntime"] == "nvidia"
        else:
            assert "nvidia" not in info["Runtimes"]
            assert info["DefaultRuntime"] == "runc"


class TestPackages:
    def test_pinned_version_from_the_nvidia_source(self, host, installed):
        for name in PACKAGES:
            package = host.package(name)
            assert package.is_installed is installed, name
            if installed:
                assert package.version == "1.17.8-1", name

    def test_held(self, host, installed):
        if not installed:
            pytest.skip("removed")
        held = host.check_output("apt-mark showhold").split()
        assert set(PACKAGES) <= set(held), held

    def test_it_is_the_labelled_test_double(self, host, installed):
        if not installed:
            pytest.skip("removed")
        assert host.file("/usr/share/doc/nvidia-container-toolkit/README.aistack-test-double").exists
        assert "NVIDIA Container Toolkit CLI version 1.17.8" in host.check_output("nvidia-ctk --version")

    def test_deb822_source_with_its_keyring(self, host, installed):
        if not installed:
            assert not host.file(SOURCES).exists and not host.file(KEYRING).exists
            return
        sources = host.file(SOURCES).content_string
        assert "URIs: file:/opt/aistack-tests/nvidia-apt/stable/deb/amd64" in sources
        assert "Suites: /" in sources
        assert f"Signed-By: {KEYRING}" in sources
        assert host.file(KEYRING).content_string.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        assert not host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.list").exists

    def test_no_cdi_spec_without_a_driver(self, host):
        # CDI generation needs the driver; this host has neither GPU nor driver.
        assert not host.file("/etc/cdi/nvidia.yaml").exists


class TestContainers:
    def test_a_container_runs_on_the_default_runtime(self, host, installed):
        # With nvidia as the default runtime every container goes through it
        # (the double execs runc); after removal they run on runc again.
        out = host.check_output("docker run --rm nginx:1.22.1 sh -c 'echo ok'")
        assert out.strip() == "ok"
        runtime = host.check_output(
            "docker run -d nginx:1.22.1 sleep 30 | xargs -I{} sh -c "
            "\"docker inspect --format '{{.HostConfig.Runtime}}' {}; docker rm -f {} >/dev/null\"")
        assert runtime.strip() == ("nvidia" if installed else "runc")
