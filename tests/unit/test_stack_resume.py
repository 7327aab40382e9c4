"""stack_resume: only projects stopped exactly as their last good `up` left them start, all in one `docker start`.

`docker` is a small stand-in on PATH that answers `ps -aq` and `inspect` from
a JSON file and records every call; the real engine runs in the gpu_host
scenario (its side effect stops projects and `--tags docker` brings them back).
"""

import json
from pathlib import Path

import pytest
from conftest import fake_docker_on_path

from ansible_collections.aistack.hosting.plugins.modules import stack_resume

FAKE_DOCKER = """#!/bin/sh
echo "$@" >> "$FAKE_DOCKER_LOG"
case "$1" in
  ps) python3 -c 'import json,sys; [print(c["Id"]) for c in json.load(open(sys.argv[1]))]' "$FAKE_CONTAINERS" ;;
  inspect) cat "$FAKE_CONTAINERS" ;;
  start) exit "${FAKE_START_RC:-0}" ;;
  compose) case " $* " in *" -p $FAKE_COMPOSE_FAILS "*) echo "dependency failed to start" >&2; exit 1 ;; esac ;;
esac
"""


def container(project: str, cid: str, state: str = "exited", restart: str = "unless-stopped") -> dict:
    return {"Id": cid, "Name": f"/aistack-{project}-{cid}", "State": {"Status": state},
            "Config": {"Labels": {"com.docker.compose.project": project}},
            "HostConfig": {"RestartPolicy": {"Name": restart}}}


@pytest.fixture()
def host(tmp_path, monkeypatch):
    log = fake_docker_on_path(tmp_path / "bin", monkeypatch, FAKE_DOCKER)
    monkeypatch.setenv("FAKE_CONTAINERS", str(tmp_path / "containers.json"))
    base = tmp_path / "opt"

    def setup(containers: list[dict], records: dict[str, list[str]]) -> Path:
        (tmp_path / "containers.json").write_text(json.dumps(containers))
        for name, ids in records.items():
            (base / name).mkdir(parents=True, exist_ok=True)
            (base / name / ".aistack-up.json").write_text(json.dumps({"digest": "d", "containers": sorted(ids)}))
        return log
    setup.base = base
    return setup


def starts(log: Path) -> list[list[str]]:
    return [line.split()[1:] for line in log.read_text().splitlines() if line.startswith("start ")]


def compose_ups(log: Path) -> dict[str, str]:
    """Project name to the arguments of its `docker compose ... up` call."""
    calls = [line.split() for line in log.read_text().splitlines() if line.startswith("compose ")]
    return {args[args.index("-p") + 1]: " ".join(args[args.index("-p") + 2:]) for args in calls}


def test_stopped_projects_start_in_one_call_in_the_given_order(run_module, host):
    log = host([container("n8n", "n1"), container("n8n", "n2"), container("postgres", "p1"),
                container("postgres", "p0", restart="no")],  # a one-shot: left to its project's up
               {"n8n": ["n1", "n2"], "postgres": ["p0", "p1"]})
    result = run_module(stack_resume, {"base_dir": str(host.base), "projects": ["postgres", "redis", "n8n"]})
    assert result["changed"] and not result["failed"]
    assert starts(log) == [["p1", "n1", "n2"]]
    assert list(result["started"]) == ["postgres", "n8n"]
    assert result["started"]["postgres"] == ["aistack-postgres-p1"]


@pytest.mark.parametrize("containers,records,reason", [
    ([container("n8n", "n1", state="running"), container("n8n", "n2")], {"n8n": ["n1", "n2"]}, None),
    ([container("n8n", "n1", state="restarting"), container("n8n", "n2")], {"n8n": ["n1", "n2"]}, None),
    ([container("n8n", "n1"), container("n8n", "n3")], {"n8n": ["n1", "n2"]},
     "containers differ from the last successful up"),
    ([container("n8n", "n1")], {"n8n": ["n1", "n2"]}, "containers differ from the last successful up"),
    ([container("n8n", "n1"), container("other", "o1")], {"n8n": ["n2"]}, "no record of a successful up"),
], ids=["one-running", "one-restarting", "other-container", "one-removed", "no-record"])
def test_anything_unlike_the_last_up_is_left_to_its_role(run_module, host, containers, records, reason):
    log = host(containers, records)
    result = run_module(stack_resume, {"base_dir": str(host.base)})
    assert not result["changed"] and result["started"] == {} and starts(log) == []
    if reason:
        assert reason in result["left"].values()


