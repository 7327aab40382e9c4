"""aistack-backup: encrypted restic snapshots of an aistack host, and their restore.

Installed by the aistack.hosting.backup role, driven by its JSON config
(default /etc/aistack/backup/config.json, root 0600). Subcommands:

  run                 stage consistent copies (Postgres logical dumps and
                      globals, SQLite databases through SQLite's backup API,
                      a manifest of the Docker volumes), then `restic backup`
                      the stage, /etc/aistack and the volumes to every target,
                      then `restic forget --prune` by the retention policy
  check               `restic check` (a share of the data re-read) on every
                      target, then a test restore of the latest Postgres dumps
                      into a throwaway container of the same Postgres image
  snapshots           the snapshots of one target, as JSON
  restore             from one target's snapshot (default latest), put back
                      /etc/aistack and every Docker volume it holds; leaves the
                      Postgres dumps for `restore-postgres`
  restore-postgres    load the restored globals and dumps into the running
                      Postgres container (each database dropped and recreated)

Each run and check writes node-exporter textfile metrics, per target:
aistack_backup_last_run_success, aistack_backup_last_success_timestamp_seconds,
aistack_backup_duration_seconds, aistack_backup_added_bytes,
aistack_backup_processed_bytes, aistack_backup_max_age_seconds, and the
aistack_backup_check_* equivalents. Monitoring alerts on them.

Nothing here prints a secret: the repository password is read by restic from
its file; S3 keys reach restic through its environment only.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CONFIG = "/etc/aistack/backup/config.json"
LOCK_FILE = "/run/aistack-backup.lock"
SQLITE_MAGIC = b"SQLite format 3\x00"
MANIFEST = "manifest.json"
# Paths inside a snapshot: the stage keeps its absolute host path.
METRIC_PREFIX = "aistack_backup"


class BackupError(Exception):
    """A step failed; the message says which and why (never a secret)."""


# --------------------------------------------------------------------------
# Pure helpers (unit-tested)
# --------------------------------------------------------------------------

def repository(target: dict) -> str:
    """The restic repository string of a target."""
    kind = target["type"]
    if kind == "local":
        return target["path"]
    if kind == "sftp":
        return f"sftp:{target['user']}@{target['host']}:{target['path']}"
    if kind == "s3":
        endpoint = (target.get("endpoint") or "https://s3.amazonaws.com").rstrip("/")
        path = target.get("path", "").strip("/")
        return f"s3:{endpoint}/{target['bucket']}" + (f"/{path}" if path else "")
    raise BackupError(f"target {target.get('name')!r}: unknown type {kind!r}")


def restic_options(target: dict, key_dir: str) -> list[str]:
    """Extra restic options of a target: SFTP goes through ssh with a pinned host key."""
    if target["type"] != "sftp":
        return []
    name = target["name"]
    ssh = (f"ssh -i {key_dir}/{name}.key -o UserKnownHostsFile={key_dir}/{name}.known_hosts "
           f"-o StrictHostKeyChecking=yes -o BatchMode=yes -o ServerAliveInterval=30 "
           f"-p {int(target.get('port', 22))} {target['user']}@{target['host']} -s sftp")
    return ["-o", f"sftp.command={ssh}"]


def restic_env(target: dict, password_file: str) -> dict:
    """restic's environment for a target (S3 credentials only there, never on a command line)."""
    env = {"RESTIC_PASSWORD_FILE": password_file, "RESTIC_CACHE_DIR": "/var/cache/aistack-backup/restic"}
    if target["type"] == "s3":
        env.update(AWS_ACCESS_KEY_ID=target["access_key_id"], AWS_SECRET_ACCESS_KEY=target["secret_access_key"],
                   AWS_DEFAULT_REGION=target.get("region") or "us-east-1")
    return env


