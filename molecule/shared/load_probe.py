"""A bounded load generator run INSIDE a test host (python3 stdlib only).

CLIENTS threads send METHOD (POST) BODY to https://HOSTNAME/PATH through Traefik's published
port on 127.0.0.1 (SNI and Host for the public name, as a client on the
internet), one request at a time each, until STOPFILE exists or SECONDS have
passed. Every request is one JSON line in OUTFILE: {"t0": start, "t1": end,
"status": HTTP status or "error:<reason>"}, plus "body" (its first 300
characters) when LOAD_PROBE_BODY=1. The fault drills (fault_drill.py,
multi_host's worker_loss.py) read it to count what was answered before,
during and after a fault.

usage: load_probe.py HOSTNAME PATH CLIENTS SECONDS OUTFILE STOPFILE [BODY [METHOD]]
       load_probe.py --send N HOSTNAME PATH   (N requests, 8 at a time; prints each status)
"""

import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def post(hostname: str, path: str, body: bytes, method: str = "POST") -> str:
    return request(hostname, path, body, method)[0]


def request(hostname: str, path: str, body: bytes, method: str = "POST") -> tuple[str, str]:
    """(HTTP status or "error:<reason>", the start of the answer)."""
    ctx = ssl._create_unverified_context()  # availability is measured here, not the certificate
    try:
        conn = http.client.HTTPSConnection(hostname, 443, context=ctx, timeout=60)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=60), server_hostname=hostname)
        conn.request(method, path, body=body if method == "POST" else None,
                     headers={"Host": hostname, "Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()
        return str(response.status), answer[:300].decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return "error:" + type(exc).__name__, ""


def main() -> None:
    if sys.argv[1] == "--send":
        count, hostname, path = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        # Eight at a time: the reboot drill must queue more jobs than the workers take
        # before the first ones end (its workflow waits 30 s); one after another on a
        # loaded host took long enough for the workers to start them all.
        with ThreadPoolExecutor(max_workers=8) as pool:
            print(" ".join(pool.map(lambda _: post(hostname, path, b"{}"), range(count))))
        return
    hostname, path, clients, seconds, outfile, stopfile = sys.argv[1:7]
    body = (sys.argv[7] if len(sys.argv) > 7 else "{}").encode()
    method = sys.argv[8] if len(sys.argv) > 8 else "POST"
    deadline = time.time() + float(seconds)
    lock = threading.Lock()
    keep_body = os.environ.get("LOAD_PROBE_BODY") == "1"

    def client() -> None:
        while time.time() < deadline and not os.path.exists(stopfile):
            t0 = time.time()
            status, answer = request(hostname, path, body, method)
            record = {"t0": t0, "t1": time.time(), "status": status}
            if keep_body:
                record["body"] = answer
            line = json.dumps(record) + "\n"
            with lock, open(outfile, "a", encoding="utf-8") as out:
                out.write(line)
            if status.startswith("error:"):
                time.sleep(0.2)  # nothing listening: do not spin

    threads = [threading.Thread(target=client) for _ in range(int(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
