"""aistack-upgrade: the safety net around an upgrade of an aistack host.

Installed by the aistack.hosting.upgrade role; playbooks/upgrade.yml drives it:

  prepare     before anything changes: copy every Compose project directory
              (compose files, configuration, secrets files), dump every
              Postgres database (pg_dump custom format) with a digest of its
              schema, and record the images each project runs
  rollback    after a failed apply or health gate: every project whose
              directory differs from the copy is stopped (volumes kept) and
              put back; a database whose schema changed (migrations ran) is
              replaced by its pre-upgrade dump; the projects start again on the
              previous images, which are still on the host. Prints a JSON report.
  record      after a successful upgrade: append the images now running to
              the host's version history (/var/lib/aistack/versions.json)
  versions    print that history

Only the newest `--keep` preparations are kept (default 3).
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

STATE = Path("/var/lib/aistack/upgrade")
HISTORY = Path("/var/lib/aistack/versions.json")
# Start order after a rollback: what others depend on first.
ORDER = ["postgres", "redis", "traefik", "n8n", "ollama", "comfyui", "object_storage", "fastapi_celery", "open_webui",
         "monitoring"]
SCHEMA_SQL = (
    "SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM ("
    " SELECT table_schema || '.' || table_name || '.' || column_name || ':' || data_type AS x"
    " FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
    " UNION ALL SELECT schemaname || '.' || indexname || ':' || indexdef FROM pg_indexes"
    " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) AS s"
)


class UpgradeError(Exception):
    pass


def run(*argv: str, stdout=None, stdin=None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, stdout=stdout if stdout is not None else subprocess.PIPE, stdin=stdin,
                            stderr=subprocess.PIPE, text=stdout is None, check=False)
    if check and result.returncode != 0:
        err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
        raise UpgradeError(f"{' '.join(argv[:6])} failed ({result.returncode}): {err.strip()[-600:]}")
    return result


def running(container: str) -> bool:
    return run("docker", "inspect", "--format", "{{.State.Running}}", container, check=False).stdout.strip() == "true"


def databases(container: str) -> list[str]:
    return run("docker", "exec", "-u", "postgres", container, "psql", "-qtAX", "-c",
               "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' "
               "ORDER BY 1").stdout.split()


def schema_digest(container: str, database: str) -> str:
    """Columns and indexes of every user schema: migrations change them."""
    migrations = run("docker", "exec", "-u", "postgres", container, "psql", "-qtAX", "-d", database, "-c",
                     "SELECT string_agg(format('SELECT %L || count(*) FROM %I.%I', table_name, table_schema, table_name),"
                     " ' UNION ALL ') FROM information_schema.tables WHERE table_name LIKE '%migrations'").stdout.strip()
    counts = ""
    if migrations:
        counts = run("docker", "exec", "-u", "postgres", container, "psql", "-qtAX", "-d", database, "-c",
                     migrations).stdout.strip()
    columns = run("docker", "exec", "-u", "postgres", container, "psql", "-qtAX", "-d", database, "-c",
                  SCHEMA_SQL).stdout.strip()
    return f"{columns}:{counts}"


def project_images(directory: Path) -> list[str]:
    result = run("docker", "compose", "--project-directory", str(directory), "-f", str(directory / "compose.yml"),
                 "config", "--images", check=False)
    return sorted(set(result.stdout.split())) if result.returncode == 0 else []


def projects(base: Path) -> list[str]:
    names = [p.name for p in base.iterdir() if (p / "compose.yml").is_file()] if base.is_dir() else []
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def differs(left: Path, right: Path) -> bool:
    """True when two directory trees differ in any file's presence or content."""
    # compose_project's record of its last `up` is not configuration.
    compare = filecmp.dircmp(left, right, ignore=[*filecmp.DEFAULT_IGNORES, ".aistack-up.json"])
    if compare.left_only or compare.right_only or compare.funny_files:
        return True
    _same, mismatch, errors = filecmp.cmpfiles(left, right, compare.common_files, shallow=False)
    return bool(mismatch or errors) or any(differs(left / d, right / d) for d in compare.common_dirs)


def copy_tree(source: Path, dest: Path) -> None:
    """Owners, modes and times kept: services read their 0600/0400 files as their own users."""
    run("cp", "-a", str(source), str(dest))


