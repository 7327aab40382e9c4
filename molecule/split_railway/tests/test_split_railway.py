"""Verify the split_railway layout: n8n on (a fake of) Railway, the app on the host.

The Railway side is a FAKE of Railway's GraphQL API (tests/fakes/railway_graphql.py)
running on the controller, next to this pytest process: it is queried here
directly with urllib, with the same operations the modules send. The host side
is real and is checked through testinfra's ``host``.

Runs twice: after converge (+ idempotence + check mode) and after side_effect
(a --check run of the layout): the fake's mutation log must be exactly the
first converge's every time.
"""

import base64
import hashlib
import json
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from testlib import container_ip, stack_networks  # noqa: E402

# The scenario's non-default stack contract (molecule.yml: aistack_network, ...).
NETWORK = "aistack-split"
BASE_DIR = "/srv/aistack-split"
SECRETS_DIR = "/etc/aistack-split/secrets"
SERVICES = ["postgres", "redis", "object_storage", "fastapi_celery"]
FAKE = "http://127.0.0.1:18787"
TOKEN = "molecule"
PROJECT = "aistack-molecule"
ENCRYPTION_KEY = "molecule-n8n-encryption-key-0123456789"
OWNER_EMAIL = "owner@split.aistack.test"
OWNER_PASSWORD = "Molecule-Railway-Owner-1"
DOMAIN = "n8n-production.up.railway.app"
# The app's bucket in the object_storage role's S3 (fastapi_celery_object_storage_bucket's default).
APP_BUCKET = "aistack-app"
S3_CONTAINER = "aistack-object-storage"
# Run on the host with python3: a SigV4-signed S3 request to the S3 container's address on the
# s3 network, the keys read from the host's secret files (never passed on a command line or
# printed). Prints the status, then the body. argv: address, access key file, secret key file,
# method, path (URI-encoded), query[, sha256: print the body's SHA-256 instead of the body].
S3_REQUEST = r"""
import datetime, hashlib, hmac, sys, urllib.error, urllib.request
address, key_file, secret_file, method, path, query = sys.argv[1:7]
access, secret = (open(f).read().strip() for f in (key_file, secret_file))
now = datetime.datetime.now(datetime.timezone.utc)
amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
payload = hashlib.sha256(b"").hexdigest()
host = address + ":8333"
headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz}
names = sorted(headers)
canonical_query = "&".join(sorted(query.split("&"))) if query else ""
canonical = "\n".join([method, path, canonical_query, "".join(f"{n}:{headers[n]}\n" for n in names), ";".join(names), payload])
scope = f"{day}/us-east-1/s3/aws4_request"
to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canonical.encode()).hexdigest()])
key = ("AWS4" + secret).encode()
for part in (day, "us-east-1", "s3", "aws4_request"):
    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
headers.pop("host")
url = f"http://{host}{path}" + (f"?{query}" if query else "")
try:
    with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers), timeout=10) as answer:
        status, body = answer.status, answer.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
sys.stdout.write(f"{status}\n")
sys.stdout.flush()
if sys.argv[7:] == ["sha256"]:
    body = hashlib.sha256(body).hexdigest().encode()
sys.stdout.buffer.write(body)
"""
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



def s3_request(host, consumer: str, method: str, path: str, query: str = "", digest: bool = False) -> tuple[int, bytes]:
    """A signed S3 request from the host to the S3 container with the keys kept for ``consumer``."""
    address = json.loads(host.check_output(
        f"docker inspect --format '{{{{json .NetworkSettings.Networks}}}}' {S3_CONTAINER}"))[f"{NETWORK}_s3"]["IPAddress"]
    prefix = f"{SECRETS_DIR}/object_storage_admin" if consumer == "admin" else f"{SECRETS_DIR}/s3_{consumer}"
    script = base64.b64encode(S3_REQUEST.encode()).decode()
    out = host.check_output(f"echo {script} | base64 -d > /opt/s3_request.py && python3 /opt/s3_request.py {address} "
                            f"{prefix}_access_key {prefix}_secret_key {method} '{path}' '{query}'" + (" sha256" if digest else ""))
    status, _, body = out.partition("\n")
    return int(status), body.encode()


def app_call(host, method: str, path: str, payload: dict | None = None) -> dict:
    """The app's API from the host, on the web container's address."""
    ip = container_ip(host, "aistack-fastapi-web")
    data = json.dumps(payload).encode() if payload is not None else None
    script = (f"import urllib.request\nr = urllib.request.Request('http://{ip}:8000{path}', method='{method}', "
              f"data={data!r}, headers={{'Content-Type': 'application/json'}})\n"
              "print(urllib.request.urlopen(r, timeout=15).read().decode())\n")
    encoded = base64.b64encode(script.encode()).decode()
    return json.loads(host.check_output(f"echo {encoded} | base64 -d | python3 -"))


def env_of(host, container: str) -> dict:
    return dict(item.split("=", 1) for item in json.loads(
        host.check_output(f"docker inspect --format '{{{{json .Config.Env}}}}' {container}")))


