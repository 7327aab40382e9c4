"""Shared test setup: the checkout as ansible_collections.aistack.hosting, module runner."""

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from checkout_link import ensure as ensure_checkout_link  # noqa: E402

sys.path.insert(0, str(ensure_checkout_link()))

from ansible.module_utils import basic  # noqa: E402

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19
except ImportError:  # ansible-core 2.18: modules read their arguments from basic._ANSIBLE_ARGS
    import contextlib
    import json

    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


@pytest.fixture()
def run_module(monkeypatch) -> Callable[..., dict]:
    """Run a module's main() with args; return what it passed to exit_json/fail_json."""
    results: list[dict] = []

    # As AnsibleModule does before printing: every no_log value is masked wherever it occurs.
    def exit_json(self, **kwargs):
        results.append(basic.remove_values({"failed": False, **kwargs}, self.no_log_values))
        raise SystemExit(0)

    def fail_json(self, msg, **kwargs):
        results.append(basic.remove_values({"failed": True, "msg": msg, **kwargs}, self.no_log_values))
        raise SystemExit(1)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def runner(module: ModuleType, args: dict, check_mode: bool = False) -> dict:
        if check_mode:
            args = {**args, "_ansible_check_mode": True}
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        return results.pop()

    return runner


def play_on_localhost(base: Path, **env: str) -> None:
    """Run base/play.yml with ansible-playbook against localhost (no host access), the collection from the checkout."""
    import subprocess

    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", **env}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(base / "play.yml")],
                          capture_output=True, text=True, env=env, cwd=base, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def load_host_tool(relative: str) -> ModuleType:
    """A role's host-side Python tool (roles/<role>/files/<tool>.py), imported by path."""
    import importlib.util

    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A `docker` stand-in on PATH for the modules that look up a container's address:
# `docker container inspect` answers from $FAKE_DOCKER_NETWORKS (a JSON object:
# network name -> {"IPAddress": ...}), or "No such object" when it is unset.
FAKE_DOCKER = """#!/bin/sh
[ -n "$FAKE_DOCKER_NETWORKS" ] || { echo "Error: No such object: $6" >&2; exit 1; }
echo "$FAKE_DOCKER_NETWORKS"
"""


def fake_docker_on_path(bindir: Path, monkeypatch, script: str) -> Path:
    """`script` as the `docker` first on PATH; returns the log it may append its arguments to ($FAKE_DOCKER_LOG)."""
    bindir.mkdir()
    (bindir / "docker").write_text(script)
    (bindir / "docker").chmod(0o755)
    log = bindir / "docker.log"
    log.write_text("")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    return log


@pytest.fixture()
def docker(tmp_path, monkeypatch):
    bindir = tmp_path / "fake-docker-bin"
    fake_docker_on_path(bindir, monkeypatch, FAKE_DOCKER)
    return bindir
