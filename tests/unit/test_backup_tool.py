"""The backup role's tool (roles/backup/files/aistack-backup.py) and the
backup_target_problems filter its preflight uses.

The round trip runs the real restic (Debian package, installed by
scripts/setup.sh) against a local repository: a snapshot of a directory with a
live SQLite database, metrics written, retention applied, then a restore over
the deleted directory. Docker is not involved (no Postgres, no volumes): the
molecule scenario `lifecycle` covers those on real containers.
"""

import json
import shutil
import sqlite3
import subprocess

import pytest
from conftest import load_host_tool

from ansible_collections.aistack.hosting.plugins.filter.aistack import backup_target_problems

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOb0Ct8Mkd4T2WlqCvDm0Vg5xjuuKkG3JIvTLuqH0Ake"


@pytest.fixture(scope="module")
def tool():
    return load_host_tool("roles/backup/files/aistack-backup.py")


def test_repository_strings(tool):
    assert tool.repository({"name": "l", "type": "local", "path": "/var/backups/r"}) == "/var/backups/r"
    assert tool.repository({"name": "s", "type": "sftp", "user": "restic", "host": "vault", "path": "/srv/r"}) \
        == "sftp:restic@vault:/srv/r"
    assert tool.repository({"name": "a", "type": "s3", "bucket": "b", "path": "/p/q/"}) == "s3:https://s3.amazonaws.com/b/p/q"
    assert tool.repository({"name": "m", "type": "s3", "endpoint": "http://vault:9000/", "bucket": "b"}) \
        == "s3:http://vault:9000/b"
    with pytest.raises(tool.BackupError, match="unknown type 'ftp'"):
        tool.repository({"name": "x", "type": "ftp"})


def test_sftp_pins_the_host_key_and_never_asks(tool):
    target = {"name": "off", "type": "sftp", "user": "restic", "host": "vault", "port": 2222, "path": "/r"}
    option, command = tool.restic_options(target, "/etc/aistack/backup")
    assert option == "-o" and command.startswith("sftp.command=ssh -i /etc/aistack/backup/off.key ")
    for flag in ("UserKnownHostsFile=/etc/aistack/backup/off.known_hosts", "StrictHostKeyChecking=yes", "BatchMode=yes",
                 "-p 2222 restic@vault -s sftp"):
        assert flag in command, flag
    assert tool.restic_options({"name": "l", "type": "local", "path": "/r"}, "/k") == []


def test_s3_credentials_only_in_the_environment(tool):
    target = {"name": "s", "type": "s3", "bucket": "b", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "SECRETKEY123"}
    env = tool.restic_env(target, "/etc/aistack/secrets/backup_password")
    assert env["AWS_ACCESS_KEY_ID"] == "AKIDEXAMPLE" and env["AWS_SECRET_ACCESS_KEY"] == "SECRETKEY123"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1" and env["RESTIC_PASSWORD_FILE"].endswith("backup_password")
    assert "SECRETKEY123" not in " ".join([tool.repository(target), *tool.restic_options(target, "/k")])


