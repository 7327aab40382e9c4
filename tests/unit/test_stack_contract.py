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

from ansible_collections.aistack.hosting.plugins.filter.aistack import traefik_routes

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = ["docker", "firewall", "ssh_hardening", "unattended_upgrades", "nvidia_toolkit", "postgres", "redis", "traefik", "n8n",
          "ollama", "comfyui", "object_storage", "fastapi_celery", "open_webui", "monitoring"]
COMPOSE_ROLES = ["postgres", "redis", "traefik", "n8n", "ollama", "comfyui", "object_storage", "fastapi_celery", "open_webui",
                 "monitoring"]
NETWORK = "aistack-contract-test"
VARS = {
    "aistack_network": NETWORK,
    "aistack_base_dir": "/srv/contract-test",
    "aistack_domain": "contract.test",
    "n8n_workers": 2,
    "n8n_webhook_processors": 1,
    "n8n_owner_email": "owner@contract.test",
    "n8n_editor_ip_allowlist": ["10.0.0.0/8"],
    "ollama_hostname": "ollama.contract.test",
    "comfyui_hostname": "comfy.contract.test",
    "open_webui_enabled": True,
    "open_webui_admin_email": "admin@contract.test",
    "monitoring_prometheus_hostname": "prometheus.contract.test",
    "monitoring_alertmanager_enabled": True,
    "monitoring_alertmanager_hostname": "alerts.contract.test",
    "monitoring_grafana_admin_user": "grafana-ops",
    # The stack's own S3: the app is wired to it (its s3 network) by itself.
    "object_storage_enabled": True,
    # The operator's own database, and the app's replaced by an inventory entry.
    "postgres_databases": [{"name": "app", "owner": "app", "extensions": [], "password": "from-vault"},
                           {"name": "analytics", "owner": "analytics"}],
    # Stand-ins for what the roles' tasks register or gather on a real host.
    "compose_config_checksum": "0" * 40,
    "__postgres_host_memory_mb": 8192,
    "__aistack_host_memory_mb": 10000,
    "__aistack_host_cpus": 4,
    "aistack_container_cpu_limits": {"aistack-ollama": 2.5},
    "aistack_container_memory_limits": {"aistack-n8n-worker-2": "2g", "aistack-worker-1-runner": 0},
    "__ollama_secrets": {"secrets": {"ollama_web_password": "x"}},
    "__comfyui_secrets": {"secrets": {"comfyui_web_password": "x"}},
    "__open_webui_secrets": {"secrets": {"open_webui_admin_password": "x", "open_webui_secret_key": "x",
                                         "postgres_user_open_webui": "x"}},
    "__monitoring_secrets": {"secrets": {"monitoring_web_password": "x", "grafana_admin_password": "x",
                                         "postgres_user_aistack_monitoring": "x", "redis_password": "x"}},
    "n8n_owner_password": "Stand-in-Owner-Passw0rd",
    "__n8n_secrets": {"secrets": {"postgres_user_n8n": "x", "n8n_encryption_key": "x", "n8n_jwt_secret": "x",
                                  "n8n_runners_auth_token": "x", "redis_password": "x"}},
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
                        'n8n_dir': __n8n_dir, 'images': __docker_stack_images,
                        'monitoring_postgres_login': __monitoring_postgres_login,
                        'monitoring_secrets': __monitoring_secret_specs | list | sort}} | to_json }}}}"
        dest: "{out}/wiring.json"
        mode: "0644"
    - name: Render the monitoring server's Prometheus configuration
      tags: [render]
      ansible.builtin.template:
        src: "{root}/roles/monitoring/templates/prometheus.yml.j2"
        dest: "{out}/prometheus.yml"
        mode: "0644"
      when: monitoring_server
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
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
               [str(ROOT / "collections"), *filter(None, [os.environ.get("ANSIBLE_COLLECTIONS_PATH")])]),
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


# The containers whose root filesystem stays writable (docs/security.md, CIS 5.13).
WRITABLE_ROOT = {"aistack-ollama", "aistack-comfyui", "aistack-open-webui", "aistack-cadvisor", "aistack-dcgm-exporter"}


def container_name(service: dict) -> str:
    return service["container_name"]


def services(rendered: Path):
    for role in COMPOSE_ROLES:
        project = yaml.safe_load((rendered / f"{role}.yml").read_text())
        for name, service in project["services"].items():
            yield role, name, service, project


