"""compose_project: files written only when they differ, validated first, Compose's events judged, routes kept.

`docker` is a small stand-in on PATH that records its arguments and answers
as Compose v2 does (`up` prints progress lines); the real Compose runs in
every molecule scenario.
"""

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import fake_docker_on_path

from ansible_collections.aistack.hosting.plugins.modules import compose_project

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module chowns files to root")

FAKE_DOCKER = """#!/bin/sh
echo "$@" >> "$FAKE_DOCKER_LOG"
case "$*" in
  *" config -q") [ -n "$FAKE_CONFIG_FAILS" ] && { echo "invalid compose file" >&2; exit 15; }; exit 0 ;;
  *" up "*"--force-recreate"*) printf '%b' "$FAKE_RECREATE_OUTPUT" >&2; exit 0 ;;
  *" up "*) printf '%b' "$FAKE_UP_OUTPUT" >&2; exit "${FAKE_UP_RC:-0}" ;;
  *" ps -a --format {{.Service}} {{.Name}}") echo "redis aistack-redis"; echo "other aistack-other"; exit 0 ;;
  "ps -a --no-trunc --filter label=com.docker.compose.project="*) printf '%b' "$FAKE_PS"; exit 0 ;;
  *" ps "*) echo "NAME STATE STATUS"; exit 0 ;;
  "volume inspect --format {{.Mountpoint}} "*) [ -d "$FAKE_VOLUMES/$5" ] && { echo "$FAKE_VOLUMES/$5"; exit 0; }
                                             echo "Error: No such volume: $5" >&2; exit 1 ;;
  "volume create "*) eval last=\\${$#}; mkdir -p "$FAKE_VOLUMES/$last"; exit 0 ;;
esac
exit 0
"""


@pytest.fixture()
def docker(tmp_path, monkeypatch) -> Path:
    log = fake_docker_on_path(tmp_path / "bin", monkeypatch, FAKE_DOCKER)
    monkeypatch.setenv("FAKE_UP_OUTPUT", " Container aistack-redis  Running\\n Container aistack-redis  Healthy\\n")
    return log


@pytest.fixture()
def run(run_module, tmp_path, docker):
    def runner(check_mode=False, **overrides) -> dict:
        args = {
            "name": "redis",
            "dir": str(tmp_path / "opt" / "redis"),
            "env": "REDISCLI_AUTH='the-redis-secret-value'\n",
            "project": "services:\n  redis:\n    image: redis:8.0.2\n",
            "files": [{"dest": "conf/plain.yml", "content": "plain: true\n"}],
            "secret_files": [{"dest": "redis.conf", "content": "requirepass the-redis-secret-value\n", "mode": "0600"}],
            "routes": "http:\n  routers: {}\n",
            "routes_path": str(tmp_path / "opt" / "traefik" / "dynamic" / "routes-redis.yml"),
            **overrides,
        }
        return run_module(compose_project, args, check_mode)
    return runner


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_run_writes_everything_then_nothing_changes(run, tmp_path, docker):
    first = run()
    project = tmp_path / "opt" / "redis"
    assert first["changed"] and not first["failed"]
    assert first["files_changed"] == [".", ".env", "redis.conf", "conf/plain.yml", "compose.yml"]
    assert mode(project) == 0o750 and mode(project / ".env") == 0o600 and mode(project / "compose.yml") == 0o640
    assert mode(project / "redis.conf") == 0o600 and mode(project / "conf" / "plain.yml") == 0o644
    assert mode(tmp_path / "opt/traefik/dynamic/routes-redis.yml") == 0o600
    assert "up -d --wait --wait-timeout 300 --remove-orphans --pull missing" in docker.read_text()
    second = run()
    assert not second["changed"] and second["files_changed"] == [] and not second["compose_changed"]
    assert not second["routes_changed"]


def test_compose_events_decide_the_change(run, monkeypatch):
    run()
    monkeypatch.setenv("FAKE_UP_OUTPUT", " Container aistack-redis  Recreate\\n Container aistack-redis  Recreated\\n"
                                         " Container aistack-redis  Starting\\n Container aistack-redis  Started\\n")
    result = run()
    assert result["changed"] and result["compose_changed"] and result["files_changed"] == []
    assert result["compose_events"] == ["Container aistack-redis  Recreated", "Container aistack-redis  Started"]


