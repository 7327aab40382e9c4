#!/usr/bin/env python3
"""Operations benchmark on the demo host: `make bench` (after `make demo`).

Prints one table: a no-op full run of site.yml, a no-op `--tags n8n`, a
`--check` run, a converge of the stopped stack against a plain
`docker compose up -d --wait` of the same rendered files, and n8n's webhook
throughput (requests/s, p50, p99) at fixed concurrency. Not a timed test:
figures depend on the machine; docs/performance.md keeps the latest ones.

The load generator runs INSIDE the demo host and talks to Traefik on the
host's loopback (127.0.0.1:443, SNI as a browser sends it): nothing leaves
the machine and it stops after a fixed number of seconds.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from demo import ANSIBLE_ENV as DEMO_ANSIBLE_ENV  # noqa: E402  (the demo's Mitogen strategy)

# The plain Docker connection: Ansible's own linear strategy, a `docker exec` per task.
PLAIN = {"ANSIBLE_STRATEGY": "linear"}
VENV_BIN = Path(sys.executable).parent
HOST = "aistack-demo"
RECAP = re.compile(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)")
# Start order of the projects (dependencies first), as the gpu_host layout applies them.
PROJECTS = ["postgres", "redis", "traefik", "n8n", "ollama", "comfyui", "fastapi_celery", "monitoring"]

LOAD = r'''
import http.client, json, socket, ssl, sys, threading, time
host, path, clients, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
assert 1 <= clients <= 64 and 1 <= seconds <= 120, "bounded load only"
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

class Loopback(http.client.HTTPSConnection):
    # Traefik on this host's loopback, with the SNI and Host a browser would send.
    def connect(self):
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=30), server_hostname=host)

body = json.dumps({"message": "bench"}).encode()
lat, errors, lock = [], [0], threading.Lock()
end = time.monotonic() + seconds
def client():
    conn = None
    while time.monotonic() < end:
        try:
            if conn is None:
                conn = Loopback(host, 443, timeout=30)
            start = time.monotonic()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse(); resp.read()
            took = time.monotonic() - start
            with lock:
                if resp.status == 200:
                    lat.append(took)
                else:
                    errors[0] += 1
        except Exception:
            with lock:
                errors[0] += 1
            conn = None
threads = [threading.Thread(target=client) for _ in range(clients)]
began = time.monotonic()
[t.start() for t in threads]; [t.join() for t in threads]
wall = time.monotonic() - began
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
print(json.dumps({"ok": len(lat), "errors": errors[0], "rps": len(lat) / wall, "p50": pick(0.5), "p99": pick(0.99)}))
'''


def sh(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, **kwargs)


def playbook(*extra: str, env: dict | None = None) -> tuple[float, str]:
    """Run site.yml against the demo inventory with the demo's Ansible settings (`env` on top);
    seconds and a recap summary."""
    start = time.monotonic()
    inventory = [] if "-i" in extra else ["-i", "inventories/demo"]
    proc = sh([str(VENV_BIN / "ansible-playbook"), "site.yml", *inventory, *extra],
              env={**os.environ, **DEMO_ANSIBLE_ENV, **(env or {})})
    seconds = time.monotonic() - start
    found = RECAP.search(proc.stdout)
    if proc.returncode != 0 or not found:
        print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n")
        raise SystemExit(f"bench: ansible-playbook {' '.join(extra)} failed (rc {proc.returncode})")
    ok, changed, _, _, skipped = (int(n) for n in found.groups())
    return seconds, f"{changed} changed, {ok} ok, {skipped} skipped"


def in_host(script: str) -> subprocess.CompletedProcess:
    return sh(["docker", "exec", HOST, "bash", "-c", script], check=True)


def compose_all(action: str, together: bool = False) -> float:
    """`docker compose <action>` of every project on the host, in order (or all at once); seconds."""
    projects = [p for p in PROJECTS if in_host(f"test -f /opt/aistack/{p}/compose.yml && echo y || true").stdout.strip()]
    order = projects if action == "up" else list(reversed(projects))
    args = {"up": "up -d --wait --wait-timeout 600", "stop": "stop", "down": "down"}[action]
    commands = [f"(cd /opt/aistack/{name} && docker compose -p {name} {args} >/dev/null 2>&1)" for name in order]
    start = time.monotonic()
    if together:
        # Every project's `up --wait` at once (a dependency not ready yet: its dependents restart until it is).
        in_host(" & ".join(commands) + " & wait")
    else:
        for command in commands:
            in_host(command)
    return time.monotonic() - start


def converge_rows() -> list[tuple[str, str, str]]:
    """The stack stopped, then with its containers removed (volumes and files kept): brought back by plain
    Compose (in order, then all at once) and by site.yml."""
    rows = []
    for reset, state in (("stop", "stopped stack"), ("down", "containers removed, volumes kept")):
        baselines = {}
        for together in (False, True):
            compose_all(reset)
            baselines[together] = compose_all("up", together=together)
            rows.append((f"plain docker compose up -d --wait, every project {'at once' if together else 'in order'} "
                         f"({state})", f"{baselines[together]:.1f} s", ""))
        compose_all(reset)
        seconds, recap = playbook()
        ratios = [f"{seconds / plain:.2f}x the plain compose up {'all at once' if together else 'in order'}"
                  for together, plain in baselines.items()]
        rows.append((f"site.yml on the same stack ({state})", f"{seconds:.1f} s", "; ".join([recap, *ratios])))
        print(f"bench: converge ({state}) {seconds:.1f} s; {', '.join(ratios)}", flush=True)
    return rows


def ssh_into_demo() -> list[str]:
    """Make the demo host reachable over SSH as a production host is (openssh-server from
    Debian, a key of the bench's own); the arguments that point site.yml at it over SSH."""
    key = ROOT / ".cache" / "bench" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aistack-bench", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    in_host("command -v sshd >/dev/null || { apt-get update -qq && "
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; }; "
            f"install -d -m 0700 /root/.ssh && touch /root/.ssh/authorized_keys && "
            f"grep -qxF '{public}' /root/.ssh/authorized_keys || echo '{public}' >> /root/.ssh/authorized_keys; "
            "systemctl enable --now ssh >/dev/null 2>&1")
    address = sh(["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", HOST],
                 check=True).stdout.split()[0]
    # An inventory of its own (not -e: extra vars would also send localhost's delegated tasks over SSH),
    # two levels below the checkout as the demo's is, so its inventory_dir-relative paths resolve the same.
    inventory = ROOT / ".cache" / "bench-ssh"
    shutil.rmtree(inventory, ignore_errors=True)
    shutil.copytree(ROOT / "inventories" / "demo", inventory)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"]["gpu_hosts"]["hosts"][HOST] = {
        "ansible_connection": "ssh", "ansible_host": address, "ansible_user": "root",
        "ansible_python_interpreter": "/usr/bin/python3", "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    return ["-i", str(inventory)]


