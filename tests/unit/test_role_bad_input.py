"""Bad input to a role fails before the host is touched, naming the variable.

Each case runs the real role with ansible-playbook against the local machine
in check mode; the failure must come from argument validation or preflight
(so no task that changes anything has run: changed=0), and the message must
name the variable and say how to fix it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - "aistack.hosting.{{ role_under_test }}"
"""

CASES = {
    "docker: unknown install source": ("docker", {"docker_install_source": "snap"}, r"docker_install_source.*(one of|official)"),
    "docker: daemon options not a dict": ("docker", {"docker_daemon_options": "log-driver=journald"}, r"docker_daemon_options.*dict"),
    "docker: mirror not a URL": ("docker", {"docker_registry_mirrors": ["mirror.example.com"]}, r"docker_registry_mirrors must hold http"),
    "docker: insecure registry with a scheme": ("docker", {"docker_insecure_registries": ["http://reg:5000"]}, r"docker_insecure_registries"),
    "docker: offline without a source": ("docker", {"docker_install_source": "offline"}, r"docker_offline_debs.*docker_offline_apt_repository"),
    "docker: offline deb missing": (
        "docker", {"docker_install_source": "offline", "docker_offline_debs": ["/nonexistent/docker.io.deb"]},
        r"docker_offline_debs names files that do not exist",
    ),
    "docker: mirrors set twice": (
        "docker", {"docker_daemon_options": {"registry-mirrors": ["https://m.example.com"]}},
        r"docker_registry_mirrors.*not inside docker_daemon_options",
    ),
    "docker: bad state": ("docker", {"docker_state": "removed"}, r"docker_state.*(one of|present)"),
    "postgres: database without owner": ("postgres", {"postgres_databases": [{"name": "app"}]}, r"owner.*postgres_databases|postgres_databases.*owner"),
    "postgres: superuser as owner": ("postgres", {"postgres_databases": [{"name": "app", "owner": "postgres"}]}, r"must not be the superuser"),
    "postgres: image without major": ("postgres", {"postgres_image": "postgres:latest"}, r"postgres_image=postgres:latest must carry the major"),
    "postgres: settings not a dict": ("postgres", {"postgres_settings": ["work_mem=64MB"]}, r"postgres_settings.*dict"),
    "redis: bad maxmemory": ("redis", {"redis_maxmemory": "lots"}, r"redis_maxmemory=lots is not a Redis size"),
    "redis: bad policy": ("redis", {"redis_maxmemory_policy": "lru"}, r"redis_maxmemory_policy.*one of"),
    "redis: acl user without permissions": ("redis", {"redis_acl_users": [{"name": "celery"}]}, r"redis_acl_users needs entries"),
    "traefik: too old for Docker 29": ("traefik", {"traefik_image": "traefik:v3.1.2", "traefik_dashboard_hostname": "t.example.com"}, r"v3.6 or newer"),
    "traefik: dashboard without hostname": ("traefik", {}, r"traefik_dashboard_hostname is empty"),
    "traefik: cloudflare without token": (
        "traefik", {"traefik_certresolver": "cloudflare", "traefik_dashboard_hostname": "t.example.com"},
        r"traefik_cloudflare_dns_api_token is empty",
    ),
    "n8n: runner tag differs from n8n": ("n8n", {"n8n_runners_image": "n8nio/runners:2.40.0"}, r"must both be tagged\s+n8n_version=2.41.1"),
    "n8n: negative workers": ("n8n", {"n8n_workers": -1}, r"n8n_workers \(-1\).*must be >= 0"),
    "n8n: webhook processors in regular mode": ("n8n", {"n8n_mode": "regular", "n8n_webhook_processors": 2}, r"webhook processors need n8n_mode: queue"),
    "n8n: queue mode without redis": ("n8n", {}, r"n8n_mode is 'queue' but Redis is neither part of this play"),
    "n8n: database not declared": ("n8n", {"redis_enabled": True}, r"n8n needs its database in postgres_databases"),
    "n8n: owner password missing": (
        "n8n", {"redis_enabled": True, "postgres_databases": [{"name": "n8n", "owner": "n8n"}],
                "n8n_hostname": "n8n.example.com", "n8n_owner_email": "ops@example.com"},
        r"n8n_owner_password",
    ),
}


@pytest.fixture(scope="module")
def playbook(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bad_input") / "play.yml"
    path.write_text(PLAYBOOK)
    return path


@pytest.mark.parametrize("role,extra_vars,message", CASES.values(), ids=CASES.keys())
def test_bad_input_fails_early_and_names_the_variable(playbook, role, extra_vars, message):
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(ansible_playbook), "--check", "-i", "localhost,", str(playbook), "-e", json.dumps({"role_under_test": role, **extra_vars}),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert re.search(message, output, re.S), output
    recap = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+).*?failed=(\d+)", output)
    assert recap and recap.group(1) == "0" and recap.group(2) == "1", output
    failed_task = re.findall(r"TASK \[([^\]]+)\]", output)[-1]
    assert "Validating arguments" in failed_task or "Check " in failed_task, failed_task