KEYS = ["aistack", "postgres", "redis", "ollama", "comfyui", "app", "monitoring", "s3"]
# Which stack networks each service joins (docs/security.md, "Networks"); "default" is
# the project's own network (outbound access). Everything routed is also on "aistack".
N8N = {"default", "postgres", "redis", "ollama", "comfyui", "app", "monitoring"}
JOINS = {
    "aistack-traefik": {"aistack", "monitoring"}, "aistack-postgres": {"postgres"}, "aistack-redis": {"redis"},
    "aistack-n8n": N8N | {"aistack"}, "aistack-n8n-worker-1": N8N | {"runner-worker-1"},
    "aistack-n8n-worker-2": N8N | {"runner-worker-2"},
    "aistack-n8n-webhook-1": {"aistack", "default", "postgres", "redis"},
    "aistack-ollama": {"ollama", "default", "aistack"}, "aistack-comfyui": {"comfyui", "default", "aistack"},
    "aistack-fastapi-web": {"app", "postgres", "redis", "s3", "default", "aistack"},
    "aistack-fastapi-worker-gpu": {"postgres", "redis", "s3", "ollama", "comfyui", "default"},
    "aistack-fastapi-worker-render": {"postgres", "redis", "s3", "ollama", "comfyui", "default"},
    "aistack-object-storage": {"s3", "monitoring"},
    "aistack-open-webui": {"aistack", "postgres", "ollama", "default"},
    "aistack-prometheus": {"monitoring", "aistack"}, "aistack-grafana": {"monitoring", "aistack"},
    "aistack-alertmanager": {"monitoring", "default", "aistack"}, "aistack-node-exporter": {"monitoring"},
    "aistack-postgres-exporter": {"monitoring", "postgres"}, "aistack-redis-exporter": {"monitoring", "redis"},
    "aistack-flower": {"monitoring", "redis"}, "aistack-cadvisor": {"monitoring"},
    # A task runner shares an internal network with its own n8n process and nothing else.
    # Queue mode with manual runs offloaded: main starts no task broker, so it has no runner.
    "aistack-worker-1-runner": {"runner-worker-1"}, "aistack-worker-2-runner": {"runner-worker-2"},
}
RUNNER_NETWORKS = {"runner-worker-1", "runner-worker-2"}


def test_every_project_declares_the_stack_networks(rendered):
    expected = {key: {"name": NETWORK if key == "aistack" else f"{NETWORK}_{key}", "external": True} for key in KEYS}
    for role in COMPOSE_ROLES:
        project = yaml.safe_load((rendered / f"{role}.yml").read_text())
        # n8n also has one internal network of its own per process and its task runner.
        local = {key: {"internal": True} for key in RUNNER_NETWORKS} if role == "n8n" else {}
        assert project["networks"] == {**expected, **local}, role


def test_each_service_joins_only_what_it_needs(rendered):
    joined = {service["container_name"]: set(service.get("networks") or {}) for _, _, service, _ in services(rendered)}
    assert joined == JOINS


def test_each_task_broker_listens_on_its_runners_network_only(rendered):
    """No runner shares a namespace (Docker could not start it before its process at
    boot); each process's broker binds to the alias it alone has on its runner's network."""
    n8n = yaml.safe_load((rendered / "n8n.yml").read_text())["services"]
    for process, key in {"worker-1": "runner-worker-1", "worker-2": "runner-worker-2"}.items():
        assert n8n[process]["environment"]["N8N_RUNNERS_BROKER_LISTEN_ADDRESS"] == "n8n-task-broker", process
        assert n8n[process]["networks"][key] == {"aliases": ["n8n-task-broker"]}, process
        aliased = [net for net, spec in n8n[process]["networks"].items() if "n8n-task-broker" in spec.get("aliases", [])]
        assert aliased == [key], process
        assert "network_mode" not in n8n[f"{process}-runner"], process
    for process in ("n8n", "webhook-1"):  # neither executes code here (queue mode, manual runs offloaded)
        assert "N8N_RUNNERS_BROKER_LISTEN_ADDRESS" not in n8n[process].get("environment", {}), process
    assert "n8n-runner" not in n8n


def test_main_gets_a_runner_when_it_executes_code(tmp_path):
    """Regular mode: main runs every execution, so it gets its runner on a network of their own."""
    n8n = yaml.safe_load((render(tmp_path, {"n8n_mode": "regular"}) / "n8n.yml").read_text())
    services = n8n["services"]
    assert sorted(services) == ["n8n", "n8n-runner"]
    assert services["n8n"]["environment"]["N8N_RUNNERS_BROKER_LISTEN_ADDRESS"] == "n8n-task-broker"
    assert services["n8n"]["networks"]["runner-n8n"] == {"aliases": ["n8n-task-broker"]}
    assert list(services["n8n-runner"]["networks"]) == ["runner-n8n"]
    assert n8n["networks"]["runner-n8n"] == {"internal": True}


