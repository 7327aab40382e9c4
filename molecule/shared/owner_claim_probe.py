"""Try to claim n8n's owner through the public entry point, once a second, forever.

Started by the shared prepare playbook before the first converge (scenarios
that set aistack_test_owner_probe_hostname) and runs until the host is
destroyed. Each second it tries twice:

- through the edge: 127.0.0.1:443 (Traefik's published port) with SNI and Host
  for the public name, as anyone on the internet would;
- directly: n8n's main container on the stack network (its address read with
  `docker inspect` each time), with no Traefik in between. n8n creates its
  owner at startup (N8N_INSTANCE_OWNER_MANAGED_BY_ENV): from the very first
  request n8n answers, the claim must be refused, whatever happens to the
  converge afterwards (a run that fails right after n8n starts included).

One line per second: "<unix time> <edge> direct:<outcome>", each outcome an
HTTP status, "starting" (n8n's start-up placeholder page) or "error:<reason>"
(nothing listening yet, no container yet...).
The tests read the log: no attempt may ever have succeeded.

usage: owner_claim_probe.py HOSTNAME LOGFILE
"""

import http.client
import json
import socket
import ssl
import subprocess
import sys
import time

BODY = json.dumps({"email": "intruder@example.com", "firstName": "Mallory", "lastName": "Intruder",
                   "password": "Intruder-Passw0rd-123"}).encode()


def attempt(hostname: str) -> str:
    ctx = ssl._create_unverified_context()  # whatever certificate: the claim is what matters
    try:
        conn = http.client.HTTPSConnection(hostname, 443, context=ctx, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=10), server_hostname=hostname)
        conn.request("POST", "/rest/owner/setup", body=BODY, headers={"Content-Type": "application/json"})
        return str(conn.getresponse().status)
    except (OSError, http.client.HTTPException) as exc:
        return "error:" + type(exc).__name__


def direct(container: str = "aistack-n8n") -> str:
    """The claim sent straight to n8n's main process, bypassing Traefik."""
    try:
        found = subprocess.run(["docker", "inspect", "--format",
                                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return "error:" + type(exc).__name__
    addresses = found.stdout.split()
    if found.returncode != 0 or not addresses:
        return "error:NoContainer"
    try:
        conn = http.client.HTTPConnection(addresses[0], 5678, timeout=10)
        conn.request("POST", "/rest/owner/setup", body=BODY, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read(200)
        # While it starts, n8n answers every path with a 200 placeholder page: not a claim.
        if response.status == 200 and b"starting up" in body:
            return "starting"
        return str(response.status)
    except (OSError, http.client.HTTPException) as exc:
        return "error:" + type(exc).__name__


def main() -> None:
    hostname, logfile = sys.argv[1], sys.argv[2]
    while True:
        line = f"{int(time.time())} {attempt(hostname)} direct:{direct()}\n"
        with open(logfile, "a", encoding="utf-8") as log:
            log.write(line)
        time.sleep(1)


if __name__ == "__main__":
    main()
