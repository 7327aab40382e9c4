"""Try to claim n8n's owner through the public entry point, once a second, forever.

Started by the shared prepare playbook before the first converge (scenarios
that set aistack_test_owner_probe_hostname) and runs until the host is
destroyed. Connects to 127.0.0.1:443 (Traefik's published port) with SNI and
Host for the public name, as anyone on the internet would, and appends one
line per attempt to the log: "<unix time> <HTTP status>" or "<unix time>
error:<reason>" (nothing listening yet, no certificate yet...). The tests read
the log: no attempt may ever have succeeded.

usage: owner_claim_probe.py HOSTNAME LOGFILE
"""

import http.client
import json
import socket
import ssl
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


def main() -> None:
    hostname, logfile = sys.argv[1], sys.argv[2]
    while True:
        line = f"{int(time.time())} {attempt(hostname)}\n"
        with open(logfile, "a", encoding="utf-8") as log:
            log.write(line)
        time.sleep(1)


if __name__ == "__main__":
    main()