def test_every_route_reaches_its_container_on_the_contract_network(rendered):
    routed, servers = {}, {}
    for role, name, service, project in services(rendered):
        settings = {k: v for key in service if key.startswith("x-traefik") for k, v in service[key].items()}
        assert "labels" not in service or not any(k.startswith("traefik.") for k in service["labels"]), name
        if settings:
            routed[f"{role}/{name}"] = settings.get("traefik.docker.network")
    for role in COMPOSE_ROLES:
        project = yaml.safe_load((rendered / f"{role}.yml").read_text())
        for service in (traefik_routes(project).get("http") or {}).get("services", {}).values():
            servers.update({s["url"]: role for s in service["loadBalancer"]["servers"]})
    # n8n main + webhook processor, ollama, comfyui, the app, open webui, prometheus, grafana, alertmanager.
    assert len(routed) == 9, routed
    assert set(routed.values()) == {NETWORK}, routed
    # The editor allow-list applies to the editor, not to the webhook processors' router.
    n8n = traefik_routes(yaml.safe_load((rendered / "n8n.yml").read_text()))["http"]
    assert n8n["routers"]["n8n"]["middlewares"][0] == "n8n-allowlist" and "n8n-public" not in n8n["routers"]
    assert "n8n-allowlist" not in n8n["routers"]["n8n-webhook"]["middlewares"]
    assert n8n["routers"]["n8n-webhook"]["rule"].startswith(
        "Host(`n8n.contract.test`) && (PathPrefix(`/webhook/`) || PathPrefix(`/webhook-waiting/`) ||")
    assert n8n["middlewares"]["n8n-allowlist"] == {"ipAllowList": {"sourceRange": ["10.0.0.0/8"]}}
    # Traefik reaches each one by container name on the shared network (it has no Docker socket).
    assert {"http://aistack-n8n:5678", "http://aistack-n8n-webhook-1:5678", "http://aistack-ollama:11434",
            "http://aistack-grafana:3000", "http://aistack-open-webui:8080"} <= set(servers), servers


def test_every_container_gets_the_building_block_defaults(rendered):
    for role, name, service, _ in services(rendered):
        where = f"{role}/{name}"
        assert service["restart"] == "unless-stopped", where
        assert service["security_opt"] == ["no-new-privileges:true"], where
        assert service["pids_limit"] == 4096, where
        # 80 % of the host's 10000 MiB, unless aistack_container_memory_limits names the container.
        expected = {"aistack-n8n-worker-2": "2g", "aistack-worker-1-runner": None}.get(service["container_name"], "8000m")
        assert service.get("mem_limit") == expected, where
        # 90 % of the host's 4 CPUs, unless aistack_container_cpu_limits names the container.
        assert service["cpus"] == (2.5 if container_name(service) == "aistack-ollama" else 3.6), where
        # Read-only root and a tmpfs /tmp wherever the image allows (docs/security.md lists the rest).
        if container_name(service) in WRITABLE_ROOT or container_name(service).endswith("-runner"):
            assert "read_only" not in service and "tmpfs" not in service, where
        else:
            assert service["read_only"] is True and service["tmpfs"][0] == "/tmp", where
        # Every capability dropped but what the image needs; the exceptions keep Docker's set (docs/security.md).
        container = service["container_name"]
        if container in {"aistack-ollama", "aistack-comfyui", "aistack-cadvisor", "aistack-dcgm-exporter"}:
            assert "cap_drop" not in service, where
        else:
            assert service["cap_drop"] == ["ALL"], where
            assert service.get("cap_add", []) == CAP_ADD.get(container, []), where
        assert service["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}, where
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), where
        # On its own networks: no service shares another's namespace.
        assert service.get("networks") and "network_mode" not in service, where


