"""Verify the split_railway layout: n8n on (a fake of) Railway, the app on the host.

The Railway side is a FAKE of Railway's GraphQL API (tests/fakes/railway_graphql.py)
running on the controller, next to this pytest process: it is queried here
directly with urllib, with the same operations the modules send. The host side
is real and is checked through testinfra's ``host``.

Runs twice: after converge (+ idempotence + check mode) and after side_effect
(a --check run of the layout): the fake's mutation log must be exactly the
first converge's every time.
"""

import json
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import container_ip, stack_networks  # noqa: E402

# The scenario's non-default stack contract (molecule.yml: aistack_network, ...).
NETWORK = "aistack-split"
BASE_DIR = "/srv/aistack-split"
SECRETS_DIR = "/etc/aistack-split/secrets"
SERVICES = ["postgres", "redis", "fastapi_celery"]
FAKE = "http://127.0.0.1:18787"
TOKEN = "molecule"
PROJECT = "aistack-molecule"
ENCRYPTION_KEY = "molecule-n8n-encryption-key-0123456789"
OWNER_EMAIL = "owner@split.aistack.test"
OWNER_PASSWORD = "Molecule-Railway-Owner-1"
DOMAIN = "n8n-production.up.railway.app"
# What one converge from nothing sends, in order; re-runs and --check runs add nothing.
FIRST_RUN_MUTATIONS = [
    "projectCreate",
    "templateDeployV2",          # Postgres from Railway's template
    "serviceCreate",             # n8n
    "serviceInstanceUpdate",     # its image
    "variableCollectionUpsert",  # every variable in one batch, skipDeploys
    "volumeCreate",
    "serviceDomainCreate",
    "serviceInstanceDeployV2",   # one deploy
]