def compose(directory: Path, *args: str) -> None:
    run("docker", "compose", "--project-directory", str(directory), "-f", str(directory / "compose.yml"), *args)


def prepare(base: Path, postgres: str, keep: int) -> dict:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = STATE / stamp
    target.mkdir(parents=True, mode=0o700)
    copy_tree(base, target / "projects")
    state = {"stamp": stamp, "base": str(base), "projects": {}, "databases": {}, "postgres": postgres}
    for name in projects(base):
        state["projects"][name] = project_images(base / name)
    if postgres and running(postgres):
        (target / "postgres").mkdir()
        for database in databases(postgres):
            with open(target / "postgres" / f"{database}.dump", "wb") as handle:
                run("docker", "exec", "-u", "postgres", postgres, "pg_dump", "--format=custom", database, stdout=handle)
            state["databases"][database] = schema_digest(postgres, database)
    (target / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    for old in sorted(p for p in STATE.iterdir() if p.is_dir())[:-keep]:
        shutil.rmtree(old)
    return state


def latest() -> tuple[Path, dict]:
    prepared = sorted(p for p in STATE.iterdir() if (p / "state.json").exists()) if STATE.is_dir() else []
    if not prepared:
        raise UpgradeError(f"no upgrade preparation in {STATE}: nothing to roll back to")
    return prepared[-1], json.loads((prepared[-1] / "state.json").read_text())


def rollback() -> dict:
    target, state = latest()
    base, postgres = Path(state["base"]), state["postgres"]
    saved = target / "projects"
    changed = [name for name in projects(saved)
               if not (base / name).is_dir() or differs(saved / name, base / name)]
    report = {"prepared": state["stamp"], "rolled_back": changed, "databases_restored": [],
              "images": {name: {"failed": project_images(base / name) if (base / name).is_dir() else [],
                                "restored": state["projects"].get(name, [])} for name in changed}}
    for name in reversed(changed):  # dependents first
        if (base / name).is_dir():
            compose(base / name, "down", "--remove-orphans")
    for name in changed:
        shutil.rmtree(base / name, ignore_errors=True)
        copy_tree(saved / name, base / name)
        # Without compose_project's record of a good `up` the docker role does not bring the project back
        # by itself (stack_resume) should this rollback stop before its databases are back; the role's
        # next `up` writes it again.
        (base / name / ".aistack-up.json").unlink(missing_ok=True)
    if "postgres" in changed:
        compose(base / "postgres", "up", "-d", "--wait")
    if postgres and running(postgres):
        for database, digest in state["databases"].items():
            if schema_digest(postgres, database) == digest:
                continue
            with open(target / "postgres" / f"{database}.dump", "rb") as handle:
                run("docker", "exec", "-i", "-u", "postgres", postgres, "pg_restore", "--clean", "--if-exists", "--create",
                    "--exit-on-error", "-d", "postgres", stdin=handle)
            report["databases_restored"].append(database)
    for name in changed:
        compose(base / name, "up", "-d", "--wait")
    return report


def record(base: Path) -> dict:
    history = json.loads(HISTORY.read_text()) if HISTORY.exists() else []
    entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "projects": {name: project_images(base / name) for name in projects(base)}}
    if not history or history[-1]["projects"] != entry["projects"]:
        history.append(entry)
        HISTORY.parent.mkdir(parents=True, exist_ok=True)
        tmp = HISTORY.with_suffix(".tmp")
        tmp.write_text(json.dumps(history[-50:], indent=2) + "\n")
        os.replace(tmp, HISTORY)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("--base", default="/opt/aistack")
    prep.add_argument("--postgres", default="aistack-postgres")
    prep.add_argument("--keep", type=int, default=3)
    sub.add_parser("rollback")
    rec = sub.add_parser("record")
    rec.add_argument("--base", default="/opt/aistack")
    sub.add_parser("versions")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            state = prepare(Path(args.base), args.postgres, max(args.keep, 1))
            print(json.dumps({"prepared": state["stamp"], "projects": state["projects"],
                              "databases": sorted(state["databases"])}))
        elif args.command == "rollback":
            print(json.dumps(rollback()))
        elif args.command == "record":
            print(json.dumps(record(Path(args.base))))
        else:
            print(HISTORY.read_text() if HISTORY.exists() else "[]")
    except (UpgradeError, OSError) as error:
        print(f"aistack-upgrade {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
