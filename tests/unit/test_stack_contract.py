"""The stack contract, the publications and the compose building blocks, rendered by Ansible.

One play loads every role of the gpu_host layout (their tasks are skipped by
tag: nothing runs on a host) with NON-default contract values, every exposure
switched on and stand-in secrets, then renders each role's compose.yml.j2 and
reads what the roles publish to each other. Molecule's split_railway scenario
deploys with non-default values for real; this covers the roles it does not run.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = ["docker", "firewall", "ssh_hardening", "unattended_upgrades", "nvidia_toolkit", "postgres", "redis", "traefik", "n8n",
          "ollama", "comfyui", "fastapi_celery", "monitoring"]
COMPOSE_ROLES = ["postgres", "redis", "traefik", "n8n", "ollama", "comfyui", "fastapi_celery", "monitoring"]
NETWORK = "aistack-contract-test"
VARS = {
    "aistack_network": NETWORK,
    "aistack_base_dir": "/srv/contract-test",
    "aistack_domain": "contract.test",
    "n8n_workers": 2,
    "n8n_webhook_processors": 1,
    "n8n_owner_email": "owner@contract.test",
    "ollama_hostname": "ollama.contract.test",
    "comfyui_hostname": "comfy.contract.test",
    "monitoring_prometheus_hostname": "prometheus.contract.test",
    "monitoring_alertmanager_enabled": True,
    "monitoring_alertmanager_hostname": "alerts.contract.test",
    "monitoring_grafana_admin_user": "grafana-ops",
    # The operator's own database, and the app's replaced by an inventory entry.
    "postgres_databases": [{"name": "app", "owner": "app", "extensions": [], "password": "from-vault"},
                           {"name": "analytics", "owner": "analytics"}],
    # Stand-ins for what the roles' tasks register or gather on a real host.
    "compose_config_checksum": "0" * 40,
    "__postgres_host_memory_mb": 8192,
    "__aistack_host_memory_mb": 10000,
    "aistack_container_memory_limits": {"aistack-n8n-worker-2": "2g", "aistack-worker-1-runner": 0},
    "__ollama_secrets": {"secrets": {"ollama_web_password": "x"}},
    "__comfyui_secrets": {"secrets": {"comfyui_web_password": "x"}},
    "__monitoring_secrets": {"secrets": {"monitoring_web_password": "x"}},
}
# The capabilities the images that start as root need (all others run as a non-root user).
CAP_ADD = {"aistack-traefik": ["NET_BIND_SERVICE"],
           "aistack-postgres": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
           "aistack-redis": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]}
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles: {roles}
  tasks:
    - name: Render every compose template
      tags: [render]
      ansible.builtin.template:
        src: "{root}/roles/{{{{ item }}}}/templates/compose.yml.j2"
        dest: "{out}/{{{{ item }}}}.yml"
        mode: "0644"
      loop: {compose_roles}
    - name: Record what the roles publish and what the consumers made of it
      tags: [render]
      ansible.builtin.copy:
        content: "{{{{ {{'network': aistack_network, 'base_dir': aistack_base_dir,
                        'databases': __postgres_databases,
                        'scrape_configs': __monitoring_scrape_configs,
                        'urls': {{}} | combine(*(__aistack_published | map(attribute='urls', default={{}}))),
                        'n8n_dir': __n8n_dir}} | to_json }}}}"
        dest: "{out}/wiring.json"
        mode: "0644"
"""


def render(tmp_path: Path, extra: dict, drop: tuple[str, ...] = ()) -> Path:
    """Run the play (VARS + extra, without the names in drop); returns the directory
    holding <role>.yml and wiring.json."""
    out = tmp_path / "out"
    out.mkdir()
    # The compose templates import the building blocks by name, as compose_apply's
    # wrapper (roles/common/templates/compose_project.yml.j2) lets them.
    (tmp_path / "templates").mkdir()
    shutil.copy(ROOT / "roles" / "common" / "templates" / "compose_lib.j2", tmp_path / "templates")
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(roles=json.dumps([f"aistack.hosting.{r}" for r in LAYOUT]), root=ROOT,
                                        out=out, compose_roles=json.dumps(COMPOSE_ROLES)))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook),
         "--tags", "render", "--skip-tags", "always",
         "-e", json.dumps({**{k: v for k, v in VARS.items() if k not in drop}, **extra,
                           "ansible_python_interpreter": sys.executable})],
        cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("contract"), {})


