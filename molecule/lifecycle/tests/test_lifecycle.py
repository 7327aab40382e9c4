"""The host restored from the backup of a destroyed one (side_effect.yml) holds
the same state: n8n decrypts its credential and its workflow answers through
Traefik with the same certificate, the application's rows are identical,
Grafana kept the edited dashboard, the secrets are the same files; and the
restored host goes on backing up to both targets and passes the drill."""

import json
import os
from pathlib import Path

import pytest

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
TARGETS = ("offsite-s3", "offsite-sftp")


@pytest.fixture(scope="module")
def before() -> dict:
    return json.loads((EPHEMERAL / "facts-before.json").read_text())


@pytest.fixture(scope="module")
def after(host) -> dict:
    return json.loads(host.check_output("python3 /opt/aistack-tests/stack_facts.py"))


def test_restored_onto_another_machine(host):
    assert host.backend.get_hostname() == "aistack-lifecycle-new"
    restored = json.loads(host.file("/var/lib/aistack/backup/restore/restored.json").content_string)
    assert (restored["from_host"], restored["target"]) == ("aistack-lifecycle-old", "offsite-s3"), restored
    assert restored["postgres"] == ["aistack-postgres/app", "aistack-postgres/n8n"], restored


def test_secrets_are_the_backed_up_files(before, after):
    assert "n8n_encryption_key" in before["secrets"] and "backup_password" in before["secrets"]
    assert after["secrets"] == before["secrets"]


def test_n8n_decrypts_its_credential_with_the_restored_key(before, after):
    assert before["credentials"]["aistack-lifecycle-header-auth"] == {"name": "X-Aistack-Lifecycle",
                                                                     "value": "vault-secret-value-77"}
    assert after["credentials"] == before["credentials"]


def test_workflow_answers_through_traefik_with_the_same_certificate(before, after):
    assert after["webhook"] == before["webhook"] == {"square": 81}
    # Traefik served the restored ACME store's certificate: no new order (this host has no Pebble).
    assert after["certificate_sha256"] == before["certificate_sha256"]


def test_n8n_rows_came_back(before, after):
    counts, old = after["n8n_counts"], before["n8n_counts"]
    assert counts["workflow_entity"] == old["workflow_entity"] >= 1
    assert counts["credentials_entity"] == old["credentials_entity"] >= 1
    # The executions run before the backup, plus the one the check itself just ran.
    assert old["execution_entity"] >= 4 and counts["execution_entity"] >= old["execution_entity"]


def test_application_rows_are_identical(before, after):
    assert before["app_rows"].startswith("5000 ")
    assert after["app_rows"] == before["app_rows"]


def test_grafana_kept_the_edited_dashboard(before, after):
    assert before["grafana_dashboard"]["title"] == "Edited before the backup"
    assert after["grafana_dashboard"] == before["grafana_dashboard"]


def test_restored_host_backs_up_and_passes_the_drill(host):
    metrics = {}
    for line in host.file("/var/lib/aistack/metrics/aistack_backup.prom").content_string.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            metrics[name] = float(value)
    for target in TARGETS:
        assert metrics[f'aistack_backup_last_run_success{{target="{target}"}}'] == 1
        assert metrics[f'aistack_backup_check_last_run_success{{target="{target}"}}'] == 1
        assert metrics[f'aistack_backup_last_success_timestamp_seconds{{target="{target}"}}'] > 0


@pytest.mark.parametrize("target", TARGETS)
def test_both_repositories_hold_both_hosts(host, target):
    snapshots = json.loads(host.check_output(f"/usr/local/sbin/aistack-backup snapshots --target {target}"))
    hosts = {snapshot["hostname"] for snapshot in snapshots}
    assert hosts == {"aistack-lifecycle-old", "aistack-lifecycle-new"}, hosts


def test_backup_timers_are_scheduled(host):
    for timer in ("aistack-backup.timer", "aistack-backup-check.timer"):
        assert host.service(timer).is_enabled and host.service(timer).is_running, timer


def test_no_backup_secret_is_readable_by_others(host):
    for path in ("/etc/aistack/backup/config.json", "/etc/aistack/backup/offsite-sftp.key",
                 "/etc/aistack/secrets/backup_password"):
        f = host.file(path)
        assert f.user == "root" and f.mode & 0o077 == 0, path
    assert host.file("/etc/aistack/backup").mode == 0o700


def test_n8n_runs_the_upgraded_version_after_the_rollbacks(host):
    # side_effect: 2.40.x -> 2.41.1 rolled back (smoke check failed after migrations),
    # -> 2.41.1 (recorded), -> a broken image rolled back to 2.41.1.
    images = {name: host.check_output(f"docker inspect --format '{{{{.Config.Image}}}}' {name}")
              for name in ("aistack-n8n", "aistack-n8n-runner")}
    assert images == {"aistack-n8n": "n8nio/n8n:2.41.1", "aistack-n8n-runner": "n8nio/runners:2.41.1"}, images
    history = json.loads(host.check_output("/usr/local/sbin/aistack-upgrade versions"))
    assert history[-1]["projects"]["n8n"] == ["n8nio/n8n:2.41.1", "n8nio/runners:2.41.1"], history[-1]
    assert not any("aistack-broken" in image for entry in history for images in entry["projects"].values()
                   for image in images), history

