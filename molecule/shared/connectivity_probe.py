"""Who can open a TCP connection to whom: run on a test host as root.

Input (argv[1], JSON): {"sources": {name: pid}, "targets": {name: {"ips": [...], "ports": [...]}}}.
For each source, enters the network namespace of its process (nsenter) and tries
every target port on every address the target has, all at once with a short
timeout. Output (stdout, JSON): {source: ["target:port", ...]} with what connected.
"""

import json
import subprocess
import sys

CONNECT = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
targets = json.loads(sys.argv[1])

def attempt(item):
    name, ip, port = item
    try:
        with socket.create_connection((ip, port), timeout=1.5):
            return f"{name}:{port}"
    except OSError:
        return None

items = [(name, ip, port) for name, t in targets.items() for ip in t["ips"] for port in t["ports"]]
with ThreadPoolExecutor(max_workers=64) as pool:
    print(json.dumps(sorted({hit for hit in pool.map(attempt, items) if hit})))
"""


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = {}
    for source, pid in sorted(spec["sources"].items()):
        proc = subprocess.run(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", CONNECT, json.dumps(spec["targets"])],
                              capture_output=True, text=True, timeout=120, check=True)
        result[source] = json.loads(proc.stdout)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