def mitogen_env() -> dict | None:
    """Ansible settings for Mitogen's strategy (pip package `mitogen`), or None when it is not installed."""
    found = sh([str(VENV_BIN / "python"), "-c", "import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))"])
    if found.returncode != 0:
        return None
    return {"ANSIBLE_STRATEGY_PLUGINS": f"{found.stdout.strip()}/plugins/strategy", "ANSIBLE_STRATEGY": "mitogen_linear"}


def connection_rows() -> list[tuple[str, str, str]]:
    """The same no-op run over each connection layer."""
    rows = []
    ssh = ssh_into_demo()
    # The demo host's SSH key is new each time it is made (Mitogen reads this setting, not the ssh args).
    fresh_key = {"ANSIBLE_HOST_KEY_CHECKING": "False"}
    variants = [("community.docker.docker without Mitogen", [], PLAIN),
                ("SSH, pipelining + ControlPersist (ansible.cfg)", ssh, {**fresh_key, **PLAIN}),
                ("SSH without pipelining", ssh, {**fresh_key, **PLAIN, "ANSIBLE_PIPELINING": "False"})]
    mitogen = mitogen_env()
    if mitogen:
        variants.append(("SSH with Mitogen (mitogen_linear)", ssh, {**fresh_key, **mitogen}))
        # mitogen_linear leaves community.docker.docker to the plain plugin (it maps connections by
        # short name only): the suite's strategy maps the FQCN, as its converges use it (docs/testing.md).
        # The demo's own settings (playbook() applies them): scripts/mitogen's strategy.
        variants.append(("community.docker.docker with Mitogen (the demo's, scripts/mitogen)", [], {}))
    for label, extra, env in variants:
        try:
            playbook(*extra, env=env)  # warm: ControlPersist master, fact cache
            seconds, recap = playbook(*extra, env=env)
            rows.append((f"no-op site.yml over {label}", f"{seconds:.1f} s", recap))
        except SystemExit as failed:
            rows.append((f"no-op site.yml over {label}", "failed", str(failed)))
        print(f"bench: {rows[-1]}", flush=True)
    if not mitogen:
        rows.append(("SSH with Mitogen", "not measured", "pip install mitogen into .venv to include it"))
    return rows


