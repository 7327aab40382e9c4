"""Helpers shared by the scenarios' testinfra tests (imported via sys.path)."""

import json
import re
import time
from pathlib import Path

import testinfra.host

# runc, under load, now and then fails to START a process: in a running
# container ("OCI runtime exec failed ... read init-p: connection reset by
# peer", an exec exits 126) or in a new one ("OCI runtime create failed
# ... waiting for init preliminary setup: read init-p", `docker run` exits 125;
# seen in CI on 2026-12-04; moby#42953, runc#2662): nothing ran, so running the
# command again is safe. Only that start failure is retried; any other result
# (the command's own failure included) is returned as it is.
_RUNC_START_FAILURE = re.compile(r"OCI runtime (exec|create) failed: .*(init-p: connection reset by peer|preliminary setup)")
_run = testinfra.host.Host.run


def _run_retrying_runc_start_failures(self, command, *args, **kwargs):
    for attempt in range(3):
        result = _run(self, command, *args, **kwargs)
        if result.rc not in (125, 126) or not _RUNC_START_FAILURE.search(result.stdout + result.stderr):
            return result
        time.sleep(1 + attempt)
    return result


testinfra.host.Host.run = _run_retrying_runc_start_failures

PROBE = (Path(__file__).parent / "https_probe.py").read_text()
PROBE_PATH = "/opt/aistack-tests/https_probe.py"
CONNECTIVITY = (Path(__file__).parent / "connectivity_probe.py").read_text()
CONNECTIVITY_PATH = "/opt/aistack-tests/connectivity_probe.py"


def phase(host) -> str:
    """Which verify this is: 'converged' or what side_effect wrote."""
    marker = host.file("/etc/aistack-test-phase")
    return marker.content_string.strip() if marker.exists else "converged"


def secret(host, name: str) -> str:
    return host.file(f"/etc/aistack/secrets/{name}").content_string.strip()


def pebble_root(host) -> str:
    """Pebble's current issuing root (management API on the stack network), saved on the host."""
    ip = host.check_output(
        "docker inspect --format '{{(index .NetworkSettings.Networks \"aistack\").IPAddress}}' pebble"
    )
    pem = host.check_output(
        "python3 -c \"import ssl,urllib.request;ctx=ssl._create_unverified_context();"
        f"print(urllib.request.urlopen('https://{ip}:15000/roots/0',context=ctx).read().decode())\""
    )
    # Pebble makes a new root at every start (the n8n scenario reboots its host): keep every
    # root seen, so the certificate Traefik obtained before still verifies, as it would
    # against a public CA, whose root does not change.
    path = "/opt/aistack-tests/pebble-root.pem"
    known = host.run(f"cat {path}").stdout if host.file(path).exists else ""
    bundle = known if pem.strip() in known else known.rstrip() + "\n" + pem.strip() + "\n"
    host.run("mkdir -p /opt/aistack-tests && cat > " + path + " <<'EOF'\n" + bundle.strip() + "\nEOF")
    return path


def probe(host, hostname: str, port: int, path: str = "/", cafile: str = "", *extra: str) -> dict:
    """Run https_probe.py on the host; extra are its options (--auth, --post, --cookie-login)."""
    host.run("mkdir -p /opt/aistack-tests && cat > " + PROBE_PATH + " <<'EOF'\n" + PROBE + "\nEOF")
    quoted = " ".join("'" + arg.replace("'", "'\\''") + "'" for arg in (hostname, str(port), path, cafile, *extra))
    cmd = host.run(f"python3 {PROBE_PATH} {quoted}")
    assert cmd.rc == 0, cmd.stderr
    return json.loads(cmd.stdout)


def created_at(host, container: str) -> float:
    """When the container was created, in Unix seconds."""
    return float(host.check_output(f"date -d \"$(docker inspect --format '{{{{.Created}}}}' {container})\" +%s"))