def test_consumers_read_what_the_roles_publish(rendered):
    wiring = json.loads((rendered / "wiring.json").read_text())
    assert wiring["network"] == NETWORK and wiring["n8n_dir"] == "/srv/contract-test/n8n"
    # The postgres role creates the databases n8n and the app publish, plus the inventory's
    # own; an inventory entry of the same name replaces the published one.
    databases = {db["name"]: db for db in wiring["databases"]}
    assert len(wiring["databases"]) == 4 and set(databases) == {"n8n", "app", "analytics", "open_webui"}, wiring["databases"]
    assert databases["open_webui"] == {"name": "open_webui", "owner": "open_webui", "extensions": ["vector"]}
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
    assert wiring["urls"]["open_webui"] == "https://chat.contract.test/"
    assert wiring["urls"]["grafana"].startswith("https://grafana.contract.test/ (user grafana-ops,")
    assert wiring["urls"]["traefik_dashboard"].startswith("https://traefik.contract.test/dashboard/")


def test_former_docker_variable_names_still_work(tmp_path):
    out = render(tmp_path, {"docker_network_name": "legacy-net", "docker_base_dir": "/srv/legacy"},
                 drop=("aistack_network", "aistack_base_dir"))
    wiring = json.loads((out / "wiring.json").read_text())
    assert wiring["network"] == "legacy-net" and wiring["n8n_dir"] == "/srv/legacy/n8n"
    n8n = yaml.safe_load((out / "n8n.yml").read_text())
    assert n8n["networks"]["aistack"]["name"] == "legacy-net" and n8n["networks"]["redis"]["name"] == "legacy-net_redis"
    assert n8n["services"]["n8n"]["x-traefik-n8n"]["traefik.docker.network"] == "legacy-net"


# Secrets each service reads from /run/secrets/<VARIABLE> (VARIABLE_FILE) instead of its environment.
N8N_FILE_SECRETS = {"DB_POSTGRESDB_PASSWORD", "N8N_ENCRYPTION_KEY", "N8N_USER_MANAGEMENT_JWT_SECRET",
                    "N8N_RUNNERS_AUTH_TOKEN", "QUEUE_BULL_REDIS_PASSWORD"}
FILE_SECRETS = {
    "aistack-n8n": N8N_FILE_SECRETS | {"N8N_INSTANCE_OWNER_PASSWORD_HASH"},
    "aistack-n8n-worker-1": N8N_FILE_SECRETS, "aistack-n8n-worker-2": N8N_FILE_SECRETS,
    "aistack-n8n-webhook-1": N8N_FILE_SECRETS,
    "aistack-postgres": {"POSTGRES_PASSWORD"}, "aistack-grafana": {"GF_SECURITY_ADMIN_PASSWORD_"},
    "aistack-postgres-exporter": {"DATA_SOURCE_PASS"},
}


def test_secrets_reach_each_service_as_its_own_files(rendered):
    """Where the image reads VARIABLE_FILE, the service's environment names the file and holds no
    value, and it mounts its own secrets directory (no other service's); nothing else mounts one."""
    seen = {}
    for _, name, service, _ in services(rendered):
        env = service.get("environment") or {}
        mounts = [v for v in service.get("volumes", []) if isinstance(v, str) and v.startswith("./secrets/")]
        files = {key.removesuffix("_FILE") for key, value in env.items() if str(value).startswith("/run/secrets/")}
        if files or mounts:
            seen[container_name(service)] = files
            assert mounts == [f"./secrets/{name}:/run/secrets:ro"], (name, mounts)
            assert all(env[f"{v}_FILE"] == f"/run/secrets/{v}" for v in files), name
            assert not files & set(env), (name, "both VARIABLE and VARIABLE_FILE")
    assert seen == FILE_SECRETS


def test_the_docker_role_pulls_exactly_the_images_the_stack_runs(rendered):
    """What the roles publish as images (the docker role pulls them up front) is what their
    rendered projects run: nothing pulled for nothing, nothing left to a later pull."""
    wiring = json.loads((rendered / "wiring.json").read_text())
    run = {service["image"] for _, _, service, _ in services(rendered)}
    assert sorted(run) == wiring["images"]