def graphql(query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{FAKE}/graphql/v2",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.load(response)
    assert not body.get("errors"), body
    return body["data"]


def nodes(connection: dict) -> list[dict]:
    return [edge["node"] for edge in connection["edges"]]


@pytest.fixture(scope="module")
def railway() -> dict:
    """The fake's state, read the way the modules read Railway."""
    projects = nodes(graphql(
        "query Projects($first: Int) { projects(first: $first) { edges { node { id name } } pageInfo { hasNextPage endCursor } } }",
        {"first": 100})["projects"])
    matching = [p for p in projects if p["name"] == PROJECT]
    assert len(projects) == 1 and len(matching) == 1, projects
    project_id = matching[0]["id"]
    project = graphql(
        "query P($id: String!, $first: Int) { project(id: $id) {"
        " environments(first: $first) { edges { node { id name } } pageInfo { hasNextPage endCursor } }"
        " services(first: $first) { edges { node { id name } } pageInfo { hasNextPage endCursor } }"
        " volumes(first: $first) { edges { node { id name volumeInstances { edges { node { id mountPath serviceId environmentId } } } } }"
        " pageInfo { hasNextPage endCursor } } } }",
        {"id": project_id, "first": 100})["project"]
    environments = nodes(project["environments"])
    services = {s["name"]: s["id"] for s in nodes(project["services"])}
    assert [e["name"] for e in environments] == ["production"], environments
    environment_id = environments[0]["id"]
    n8n_id = services.get("n8n")
    variables = graphql(
        "query V($projectId: String!, $environmentId: String!, $serviceId: String, $unrendered: Boolean) {"
        " variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, unrendered: $unrendered) }",
        {"projectId": project_id, "environmentId": environment_id, "serviceId": n8n_id, "unrendered": True})["variables"]
    domains = graphql(
        "query D($projectId: String!, $environmentId: String!, $serviceId: String!) {"
        " domains(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId) { serviceDomains { id domain targetPort } } }",
        {"projectId": project_id, "environmentId": environment_id, "serviceId": n8n_id})["domains"]["serviceDomains"]
    instance = graphql(
        "query S($environmentId: String!, $serviceId: String!) { serviceInstance(environmentId: $environmentId, serviceId: $serviceId) {"
        " id startCommand source { image repo } latestDeployment { id status } } }",
        {"environmentId": environment_id, "serviceId": n8n_id})["serviceInstance"]
    volumes = nodes(project["volumes"])
    return {"services": services, "variables": variables, "domains": domains, "instance": instance,
            "volumes": volumes, "n8n_id": n8n_id}


def fake_log() -> dict:
    with urllib.request.urlopen(f"{FAKE}/_fake/log", timeout=10) as response:
        return json.load(response)


class TestRailwaySide:
    def test_one_project_with_postgres_and_n8n(self, railway):
        assert sorted(railway["services"]) == ["Postgres", "n8n"]

    def test_n8n_runs_the_pinned_image_and_deployed(self, railway):
        assert railway["instance"]["source"]["image"] == "n8nio/n8n:2.41.1"
        assert railway["instance"]["latestDeployment"]["status"] == "SUCCESS"

    def test_n8n_variables_reference_postgres_and_its_domain(self, railway):
        variables = railway["variables"]
        assert variables["DB_TYPE"] == "postgresdb"
        for name, var in [("HOST", "PGHOST"), ("PORT", "PGPORT"), ("DATABASE", "PGDATABASE"),
                          ("USER", "PGUSER"), ("PASSWORD", "PGPASSWORD")]:
            assert variables[f"DB_POSTGRESDB_{name}"] == "${{Postgres.%s}}" % var
        assert variables["N8N_HOST"] == "${{RAILWAY_PUBLIC_DOMAIN}}"
        assert variables["WEBHOOK_URL"] == "https://${{RAILWAY_PUBLIC_DOMAIN}}/"
        assert variables["N8N_PROTOCOL"] == "https"
        assert variables["N8N_PORT"] == "5678"
        assert variables["N8N_ENCRYPTION_KEY"] == ENCRYPTION_KEY
        assert "EXECUTIONS_MODE" not in variables  # regular mode: no Redis, no workers

    def test_n8n_creates_its_owner_at_first_start(self, railway):
        """Nobody can claim the public domain: n8n creates the owner before it serves (N8N_INSTANCE_OWNER_*)."""
        bcrypt = pytest.importorskip("bcrypt")
        variables = railway["variables"]
        assert variables["N8N_INSTANCE_OWNER_MANAGED_BY_ENV"] == "true"
        assert variables["N8N_INSTANCE_OWNER_EMAIL"] == OWNER_EMAIL
        hashed = variables["N8N_INSTANCE_OWNER_PASSWORD_HASH"]
        assert hashed.startswith("$2a$10$") and bcrypt.checkpw(OWNER_PASSWORD.encode(), hashed.encode())
        assert OWNER_PASSWORD not in json.dumps(variables)

    def test_one_volume_at_n8n_home(self, railway):
        assert len(railway["volumes"]) == 1, railway["volumes"]
        mounts = [(i["serviceId"], i["mountPath"]) for i in nodes(railway["volumes"][0]["volumeInstances"])]
        assert mounts == [(railway["n8n_id"], "/home/node/.n8n")]

    def test_one_generated_domain_to_port_5678(self, railway):
        assert [(d["domain"], d["targetPort"]) for d in railway["domains"]] == [(DOMAIN, 5678)]

    def test_reruns_and_check_mode_sent_no_mutation(self):
        # converge once; idempotence, the check step and side_effect's --check run added nothing.
        assert fake_log()["mutations"] == FIRST_RUN_MUTATIONS


class TestHostSide:
    def test_app_has_the_railway_webhook_url(self, host):
        env = json.loads(host.check_output("docker inspect --format '{{json .Config.Env}}' aistack-fastapi-web"))
        assert f"N8N_WEBHOOK_URL=https://{DOMAIN}/webhook/" in env

    def test_app_containers_are_healthy(self, host):
        lines = host.check_output("docker ps -a --format '{{.Names}} {{.Status}}'").splitlines()
        stack = {line.split()[0]: line for line in lines if line.startswith("aistack-")}
        for name in ("aistack-fastapi-web", "aistack-fastapi-worker-render", "aistack-postgres", "aistack-redis"):
            assert name in stack and "(healthy)" in stack[name], lines

    def test_no_n8n_on_the_host(self, host):
        names = host.check_output("docker ps -a --format '{{.Names}}'").split()
        assert not [name for name in names if "n8n" in name], names

    def test_app_health(self, host):
        ip = container_ip(host, "aistack-fastapi-web")
        script = f"import urllib.request; print(urllib.request.urlopen('http://{ip}:8000/api/health', timeout=10).read().decode())"
        body = json.loads(host.check_output(f'python3 -c "{script}"'))
        assert body["status"] == "ok", body

    def test_everything_is_on_the_contract_networks(self, host):
        """Every container joined only networks named after aistack_network (the edge network and
        the internal <network>_<dependency> ones) or its own project's; none of the default names."""
        networks = host.check_output("docker network ls --format '{{.Name}}'").split()
        assert NETWORK in networks and f"{NETWORK}_postgres" in networks, networks
        assert not [n for n in networks if n == "aistack" or n.startswith("aistack_")], networks
        for name, joined in stack_networks(host).items():
            allowed = {n for n in joined if n == NETWORK or n.startswith(f"{NETWORK}_") or n.endswith("_default")}
            assert joined and set(joined) == allowed, (name, joined)
        # The data stores are on their internal network only.
        assert stack_networks(host)["aistack-postgres"] == [f"{NETWORK}_postgres"]

    def test_projects_and_secrets_are_in_the_contract_directories(self, host):
        """Compose projects live under aistack_base_dir, secrets under aistack_secrets_dir; nothing at the defaults."""
        for service in SERVICES:
            assert host.file(f"{BASE_DIR}/{service}/compose.yml").is_file, service
        assert not host.file("/opt/aistack").exists
        for name in ("postgres_superuser_password", "postgres_user_app", "redis_password"):
            secret = host.file(f"{SECRETS_DIR}/{name}")
            assert secret.is_file and secret.mode == 0o600, name
        assert not host.file("/etc/aistack/secrets").exists