# The example workflows the demo imports (examples/n8n-workflows) that the load runs call:
# the "webhook -> respond" (two nodes), then the demo's round trip through the sample app.
WORKFLOWS = [("/webhook/echo", "webhook -> respond"),
             ("/webhook/app-roundtrip", "demo workflow: webhook -> sample app -> respond")]


def warm_up() -> None:
    """Five seconds of load first: JIT, connection pools and isolates (a converge just restarted n8n)."""
    load("n8n.demo.aistack.test", "/webhook/app-roundtrip", 8, 5)


def load(host: str, path: str, clients: int, seconds: int) -> dict:
    proc = sh(["docker", "exec", "-i", HOST, "python3", "-", host, path, str(clients), str(seconds)],
              input=LOAD, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# n8n throughput settings compared by --n8n-profiles, each applied with `--tags n8n`.
# "before": the settings this role used before its tuning (n8n's own defaults for
# the Postgres pool and the vm expression engine's cache, pool and timing; two
# workers of concurrency 10 whatever the host's CPUs).
N8N_PROFILES = [
    ("before (n8n's defaults)", {"n8n_workers": 2, "n8n_worker_concurrency": 10,
                                 "n8n_env_extra": {"DB_POSTGRESDB_POOL_SIZE": "2",
                                                   "N8N_EXPRESSION_ENGINE_COMPILE_CACHE": "false",
                                                   "N8N_EXPRESSION_ENGINE_POOL_SIZE": "1",
                                                   "N8N_EXPRESSION_ENGINE_OBSERVABILITY_ENABLED": "true"}}),
    ("n8n_profile: standard (the default)", {}),
    ("n8n_profile: throughput", {"n8n_profile": "throughput"}),
    ("n8n_profile: standard, n8n_mode: regular", {"n8n_mode": "regular"}),
]


def n8n_profile_rows(clients: list[int], seconds: int) -> list[tuple[str, str, str]]:
    """Each n8n setting applied in turn, warmed up, then loaded at each concurrency; the default restored."""
    rows, first = [], {}
    for label, extra in N8N_PROFILES:
        playbook("--tags", "n8n", "-e", json.dumps(extra))
        warm_up()
        for path, workflow in WORKFLOWS:
            for count in clients:
                result = load("n8n.demo.aistack.test", path, count, seconds)
                first.setdefault((path, count), result["rps"])
                rows.append((f"{workflow}, {label}, {count} clients, {seconds} s", f"{result['rps']:.1f} req/s",
                             f"{result['rps'] / first[path, count]:.2f}x before; p50 {result['p50'] * 1000:.0f} ms, "
                             f"p99 {result['p99'] * 1000:.0f} ms, {result['ok']} ok, {result['errors']} errors"))
                print(f"bench: {label}, {path}, {count} clients: {result}", flush=True)
    playbook("--tags", "n8n")
    return rows


# What a no-op run's worker time goes to (--profile): label, (file suffix, function) pairs.
PROFILE_PARTS = [
    ("waiting on the host (module round trips)", [("~", "<method 'poll' of 'select.poll' objects>")]),
    ("building module payloads (once per distinct module per run)", [("executor/module_common.py", "recursive_finder")]),
    ("template lookups (aistack.hosting.render, ansible.builtin.template)",
     [("lookup/render.py", "run"), ("lookup/template.py", "run")]),
    ("compiling Jinja templates and expressions", [("jinja2/environment.py", "compile")]),
    ("templating task arguments (all of it, the above lookups included)", [("playbook/task.py", "_post_validate_args")]),
]


def profile_rows(top: int = 12) -> list[tuple[str, str, str]]:
    """A no-op site.yml with every task's worker under cProfile: where the time goes."""
    directory = tempfile.mkdtemp(prefix="aistack-profile-")
    playbook(env={"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "benchmarks" / "callbacks"),
                  "ANSIBLE_CALLBACKS_ENABLED": "profile_workers", "AISTACK_PROFILE_DIR": directory})
    files = sorted(glob.glob(f"{directory}/*.prof"))
    stats = pstats.Stats(files[0], stream=io.StringIO())
    for path in files[1:]:
        stats.add(path)
    per_task = sorted(((pstats.Stats(path, stream=io.StringIO()).total_tt, Path(path).stem.split("-", 1)[1])
                       for path in files), reverse=True)
    total = sum(seconds for seconds, _ in per_task)
    rows = [("no-op site.yml, worker time under cProfile (~15 % overhead)", f"{total:.1f} s", f"{len(files)} tasks")]
    for label, functions in PROFILE_PARTS:
        found = [(calls, ct) for (file, _line, name), (_cc, calls, _tt, ct, _callers) in stats.stats.items()
                 if any(file.endswith(suffix) and name == function for suffix, function in functions)]
        rows.append((f"  {label}", f"{sum(ct for _, ct in found):.1f} s", f"{sum(calls for calls, _ in found)} calls"))
    rows += [(f"  task: {name.removeprefix('aistack_hosting_').replace('_', ' ')[:70]}", f"{seconds:.2f} s", "")
             for seconds, name in per_task[:top]]
    shutil.rmtree(directory, ignore_errors=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="length of each load run (default 20)")
    parser.add_argument("--clients", type=int, nargs="*", default=[8, 32], help="concurrencies (default 8 32)")
    parser.add_argument("--skip-converge", action="store_true", help="leave out the stop-and-converge comparison")
    parser.add_argument("--converge-only", action="store_true", help="only the stop-and-converge comparison")
    parser.add_argument("--connections", action="store_true",
                        help="also time the no-op run over SSH (sshd in the demo host) with and without "
                             "pipelining, and with Mitogen when installed")
    parser.add_argument("--n8n-profiles", action="store_true",
                        help="only compare n8n's throughput settings (before the tuning, standard, throughput, "
                             "regular mode), each applied with --tags n8n; the default is restored after")
    parser.add_argument("--profile", action="store_true",
                        help="only profile a no-op run: every task's worker under cProfile, then where the time "
                             "went (round trips, module builds, template lookups, Jinja) and the slowest tasks")
    args = parser.parse_args()
    if sh(["docker", "inspect", HOST]).returncode != 0:
        raise SystemExit(f"bench: no {HOST} host; run `make demo` first")
    rows: list[tuple[str, str, str]] = []
    if args.n8n_profiles:
        print_table(n8n_profile_rows(args.clients, args.seconds))
        return 0
    if args.profile:
        print_table(profile_rows())
        return 0
    if args.converge_only:
        playbook()  # settle anything a previous run left
        print_table(converge_rows())
        return 0
    playbook()  # warm the fact cache and settle anything a previous run left
    for label, extra, env in (("full no-op re-run of site.yml", (), {}), ("--tags n8n no-op", ("--tags", "n8n"), {}),
                              ("--check on the converged host", ("--check",), {}),
                              ("full no-op re-run without Mitogen (plain Docker connection)", (), PLAIN),
                              ("--tags n8n no-op without Mitogen", ("--tags", "n8n"), PLAIN)):
        seconds, recap = playbook(*extra, env=env)
        rows.append((label, f"{seconds:.1f} s", recap))
        print(f"bench: {label}: {seconds:.1f} s ({recap})", flush=True)
    if args.connections:
        rows += connection_rows()
    if not args.skip_converge:
        rows += converge_rows()
    warm_up()
    for path, label in WORKFLOWS:
        for clients in args.clients:
            result = load("n8n.demo.aistack.test", path, clients, args.seconds)
            rows.append((f"n8n webhook ({label}), {clients} clients, {args.seconds} s",
                         f"{result['rps']:.1f} req/s",
                         f"p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms, "
                         f"{result['ok']} ok, {result['errors']} errors"))
            print(f"bench: {path}, {clients} clients: {result}", flush=True)
    print_table(rows)
    return 0


def print_table(rows: list[tuple[str, str, str]]) -> None:
    cpus = sh(["nproc"]).stdout.strip()
    print(f"\n| what (demo host, {cpus} CPUs, community.docker.docker connection, Mitogen unless the row says otherwise) | time / rate | notes |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    sys.exit(main())
