#!/usr/bin/env python3
"""`make demo`: run site.yml against a local disposable host and show the result.

The host is a systemd Debian 13 container (the test kit's host image) on the
kit's network, so it pulls images through the kit's registry mirror. Ansible
reaches it with the community.docker.docker connection: no SSH needed.
"""

from __future__ import annotations

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
    probe = ("import ssl,http.client;c=http.client.HTTPSConnection('127.0.0.1',443,"
             "context=ssl._create_unverified_context());"
             f"c.request('GET','{path}',headers={{'Host':'{hostname}'}});print(c.getresponse().status)")
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
    cmd = [str(VENV_BIN / "ansible-playbook"), "site.yml", "-i", "inventories/demo"]
    print("demo: $ ansible-playbook site.yml -i inventories/demo --tags docker   # the engine first, for Pebble", flush=True)
    # Pebble's CA does not exist yet: every role's preflight runs, so leave it out of this pass.
    docker_only = [*cmd, "--tags", "docker", "-e", '{"traefik_acme_ca_certificates": []}']
    if subprocess.run(docker_only, cwd=ROOT).returncode != 0:
        print("demo: site.yml --tags docker failed", file=sys.stderr)
        return 1
    start_pebble()
    print("demo: $ ansible-playbook site.yml -i inventories/demo", flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
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
    containers = sh("docker", "exec", HOST, "docker", "ps", "--format", "{{.Names}}: {{.Status}} {{.Ports}}", check=False)
    print("  Containers        " + "\n                    ".join(containers.stdout.split("\n")).strip())
    print(f"  Dashboard         https://traefik.demo.aistack.test/dashboard/ -> HTTP "
          f"{https_status('traefik.demo.aistack.test', '/dashboard/')} without credentials "
          "(user admin, password in /etc/aistack/secrets/traefik_dashboard_password)")
    print(f"  n8n               https://n8n.demo.aistack.test/ -> readiness HTTP "
          f"{https_status('n8n.demo.aistack.test', '/healthz/readiness')} "
          "(owner owner@demo.aistack.test / Demo-Owner-Passw0rd, queue mode, 2 workers + task runners)")
    print(f"\ndemo: done in {time.monotonic() - started:.0f}s. Explore: docker exec -it {HOST} bash; "
          f"re-run: ansible-playbook site.yml -i inventories/demo; remove: make demo-clean")
    return 0


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "up"
    sys.exit(up() if action == "up" else (down() or 0))
