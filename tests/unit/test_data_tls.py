"""Postgres/Redis between hosts over TLS (aistack_data_tls), rendered by Ansible.

The stack contract's play (test_stack_contract.render) for the multi_host
hosts with the knob on: the data host serves Postgres and Redis with its
certificate, a consumer host verifies them against the private CA. With the
knob off nothing changes (the contract tests render the same layouts).
"""

import json
from pathlib import Path

import pytest
import yaml

import test_stack_contract as contract

CA = "/etc/aistack-ca/ca.crt"
MOUNT = "/etc/aistack/tls:/etc/aistack-ca:ro"
# Stand-ins for the app's secrets (resolved by its tasks on a real host).
APP_SECRETS = {"__fastapi_celery_secrets": {"secrets": {"postgres_user_app": "x", "redis_password": "x",
                                                        "s3_fastapi_celery_access_key": "x", "s3_fastapi_celery_secret_key": "x"}}}
DATA = {**APP_SECRETS, "aistack_data_tls": True, "aistack_secrets_host": "localhost", "aistack_private_address": "10.0.0.2",
        "aistack_private_services": ["postgres", "redis"], "aistack_host_roles": ["postgres", "redis", "monitoring"]}
CONSUMER = {**APP_SECRETS, "aistack_data_tls": True, "aistack_secrets_host": "data-1",
            "aistack_remote_services": {"postgres": "10.0.0.2", "redis": "10.0.0.2"},
            "aistack_host_roles": ["traefik", "n8n", "fastapi_celery", "open_webui", "monitoring"]}
# What the consumers make of it (their .env is not part of compose.yml).
SETTINGS_TASK = """
    - name: Record the data services' connection settings
      tags: [render]
      ansible.builtin.copy:
        content: "{{{{ {{'n8n': __n8n_env, 'app': __fastapi_celery_env, 'monitoring': __monitoring_env,
                        'open_webui': __open_webui_database_url, 'postgres': __postgres_effective_settings}} | to_json }}}}"
        dest: "{out}/settings.json"
        mode: "0644"
"""


def render(tmp_path: Path, extra: dict) -> Path:
    saved = contract.PLAYBOOK
    contract.PLAYBOOK = saved + SETTINGS_TASK
    try:
        return contract.render(tmp_path, extra)
    finally:
        contract.PLAYBOOK = saved


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("data"), DATA)


@pytest.fixture(scope="module")
def consumer(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("consumer"), CONSUMER)


def project(out: Path, role: str) -> dict:
    return yaml.safe_load((out / f"{role}.yml").read_text())["services"]


def test_the_data_host_serves_postgres_over_tls_with_its_certificate(data):
    postgres = project(data, "postgres")["postgres"]
    command = " ".join(postgres["command"])
    for setting in ("ssl=on", "ssl_cert_file=/etc/aistack-tls/server.crt", "ssl_key_file=/etc/aistack-tls/server.key"):
        assert setting in command
    assert "./tls:/etc/aistack-tls:ro" in postgres["volumes"]
    # A renewed certificate recreates Postgres (its checksum is a label).
    assert "org.aistack.tls-cert" in postgres["labels"]
    assert postgres["ports"] == ["10.0.0.2:5432:5432"]


def test_the_data_host_publishes_redis_tls_listener_as_the_usual_port(data):
    redis = project(data, "redis")["redis"]
    assert redis["ports"] == ["10.0.0.2:6379:6380"]
    assert "./tls:/etc/aistack-tls:ro" in redis["volumes"]
    # Same-host consumers keep the plain port on the internal network; the health check too.
    assert "redis-cli ping" in redis["healthcheck"]["test"][1]


def test_a_consumer_host_verifies_both_against_the_private_ca(consumer):
    settings = json.loads((consumer / "settings.json").read_text())
    n8n = settings["n8n"]
    assert n8n["DB_POSTGRESDB_SSL_ENABLED"] == "true" and n8n["DB_POSTGRESDB_SSL_REJECT_UNAUTHORIZED"] == "true"
    assert n8n["DB_POSTGRESDB_SSL_CA_FILE"] == CA and n8n["NODE_EXTRA_CA_CERTS"] == CA
    assert n8n["QUEUE_BULL_REDIS_TLS"] == "true" and n8n["QUEUE_BULL_REDIS_PORT"] == "6379"
    app = settings["app"]
    assert app["DATABASE_URL"].endswith(f"@postgres:5432/app?sslmode=verify-full&sslrootcert={CA}")
    for url in (app["CELERY_BROKER_URL"], app["CELERY_RESULT_BACKEND"]):
        assert url.startswith("rediss://:") and url.endswith(f"@redis:6379/1?ssl_cert_reqs=required&ssl_ca_certs={CA}")
    assert settings["open_webui"].endswith(f"?sslmode=verify-full&sslrootcert={CA}")
    monitoring = project(consumer, "monitoring")
    assert monitoring["postgres-exporter"]["environment"]["DATA_SOURCE_URI"].endswith(f"sslmode=verify-full&sslrootcert={CA}")
    assert monitoring["redis-exporter"]["environment"]["REDIS_ADDR"] == "rediss://redis:6379"
    assert monitoring["redis-exporter"]["environment"]["REDIS_EXPORTER_TLS_CA_CERT_FILE"] == CA


def test_every_consumer_container_mounts_the_ca_certificate_read_only(consumer):
    mounted = {name for role in ("n8n", "fastapi_celery", "open_webui", "monitoring")
               for name, service in project(consumer, role).items() if MOUNT in service.get("volumes", [])}
    assert {"n8n", "worker-1", "worker-2", "webhook-1", "web", "worker-gpu", "worker-render", "open-webui",
            "postgres-exporter", "redis-exporter"} <= mounted
    # Task runners reach neither service: nothing to verify, nothing mounted.
    assert not {name for name in mounted if name.endswith("-runner")}


def test_consumers_on_the_data_host_stay_in_plain_text_on_the_internal_network(data):
    settings = json.loads((data / "settings.json").read_text())
    assert not any(key.startswith("DB_POSTGRESDB_SSL") or key in ("QUEUE_BULL_REDIS_TLS", "NODE_EXTRA_CA_CERTS")
                   for key in settings["n8n"])
    assert "sslmode" not in settings["open_webui"]
    assert project(data, "monitoring")["postgres-exporter"]["environment"]["DATA_SOURCE_URI"].endswith("sslmode=disable")