def assert_owner_never_claimed(host, container: str = "aistack-n8n") -> None:
    """Read the owner-claim prober's log (molecule/shared/owner_claim_probe.py, started by the
    shared prepare before the first converge): it ran before n8n existed; every HTTP answer it
    ever got through the edge was the deny router's 404 (n8n never saw the request); and n8n
    itself, asked directly on the stack network from the first request it ever answered,
    refused every claim (400: the owner it creates at startup already existed), to the last."""
    lines = [line.split() for line in host.file("/var/log/aistack-owner-probe.log").content_string.splitlines()]
    assert len(lines) >= 60, lines[-5:]
    assert int(lines[0][0]) < created_at(host, container), "the prober started after n8n"
    answers = {edge for _, edge, _ in lines if not edge.startswith("error:")}
    assert answers == {"404"}, sorted(answers)
    direct = [(int(at), outcome.removeprefix("direct:")) for at, _, outcome in lines]
    answered = [(at, outcome) for at, outcome in direct if not outcome.startswith("error:")]
    assert answered, "n8n never answered the direct claim"
    assert direct[0][1].startswith("error:"), "the prober did not start before n8n answered"
    assert all(outcome != "200" for _, outcome in answered), \
        "n8n let the prober claim its owner: " + str([entry for entry in answered if entry[1] == "200"][:5])
    # While n8n starts it answers "starting" (its placeholder page), then 404 until its REST
    # routes are mounted, and 503 to every request while its database connection is not
    # ready (Postgres restarted during the converge): none is a claim. While the fault drill
    # (fault_drill.py) has Postgres, Redis or n8n itself down, or a side effect restarts n8n
    # on purpose (both log their windows), a 5xx is what a refusal looks like; outside those
    # windows nothing but these answers may appear. A line is stamped when its two attempts
    # began, and they may take 10 s each: a window opens 20 s early.
    windows = fault_windows(host)
    during_fault = lambda at: any(start - 20 <= at <= end for start, end in windows)  # noqa: E731
    unexpected = [(at, outcome) for at, outcome in answered if outcome not in {"starting", "404", "503", "400"}
                  and not (during_fault(at) and outcome.startswith("5"))]
    assert not unexpected, f"answers outside the expected set (fault windows {windows}): {unexpected[:10]}"
    assert answered[-1][1] == "400", f"n8n's last answer was not a refusal: {answered[-5:]}"


def fault_windows(host) -> list[tuple[int, int]]:
    """The fault drill's steps (molecule/shared/fault_drill.py), as (start, end) Unix seconds."""
    log = host.file("/var/log/aistack-fault-windows.log")
    if not log.exists:
        return []
    return [(int(start), int(end)) for start, end, _ in (line.split() for line in log.content_string.splitlines())]


def assert_rate_limited_at_the_edge(answers: list, passed_status: int, burst: int = 10) -> None:
    """answers from https_probe.py --repeat: the application answered passed_status until,
    at request burst + 1 at the latest (traefik_login_rate_limit_burst), Traefik's limiter
    (its 429s carry X-Retry-In) refused every request."""
    first_refusal = next(i for i, (_, edge) in enumerate(answers) if edge)  # StopIteration: never limited
    assert 1 <= first_refusal <= burst, answers
    assert all(status == passed_status and not edge for status, edge in answers[:first_refusal]), answers
    assert all(status == 429 and edge for status, edge in answers[first_refusal:]), answers


def assert_no_docker_socket_on_the_edge(host, network: str = "aistack") -> None:
    """No container on the network Traefik serves from (Traefik included) mounts the Docker
    socket or the directory holding it: Traefik routes from files (docs/security.md)."""
    ids = host.check_output(f"docker ps -q --filter network={network}").split()
    containers = json.loads(host.check_output("docker inspect " + " ".join(ids)))
    names = {c["Name"].lstrip("/") for c in containers}
    assert "aistack-traefik" in names, names
    for container in containers:
        sources = [m.get("Source", "") for m in container["Mounts"]]
        assert not [s for s in sources if "docker.sock" in s or s.rstrip("/") in ("/var/run", "/run")], \
            (container["Name"], sources)
    config = host.file("/opt/aistack/traefik/traefik.yml").content_string
    assert "docker:" not in config and "docker.sock" not in config, "Traefik still has a Docker provider"


def container_ip(host, name: str) -> str:
    """The container's address on the edge network if it is on it, else on its first network."""
    networks = json.loads(host.check_output(f"docker inspect --format '{{{{json .NetworkSettings.Networks}}}}' {name}"))
    ordered = [networks[k] for k in ("aistack",) if k in networks] + [networks[k] for k in sorted(networks)]
    return next(net["IPAddress"] for net in ordered if net.get("IPAddress"))


def stack_networks(host) -> dict:
    """container name -> the networks it joined (by name), for every running container."""
    ids = host.check_output("docker ps -q").split()
    return {c["Name"].lstrip("/"): sorted(c["NetworkSettings"]["Networks"]) for c in
            json.loads(host.check_output("docker inspect " + " ".join(ids)))}


