"""The upgrade role's tool (roles/upgrade/files/aistack-upgrade.py): which projects
a rollback puts back and in what order. The rollback itself (containers, a
migrated database restored from its dump) runs for real in the lifecycle
scenario and on the demo host."""

from pathlib import Path

import pytest
from conftest import load_host_tool



@pytest.fixture(scope="module")
def tool():
    return load_host_tool("roles/upgrade/files/aistack-upgrade.py")


def project(base: Path, name: str, files: dict) -> None:
    for relative, text in {"compose.yml": f"name: {name}\n", **files}.items():
        path = base / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_projects_start_dependencies_first(tool, tmp_path):
    for name in ("monitoring", "n8n", "custom", "postgres", "redis"):
        project(tmp_path, name, {})
    (tmp_path / "not-a-project").mkdir()
    assert tool.projects(tmp_path) == ["postgres", "redis", "n8n", "monitoring", "custom"]


def test_a_project_differs_by_any_file_at_any_depth(tool, tmp_path):
    saved, live = tmp_path / "saved", tmp_path / "live"
    for base in (saved, live):
        project(base, "n8n", {".env": "A=1\n", "secrets/n8n/KEY": "k"})
    assert not tool.differs(saved / "n8n", live / "n8n")
    (live / "n8n" / "secrets" / "n8n" / "KEY").write_text("rotated")
    assert tool.differs(saved / "n8n", live / "n8n")
    (live / "n8n" / "secrets" / "n8n" / "KEY").write_text("k")
    (live / "n8n" / "new.yml").write_text("x")
    assert tool.differs(saved / "n8n", live / "n8n")


def test_rollback_without_a_preparation_says_so(tool, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, "STATE", tmp_path / "none")
    with pytest.raises(tool.UpgradeError, match="nothing to roll back to"):
        tool.rollback()


def test_a_project_put_back_has_no_record_of_a_good_up(tool, tmp_path, monkeypatch):
    """Should the rollback stop before the project is up again, the docker role must not bring the put-back
    files up by itself (stack_resume needs compose_project's record): the copy loses it."""
    state, base = tmp_path / "state", tmp_path / "opt"
    saved = state / "20261205T000000Z"
    project(saved / "projects", "n8n", {".env": "A=1\n", ".aistack-up.json": "{}"})
    project(base, "n8n", {".env": "A=2\n", ".aistack-up.json": "{}"})
    (saved / "state.json").write_text(f'{{"stamp": "x", "base": "{base}", "postgres": "", "projects": {{}}, "databases": {{}}}}')
    monkeypatch.setattr(tool, "STATE", state)
    calls = []
    monkeypatch.setattr(tool, "compose", lambda directory, *args: calls.append((directory.name, args)))
    monkeypatch.setattr(tool, "project_images", lambda directory: [])
    assert tool.rollback()["rolled_back"] == ["n8n"]
    assert (base / "n8n" / ".env").read_text() == "A=1\n" and not (base / "n8n" / ".aistack-up.json").exists()
    assert calls == [("n8n", ("down", "--remove-orphans")), ("n8n", ("up", "-d", "--wait"))]
