"""The docker role's watcher (roles/docker/files/aistack-autoheal.py): the stack
health file node-exporter's textfile collector reads, and the boot check."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "docker" / "files" / "aistack-autoheal.py"


def container(name: str, status: str, health: str | None, role: str = "n8n") -> dict:
    state = {"Status": status, **({"Health": {"Status": health}} if health else {})}
    return {"Name": "/" + name, "State": state, "Config": {"Labels": {"org.aistack.role": role}}}


@pytest.fixture
def watcher(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("aistack_autoheal", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.BOOT_MARK = str(tmp_path / "run" / "stack-healthy-after-boot")
    monkeypatch.setattr(module, "boot_time", lambda: 1000.0)
    module.containers = []

    def docker(*args):
        if args[0] == "ps":
            assert "--all" in args and "label=org.aistack.role" in args, args  # stopped ones count too
            return "\n".join(c["Name"] for c in module.containers)
        assert args[0] == "inspect"
        return json.dumps(module.containers)
    monkeypatch.setattr(module, "docker", docker)
    return module


def metrics(directory: Path) -> dict:
    text = (directory / "aistack_stack.prom").read_text()
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines() if not line.startswith("#")}


def test_a_container_down_fails_the_boot_check(watcher, tmp_path, monkeypatch):
    monkeypatch.setattr(watcher.time, "time", lambda: 1100.0)
    watcher.containers = [container("aistack-n8n", "running", "healthy"),
                          container("aistack-n8n-runner", "exited", None),
                          container("aistack-postgres", "running", "starting", role="postgres")]
    watcher.report("org.aistack.role", str(tmp_path / "metrics"))
    found = metrics(tmp_path / "metrics")
    assert found['aistack_container_up{container="aistack-n8n",role="n8n",state="running",health="healthy"}'] == "1"
    assert found['aistack_container_up{container="aistack-n8n-runner",role="n8n",state="exited",health="none"}'] == "0"
    assert found['aistack_container_up{container="aistack-postgres",role="postgres",state="running",health="starting"}'] == "0"
    assert (found["aistack_stack_healthy"], found["aistack_stack_containers"]) == ("0", "3")
    assert (found["aistack_stack_boot_check_ok"], found["aistack_stack_boot_time_seconds"]) == ("0", "1000")
    assert "aistack_stack_healthy_after_boot_seconds" not in found
    assert not Path(watcher.BOOT_MARK).exists()


def test_the_first_healthy_moment_after_boot_is_kept(watcher, tmp_path, monkeypatch):
    watcher.containers = [container("aistack-n8n", "running", "healthy"), container("aistack-node-exporter", "running", None)]
    monkeypatch.setattr(watcher.time, "time", lambda: 1090.0)
    watcher.report("org.aistack.role", str(tmp_path))
    assert metrics(tmp_path)["aistack_stack_healthy_after_boot_seconds"] == "90"
    # Later a container fails: the stack is unhealthy now, the boot check stays passed.
    watcher.containers[0] = container("aistack-n8n", "running", "unhealthy")
    monkeypatch.setattr(watcher.time, "time", lambda: 2000.0)
    watcher.report("org.aistack.role", str(tmp_path))
    found = metrics(tmp_path)
    assert (found["aistack_stack_healthy"], found["aistack_stack_boot_check_ok"]) == ("0", "1")
    assert found["aistack_stack_healthy_after_boot_seconds"] == "90"
    assert found["aistack_stack_check_timestamp_seconds"] == "2000"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_no_stack_container_is_not_healthy(watcher, tmp_path):
    watcher.report("org.aistack.role", str(tmp_path))
    assert metrics(tmp_path)["aistack_stack_healthy"] == "0"


def test_boot_time_is_when_pid_1_started(watcher):
    spec = importlib.util.spec_from_file_location("fresh", SCRIPT)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    import time
    assert 0 < fresh.boot_time() <= time.time()
