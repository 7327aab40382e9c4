"""hf_space_push against a fake Hugging Face Hub (no network).

The Hub cannot be reached from here. huggingface_hub's ``HfApi`` methods the
module calls (repo_exists, create_repo, repo_info, get_space_variables,
add_space_variable, add_space_secret, upload_folder) are patched onto an
in-memory fake Space that behaves like the Hub: an upload whose files did not
change makes no commit, secrets cannot be read back. When huggingface_hub is
not installed, a stub module with the same class and method names stands in.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import types
from pathlib import Path

import pytest

try:
    import huggingface_hub  # noqa: F401
except ImportError:
    stub = types.ModuleType("huggingface_hub")

    class HfApi:  # the HTTP layer: never reached, every method is patched per test
        def __init__(self, token=None):
            self.token = token

    stub.HfApi = HfApi
    sys.modules["huggingface_hub"] = stub

from ansible_collections.aistack.hosting.plugins.modules import hf_space_push  # noqa: E402

importlib.reload(hf_space_push)
SPACE = "my-org/n8n_agent.v2"


class FakeHub:
    """One fake Space, with the call log of mutations."""

    def __init__(self) -> None:
        self.exists = False
        self.variables: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.files: dict[str, str] = {}
        self.commits: list[str] = []
        self.mutations: list[str] = []
        self.created_with: dict = {}

    def patch(self, monkeypatch) -> None:
        hub = self

        def need(repo_id):
            assert repo_id == SPACE
            if not hub.exists:
                raise RuntimeError("404 Repository Not Found")

        def repo_exists(self, repo_id, repo_type=None):
            assert repo_type == "space"
            return hub.exists

        def create_repo(self, repo_id, repo_type=None, space_sdk=None, private=None, exist_ok=False):
            hub.mutations.append("create_repo")
            hub.created_with = {"repo_type": repo_type, "space_sdk": space_sdk, "private": private}
            hub.exists = True

        def repo_info(self, repo_id, repo_type=None):
            need(repo_id)
            return types.SimpleNamespace(sha=hub.commits[-1] if hub.commits else "init")

        def get_space_variables(self, repo_id):
            need(repo_id)
            return {k: types.SimpleNamespace(key=k, value=v) for k, v in hub.variables.items()}

        def add_space_variable(self, repo_id, key, value):
            need(repo_id)
            hub.mutations.append(f"variable {key}")
            hub.variables[key] = value

        def add_space_secret(self, repo_id, key, value):
            need(repo_id)
            assert self.token == "hf_secret_token"
            hub.mutations.append(f"secret {key}")
            hub.secrets[key] = value

        def upload_folder(self, repo_id, repo_type=None, folder_path=None, commit_message=None):
            need(repo_id)
            files = {}
            for root, _, names in os.walk(folder_path):
                for name in names:
                    path = os.path.join(root, name)
                    files[os.path.relpath(path, folder_path)] = Path(path).read_text()
            if files != hub.files:  # the Hub skips empty commits
                hub.files = files
                hub.commits.append(hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest())
                hub.mutations.append("commit")
            return types.SimpleNamespace(oid=hub.commits[-1] if hub.commits else "init")

        for name, function in list(locals().items()):
            if name not in ("hub", "need", "self") and callable(function):
                monkeypatch.setattr(hf_space_push.HfApi, name, function, raising=False)


@pytest.fixture()
def hub(monkeypatch) -> FakeHub:
    fake = FakeHub()
    fake.patch(monkeypatch)
    return fake


@pytest.fixture()
def args(tmp_path) -> dict:
    folder = tmp_path / "build"
    (folder / "bin").mkdir(parents=True)
    (folder / "Dockerfile").write_text("FROM n8nio/n8n:2.41.1\n")
    (folder / "README.md").write_text("---\nsdk: docker\napp_port: 7860\n---\n")
    (folder / "bin" / "boot.py").write_text("print('boot')\n")
    return {"space": SPACE, "token": "hf_secret_token", "folder": str(folder), "state_path": str(tmp_path / "state.json"),
            "secrets": {"N8N_ENCRYPTION_KEY": "k" * 48}, "variables": {"GENERIC_TIMEZONE": "UTC"}}


def test_first_push_creates_a_private_docker_space(run_module, hub, args):
    result = run_module(hf_space_push, args)
    assert result["changed"] and result["created"] and result["uploaded"]
    assert hub.created_with == {"repo_type": "space", "space_sdk": "docker", "private": True}
    assert hub.mutations == ["create_repo", "variable GENERIC_TIMEZONE", "secret N8N_ENCRYPTION_KEY", "commit"]
    assert sorted(hub.files) == ["Dockerfile", "README.md", "bin/boot.py"]
    assert result["url"] == "https://huggingface.co/spaces/my-org/n8n_agent.v2"
    assert result["app_url"] == "https://my-org-n8n-agent-v2.hf.space"
    assert result["commit"] == hub.commits[-1]


def test_second_push_changes_nothing(run_module, hub, args):
    run_module(hf_space_push, args)
    hub.mutations.clear()
    result = run_module(hf_space_push, args)
    assert not result["changed"], result
    assert hub.mutations == []


def test_only_what_changed_is_pushed(run_module, hub, args):
    run_module(hf_space_push, args)
    hub.mutations.clear()
    Path(args["folder"], "bin", "boot.py").write_text("print('boot v2')\n")
    result = run_module(hf_space_push, {**args, "secrets": {"N8N_ENCRYPTION_KEY": "k" * 48, "DB_POSTGRESDB_PASSWORD": "pw"}})
    assert result["changed"] and result["uploaded"] and result["secrets_set"] == ["DB_POSTGRESDB_PASSWORD"]
    assert hub.mutations == ["secret DB_POSTGRESDB_PASSWORD", "commit"]


def test_a_variable_changed_on_the_hub_is_set_back(run_module, hub, args):
    run_module(hf_space_push, args)
    hub.variables["GENERIC_TIMEZONE"] = "Europe/Paris"
    hub.mutations.clear()
    result = run_module(hf_space_push, args)
    assert result["variables_set"] == ["GENERIC_TIMEZONE"] and hub.mutations == ["variable GENERIC_TIMEZONE"]


def test_someone_elses_commit_triggers_an_upload_that_is_a_noop_when_files_match(run_module, hub, args):
    run_module(hf_space_push, args)
    hub.commits.append("foreign")  # head moved, files identical
    hub.mutations.clear()
    result = run_module(hf_space_push, args)
    assert not result["uploaded"] and hub.mutations == []


def test_check_mode_reports_without_mutating(run_module, hub, args):
    result = run_module(hf_space_push, args, check_mode=True)
    assert result["changed"] and result["created"] and result["uploaded"]
    assert hub.mutations == [] and not Path(args["state_path"]).exists()
    run_module(hf_space_push, args)
    hub.mutations.clear()
    assert not run_module(hf_space_push, args, check_mode=True)["changed"]


def test_state_file_is_private_and_holds_no_secret(run_module, hub, args):
    run_module(hf_space_push, args)
    state = Path(args["state_path"])
    assert state.stat().st_mode & 0o777 == 0o600
    assert "k" * 48 not in state.read_text() and "hf_secret_token" not in state.read_text()


def test_token_never_in_an_error(run_module, hub, args, monkeypatch):
    def boom(self, *a, **k):
        raise RuntimeError("401 Unauthorized for token hf_secret_token")
    monkeypatch.setattr(hf_space_push.HfApi, "repo_exists", boom)
    result = run_module(hf_space_push, args)
    assert result["failed"] and "hf_secret_token" not in result["msg"] and "401" in result["msg"]


@pytest.mark.parametrize("change,message", [
    ({"space": "no-slash"}, "owner/name"),
    ({"folder": "/nonexistent"}, "has no Dockerfile"),
])
def test_bad_input(run_module, hub, args, change, message):
    result = run_module(hf_space_push, {**args, **change})
    assert result["failed"] and message in result["msg"]
    assert hub.mutations == []


def test_documentation_matches_argument_spec(monkeypatch):
    import yaml
    from ansible.module_utils import basic

    class Captured(Exception):
        pass

    spec = {}

    def fake_init(self, argument_spec, **kwargs):
        spec.update(argument_spec)
        raise Captured

    monkeypatch.setattr(basic.AnsibleModule, "__init__", fake_init)
    with pytest.raises(Captured):
        hf_space_push.main()
    doc = yaml.safe_load(hf_space_push.DOCUMENTATION)
    assert doc["module"] == "hf_space_push" and yaml.safe_load(hf_space_push.EXAMPLES)
    yaml.safe_load(hf_space_push.RETURN)
    assert set(doc["options"]) == set(spec)
    for name, option in doc["options"].items():
        assert option.get("type", "str") == spec[name].get("type", "str"), name
        assert option.get("default") == spec[name].get("default"), name
        assert bool(option.get("required")) == bool(spec[name].get("required")), name
    assert spec["token"]["no_log"] is True and spec["secrets"]["no_log"] is True
