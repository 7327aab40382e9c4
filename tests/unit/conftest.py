"""Shared test setup: the checkout as ansible_collections.aistack.hosting, module runner."""

import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "collections"))

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402


@pytest.fixture()
def run_module(monkeypatch) -> Callable[..., dict]:
    """Run a module's main() with args; return what it passed to exit_json/fail_json."""
    results: list[dict] = []

    def exit_json(self, **kwargs):
        results.append({"failed": False, **kwargs})
        raise SystemExit(0)

    def fail_json(self, msg, **kwargs):
        results.append({"failed": True, "msg": msg, **kwargs})
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