class TestObjectStorage:
    """The object_storage role against the kit's TEST DOUBLE of SeaweedFS (moto's S3 API behind the
    official `weed` CLI): this proves the role's wiring -- project, network, buckets, identities,
    the app's settings and a real upload with the app's own keys -- not SeaweedFS's storage engine
    nor its enforcement of the identities' per-bucket actions (tests/images/README.md)."""

    def test_healthy_on_the_s3_network_only_and_not_published(self, host):
        status = host.check_output(f"docker inspect --format '{{{{.State.Health.Status}}}}' {S3_CONTAINER}")
        assert status == "healthy", status
        ports = json.loads(host.check_output(f"docker inspect --format '{{{{json .NetworkSettings.Ports}}}}' {S3_CONTAINER}"))
        assert not [p for p, bound in (ports or {}).items() if bound], ports
        bindings = json.loads(host.check_output(f"docker inspect --format '{{{{json .HostConfig.PortBindings}}}}' {S3_CONTAINER}"))
        assert not bindings, bindings
        assert stack_networks(host)[S3_CONTAINER] == [f"{NETWORK}_monitoring", f"{NETWORK}_s3"]
        aliases = json.loads(host.check_output(
            f"docker inspect --format '{{{{json .NetworkSettings.Networks}}}}' {S3_CONTAINER}"))[f"{NETWORK}_s3"]["Aliases"]
        assert "s3" in aliases, aliases

    def test_identities_file_holds_one_identity_per_consumer_with_its_buckets_only(self, host):
        config = host.file(f"{BASE_DIR}/object_storage/s3.json")
        assert config.mode == 0o600 and config.user == "root", (config.mode, config.user)
        identities = {i["name"]: i for i in json.loads(config.content_string)["identities"]}
        assert sorted(identities) == ["aistack_admin", "fastapi_celery"], sorted(identities)
        assert identities["fastapi_celery"]["actions"] == [
            f"Read:{APP_BUCKET}", f"Write:{APP_BUCKET}", f"List:{APP_BUCKET}", f"Tagging:{APP_BUCKET}"]
        assert "Admin" in identities["aistack_admin"]["actions"]
        for name, prefix in (("fastapi_celery", "s3_fastapi_celery"), ("aistack_admin", "object_storage_admin")):
            credentials = identities[name]["credentials"]
            stored = (host.file(f"{SECRETS_DIR}/{prefix}_access_key").content_string.strip(),
                      host.file(f"{SECRETS_DIR}/{prefix}_secret_key").content_string.strip())
            same = len(credentials) == 1 and (credentials[0]["accessKey"], credentials[0]["secretKey"]) == stored
            assert same, f"{name}'s credentials are not the keys kept in {SECRETS_DIR}/{prefix}_*"  # hides the keys
            for suffix in ("access_key", "secret_key"):
                assert host.file(f"{SECRETS_DIR}/{prefix}_{suffix}").mode == 0o600

    def test_the_app_bucket_exists(self, host):
        status, body = s3_request(host, "admin", "GET", "/")
        assert status == 200, body
        assert f"<Name>{APP_BUCKET}</Name>".encode() in body, body

    def test_the_app_has_the_endpoint_its_bucket_and_its_own_keys(self, host):
        access = host.file(f"{SECRETS_DIR}/s3_fastapi_celery_access_key").content_string.strip()
        secret = host.file(f"{SECRETS_DIR}/s3_fastapi_celery_secret_key").content_string.strip()
        for container in ("aistack-fastapi-web", "aistack-fastapi-worker-render"):
            env = env_of(host, container)
            assert env.get("S3_ENDPOINT_URL") == "http://s3:8333" and env.get("AWS_ENDPOINT_URL") == "http://s3:8333", container
            assert env.get("S3_BUCKET") == APP_BUCKET and env.get("S3_BUCKET_NAME") == APP_BUCKET, container
            same = (env.get("S3_ACCESS_KEY_ID") == access == env.get("AWS_ACCESS_KEY_ID")
                    and env.get("S3_SECRET_ACCESS_KEY") == secret == env.get("AWS_SECRET_ACCESS_KEY"))
            assert same, f"{container}'s S3 keys are not s3_fastapi_celery_*"  # hides the keys
            assert f"{NETWORK}_s3" in stack_networks(host)[container], container

    def test_a_render_task_stores_its_output_in_the_app_bucket(self, host):
        queued = app_call(host, "POST", "/api/render", {"prompt": "a blue sphere"})
        deadline = time.monotonic() + 120
        while True:
            state = app_call(host, "GET", f"/api/tasks/{queued['task_id']}")
            if state["state"] in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert state["state"] == "SUCCESS", state
        result = state["result"]
        key = f"outputs/{result['file']}"
        assert result.get("s3") == f"s3://{APP_BUCKET}/{key}", result
        # Listed and read back with the app's own keys (the double refuses keys not in s3.json).
        status, body = s3_request(host, "fastapi_celery", "GET", f"/{APP_BUCKET}", "list-type=2&prefix=outputs%2F")
        assert status == 200 and f"<Key>{key}</Key>".encode() in body, body
        status, body = s3_request(host, "fastapi_celery", "GET", f"/{APP_BUCKET}/{key}", digest=True)
        assert status == 200 and body.decode() == result["sha256"], (status, body[:300], result)