def test_a_worker_host_reaches_remote_services_under_their_names(tmp_path):
    """multi_host worker host: no n8n main, no web; the data and GPU services are on other
    hosts, so their internal networks are swapped for the outbound one plus extra_hosts."""
    remote = {"postgres": "10.0.0.2", "redis": "10.0.0.2", "ollama": "10.0.0.4", "comfyui": "10.0.0.4"}
    out = render(tmp_path, {"aistack_remote_services": remote, "n8n_main": False, "n8n_webhook_processors": 0,
                            "fastapi_celery_web_enabled": False, "aistack_host_roles": ["docker", "n8n", "fastapi_celery"],
                            })
    n8n = yaml.safe_load((out / "n8n.yml").read_text())["services"]
    assert set(n8n) == {"worker-1", "worker-1-runner", "worker-2", "worker-2-runner"}
    for name in ("worker-1", "worker-2"):
        assert set(n8n[name]["networks"]) == {"default", "app", "monitoring", f"runner-{name}"}, name
        assert n8n[name]["extra_hosts"] == {"postgres": "10.0.0.2", "redis": "10.0.0.2", "ollama": "10.0.0.4",
                                            "comfyui": "10.0.0.4"}
        assert "depends_on" not in n8n[name]
        assert n8n[name]["environment"]["N8N_RUNNERS_BROKER_LISTEN_ADDRESS"] == "n8n-task-broker"
    assert "extra_hosts" not in n8n["worker-1-runner"]  # the runner still reaches nothing but its broker
    app = yaml.safe_load((out / "fastapi_celery.yml").read_text())["services"]
    assert "web" not in app and set(app) == {"worker-gpu", "worker-render"}
    assert app["worker-render"]["extra_hosts"]["postgres"] == "10.0.0.2"
    assert set(app["worker-render"]["networks"]) == {"s3", "default"}
    wiring = json.loads((out / "wiring.json").read_text())
    # The postgres role still creates every database the play's roles publish.
    assert {"n8n", "app"} <= {db["name"] for db in wiring["databases"]}


def test_a_data_host_publishes_its_services_on_the_private_address_only(tmp_path):
    out = render(tmp_path, {"aistack_private_address": "10.0.0.2", "aistack_private_services": ["postgres", "redis"]})
    postgres = yaml.safe_load((out / "postgres.yml").read_text())["services"]["postgres"]
    redis = yaml.safe_load((out / "redis.yml").read_text())["services"]["redis"]
    assert postgres["ports"] == ["10.0.0.2:5432:5432"] and set(postgres["networks"]) == {"postgres", "default"}
    assert redis["ports"] == ["10.0.0.2:6379:6379"] and set(redis["networks"]) == {"redis", "default"}
    ollama = yaml.safe_load((out / "ollama.yml").read_text())["services"]["ollama"]
    assert "ports" not in ollama  # not in aistack_private_services: never published


def test_one_host_layouts_publish_nothing_and_use_no_extra_hosts(rendered):
    for role, name, service, _ in services(rendered):
        assert "extra_hosts" not in service, (role, name)
        assert "ports" not in service or role == "traefik", (role, name)


# --------------------------------------------------------------------------
# Monitoring across hosts (roles/monitoring, "Several hosts")
# --------------------------------------------------------------------------
REMOTE_HOSTS = [{"name": "worker-1", "address": "10.0.0.3"}, {"name": "gpu-1", "address": "fd00::4"}]
# A server host whose Postgres and Redis run on the data host.
SERVER = {"monitoring_remote_hosts": REMOTE_HOSTS, "aistack_remote_services": {"postgres": "10.0.0.2", "redis": "10.0.0.2"},
          "aistack_host_roles": ["traefik", "n8n", "fastapi_celery", "monitoring"]}
# The data host: Postgres here, published to the others, and the agents on the private address.
AGENT = {"monitoring_server": False, "aistack_private_address": "10.0.0.2", "aistack_private_services": ["postgres", "monitoring"],
         "aistack_host_roles": ["postgres", "monitoring"]}


def agent_targets(host: str, port: int) -> list[dict]:
    return [{"targets": [f"{target}:{port}"], "labels": {"host": name}}
            for target, name in [(host, "localhost"), ("10.0.0.3", "worker-1"), ("[fd00::4]", "gpu-1")]]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("server"), SERVER)


def test_a_single_host_labels_its_agents_with_its_name(rendered):
    """Every node and cAdvisor series carries host=<inventory_hostname> (the dashboards' host variable)."""
    jobs = {job["job_name"]: job for job in yaml.safe_load((rendered / "prometheus.yml").read_text())["scrape_configs"]}
    assert jobs["node"]["static_configs"] == [{"targets": ["node-exporter:9100"], "labels": {"host": "localhost"}}]
    assert jobs["cadvisor"]["static_configs"] == [{"targets": ["cadvisor:8080"], "labels": {"host": "localhost"}}]
    assert json.loads((rendered / "wiring.json").read_text())["monitoring_postgres_login"] is True


