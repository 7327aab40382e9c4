#!/usr/bin/env python3
"""`make demo`: run site.yml against a local disposable host and show the result.

The host is a systemd Debian 13 container (the test kit's host image) on the
kit's network, so it pulls images through the kit's registry mirror. Ansible
reaches it with the community.docker.docker connection: no SSH needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "aistack-demo"
IMAGE = "aistack-testhost:debian13"
CACHE = ROOT / ".cache" / "demo"
# Pebble (Let's Encrypt's test CA, from the image kit) answers ACME inside the
# demo host, so Traefik obtains a real certificate over HTTP-01 on port 80.
PEBBLE_CONFIG = (
    '{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",'
    ' "certificate": "test/certs/localhost/cert.pem", "privateKey": "test/certs/localhost/key.pem",'
    ' "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}'
)
NETWORK = "aistack-kit"
# The demo runs Ansible as the suite's converges do: Mitogen's linear strategy keeps one
# Python in the host instead of a `docker exec` and a fresh interpreter per task
# (scripts/mitogen; docs/performance.md: a no-op run of site.yml ~25 % faster here).
# `scripts/demo.py play [ansible-playbook args]` re-runs site.yml with the same settings.
ANSIBLE_ENV = {"ANSIBLE_STRATEGY_PLUGINS": str(ROOT / "scripts" / "mitogen"),
               "ANSIBLE_STRATEGY": "aistack_mitogen_linear"}
# What the demo inventory exposes (inventories/demo/group_vars/all.yml).
PUBLIC_URLS = (
    ("n8n.demo.aistack.test", "/healthz/readiness", "n8n: owner owner@demo.aistack.test / Demo-Owner-Passw0rd"),
    ("n8n.demo.aistack.test", "/webhook/app-roundtrip", "the demo workflow (POST JSON; GET answers 404)"),
    ("n8n.demo.aistack.test", "/webhook/echo", "webhook -> respond, the benchmark's two-node workflow (POST JSON; GET answers 404)"),
    ("app.demo.aistack.test", "/api/health", "the sample FastAPI/Celery app"),
    ("comfy.demo.aistack.test", "/system_stats", "ComfyUI (test double), basic auth: comfyui_web_password"),
    ("grafana.demo.aistack.test", "/api/health", "Grafana (test double), admin / grafana_admin_password"),
    ("traefik.demo.aistack.test", "/dashboard/", "Traefik dashboard, admin / traefik_dashboard_password"),
)
# The settings proven to boot systemd in a container on this machine (docs/testing.md).
SYSTEMD_RUN_ARGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker",
    "--cgroupns", "host", "--stop-signal", "SIGRTMIN+3", "-e", "container=docker",
]


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=check)


def down() -> None:
    sh("docker", "rm", "-f", "-v", HOST, check=False)
    print(f"demo: removed {HOST}")


def https_status(hostname: str, path: str) -> str:
    """Status of an HTTPS request through Traefik on the demo host (certificate from Pebble)."""
    # SNI as a browser sends it: Traefik refuses TLS without it (traefik_tls_sni_strict).
    probe = ("import ssl,socket,http.client;ctx=ssl._create_unverified_context();"
             f"c=http.client.HTTPSConnection('{hostname}',443,context=ctx);"
             f"c.sock=ctx.wrap_socket(socket.create_connection(('127.0.0.1',443),timeout=30),server_hostname='{hostname}');"
             f"c.request('GET','{path}');print(c.getresponse().status)")
    return sh("docker", "exec", HOST, "python3", "-c", probe, check=False).stdout.strip() or "no answer"


def start_pebble() -> None:
    """Run Pebble on the stack network and copy its HTTPS CA out for Traefik."""
    sh("docker", "exec", HOST, "sh", "-c",
       f"mkdir -p /opt/pebble && printf '%s' '{PEBBLE_CONFIG}' > /opt/pebble/pebble-config.json")
    sh("docker", "exec", HOST, "docker", "run", "-d", "--name", "pebble", "--restart", "unless-stopped",
       "--network", "aistack", "--network-alias", "pebble", "-e", "PEBBLE_VA_NOSLEEP=1",
       "-v", "/opt/pebble/pebble-config.json:/etc/pebble/pebble-config.json:ro",
       "letsencrypt/pebble:v2.6.0", "pebble", "-config", "/etc/pebble/pebble-config.json")
    CACHE.mkdir(parents=True, exist_ok=True)
    pem = sh("docker", "exec", HOST, "docker", "exec", "pebble", "cat", "/test/certs/pebble.minica.pem").stdout
    (CACHE / "pebble.minica.pem").write_text(pem)
    print("demo: started Pebble (ACME test CA) inside the host")


def up() -> int:
    started = time.monotonic()
    down()
    sh("docker", "run", "-d", "--name", HOST, "--hostname", HOST, "--network", NETWORK,
       *SYSTEMD_RUN_ARGS, IMAGE, "/lib/systemd/systemd")
    state = ""
    for _ in range(60):  # systemd's bus needs a moment before it answers
        state = sh("docker", "exec", HOST, "systemctl", "is-system-running", "--wait", check=False).stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    print(f"demo: started disposable host {HOST} ({IMAGE}), systemd {state or 'not answering'}")
    print("demo: $ ansible-playbook site.yml -i inventories/demo --tags docker   # the engine first, for Pebble", flush=True)
    # Pebble's CA does not exist yet: every role's preflight runs, so leave it out of this pass.
    if play(["--tags", "docker", "-e", '{"traefik_acme_ca_certificates": []}']) != 0:
        print("demo: site.yml --tags docker failed", file=sys.stderr)
        return 1
    start_pebble()
    print("demo: $ ansible-playbook site.yml -i inventories/demo", flush=True)
    if play([]) != 0:
        print("demo: site.yml failed", file=sys.stderr)
        return 1
    print("\ndemo: what the host runs now")
    for title, probe in (
        ("Docker engine", ["docker", "version", "--format", "{{.Server.Version}}"]),
        ("Compose plugin", ["docker", "compose", "version", "--short"]),
        ("Registry mirrors", ["docker", "info", "--format", "{{.RegistryConfig.Mirrors}}"]),
        ("Stack network", ["docker", "network", "ls", "--filter", "name=^aistack$", "--format", "{{.Name}} ({{.Driver}})"]),
    ):
        out = sh("docker", "exec", HOST, *probe, check=False)
        print(f"  {title:<17} {(out.stdout or out.stderr).strip()}")
    containers = sh("docker", "exec", HOST, "docker", "ps", "--format", "{{.Names}}: {{.Status}}", check=False)
    print("  Containers        " + "\n                    ".join(sorted(containers.stdout.split("\n"))).strip())
    print("\ndemo: public URLs through Traefik (certificates issued by Pebble), HTTP status now:")
    for hostname, path, note in PUBLIC_URLS:
        url = f"https://{hostname}{path}"
        print(f"  {url:<52} -> {https_status(hostname, path):<5} {note}")
    root = CACHE / "pebble-root.pem"
    # Pebble's issuing root (a fresh one per Pebble start), from its management API.
    pebble_ip = sh("docker", "exec", HOST, "docker", "inspect", "--format",
                   '{{(index .NetworkSettings.Networks "aistack").IPAddress}}', "pebble", check=False).stdout.strip()
    fetch = ("import ssl,urllib.request;print(urllib.request.urlopen("
             f"'https://{pebble_ip}:15000/roots/0',context=ssl._create_unverified_context()).read().decode())")
    root.write_text(sh("docker", "exec", HOST, "python3", "-c", fetch, check=False).stdout)
    address = sh("docker", "inspect", "--format",
                 f"{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}", HOST, check=False).stdout.strip()
    print(f"\ndemo: reach it from this machine: the host is {address} on Docker network {NETWORK}; e.g.")
    print(f"  curl --cacert {root.relative_to(ROOT)} --resolve n8n.demo.aistack.test:443:{address} "
          "https://n8n.demo.aistack.test/healthz/readiness")
    print(f"  or add '{address} " + " ".join(sorted({h for h, _, _ in PUBLIC_URLS})) + "' to /etc/hosts"
          " and trust that CA in your browser.")
    print("  Secrets: docker exec aistack-demo cat /etc/aistack/secrets/<name> (names listed above by the play).")
    print(f"\ndemo: done in {time.monotonic() - started:.0f}s. Explore: docker exec -it {HOST} bash; "
          f"re-run: {sys.executable} scripts/demo.py play [--tags n8n ...] (or plain "
          f"ansible-playbook site.yml -i inventories/demo, without Mitogen); remove: make demo-clean")
    return 0


def play(args: list[str]) -> int:
    """site.yml against the demo host with the demo's Ansible settings (`up` and `play`)."""
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "site.yml", "-i", "inventories/demo", *args],
                          cwd=ROOT, env={**os.environ, **ANSIBLE_ENV}).returncode


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "up"
    if action == "play":
        sys.exit(play(sys.argv[2:]))
    sys.exit(up() if action == "up" else (down() or 0))
