"""Remove a worker host under load (multi_host): its n8n workers must finish what they hold.

Run on the molecule controller. load_probe.py, inside the edge host, sends a
bounded load to a workflow that waits 6 s in the n8n worker, then runs a Code
node in the worker's task runner and answers with the runner's host name. While
it runs, the removal an operator makes (the command after `--`, e.g.
`ansible-playbook aistack.hosting.multi_host --limit HOST --tags n8n -e
n8n_enabled=false`) stops the host's n8n workers. The moment the drain starts
and ends is read from the host's Docker events (the worker container's `kill`
with SIGTERM, then its `die`).

Figures (printed and written to --report as JSON): requests sent and answered,
those in flight when the drain started and who served them, the drain's
duration. Rules (exit 1 when broken):
  - every request is answered 200 (none lost to the removal);
  - at least one request the drained host held when the drain started was
    answered by it afterwards (the test proves a drain, not an idle stop);
  - the worker stopped within its graceful-shutdown window (+10 s);
  - no n8n container is left on the host.

usage: drain.py --edge HOST --host HOST --workers HOST... --hostname n8n.example --path /webhook/x
                --report FILE [--clients 8] [--grace 30] -- REMOVAL COMMAND...
"""

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from worker_loss import load_rows, runner_hosts, served_by, sh, start_load

WORKER = "aistack-n8n-worker-1"


def docker_events(host: str, since: float, event: str) -> list[float]:
    """Times (epoch seconds) of `event` on the host's n8n worker container since `since`."""
    out = sh(host, f"docker events --since {int(since) - 1} --until {int(time.time()) + 1} "
                   f"--filter container={WORKER} --filter event={event} --format '{{{{.TimeNano}}}} {{{{json .Actor.Attributes}}}}'")
    times = []
    for line in out.splitlines():
        stamp, _, attributes = line.partition(" ")
        if event == "kill" and json.loads(attributes or "{}").get("signal") not in ("15", "SIGTERM"):
            continue
        times.append(int(stamp) / 1e9)
    return times


def main() -> None:
    argv = sys.argv[1:]
    removal = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser()
    parser.add_argument("--edge", required=True)
    parser.add_argument("--host", required=True, help="the worker host being removed")
    parser.add_argument("--workers", nargs="+", required=True, help="every live worker host, --host included")
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--grace", type=int, default=30, help="n8n_graceful_shutdown_seconds")
    parser.add_argument("--report", required=True)
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if not removal:
        parser.error("the removal command follows --")

    owners = runner_hosts(args.workers)
    started = time.time()
    # Bounded: it stops at the stop file, or after 600 s at the latest.
    out, stop = start_load(args.edge, args.hostname, args.path, args.clients, 600, "drain")
    time.sleep(10)  # both worker hosts hold executions
    run = subprocess.run(removal, capture_output=True, text=True, timeout=900)
    time.sleep(3)
    sh(args.edge, f"touch {stop}")
    rows = load_rows(args.edge, out, time.time() + 90)
    kills, deaths = docker_events(args.host, started, "kill"), docker_events(args.host, started, "die")
    left = sh(args.host, "docker ps -a --format '{{.Names}}' | grep -c '^aistack-.*\\(n8n\\|runner\\)' || true").strip()

    drain_start = kills[0] if kills else None
    drain_end = deaths[0] if deaths else None
    in_flight = [r for r in rows if drain_start and r["t0"] < drain_start < r["t1"]]
    report = {
        "clients": args.clients, "host": args.host, "removal_rc": run.returncode,
        "sent": len(rows), "ok": sum(r["status"] == "200" for r in rows),
        "failed": sum(r["status"] != "200" for r in rows),
        "statuses": dict(Counter(r["status"] for r in rows)),
        "hosts": dict(Counter(served_by(r, owners) for r in rows if r["status"] == "200")),
        "drain_seconds": round(drain_end - drain_start, 1) if drain_start and drain_end else None,
        "in_flight_at_drain": {"sent": len(in_flight), "ok": sum(r["status"] == "200" for r in in_flight),
                               "hosts": dict(Counter(served_by(r, owners) for r in in_flight if r["status"] == "200"))},
        "n8n_containers_left": int(left or 0),
    }
    Path(args.report).write_text(json.dumps(report, indent=2))
    print(f"drained {args.host} under {args.clients} clients: {report['sent']} requests, {report['ok']} answered 200, "
          f"{report['failed']} failed {report['statuses']}; served by {report['hosts']}")
    print(f"in flight when the drain started: {report['in_flight_at_drain']}; the worker stopped "
          f"{report['drain_seconds']} s after SIGTERM; n8n containers left on the host: {report['n8n_containers_left']}")
    problems = []
    if run.returncode != 0:
        problems.append(f"the removal failed (rc {run.returncode}): {run.stdout[-3000:]}{run.stderr[-1000:]}")
    if drain_start is None or drain_end is None:
        problems.append(f"no SIGTERM/exit of {WORKER} on {args.host} in its Docker events")
    if report["failed"]:
        problems.append(f"{report['failed']} request(s) failed during the removal")
    if not report["in_flight_at_drain"]["hosts"].get(args.host):
        problems.append(f"{args.host} answered none of the requests in flight when its drain started: no drain was proven")
    if report["drain_seconds"] is not None and report["drain_seconds"] > args.grace + 10:
        problems.append(f"the worker took {report['drain_seconds']} s to stop (window {args.grace} s + 10)")
    if report["n8n_containers_left"]:
        problems.append("n8n containers are left on the host")
    if problems:
        print("FAILED: " + "; ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