def test_the_server_scrapes_every_remote_hosts_agents_under_the_same_jobs(rendered, server):
    single = yaml.safe_load((rendered / "prometheus.yml").read_text())["scrape_configs"]
    jobs = {job["job_name"]: job for job in yaml.safe_load((server / "prometheus.yml").read_text())["scrape_configs"]}
    # Alerts and dashboards name the jobs: the remote hosts add targets, not jobs.
    assert {"prometheus", "grafana", "alertmanager", "node", "cadvisor", "postgres", "redis", "celery"} <= set(jobs)
    assert set(jobs) <= {job["job_name"] for job in single}
    assert jobs["node"]["static_configs"] == agent_targets("node-exporter", 9100)
    assert jobs["cadvisor"]["static_configs"] == agent_targets("cadvisor", 8080)
    # The exporters of the remote data services are still scraped here, by name.
    assert jobs["postgres"]["static_configs"] == [{"targets": ["postgres-exporter:9187"]}]


def test_the_server_reaches_remote_agents_and_data_services_through_its_outbound_network(server):
    services = yaml.safe_load((server / "monitoring.yml").read_text())["services"]
    assert set(services["prometheus"]["networks"]) == {"monitoring", "aistack", "default"}
    # Postgres and Redis are on the data host: no internal network of theirs, their usual name at its address.
    for name, key in {"postgres-exporter": "postgres", "redis-exporter": "redis", "flower": "redis"}.items():
        assert set(services[name]["networks"]) == {"monitoring", "default"}, name
        assert services[name]["extra_hosts"] == {key: "10.0.0.2"}, name
    assert services["postgres-exporter"]["environment"]["DATA_SOURCE_URI"].startswith("postgres:5432/")
    assert services["redis-exporter"]["environment"]["REDIS_ADDR"] == "redis://redis:6379"
    # Nothing of the server is published beyond the host (no private address here).
    assert not [name for name, service in services.items() if "ports" in service]
    wiring = json.loads((server / "wiring.json").read_text())
    # The login is created where Postgres runs (the data host's monitoring role), not here.
    assert wiring["monitoring_postgres_login"] is False
    assert "postgres_user_aistack_monitoring" in wiring["monitoring_secrets"]


def test_the_exporters_follow_the_data_services_of_the_play(tmp_path):
    out = render(tmp_path, {**SERVER, "postgres_enabled": False, "redis_enabled": False, "fastapi_celery_enabled": False})
    services = yaml.safe_load((out / "monitoring.yml").read_text())["services"]
    assert not {"postgres-exporter", "redis-exporter", "flower"} & set(services)
    jobs = {job["job_name"] for job in yaml.safe_load((out / "prometheus.yml").read_text())["scrape_configs"]}
    assert not {"postgres", "redis", "celery"} & jobs


def test_an_agent_host_runs_and_publishes_its_agents_only(tmp_path):
    """monitoring_server: false -- node-exporter (with the watcher's series) and cAdvisor on the
    private address, no Prometheus, Grafana, Alertmanager or exporters, and no secrets needed."""
    out = render(tmp_path, AGENT, drop=("__monitoring_secrets",))
    project = yaml.safe_load((out / "monitoring.yml").read_text())
    services = project["services"]
    assert sorted(services) == ["cadvisor", "node-exporter"]
    assert "volumes" not in project
    node = services["node-exporter"]
    assert "--collector.textfile.directory=/host/root/var/lib/aistack/metrics" in node["command"]
    assert node["ports"] == ["10.0.0.2:9100:9100"] and set(node["networks"]) == {"monitoring", "default"}
    assert services["cadvisor"]["ports"] == ["10.0.0.2:8080:8080"] and set(services["cadvisor"]["networks"]) == {"monitoring", "default"}
    assert not [key for service in services.values() for key in service if key.startswith("x-traefik")]
    assert not (out / "prometheus.yml").exists()
    wiring = json.loads((out / "wiring.json").read_text())
    # Postgres runs here: the exporter's login is created here, its password the only secret read.
    assert wiring["monitoring_postgres_login"] is True
    assert wiring["monitoring_secrets"] == ["postgres_user_aistack_monitoring"]
    # What the docker role pulls here: the host's roles' images, the agents' only of monitoring's.
    defaults = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
    monitoring_images = {defaults["monitoring_node_exporter_image"], defaults["monitoring_cadvisor_image"]}
    assert {image for image in wiring["images"] if "postgres" not in image and "pgvector" not in image} == monitoring_images
    assert {service["image"] for service in services.values()} == monitoring_images
    assert "grafana" not in wiring["urls"] and "prometheus" not in wiring["urls"]