def test_secrets_never_in_the_result_nor_diffed(run_module, run, tmp_path):
    result = run()
    assert "the-redis-secret-value" not in repr(result)
    (tmp_path / "opt/redis/redis.conf").write_text("edited by hand\n")
    args = {"name": "redis", "dir": str(tmp_path / "opt" / "redis"), "env": "A='the-redis-secret-value'\n",
            "project": "services: {}\n", "routes_path": str(tmp_path / "r.yml"),
            "secret_files": [{"dest": "redis.conf", "content": "requirepass the-redis-secret-value\n"}],
            "_ansible_diff": True}
    diffed = run_module(compose_project, args, True)
    assert "redis.conf" in diffed["files_changed"] and ".env" in diffed["files_changed"]
    assert "the-redis-secret-value" not in repr(diffed)
    diffed_files = [d["after_header"].rsplit("/", 1)[-1] for d in diffed["diff"]]
    assert "compose.yml" in diffed_files and "redis.conf" not in diffed_files and ".env" not in diffed_files


def test_a_file_that_fails_validation_keeps_the_old_one(run, tmp_path, monkeypatch):
    run()
    compose = tmp_path / "opt/redis/compose.yml"
    before = compose.read_text()
    monkeypatch.setenv("FAKE_CONFIG_FAILS", "1")
    result = run(project="services:\n  redis: {image: [not, valid]}\n")
    assert result["failed"] and "compose.yml failed its validation" in result["msg"]
    assert compose.read_text() == before
    assert not [p for p in compose.parent.iterdir() if p.name.startswith(".compose.yml.")]


def test_own_validate_command_runs_on_the_candidate(run, tmp_path):
    result = run(files=[{"dest": "plain.json", "content": "{not json", "validate": "python3 -m json.tool %s"}])
    assert result["failed"] and "plain.json failed its validation" in result["msg"]
    assert not (tmp_path / "opt/redis/plain.json").exists()


def test_check_mode_writes_nothing_and_predicts_the_change(run, tmp_path, docker):
    result = run(check_mode=True)
    assert result["changed"] and result["compose_changed"] and result["routes_changed"]
    assert not (tmp_path / "opt").exists()
    assert " up " not in docker.read_text()


def test_check_mode_dry_run_sees_drift_of_unchanged_files(run, monkeypatch, docker):
    run()
    monkeypatch.setenv("FAKE_UP_OUTPUT", " DRY-RUN MODE -  Container aistack-redis  Starting\\n"
                                         " DRY-RUN MODE -  Container aistack-redis  Started\\n")
    result = run(check_mode=True)
    assert result["changed"] and result["files_changed"] == []
    assert result["compose_events"] == ["Container aistack-redis  Started"]
    assert "up --dry-run -d --remove-orphans" in docker.read_text()