def test_check_mode_reports_and_starts_nothing(run_module, host):
    log = host([container("redis", "r1")], {"redis": ["r1"]})
    result = run_module(stack_resume, {"base_dir": str(host.base)}, check_mode=True)
    assert result["changed"] and result["started"] == {"redis": ["aistack-redis-r1"]} and starts(log) == []


def test_no_record_asks_the_daemon_nothing(run_module, host):
    log = host([container("redis", "r1")], {})
    result = run_module(stack_resume, {"base_dir": str(host.base)})
    assert not result["changed"] and log.read_text() == ""


def test_a_failed_start_names_the_projects(run_module, host, monkeypatch):
    host([container("redis", "r1")], {"redis": ["r1"]})
    monkeypatch.setenv("FAKE_START_RC", "1")
    result = run_module(stack_resume, {"base_dir": str(host.base)})
    assert result["failed"] and "redis" in result["msg"]


def test_a_hold_starts_nothing(run_module, host, tmp_path):
    """A role moving data with containers stopped on purpose (Postgres' major-upgrade load due) holds them."""
    log = host([container("n8n", "n1")], {"n8n": ["n1"]})
    pending = tmp_path / "major-upgrade.pending"
    pending.write_text("/var/backups/dump.sql\n")
    args = {"base_dir": str(host.base), "holds": [str(pending), str(tmp_path / "absent")]}
    result = run_module(stack_resume, args)
    assert not result["changed"] and result["held"] == [str(pending)] and log.read_text() == ""
    pending.unlink()
    assert run_module(stack_resume, args)["started"] == {"n8n": ["aistack-n8n-n1"]}


def test_projects_without_containers_come_up_from_their_files_at_once(run_module, host):
    """Removed since their last good up (compose down, a prune): `compose up -d` of each, no wait, no pull;
    a stopped project is started as before and one still running is left alone."""
    log = host([container("postgres", "p1"), container("n8n", "n1", state="running")],
               {"postgres": ["p1"], "redis": ["r1"], "n8n": ["n1"], "traefik": ["t1", "t2"]})
    result = run_module(stack_resume, {"base_dir": str(host.base), "projects": ["postgres", "redis", "traefik", "n8n"]})
    assert result["changed"] and not result["failed"]
    assert result["started"] == {"postgres": ["aistack-postgres-p1"]} and starts(log) == [["p1"]]
    assert result["created"] == ["redis", "traefik"]
    assert compose_ups(log) == {name: "up -d --remove-orphans --pull never" for name in ("redis", "traefik")}
    assert f"--project-directory {host.base / 'redis'} -p redis" in log.read_text()


def test_a_project_whose_up_fails_here_is_left_to_its_role(run_module, host, monkeypatch):
    host([], {"redis": ["r1"], "fastapi_celery": ["f1"]})
    monkeypatch.setenv("FAKE_COMPOSE_FAILS", "fastapi_celery")
    result = run_module(stack_resume, {"base_dir": str(host.base)})
    assert not result["failed"] and result["changed"] and result["created"] == ["redis"]
    assert "dependency failed to start" in result["left"]["fastapi_celery"]


@pytest.mark.parametrize("args,check_mode,created", [
    ({"create_removed": False}, False, []),
    ({}, True, ["redis"]),
], ids=["turned-off", "check-mode"])
def test_removed_projects_off_or_in_check_mode_run_no_compose(run_module, host, args, check_mode, created):
    log = host([], {"redis": ["r1"]})
    result = run_module(stack_resume, {"base_dir": str(host.base), **args}, check_mode=check_mode)
    assert result["created"] == created and result["changed"] == bool(created) and compose_ups(log) == {}


def test_a_hold_brings_up_nothing(run_module, host, tmp_path):
    log = host([], {"redis": ["r1"]})
    pending = tmp_path / "major-upgrade.pending"
    pending.write_text("")
    result = run_module(stack_resume, {"base_dir": str(host.base), "holds": [str(pending)]})
    assert not result["changed"] and result["created"] == [] and compose_ups(log) == {}