def connectivity(host, ports: dict) -> dict:
    """Who can open a TCP connection to whom: {source: {"target:port", ...}} for every running
    container as a source (in its own network namespace) and the targets in ports
    ({container: [port, ...]}), on every address each target has (connectivity_probe.py)."""
    ids = host.check_output("docker ps -q").split()
    containers = json.loads(host.check_output("docker inspect " + " ".join(ids)))
    sources = {c["Name"].lstrip("/"): c["State"]["Pid"] for c in containers}
    targets = {}
    for c in containers:
        name = c["Name"].lstrip("/")
        if name in ports:
            ips = [n["IPAddress"] for n in c["NetworkSettings"]["Networks"].values() if n.get("IPAddress")]
            targets[name] = {"ips": ips, "ports": ports[name]}
    host.run("mkdir -p /opt/aistack-tests && cat > " + CONNECTIVITY_PATH + " <<'EOF'\n" + CONNECTIVITY + "\nEOF")
    spec = json.dumps({"sources": sources, "targets": targets}).replace("'", "'\\''")
    cmd = host.run(f"python3 {CONNECTIVITY_PATH} '{spec}'")
    assert cmd.rc == 0, cmd.stderr
    return {source: set(hits) for source, hits in json.loads(cmd.stdout).items()}


# Images that read no VARIABLE_FILE keep these secrets in their environment
# (docs/security.md, "Secrets in the container configuration"): container name
# pattern -> secret names (under /etc/aistack/secrets) it may show.
SECRETS_IN_ENV_EXCEPTIONS = {
    r"aistack-redis": r"redis_password",  # REDISCLI_AUTH for redis-cli (health check, operators)
    r"aistack-redis-exporter": r"redis_password",
    r"aistack-flower": r"redis_password",  # its broker URL
    r"aistack-(n8n-)?(worker-[0-9]+-)?runner": r"n8n_runners_auth_token",  # the launcher reads no _FILE
    r"aistack-fastapi-.*": r"postgres_user_.*|redis_password",  # the operator's app image
    r"aistack-open-webui": r"open_webui_admin_password|open_webui_secret_key|postgres_user_open_webui",  # reads no _FILE
}


def assert_no_secret_in_container_config(host) -> None:
    """`docker inspect` of every stack container (environment, command, labels) shows no value
    stored under /etc/aistack/secrets, except the documented exceptions above; and each secret
    a service reads through VARIABLE_FILE is a file of its own, mounted read-only: owner the
    service's (non-root) user, 0400."""
    names = host.check_output("ls /etc/aistack/secrets").split()
    values = {name: secret(host, name) for name in names}
    configs = json.loads(host.check_output("docker inspect $(docker ps -q --filter label=org.aistack.role)"))
    leaks = {}
    for config in configs:
        container = config["Name"].lstrip("/")
        shown = json.dumps([config["Config"].get("Env"), config["Config"].get("Cmd"), config["Config"].get("Labels"),
                            config.get("Args")])
        found = {name for name, value in values.items() if len(value) >= 8 and value in shown}
        allowed = next((names for pattern, names in SECRETS_IN_ENV_EXCEPTIONS.items() if re.fullmatch(pattern, container)),
                       None)
        unexpected = {name for name in found if not (allowed and re.fullmatch(allowed, name))}
        if unexpected:
            leaks[container] = sorted(unexpected)
        for mount in config["Mounts"]:
            if mount["Destination"] == "/run/secrets":
                assert mount["RW"] is False, container
                for row in host.check_output(f"stat -c '%u %a %n' {mount['Source']}/*").splitlines():
                    uid, mode, path = row.split()
                    # The service's own (non-root) user; nothing else in the container reads it.
                    assert mode == "400" and uid != "0", (container, path, uid, mode)
    assert not leaks, f"secret values in docker inspect (name only): {leaks}"


def assert_no_secret_in(host, output: str, what: str, inventory: dict | None = None) -> None:
    """No value stored under /etc/aistack/secrets, nor any inventory variable named like a
    secret (…password, …token, …secret, …key), appears in output; the failure names the
    secret, never its value."""
    names = host.check_output("ls /etc/aistack/secrets").split()
    values = {f"/etc/aistack/secrets/{name}": secret(host, name) for name in names}
    values.update({f"inventory variable {key}": str(value) for key, value in (inventory or {}).items()
                   if str(key).endswith(("password", "token", "secret", "key")) and isinstance(value, str)})
    assert len(names) >= 5, names
    leaks = [name for name, value in values.items() if len(value) >= 8 and value in output]
    assert not leaks, f"secret values printed in {what}: {leaks}"