def services(rendered: Path):
    for role in COMPOSE_ROLES:
        project = yaml.safe_load((rendered / f"{role}.yml").read_text())
        for name, service in project["services"].items():
            yield role, name, service, project


def test_every_project_joins_the_contract_network(rendered):
    for role in COMPOSE_ROLES:
        project = yaml.safe_load((rendered / f"{role}.yml").read_text())
        assert project["networks"] == {"aistack": {"name": NETWORK, "external": True}}, role


def test_every_traefik_label_names_the_contract_network(rendered):
    routed = {}
    for role, name, service, _ in services(rendered):
        labels = service.get("labels") or {}
        if labels.get("traefik.enable") == "true":
            routed[f"{role}/{name}"] = labels.get("traefik.docker.network")
    # n8n main + webhook processor, ollama, comfyui, the app, prometheus, grafana, alertmanager.
    assert len(routed) == 8, routed
    assert set(routed.values()) == {NETWORK}, routed


def test_every_container_gets_the_building_block_defaults(rendered):
    for role, name, service, _ in services(rendered):
        where = f"{role}/{name}"
        assert service["restart"] == "unless-stopped", where
        assert service["security_opt"] == ["no-new-privileges:true"], where
        assert service["pids_limit"] == 4096, where
        # 80 % of the host's 10000 MiB, unless aistack_container_memory_limits names the container.
        expected = {"aistack-n8n-worker-2": "2g", "aistack-worker-1-runner": None}.get(service["container_name"], "8000m")
        assert service.get("mem_limit") == expected, where
        # Every capability dropped but what the image needs; the exceptions keep Docker's set (docs/security.md).
        container = service["container_name"]
        if container in {"aistack-ollama", "aistack-comfyui", "aistack-cadvisor", "aistack-dcgm-exporter"}:
            assert "cap_drop" not in service, where
        else:
            assert service["cap_drop"] == ["ALL"], where
            assert service.get("cap_add", []) == CAP_ADD.get(container, []), where
        assert service["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}, where
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), where
        # On the stack network, or inside the network namespace of the process it serves.
        assert "aistack" in (service.get("networks") or {}) or service.get("network_mode", "").startswith("service:"), where


def test_consumers_read_what_the_roles_publish(rendered):
    wiring = json.loads((rendered / "wiring.json").read_text())
    assert wiring["network"] == NETWORK and wiring["n8n_dir"] == "/srv/contract-test/n8n"
    # The postgres role creates the databases n8n and the app publish, plus the inventory's
    # own; an inventory entry of the same name replaces the published one.
    databases = {db["name"]: db for db in wiring["databases"]}
    assert len(wiring["databases"]) == 3 and set(databases) == {"n8n", "app", "analytics"}, wiring["databases"]
    assert databases["n8n"]["owner"] == "n8n"
    assert databases["app"]["password"] == "from-vault" and databases["app"]["extensions"] == []
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in wiring["scrape_configs"]}
    assert jobs["n8n"] == ["n8n:5678"]
    # n8n's default mode is queue: its workers are scraped without any n8n_mode in the inventory.
    assert jobs["n8n-worker"] == ["aistack-n8n-worker-1:5678", "aistack-n8n-worker-2:5678"]
    assert jobs["traefik"] == ["traefik:8082"]
    # Host names follow aistack_domain; Grafana's admin user is the configured one.
    assert wiring["urls"]["n8n"] == "https://n8n.contract.test/"
    assert wiring["urls"]["app"] == "https://app.contract.test/"
    assert wiring["urls"]["grafana"].startswith("https://grafana.contract.test/ (user grafana-ops,")
    assert wiring["urls"]["traefik_dashboard"].startswith("https://traefik.contract.test/dashboard/")


def test_former_docker_variable_names_still_work(tmp_path):
    out = render(tmp_path, {"docker_network_name": "legacy-net", "docker_base_dir": "/srv/legacy"},
                 drop=("aistack_network", "aistack_base_dir"))
    wiring = json.loads((out / "wiring.json").read_text())
    assert wiring["network"] == "legacy-net" and wiring["n8n_dir"] == "/srv/legacy/n8n"
    n8n = yaml.safe_load((out / "n8n.yml").read_text())
    assert n8n["networks"]["aistack"]["name"] == "legacy-net"
    assert n8n["services"]["n8n"]["labels"]["traefik.docker.network"] == "legacy-net"
