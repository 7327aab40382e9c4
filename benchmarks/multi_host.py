#!/usr/bin/env python3
"""Webhook throughput with one vs two n8n worker hosts: `make bench-multi-host`.

Runs on the molecule multi_host hosts after `molecule converge -s multi_host`
(edge, data, worker1, gpu: worker1 and gpu are both n8n worker hosts, one
worker each). The same bounded load (CLIENTS clients for SECONDS seconds,
from inside the edge host through Traefik to a Code-node workflow, so the task
runners work too) is sent twice:
  - with the n8n workers of both worker hosts;
  - with worker1's n8n worker (and its runner) stopped: one worker host.
Prints requests/s, p50 and p99 for each and the ratio two/one, and writes them
to .cache/bench-multi-host.json. worker1's worker is started again at the end.

--worker-loss then kills the worker1 host under load (molecule/multi_host/
worker_loss.py, the scenario's drill: 8 clients, the kill 12 s in, 45 s in
all) and keeps its figures (requests before, in flight at and after the kill,
who served them, executions by status) in the same file. It leaves worker1
dead: `molecule destroy -s multi_host` afterwards.

Not a timed test: the figures depend on the machine. On this project's CI kind
every test host shares the same two cores, so a second worker host adds
executors, not CPU: docs/multi_host.md says what the ratio means there.
usage: benchmarks/multi_host.py [CLIENTS] [SECONDS] [--worker-loss]   (defaults 8 and 40)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = "/opt/aistack-tests/load_probe.py"
EDGE, WORKER = "aistack-multi-edge", "aistack-multi-worker1"
HOSTNAME, PATH = "n8n.aistack.test", "/webhook/multi-host-where"


def sh(host: str, script: str, timeout: int = 300) -> str:
    return subprocess.run(["docker", "exec", host, "bash", "-c", script], check=True, text=True, capture_output=True,
                          timeout=timeout).stdout


def load(clients: int, seconds: int) -> dict:
    out, stop = "/tmp/bench-multi.jsonl", "/tmp/bench-multi.stop"
    sh(EDGE, f"rm -f {out} {stop}")
    sh(EDGE, f"python3 {PROBE} {HOSTNAME} {PATH} {clients} {seconds} {out} {stop}", timeout=seconds + 120)
    rows = [json.loads(line) for line in sh(EDGE, f"cat {out}").splitlines() if line.strip()]
    ok = sorted(r["t1"] - r["t0"] for r in rows if r["status"] == "200")
    span = max(r["t1"] for r in rows) - min(r["t0"] for r in rows)
    return {"requests": len(rows), "ok": len(ok), "per_second": round(len(ok) / span, 2),
            "p50_s": round(ok[len(ok) // 2], 3) if ok else None,
            "p99_s": round(ok[min(len(ok) - 1, int(len(ok) * 0.99))], 3) if ok else None}


def worker_loss() -> dict:
    """The scenario's worker-loss drill against the converged hosts; its report."""
    report = ROOT / ".cache" / "bench-multi-host-worker-loss.json"
    subprocess.run([sys.executable, str(ROOT / "molecule" / "multi_host" / "worker_loss.py"), "--edge", EDGE,
                    "--data", "aistack-multi-data", "--victim", WORKER, "--workers", WORKER, "aistack-multi-gpu",
                    "--hostname", HOSTNAME, "--path", PATH, "--workflow-id", "aistackMultiWhere",
                    "--report", str(report)], check=False)
    return json.loads(report.read_text())


def main() -> None:
    flags = [arg for arg in sys.argv[1:] if arg.startswith("--")]
    positional = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    clients = int(positional[0]) if positional else 8
    seconds = int(positional[1]) if len(positional) > 1 else 40
    sh(EDGE, f"mkdir -p {Path(PROBE).parent}")  # after a bare converge nothing has made it yet
    subprocess.run(["docker", "cp", str(ROOT / "molecule" / "shared" / "load_probe.py"), f"{EDGE}:{PROBE}"], check=True)
    load(2, 5)  # warm-up: compiled workflow, connections
    two = load(clients, seconds)
    sh(WORKER, "docker stop aistack-worker-1-runner aistack-n8n-worker-1 >/dev/null")
    try:
        time.sleep(5)
        one = load(clients, seconds)
    finally:
        # Compose starts them again and waits until they are healthy (registered with the queue)
        # before anything else is measured.
        sh(WORKER, "docker compose --project-directory /opt/aistack/n8n -p n8n up -d --wait --wait-timeout 120 >/dev/null",
           timeout=180)
    ratio = round(two["per_second"] / one["per_second"], 2) if one["per_second"] else None
    print(f"webhook -> Code node -> respond, {clients} clients, {seconds} s each, through Traefik on {EDGE}")
    print(f"{'worker hosts':<14}{'req/s':>8}{'p50 s':>8}{'p99 s':>8}{'ok/sent':>12}")
    for label, row in (("two", two), ("one", one)):
        print(f"{label:<14}{row['per_second']:>8}{row['p50_s']:>8}{row['p99_s']:>8}{row['ok']:>6}/{row['requests']:<5}")
    print(f"ratio two/one: {ratio}")
    (ROOT / ".cache").mkdir(exist_ok=True)
    figures = {"clients": clients, "seconds": seconds, "two": two, "one": one, "ratio": ratio}
    if "--worker-loss" in flags:
        figures["worker_loss"] = worker_loss()  # prints its own table
    (ROOT / ".cache" / "bench-multi-host.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