def forget_args(retention: dict) -> list[str]:
    """`restic forget` policy flags; a policy that keeps nothing is refused."""
    args = []
    for key in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        count = int(retention.get(key, 0) or 0)
        if count > 0:
            args += [f"--keep-{key}", str(count)]
    if not args:
        raise BackupError("the retention policy keeps no snapshot: set backup_retention (e.g. daily: 7)")
    return args


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_metrics(text: str) -> dict:
    """{(name, target): value} of a metrics file this tool wrote."""
    values = {}
    for line in text.splitlines():
        match = re.fullmatch(r'(\w+)\{target="((?:[^"\\]|\\.)*)"\} (\S+)', line.strip())
        if match:
            target = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group(2))
            values[(match.group(1), target)] = float(match.group(3))
    return values


HELP = {
    "last_run_success": "1 when the last backup run to the target succeeded, 0 when it failed.",
    "last_run_timestamp_seconds": "When the last backup run to the target ended.",
    "last_success_timestamp_seconds": "When the last successful backup to the target ended (0: never).",
    "duration_seconds": "How long the last backup run to the target took.",
    "added_bytes": "Bytes the last successful snapshot added to the repository.",
    "processed_bytes": "Bytes the last successful snapshot covered.",
    "max_age_seconds": "Oldest the last successful backup may be before it alerts.",
    "check_last_run_success": "1 when the last check and test restore of the target succeeded.",
    "check_last_run_timestamp_seconds": "When the last check of the target ended.",
    "check_last_success_timestamp_seconds": "When the last successful check of the target ended (0: never).",
    "check_max_age_seconds": "Oldest the last successful check may be before it alerts.",
}


def render_metrics(values: dict) -> str:
    """A textfile for node-exporter: one gauge family per metric, one series per target."""
    lines = []
    for suffix, text in HELP.items():
        name = f"{METRIC_PREFIX}_{suffix}"
        series = sorted((target, value) for (metric, target), value in values.items() if metric == name)
        if not series:
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
        lines += [f'{name}{{target="{escape(target)}"}} {value:.0f}' for target, value in series]
    return "\n".join(lines) + "\n"


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == SQLITE_MAGIC
    except OSError:
        return False


# --------------------------------------------------------------------------
# The host side
# --------------------------------------------------------------------------

