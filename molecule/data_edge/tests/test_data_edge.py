"""Verify Postgres, Redis and Traefik (with real ACME from Pebble) on a real host.

Runs twice: after converge, and after side_effect (which drifted the host by
hand, checked that --check reports it and a real run repairs it, changed a
Redis setting, did a backup/restore round trip and killed Redis with SIGKILL).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import (assert_no_docker_socket_on_the_edge, pebble_root as fetch_pebble_root, phase, probe,  # noqa: E402
                     secret)

HOSTNAME = "whoami.aistack.test"
DASHBOARD = "traefik.aistack.test"


@pytest.fixture(scope="module")
def pebble_root(host) -> str:
    return fetch_pebble_root(host)


def psql(host, sql: str, user: str = "postgres", db: str = "postgres") -> str:
    """Superuser over the local socket; owners over the stack network, as applications connect
    (loopback is trusted in the official image, so password checks need a network address)."""
    env = f"-e PGPASSWORD={secret(host, 'postgres_user_' + user)} " if user != "postgres" else ""
    hostflag = "-h postgres " if user != "postgres" else ""
    return host.check_output(f"docker exec {env}aistack-postgres psql {hostflag}-U {user} -d {db} -qtA -c \"{sql}\"")


class TestTraefik:
    def test_certificate_from_pebble_over_http01_and_https_200(self, host, pebble_root):
        result = None
        for _ in range(30):  # issuance may still be in flight right after converge
            try:
                result = probe(host, HOSTNAME, 443, "/", pebble_root)
                break
            except AssertionError:
                host.run("sleep 2")
        assert result is not None, "no verified TLS connection to Traefik"
        assert result["status"] == 200
        assert "nginx" in result["body"].lower()
        assert "Pebble" in result["issuer"]

    def test_security_headers_middleware_applied(self, host, pebble_root):
        assert probe(host, HOSTNAME, 443, "/", pebble_root)["hsts"].startswith("max-age=31536000")

    def test_http_redirects_to_https(self, host):
        result = probe(host, HOSTNAME, 80)
        assert result["status"] in (301, 308)
        assert result["location"].startswith(f"https://{HOSTNAME}")

    def test_dashboard_requires_auth(self, host, pebble_root):
        assert probe(host, DASHBOARD, 443, "/dashboard/", pebble_root)["status"] == 401
        auth = "admin:" + secret(host, "traefik_dashboard_password")
        assert probe(host, DASHBOARD, 443, "/dashboard/", pebble_root, "--auth", auth)["status"] == 200

    def test_acme_storage_is_private(self, host):
        mode = host.check_output("docker exec aistack-traefik stat -c %a /acme/acme.json")
        assert mode == "600"

    def test_static_config_never_insecure(self, host):
        config = host.file("/opt/aistack/traefik/traefik.yml").content_string
        assert "insecure" not in config

    def test_no_docker_socket_on_the_edge(self, host):
        # whoami above is served through a routes file, with no Docker provider.
        assert_no_docker_socket_on_the_edge(host)


class TestPostgres:
    def test_databases_owned_by_their_owner(self, host):
        rows = psql(host, "SELECT datname || ':' || pg_get_userbyid(datdba) FROM pg_database ORDER BY 1")
        assert "app:app" in rows.split()
        assert "analytics:analytics" in rows.split()

    def test_owners_log_in_with_generated_passwords(self, host):
        assert psql(host, "SELECT current_user", user="app", db="app") == "app"
        assert psql(host, "SELECT current_user", user="analytics", db="analytics") == "analytics"

    def test_wrong_password_is_refused(self, host):
        cmd = host.run("docker exec -e PGPASSWORD=wrong aistack-postgres psql -h postgres -U app -d app -c 'SELECT 1'")
        assert cmd.rc != 0 and "password authentication failed" in cmd.stderr

    def test_vector_extension_works(self, host):
        assert psql(host, "SELECT extname FROM pg_extension WHERE extname='vector'", user="app", db="app") == "vector"
        assert psql(host, "SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector", user="app", db="app") == "1"

    def test_tuned_from_memory(self, host):
        assert psql(host, "SHOW shared_buffers") == "512MB"

    def test_backup_timer_scheduled(self, host):
        assert host.service("aistack-postgres-backup.timer").is_enabled

    def test_restored_rows_after_side_effect(self, host):
        if phase(host) != "after-side-effect":
            pytest.skip("the backup/restore round trip runs in side_effect")
        assert psql(host, "SELECT count(*) FROM items", user="app", db="app") == "3"
        assert host.run("ls /var/backups/aistack/postgres/app-*.dump").rc == 0


class TestRedis:
    def test_ping_needs_the_password(self, host):
        denied = host.run("docker exec -e REDISCLI_AUTH= aistack-redis redis-cli ping")
        assert "NOAUTH" in denied.stdout + denied.stderr
        assert host.check_output("docker exec aistack-redis redis-cli ping") == "PONG"

    def test_data_survives_a_restart_with_aof(self, host):
        host.check_output("docker exec aistack-redis redis-cli set aistack:probe kept")
        host.check_output("docker restart aistack-redis")
        value = ""
        for _ in range(20):
            value = host.run("docker exec aistack-redis redis-cli get aistack:probe").stdout.strip()
            if value == "kept":
                break
            host.run("sleep 1")
        assert value == "kept"

    def test_appendonly_is_live(self, host):
        out = host.check_output("docker exec aistack-redis redis-cli config get appendonly").split()
        assert out == ["appendonly", "yes"], out

    def test_key_written_after_last_rdb_save_survives_sigkill(self, host):
        """side_effect wrote the key after the last RDB save, killed Redis with SIGKILL (no
        shutdown save) and converged it back: only the append-only file can have kept it."""
        value = host.check_output("docker exec aistack-redis redis-cli get aistack:after-last-save")
        if phase(host) == "after-side-effect":
            assert value == "survived-sigkill"
        else:
            assert value == "", "the key must not exist before side_effect writes it"

    def test_maxmemory_follows_the_inventory(self, host):
        expected = str(128 * 1024 * 1024) if phase(host) == "after-side-effect" else str(256 * 1024 * 1024)
        out = host.check_output("docker exec aistack-redis redis-cli config get maxmemory").split()
        assert out[-1] == expected


class TestHost:
    def test_only_traefik_publishes_ports(self, host):
        published = host.check_output("docker ps --format '{{.Names}} {{.Ports}}'").splitlines()
        with_ports = {line.split()[0]: line for line in published if "->" in line}
        assert set(with_ports) == {"aistack-traefik"}
        ports = with_ports["aistack-traefik"]
        assert "0.0.0.0:80->80/tcp" in ports and "0.0.0.0:443->443/tcp" in ports
        assert ports.count("->") in (2, 4)  # IPv4 (+ IPv6) for 80 and 443 only

    def test_nothing_else_listens_publicly(self, host):
        listening = host.check_output("ss -Htln | awk '{print $4}'").split()
        public = {addr.rsplit(":", 1)[1] for addr in listening
                  if not addr.startswith(("127.", "[::1]", "::1"))}
        assert public <= {"80", "443", "22"}, public

    def test_secrets_are_root_only(self, host):
        directory = host.file("/etc/aistack/secrets")
        assert directory.mode == 0o700 and directory.user == "root"
        for name in host.check_output("ls /etc/aistack/secrets").split():
            f = host.file(f"/etc/aistack/secrets/{name}")
            assert f.mode == 0o600 and f.user == "root", name
            assert len(f.content_string.strip()) >= 32, name

    def test_env_files_are_private(self, host):
        for project in ("postgres", "redis", "traefik"):
            assert host.file(f"/opt/aistack/{project}/.env").mode == 0o600