def test_failed_up_reports_compose_and_keeps_routes_unpublished(run, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_UP_OUTPUT", " Container aistack-redis  Started\\ncontainer aistack-redis is unhealthy\\n")
    monkeypatch.setenv("FAKE_UP_RC", "1")
    result = run(wait_timeout=5)
    assert result["failed"] and "did not become healthy within 5 s" in result["msg"]
    assert "container aistack-redis is unhealthy" in result["msg"]
    assert not (tmp_path / "opt/traefik/dynamic/routes-redis.yml").exists()


def test_empty_routes_remove_the_file(run, tmp_path):
    run()
    routes = tmp_path / "opt/traefik/dynamic/routes-redis.yml"
    assert routes.exists()
    result = run(routes="")
    assert result["changed"] and result["routes_changed"] and not routes.exists()
    assert not run(routes="")["changed"]


def test_a_start_time_secret_recreates_its_service_unless_up_just_did(run, tmp_path, docker, monkeypatch):
    """A _FILE secret (secrets/<service>/<VARIABLE>): the directory is 0711 (the container's own
    user reaches its file), the file its owner's alone; Compose cannot see its content change,
    so the module recreates the service that reads it, and only when up did not just create it."""
    def secret(value: str) -> list:
        return [{"dest": "secrets/redis/REDIS_PASSWORD", "content": value, "owner": "999", "mode": "0400",
                 "restart": ["redis"]}]
    monkeypatch.setenv("FAKE_UP_OUTPUT", " Container aistack-redis  Created\n Container aistack-redis  Started\n")
    monkeypatch.setenv("FAKE_RECREATE_OUTPUT", " Container aistack-redis  Recreated\n Container aistack-redis  Started\n")
    first = run(secret_files=secret("first-secret-value"))
    project = tmp_path / "opt" / "redis"
    assert "secrets/redis/REDIS_PASSWORD" in first["files_changed"]
    assert mode(project / "secrets" / "redis") == 0o711 and mode(project / "secrets/redis/REDIS_PASSWORD") == 0o400
    assert os.stat(project / "secrets/redis/REDIS_PASSWORD").st_uid == 999
    assert "--force-recreate" not in docker.read_text()  # up created it with the file already there
    monkeypatch.setenv("FAKE_UP_OUTPUT", " Container aistack-redis  Running\n Container aistack-redis  Healthy\n")
    assert not run(secret_files=secret("first-secret-value"))["changed"]
    assert "--force-recreate" not in docker.read_text()
    rotated = run(secret_files=secret("second-secret-value"))
    assert rotated["changed"] and rotated["files_changed"] == ["secrets/redis/REDIS_PASSWORD"]
    assert rotated["compose_events"] == ["Container aistack-redis  Recreated", "Container aistack-redis  Started"]
    assert "up -d --wait --wait-timeout 300 --no-deps --force-recreate redis" in docker.read_text()
    assert "second-secret-value" not in repr(rotated)
    assert (project / "secrets/redis/REDIS_PASSWORD").read_text() == "second-secret-value"


def test_declared_directories_exclusive_pruning_and_reload_by_signal(run, tmp_path, docker, monkeypatch):
    """Directories get exactly their owner and mode; a file a service re-reads (reload) gets it a
    SIGHUP instead of a restart, unless up just created it; an exclusive directory loses the files
    nobody declares any more (and its reload services get a SIGHUP for it)."""
    project = tmp_path / "opt" / "redis"
    directories = [{"path": "rules", "group": 65534, "mode": "0750", "exclusive": True, "reload": ["redis"]},
                   {"path": "dash", "mode": "0755", "exclusive": True}]

    def files(rules: str, dashboards: tuple = ("a.json",)) -> list:
        return ([{"dest": "rules/aistack.yml", "content": rules, "group": "65534", "mode": "0640", "reload": ["redis"]}]
                + [{"dest": f"dash/{name}", "content": "{}", "mode": "0644"} for name in dashboards])
    monkeypatch.setenv("FAKE_UP_OUTPUT", " Container aistack-redis  Created\\n Container aistack-redis  Started\\n")
    first = run(directories=directories, files=files("groups: []\n", ("a.json", "b.json")))
    assert {"rules", "dash", "rules/aistack.yml", "dash/a.json", "dash/b.json"} <= set(first["files_changed"])
    assert mode(project / "rules") == 0o750 and os.stat(project / "rules").st_gid == 65534
    assert mode(project / "dash") == 0o755
    assert " kill " not in docker.read_text()  # just created: it read the new file at start
    monkeypatch.setenv("FAKE_UP_OUTPUT", " Container aistack-redis  Running\\n Container aistack-redis  Healthy\\n")
    assert not run(directories=directories, files=files("groups: []\n", ("a.json", "b.json")))["changed"]
    changed = run(directories=directories, files=files("groups: [{name: x}]\n", ("a.json", "b.json")))
    assert changed["changed"] and changed["files_changed"] == ["rules/aistack.yml"]
    assert "kill -s SIGHUP redis" in docker.read_text() and "--force-recreate" not in docker.read_text()
    assert changed["compose_events"] == ["Container redis  Reloaded"]
    (project / "rules" / "old.yml").write_text("groups: []\n")
    pruned = run(directories=directories, files=files("groups: [{name: x}]\n"))
    assert sorted(pruned["files_changed"]) == ["dash/b.json", "rules/old.yml"]
    assert not (project / "dash" / "b.json").exists() and not (project / "rules" / "old.yml").exists()
    assert docker.read_text().count("kill -s SIGHUP redis") == 2
    os.chmod(project / "rules", 0o777)
    assert run(directories=directories, files=files("groups: [{name: x}]\n"))["files_changed"] == ["rules"]
    assert mode(project / "rules") == 0o750


HEALTHY = "c0ffee\\trunning\\tUp 3 minutes (healthy)\\n"


def ups(log: Path) -> int:
    return sum(" up " in line for line in log.read_text().splitlines())


def test_a_settled_project_is_not_brought_up_again(run, monkeypatch, docker, tmp_path):
    monkeypatch.setenv("FAKE_PS", HEALTHY)
    run()
    assert ups(docker) == 1 and (tmp_path / "opt/redis/.aistack-up.json").stat().st_mode & 0o777 == 0o600
    second = run()
    assert not second["changed"] and ups(docker) == 1
    checked = run(check_mode=True)
    assert not checked["changed"] and ups(docker) == 1  # no dry run either


@pytest.mark.parametrize("containers", [
    "c0ffee\\trunning\\tUp 3 minutes (unhealthy)\\n",
    "c0ffee\\trunning\\tUp 2 seconds (health: starting)\\n",
    "c0ffee\\texited\\tExited (137) 1 second ago\\n",
    "beef00\\trunning\\tUp 1 second (healthy)\\n",  # recreated by hand
    HEALTHY + "0rphan\\trunning\\tUp 1 second\\n",  # one more container than up left
    "",  # removed by hand
], ids=["unhealthy", "starting", "exited", "other-container", "extra-container", "none"])
def test_anything_unlike_the_last_up_takes_the_full_path(run, monkeypatch, docker, containers):
    monkeypatch.setenv("FAKE_PS", HEALTHY)
    run()
    monkeypatch.setenv("FAKE_PS", containers)
    run()
    assert ups(docker) == 2


def test_a_failed_up_is_retried_although_its_files_are_in_place(run, monkeypatch, docker):
    monkeypatch.setenv("FAKE_PS", HEALTHY)
    run()
    monkeypatch.setenv("FAKE_UP_RC", "1")
    changed_project = "services:\n  redis:\n    image: redis:8.0.3\n"
    assert run(project=changed_project)["failed"]
    monkeypatch.delenv("FAKE_UP_RC")
    again = run(project=changed_project)  # compose.yml already written: only the record tells
    assert not again["failed"] and again["files_changed"] == [] and ups(docker) == 3


def test_the_record_goes_before_a_file_changes_and_returns_after_a_good_up(run, monkeypatch, docker, tmp_path):
    """While the record exists the files on disk are those its up applied (stack_resume brings such a project
    back from them): a failed up of changed files leaves none; a check run and an unchanged run keep it."""
    monkeypatch.setenv("FAKE_PS", HEALTHY)
    record = tmp_path / "opt/redis/.aistack-up.json"
    run()
    assert record.exists()
    changed_project = "services:\n  redis:\n    image: redis:8.0.3\n"
    assert run(project=changed_project, check_mode=True)["changed"] and record.exists()
    monkeypatch.setenv("FAKE_UP_RC", "1")
    assert run(project=changed_project)["failed"] and not record.exists()
    assert run(project=changed_project)["failed"] and not record.exists()  # files in place, up fails again
    monkeypatch.delenv("FAKE_UP_RC")
    assert not run(project=changed_project)["failed"] and record.exists()


def test_an_unreadable_record_is_rewritten_not_fatal(run, monkeypatch, docker, tmp_path):
    monkeypatch.setenv("FAKE_PS", HEALTHY)
    stamp = tmp_path / "opt/redis/.aistack-up.json"
    run()
    stamp.write_text("{truncated")
    again = run()
    assert not again["failed"] and ups(docker) == 2 and json.loads(stamp.read_text())["containers"] == ["c0ffee"]


def test_external_volumes_are_created_once_with_their_directories(run, tmp_path, docker, monkeypatch):
    volumes = tmp_path / "volumes"
    volumes.mkdir()
    monkeypatch.setenv("FAKE_VOLUMES", str(volumes))
    spec = [{"name": "cache", "labels": {"org.aistack.shared": "models-cache"},
             "directories": [{"path": "hf", "owner": 1000, "group": "1000", "mode": "0755"}]},
            {"name": "extra"}]
    check = run(check_mode=True, volumes=spec)
    assert check["changed"] and {"volume cache", "volume extra"} <= set(check["files_changed"])
    assert not (volumes / "cache").exists() and "volume create" not in docker.read_text()
    first = run(volumes=spec)
    assert first["files_changed"][:3] == ["volume cache", "volume cache:hf", "volume extra"]
    assert "volume create --label org.aistack.shared=models-cache cache" in docker.read_text()
    assert "volume create extra" in docker.read_text()
    hf = os.stat(volumes / "cache" / "hf")
    assert (hf.st_uid, hf.st_gid, stat.S_IMODE(hf.st_mode)) == (1000, 1000, 0o755)
    second = run(volumes=spec)
    assert not second["changed"] and second["files_changed"] == []
    assert docker.read_text().count("volume create") == 2
    os.chown(volumes / "cache" / "hf", 0, 0)  # as ComfyUI (root) would have left it
    third = run(volumes=spec)
    assert third["files_changed"] == ["volume cache:hf"] and os.stat(volumes / "cache" / "hf").st_uid == 1000