def test_retention_flags_and_a_policy_that_keeps_nothing(tool):
    assert tool.forget_args({"last": 0, "daily": 7, "weekly": 4, "monthly": "6"}) == \
        ["--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "6"]
    with pytest.raises(tool.BackupError, match="keeps no snapshot"):
        tool.forget_args({"daily": 0, "weekly": 0})


def test_metrics_round_trip(tool):
    values = {("aistack_backup_last_run_success", "offsite"): 1.0,
              ("aistack_backup_last_success_timestamp_seconds", 'we"ird'): 1767225600.0}
    text = tool.render_metrics(values)
    assert "# TYPE aistack_backup_last_run_success gauge" in text
    assert 'aistack_backup_last_success_timestamp_seconds{target="we\\"ird"} 1767225600' in text
    assert tool.parse_metrics(text) == values


@pytest.mark.parametrize("targets,message", [
    ([], "non-empty list"),
    ([{"name": "a", "type": "ftp"}], "'ftp' is not a known target type"),
    ([{"name": "a", "type": "local", "path": "rel"}], "path must be an absolute path"),
    ([{"name": "a", "type": "local", "path": "/r"}, {"name": "a", "type": "local", "path": "/s"}], "used twice"),
    ([{"name": "Bad_Name", "type": "local", "path": "/r"}], "lower-case letters"),
    ([{"name": "o", "type": "sftp", "host": "h", "user": "u", "path": "/r", "private_key": KEY}], "host_key is missing"),
    ([{"name": "o", "type": "sftp", "host": "h", "user": "u", "path": "/r", "private_key": KEY, "host_key": "h ssh-ed25519 AAAA"}],
     "host_key must be public host key lines"),
    ([{"name": "o", "type": "sftp", "host": "h", "user": "u", "path": "/r", "host_key": HOST_KEY}], "private_key is missing"),
    ([{"name": "o", "type": "sftp", "host": "h", "user": "u", "path": "/r", "host_key": HOST_KEY, "private_key": "nope"}],
     "is not a private key"),
    ([{"name": "s", "type": "s3", "bucket": "b-1"}], "access_key_id is missing"),
    ([{"name": "s", "type": "s3", "bucket": "b-1", "access_key_id": "k", "secret_access_key": "s",
       "endpoint": "minio:9000"}], "endpoint must be a URL"),
    ([{"name": "s", "type": "s3", "bucket": "B_", "access_key_id": "k", "secret_access_key": "s"}], "not a valid S3 bucket"),
    ([{"name": "l", "type": "local", "path": "/r", "bucket": "x"}], "bucket not used by a local target"),
])
def test_target_problems_name_the_entry_and_the_fix(targets, message):
    problems = backup_target_problems(targets)
    assert any(message in problem for problem in problems), problems
    assert not any(secret in " ".join(problems) for secret in ("b3BlbnNzaC1rZXktdjEA", "nope"))


def test_good_targets_have_no_problem():
    assert backup_target_problems([
        {"name": "local", "type": "local", "path": "/var/backups/aistack/restic"},
        {"name": "offsite-sftp", "type": "sftp", "host": "vault", "port": 22, "user": "restic", "path": "/srv/r",
         "host_key": HOST_KEY + "\n" + HOST_KEY, "private_key": KEY},
        {"name": "offsite-s3", "type": "s3", "endpoint": "http://vault:9000", "bucket": "aistack-backups", "path": "p",
         "region": "us-east-1", "access_key_id": "k", "secret_access_key": "s"}]) == []


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is installed by scripts/setup.sh")
def test_snapshot_retention_and_restore_with_real_restic(tool, tmp_path, monkeypatch):
    data = tmp_path / "etc-aistack"
    (data / "secrets").mkdir(parents=True)
    (data / "secrets" / "n8n_encryption_key").write_text("k" * 48)
    (data / "secrets").chmod(0o700)
    # A Docker volume holding a live SQLite database in WAL mode (as Grafana's can be):
    # its committed rows are still in the -wal file, which a raw copy would miss.
    volume = tmp_path / "volumes" / "aistack_grafana_data"
    volume.mkdir(parents=True)
    monkeypatch.setattr(tool.Tool, "volume_mountpoint", lambda self, name: str(volume) if volume.exists() else None)
    live = sqlite3.connect(volume / "grafana.db")
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("PRAGMA wal_autocheckpoint=0")
    live.execute("CREATE TABLE dashboard (title TEXT)")
    live.execute("INSERT INTO dashboard VALUES ('edited')")
    live.commit()
    live.execute("INSERT INTO dashboard VALUES ('uncommitted')")
    assert (volume / "grafana.db-wal").stat().st_size > 0
    (tmp_path / "password").write_text("a-long-test-repository-password\n")
    config = {"host": "unit-host", "targets": [{"name": "local", "type": "local", "path": str(tmp_path / "repo")}],
              "password_file": str(tmp_path / "password"), "key_dir": str(tmp_path / "keys"),
              "staging_dir": str(tmp_path / "stage"), "restore_dir": str(tmp_path / "restore"),
              "metrics_dir": str(tmp_path / "metrics"), "lock_file": str(tmp_path / "lock"),
              "postgres_containers": [], "paths": [str(data)], "retention": {"last": 2},
              "volumes": [{"name": "aistack_grafana_data", "project": "monitoring", "key": "grafana_data", "optional": False}],
              "max_age_seconds": 93600, "check_max_age_seconds": 691200, "check_read_data_subset": "100%"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = ["--config", str(tmp_path / "config.json")]
    for _ in range(3):
        assert tool.main([*run, "run"]) == 0
    live.rollback()

    metrics = tool.parse_metrics((tmp_path / "metrics" / "aistack_backup.prom").read_text())
    assert metrics[("aistack_backup_last_run_success", "local")] == 1
    assert metrics[("aistack_backup_last_success_timestamp_seconds", "local")] > 0
    assert metrics[("aistack_backup_max_age_seconds", "local")] == 93600
    assert metrics[("aistack_backup_processed_bytes", "local")] > 48
    snapshots = json.loads(subprocess.run(["restic", "--repo", str(tmp_path / "repo"), "--password-file",
                                           str(tmp_path / "password"), "snapshots", "--json"],
                                          capture_output=True, text=True, check=True).stdout)
    assert len(snapshots) == 2 and {s["hostname"] for s in snapshots} == {"unit-host"}  # --keep-last 2
    # The database went in as SQLite's own online backup; the live file and its WAL stayed out
    # (a file copy racing the writer can tear).
    listed = subprocess.run(["restic", "--repo", str(tmp_path / "repo"), "--password-file", str(tmp_path / "password"),
                             "ls", "latest"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert str(tmp_path / "stage" / "sqlite" / "aistack_grafana_data" / "grafana.db") in listed, listed
    assert not [path for path in listed if path.startswith(str(volume / "grafana.db"))], listed

    # A failed run (the repository is gone) keeps the last success time, and says 0.
    shutil.move(tmp_path / "repo", tmp_path / "repo.away")
    (tmp_path / "repo").write_text("not a repository")
    assert tool.main([*run, "run"]) == 1
    failed = tool.parse_metrics((tmp_path / "metrics" / "aistack_backup.prom").read_text())
    assert failed[("aistack_backup_last_run_success", "local")] == 0
    assert failed[("aistack_backup_last_success_timestamp_seconds", "local")] == \
        metrics[("aistack_backup_last_success_timestamp_seconds", "local")]
    (tmp_path / "repo").unlink()
    shutil.move(tmp_path / "repo.away", tmp_path / "repo")

    # The host is gone: its secrets and the volume's files (the live database too).
    live.close()
    shutil.rmtree(data)
    shutil.rmtree(volume)
    volume.mkdir()  # as `docker volume create` leaves it
    assert tool.main([*run, "restore"]) == 0
    assert (data / "secrets" / "n8n_encryption_key").read_text() == "k" * 48
    assert (data / "secrets").stat().st_mode & 0o777 == 0o700
    with sqlite3.connect(volume / "grafana.db") as restored:
        assert restored.execute("SELECT title FROM dashboard").fetchall() == [("edited",)]
    # Onto a host where a file differs, or a volume holds data: refused without force.
    (data / "secrets" / "n8n_encryption_key").write_text("another key")
    assert tool.main([*run, "restore"]) == 1
    assert (data / "secrets" / "n8n_encryption_key").read_text() == "another key"
    assert tool.main([*run, "restore", "--force"]) == 0
    assert (data / "secrets" / "n8n_encryption_key").read_text() == "k" * 48