class Tool:
    def __init__(self, config: dict):
        self.config = config
        self.stage = Path(config["staging_dir"])
        self.metrics_file = Path(config["metrics_dir"]) / "aistack_backup.prom"

    # ---- running things ----
    @staticmethod
    def run(argv: list[str], env: dict | None = None, stdout=None, stdin=None, check: bool = True,
            what: str = "") -> subprocess.CompletedProcess:
        result = subprocess.run(argv, env={**os.environ, **(env or {})}, stdin=stdin, check=False, text=stdout is None,
                                stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE)
        if check and result.returncode != 0:
            err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
            raise BackupError(f"{what or argv[0]} failed ({result.returncode}): {err.strip()[-800:]}")
        return result

    def target(self, name: str | None) -> dict:
        targets = self.config["targets"]
        if not name:
            return targets[0]
        for target in targets:
            if target["name"] == name:
                return target
        raise BackupError(f"no backup target named {name!r}; known: {[t['name'] for t in targets]}")

    def restic(self, target: dict, *args: str, what: str = "", check: bool = True) -> subprocess.CompletedProcess:
        argv = ["restic", "--repo", repository(target), *restic_options(target, self.config["key_dir"]), *args]
        return self.run(argv, env=restic_env(target, self.config["password_file"]),
                        what=f"restic {what or args[0]} ({target['name']})", check=check)

    def ensure_repository(self, target: dict) -> None:
        if self.restic(target, "cat", "config", check=False).returncode == 0:
            return
        if target["type"] == "local":
            Path(target["path"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.restic(target, "init", what="init")
        print(f"{target['name']}: repository initialised")

    def docker(self, *args: str, stdout=None, stdin=None, check: bool = True, what: str = ""):
        return self.run(["docker", *args], stdout=stdout, stdin=stdin, check=check, what=what or f"docker {args[0]}")

    def running(self, container: str) -> bool:
        return self.docker("inspect", "--format", "{{.State.Running}}", container, check=False).stdout.strip() == "true"

    # ---- staging ----
    def volume_mountpoint(self, name: str) -> str | None:
        result = self.docker("volume", "inspect", "--format", "{{.Mountpoint}}", name, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    def stage_postgres(self) -> list[str]:
        out = self.stage / "postgres"
        out.mkdir(parents=True)
        dumped = []
        for container in self.config["postgres_containers"]:
            if not self.running(container):
                raise BackupError(f"Postgres container {container} is not running: no consistent dump possible")
            target = out / container
            target.mkdir()
            with open(target / "globals.sql", "wb") as handle:
                self.docker("exec", "-u", "postgres", container, "pg_dumpall", "--globals-only",
                            stdout=handle, what=f"pg_dumpall --globals-only ({container})")
            databases = self.docker("exec", "-u", "postgres", container, "psql", "-qtAX", "-c",
                                    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
                                    "AND datname <> 'postgres' ORDER BY 1", what="psql (list databases)").stdout.split()
            for database in databases:
                with open(target / f"{database}.dump", "wb") as handle:
                    self.docker("exec", "-u", "postgres", container, "pg_dump", "--format=custom", database,
                                stdout=handle, what=f"pg_dump {database}")
                dumped.append(f"{container}/{database}")
        return dumped

    def stage_volumes(self) -> tuple[list[dict], list[str]]:
        """The manifest of the volumes to save, and the SQLite files copied consistently
        (their live file is excluded from the snapshot)."""
        manifest, excludes = [], []
        for volume in self.config["volumes"]:
            mountpoint = self.volume_mountpoint(volume["name"])
            if mountpoint is None:
                continue  # its role is off on this host
            entry = {**volume, "mountpoint": mountpoint, "sqlite": []}
            for path in sorted(Path(mountpoint).rglob("*")):
                if path.is_file() and not path.is_symlink() and is_sqlite(path):
                    relative = str(path.relative_to(mountpoint))
                    copy = self.stage / "sqlite" / volume["name"] / relative
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                    try:
                        with sqlite3.connect(copy) as dest:
                            source.backup(dest)
                    finally:
                        source.close()
                    shutil.copystat(path, copy)
                    os.chown(copy, path.stat().st_uid, path.stat().st_gid)
                    entry["sqlite"].append(relative)
                    excludes += [str(path), f"{path}-wal", f"{path}-shm", f"{path}-journal"]
            manifest.append(entry)
        return manifest, excludes

    def stage_all(self) -> tuple[list[str], list[str]]:
        if self.stage.exists():
            shutil.rmtree(self.stage)
        self.stage.mkdir(parents=True, mode=0o700)
        dumped = self.stage_postgres()
        volumes, excludes = self.stage_volumes()
        manifest = {"host": self.config["host"], "created": int(time.time()), "volumes": volumes,
                    "postgres": dumped, "paths": self.config["paths"]}
        (self.stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        paths = [str(self.stage), *[p for p in self.config["paths"] if os.path.exists(p)],
                 *[v["mountpoint"] for v in volumes]]
        return paths, excludes

    # ---- metrics ----
    def write_metrics(self, updates: dict, absent: dict | None = None) -> None:
        """Merge into the file: ``updates`` replace, ``absent`` fill only what the file lacks."""
        values = parse_metrics(self.metrics_file.read_text()) if self.metrics_file.exists() else {}
        for (key, target), value in (absent or {}).items():
            values.setdefault((f"{METRIC_PREFIX}_{key}", target), value)
        values.update({(f"{METRIC_PREFIX}_{k}", target): v for (k, target), v in updates.items()})
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.metrics_file.parent, delete=False) as handle:
            handle.write(render_metrics(values))
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, self.metrics_file)

    # ---- subcommands ----
    def cmd_run(self, only: str | None = None) -> int:
        targets = [self.target(only)] if only else self.config["targets"]
        started = time.time()
        try:
            paths, excludes = self.stage_all()
        except (BackupError, OSError, sqlite3.Error) as error:
            print(f"staging failed: {error}", file=sys.stderr)
            for target in targets:
                self.write_failure(target, started)
            return 1
        staging_seconds, failures = time.time() - started, 0
        for target in targets:
            begun = time.time()
            try:
                self.ensure_repository(target)
                # The tool's own configuration is rebuilt from the inventory on any host.
                exclude_args = [arg for path in [*excludes, self.config["key_dir"]] for arg in ("--exclude", path)]
                result = self.restic(target, "backup", "--json", "--host", self.config["host"], "--tag", "aistack",
                                     *exclude_args, *paths, what="backup")
                summary = next((json.loads(line) for line in reversed(result.stdout.splitlines())
                                if line.startswith("{") and '"message_type":"summary"' in line.replace(" ", "")), {})
                self.restic(target, "forget", "--prune", "--host", self.config["host"], "--tag", "aistack",
                            *forget_args(self.config["retention"]), what="forget --prune")
                now = time.time()
                self.write_metrics({("last_run_success", target["name"]): 1,
                                    ("last_run_timestamp_seconds", target["name"]): now,
                                    ("last_success_timestamp_seconds", target["name"]): now,
                                    ("duration_seconds", target["name"]): now - begun + staging_seconds,
                                    ("added_bytes", target["name"]): summary.get("data_added", 0),
                                    ("processed_bytes", target["name"]): summary.get("total_bytes_processed", 0),
                                    ("max_age_seconds", target["name"]): self.config["max_age_seconds"]})
                print(f"{target['name']}: snapshot {summary.get('snapshot_id', '?')[:8]}, "
                      f"{summary.get('total_bytes_processed', 0)} bytes covered, {summary.get('data_added', 0)} added, "
                      f"{now - begun:.1f}s")
            except (BackupError, OSError) as error:
                failures += 1
                print(f"{target['name']}: FAILED: {error}", file=sys.stderr)
                self.write_failure(target, begun)
        shutil.rmtree(self.stage, ignore_errors=True)
        return 1 if failures else 0

    def write_failure(self, target: dict, begun: float, prefix: str = "") -> None:
        """A failed run or check: 0, when, the max age; the last success time stays (0 if never)."""
        name, now = target["name"], time.time()
        updates = {(f"{prefix}last_run_success", name): 0,
                   (f"{prefix}last_run_timestamp_seconds", name): now,
                   (f"{prefix}max_age_seconds", name): self.config[f"{prefix}max_age_seconds"]}
        if not prefix:
            updates[("duration_seconds", name)] = now - begun
        self.write_metrics(updates, absent={(f"{prefix}last_success_timestamp_seconds", name): 0})

    def cmd_check(self, only: str | None = None) -> int:
        failures = 0
        for target in ([self.target(only)] if only else self.config["targets"]):
            begun = time.time()
            try:
                self.restic(target, "check", f"--read-data-subset={self.config['check_read_data_subset']}", what="check")
                restored = self.test_restore(target)
                now = time.time()
                self.write_metrics({("check_last_run_success", target["name"]): 1,
                                    ("check_last_run_timestamp_seconds", target["name"]): now,
                                    ("check_last_success_timestamp_seconds", target["name"]): now,
                                    ("check_max_age_seconds", target["name"]): self.config["check_max_age_seconds"]})
                print(f"{target['name']}: repository consistent; test restore of {restored} ok ({now - begun:.1f}s)")
            except (BackupError, OSError) as error:
                failures += 1
                print(f"{target['name']}: CHECK FAILED: {error}", file=sys.stderr)
                self.write_failure(target, begun, prefix="check_")
        return 1 if failures else 0

    def restore_stage(self, target: dict, snapshot: str, from_host: str, into: Path, include: list[str]) -> dict:
        """Restore parts of a snapshot under `into`; return its manifest."""
        if into.exists():
            shutil.rmtree(into)
        into.mkdir(parents=True, mode=0o700)
        args = ["restore", snapshot, "--target", str(into), "--include", str(self.stage / MANIFEST)]
        if snapshot == "latest":
            args[2:2] = ["--host", from_host, "--tag", "aistack"]
        for path in include:
            args += ["--include", path]
        self.restic(target, *args, what="restore")
        manifest_file = into / str(self.stage).lstrip("/") / MANIFEST
        if not manifest_file.exists():
            raise BackupError(f"snapshot {snapshot} of {from_host} holds no aistack manifest")
        return json.loads(manifest_file.read_text())

    def test_restore(self, target: dict) -> str:
        """Load the latest snapshot's Postgres dumps into a throwaway container of the live image."""
        work = Path(self.config["restore_dir"]) / "check"
        manifest = self.restore_stage(target, "latest", self.config["host"], work, [str(self.stage / "postgres")])
        if not manifest["postgres"]:
            return "no database"
        dumps = work / str(self.stage).lstrip("/") / "postgres"
        container = self.config["postgres_containers"][0]
        image = self.docker("inspect", "--format", "{{.Config.Image}}", container, what="docker inspect").stdout.strip()
        name = f"aistack-backup-check-{os.getpid()}"
        self.docker("run", "-d", "--rm", "--name", name, "--network", "none", "--tmpfs", "/var/lib/postgresql",
                    "-e", "POSTGRES_HOST_AUTH_METHOD=trust", "-v", f"{dumps}:/restore:ro", image, what="docker run (check)")
        try:
            for _attempt in range(90):
                if self.docker("exec", name, "pg_isready", "-U", "postgres", "-h", "127.0.0.1", check=False).returncode == 0:
                    break
                time.sleep(1)
            else:
                raise BackupError("the throwaway Postgres did not become ready")
            self.docker("exec", "-u", "postgres", name, "psql", "-q", "-f", f"/restore/{container}/globals.sql",
                        check=False)
            checked = []
            for item in manifest["postgres"]:
                source, database = item.split("/", 1)
                self.docker("exec", "-u", "postgres", name, "pg_restore", "--create", "--exit-on-error",
                            "-d", "postgres", f"/restore/{source}/{database}.dump", what=f"test restore of {database}")
                tables = self.docker("exec", "-u", "postgres", name, "psql", "-qtAX", "-d", database, "-c",
                                     "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace NOT IN "
                                     "(SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema'))",
                                     what=f"count tables of {database}").stdout.strip()
                checked.append(f"{database} ({tables} tables)")
            return ", ".join(checked)
        finally:
            self.docker("rm", "-f", name, check=False)
            shutil.rmtree(work, ignore_errors=True)

    def cmd_snapshots(self, target_name: str | None) -> int:
        print(self.restic(self.target(target_name), "snapshots", "--json", "--tag", "aistack").stdout)
        return 0

    def cmd_restore(self, target_name: str | None, snapshot: str, from_host: str, force: bool) -> int:
        target = self.target(target_name)
        work = Path(self.config["restore_dir"]) / "files"
        (Path(self.config["restore_dir"]) / "postgres-restored").unlink(missing_ok=True)
        # First the manifest alone: which volumes, where they lived on the old host.
        manifest = self.restore_stage(target, snapshot, from_host, work, [])
        includes = [str(self.stage), *manifest["paths"], *[v["mountpoint"] for v in manifest["volumes"]]]
        manifest = self.restore_stage(target, snapshot, from_host, work, includes)

        def root(path) -> Path:
            return work / str(path).lstrip("/")

        restored = []
        for path in manifest["paths"]:  # /etc/aistack (secrets) first
            if root(path).exists():
                self.copy_tree(root(path), Path(path), force=force, what=path)
                restored.append(path)
        for volume in manifest["volumes"]:
            if self.volume_mountpoint(volume["name"]) is None:
                self.docker("volume", "create", "--label", f"com.docker.compose.project={volume['project']}",
                            "--label", f"com.docker.compose.volume={volume['key']}", volume["name"])
            mountpoint = Path(self.volume_mountpoint(volume["name"]))
            if any(mountpoint.iterdir()) and not force:
                raise BackupError(f"volume {volume['name']} is not empty: restore onto a fresh host, "
                                  "or remove the volume first (force replaces it)")
            source = root(volume["mountpoint"])
            if source.exists():
                self.copy_tree(source, mountpoint, force=True, what=volume["name"])
            for relative in volume["sqlite"]:
                copy = work / str(self.stage).lstrip("/") / "sqlite" / volume["name"] / relative
                shutil.copy2(copy, mountpoint / relative)
                os.chown(mountpoint / relative, copy.stat().st_uid, copy.stat().st_gid)
            restored.append(f"volume {volume['name']}")
        dumps = root(self.stage) / "postgres"
        keep = Path(self.config["restore_dir"]) / "postgres"
        shutil.rmtree(keep, ignore_errors=True)
        if dumps.exists():
            shutil.copytree(dumps, keep)
        (Path(self.config["restore_dir"]) / "restored.json").write_text(json.dumps(
            {"snapshot": snapshot, "from_host": from_host, "target": target["name"], "created": manifest["created"],
             "postgres": manifest["postgres"]}) + "\n")
        shutil.rmtree(work, ignore_errors=True)
        print(json.dumps({"restored": restored, "postgres": manifest["postgres"], "created": manifest["created"]}))
        return 0

    def copy_tree(self, source: Path, dest: Path, force: bool, what: str) -> None:
        """Copy a restored tree into place with owners and modes; an existing
        different file is replaced only with force (a fresh host has none)."""
        for path in sorted(source.rglob("*")):
            target = dest / path.relative_to(source)
            if path.is_file() and target.exists() and not force and target.read_bytes() != path.read_bytes():
                raise BackupError(f"{target} exists and differs from the backup ({what}): "
                                  "restore onto a fresh host, or pass force to replace it")
        dest.mkdir(parents=True, exist_ok=True)
        self.run(["cp", "-a", f"{source}/.", str(dest)], what=f"copy {what}")
        stat = source.stat()
        os.chown(dest, stat.st_uid, stat.st_gid)
        os.chmod(dest, stat.st_mode & 0o7777)

    def cmd_restore_postgres(self) -> int:
        keep = Path(self.config["restore_dir"]) / "postgres"
        state = json.loads((Path(self.config["restore_dir"]) / "restored.json").read_text())
        # container -> its databases (the dumps' container: the Postgres role's fixed name, on any host)
        dumps: dict[str, list[str]] = {}
        for item in state["postgres"]:
            container, database = item.split("/", 1)
            dumps.setdefault(container, []).append(database)
        for container, names in dumps.items():
            if not self.running(container):
                raise BackupError(f"Postgres container {container} is not running: converge the postgres role first")
            with open(keep / container / "globals.sql", "rb") as handle:
                # Roles the converge created already exist: those statements fail harmlessly.
                self.docker("exec", "-i", "-u", "postgres", container, "psql", "-q", stdin=handle, check=False)
            for database in names:
                # A fresh host has no client yet; anywhere else, sessions would block the drop.
                self.docker("exec", "-u", "postgres", container, "psql", "-qtAX", "-c",
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()", check=False)
                with open(keep / container / f"{database}.dump", "rb") as handle:
                    self.docker("exec", "-i", "-u", "postgres", container, "pg_restore", "--clean", "--if-exists",
                                "--create", "--exit-on-error", "-d", "postgres", stdin=handle,
                                what=f"pg_restore {database}")
                print(f"restored database {database} into {container}")
        (Path(self.config["restore_dir"]) / "postgres-restored").write_text(json.dumps(state) + "\n")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "check", "snapshots"):
        sub.add_parser(name).add_argument("--target")
    restore = sub.add_parser("restore")
    restore.add_argument("--target")
    restore.add_argument("--snapshot", default="latest")
    restore.add_argument("--from-host", default="")
    restore.add_argument("--force", action="store_true")
    sub.add_parser("restore-postgres")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as handle:
        tool = Tool(json.load(handle))
    # One run at a time (the timers, --tags backup, a restore): the others wait.
    lock = open(tool.config.get("lock_file", LOCK_FILE), "w", encoding="ascii")  # noqa: SIM115 (held until exit)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        if args.command == "run":
            return tool.cmd_run(args.target)
        if args.command == "check":
            return tool.cmd_check(args.target)
        if args.command == "snapshots":
            return tool.cmd_snapshots(args.target)
        if args.command == "restore":
            return tool.cmd_restore(args.target, args.snapshot, args.from_host or tool.config["host"], args.force)
        return tool.cmd_restore_postgres()
    except BackupError as error:
        print(f"aistack-backup {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
