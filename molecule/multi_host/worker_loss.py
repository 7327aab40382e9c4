"""Worker-host loss under load (multi_host): kill a whole worker host and count what happened.

Run on the molecule controller (the test hosts are containers of its Docker
daemon). load_probe.py, inside the edge host, sends a bounded load (CLIENTS
clients, SECONDS seconds at most) to a Code-node workflow through Traefik;
8 clients by default: each client waits up to 60 s on a request the dead host
held, so with few clients all of them can be stuck past the run's end;
after --kill-after seconds the worker host is killed (`docker kill`: its
systemd, Docker Engine, n8n worker and task runner die at once, as in a power
loss). Every answer names the task runner that ran it, which names the host.
The dying processes' sockets still send their FIN or RST; --silent first cuts
the host off the network, so nothing is sent (a power cut or a lost link).

Figures (printed as a table and written to --report as JSON):
  - requests sent, answered 200, failed, before and after the kill, and in
    flight at the kill (started before the host had stopped, answered after
    the signal was sent: `docker kill` returns before the host is gone, so
    the drill waits for it with `docker wait`);
  - after the kill: which hosts served (never the dead one);
  - executions of the workflow in n8n's database (on the data host) by final
    status, and how many started in the window were lost (never finished).
Rule (exit 1 when broken): every request STARTED after the kill is answered 200.

usage: worker_loss.py --edge HOST --data HOST --victim HOST --hostname n8n.example --path /webhook/x
                      [--clients 8] [--seconds 45] [--kill-after 12] [--silent] --report FILE
"""

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = "/opt/aistack-tests/load_probe.py"


def sh(host: str, command: str, timeout: int = 120) -> str:
    return subprocess.run(["docker", "exec", host, "bash", "-c", command], check=True, capture_output=True,
                          text=True, timeout=timeout).stdout


def runner_hosts(hosts: list[str]) -> dict[str, str]:
    """Task-runner container id (its host name, 12 characters) -> the test host it runs on."""
    owners = {}
    for host in hosts:
        try:
            ids = sh(host, "docker ps -q --filter label=org.aistack.n8n-process=runner", timeout=30).split()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            continue
        owners.update({container[:12]: host for container in ids})
    return owners


def silence(victim: str) -> None:
    """Drop everything in and out of the host's network namespace (raw table, so its
    containers' forwarded packets too) before it dies: a power loss or a cut link, where
    the processes' sockets are never closed towards Redis or Postgres. Needs root."""
    pid = subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", victim],
                         check=True, capture_output=True, text=True).stdout.strip()
    for chain in ("PREROUTING", "OUTPUT"):
        subprocess.run(["nsenter", "-t", pid, "-n", "iptables", "-t", "raw", "-I", chain, "-j", "DROP"],
                       check=True, capture_output=True)


def start_load(edge: str, hostname: str, path: str, clients: int, seconds: int, name: str) -> tuple[str, str]:
    """load_probe.py in the background on the edge host; its output file and stop file."""
    subprocess.run(["docker", "cp", str(HERE.parent / "shared" / "load_probe.py"), f"{edge}:{PROBE}"], check=True)
    out, stop = f"/tmp/{name}.jsonl", f"/tmp/{name}.stop"
    sh(edge, f"rm -f {out} {stop}")
    sh(edge, f"LOAD_PROBE_BODY=1 nohup python3 {PROBE} {hostname} {path} {clients} {seconds} "
             f"{out} {stop} '{{\"seq\": 1}}' >/dev/null 2>&1 &")
    return out, stop


def load_rows(edge: str, out: str, until: float) -> list[dict]:
    """The probe's answers, once it has ended (or at `until`)."""
    while time.time() < until and "load_probe" in sh(edge, "ps -eo args"):
        time.sleep(2)
    return [json.loads(line) for line in sh(edge, f"cat {out}").splitlines() if line.strip()]


def served_by(row: dict, owners: dict[str, str]) -> str:
    """The test host whose task runner answered (from the answer's runner host name)."""
    try:
        return owners.get(json.loads(row.get("body") or "{}").get("runner", ""), "?")
    except ValueError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edge", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--victim", required=True)
    parser.add_argument("--workers", nargs="+", required=True, help="every worker host, the victim included")
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--workflow-id", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=45)
    parser.add_argument("--kill-after", type=int, default=12)
    parser.add_argument("--report", required=True)
    parser.add_argument("--silent", action="store_true",
                        help="cut the host off the network before the kill: no FIN or RST reaches anyone")
    args = parser.parse_args()

    owners = runner_hosts(args.workers)
    started = time.time()
    out, _stop = start_load(args.edge, args.hostname, args.path, args.clients, args.seconds, "worker-loss")
    time.sleep(args.kill_after)
    # The kill is a window, not an instant: `docker kill` only sends the signal, and on a
    # loaded host the worker can still take a job before it is gone. A request started
    # inside that window counts as in flight; "after" starts once the host has stopped.
    kill_sent = time.time()
    if args.silent:
        silence(args.victim)
    subprocess.run(["docker", "kill", args.victim], check=True, capture_output=True)
    subprocess.run(["docker", "wait", args.victim], check=True, capture_output=True)
    killed = time.time()
    # The probe stops by itself after --seconds; wait for its last answers (60 s timeout each).
    rows = load_rows(args.edge, out, started + args.seconds + 75)

    before = [r for r in rows if r["t1"] < kill_sent]
    in_flight = [r for r in rows if r["t0"] < killed and r["t1"] >= kill_sent]
    after = [r for r in rows if r["t0"] >= killed]
    # Let the stalled-job check settle the dead host's jobs (n8n fails them, it never re-runs one)
    # before counting executions.
    time.sleep(40)
    query = ("SELECT status, count(*) FROM execution_entity WHERE \"workflowId\" = '{wf}' "
             "AND \"createdAt\" >= to_timestamp({t0}) GROUP BY status ORDER BY status").format(wf=args.workflow_id,
                                                                                              t0=int(started))
    statuses = dict(line.split("|") for line in sh(
        args.data, f"docker exec aistack-postgres psql -qtA -U postgres -d n8n -c {json.dumps(query)}").split())
    report = {
        "clients": args.clients, "seconds": args.seconds, "kill_after": args.kill_after, "victim": args.victim,
        "kill_took_s": round(killed - kill_sent, 2), "silent": args.silent,
        "sent": len(rows),
        "before": {"sent": len(before), "ok": sum(r["status"] == "200" for r in before),
                   "hosts": dict(Counter(served_by(r, owners) for r in before if r["status"] == "200"))},
        "in_flight_at_kill": {"sent": len(in_flight), "ok": sum(r["status"] == "200" for r in in_flight),
                              "statuses": dict(Counter(r["status"] for r in in_flight))},
        "after": {"sent": len(after), "ok": sum(r["status"] == "200" for r in after),
                  "failed": sum(r["status"] != "200" for r in after),
                  "statuses": dict(Counter(r["status"] for r in after)),
                  "hosts": dict(Counter(served_by(r, owners) for r in after if r["status"] == "200")),
                  "p50_s": sorted(r["t1"] - r["t0"] for r in after)[len(after) // 2] if after else None,
                  # The slowest answer: a job the dead host's connection took waits for the stalled-job check.
                  "max_s": round(max(r["t1"] - r["t0"] for r in after), 1) if after else None},
        "executions_by_status": {k: int(v) for k, v in statuses.items()},
        "executions_lost": sum(int(v) for k, v in statuses.items() if k not in ("success", "error")),
    }
    Path(args.report).write_text(json.dumps(report, indent=2))
    how = "cut off and killed" if args.silent else "killed"
    print(f"worker host {args.victim} {how} after {args.kill_after} s of {args.clients} clients "
          f"(gone {killed - kill_sent:.2f} s after the signal; {len(rows)} requests in all)")
    print(f"{'':24}{'sent':>6}{'200':>6}  served by")
    print(f"{'before the kill':24}{len(before):>6}{report['before']['ok']:>6}  {report['before']['hosts']}")
    print(f"{'in flight at the kill':24}{len(in_flight):>6}{report['in_flight_at_kill']['ok']:>6}  "
          f"{report['in_flight_at_kill']['statuses']}")
    print(f"{'started after the kill':24}{len(after):>6}{report['after']['ok']:>6}  {report['after']['hosts']}")
    print(f"executions by status: {report['executions_by_status']}; lost (never finished): {report['executions_lost']}")
    problems = []
    if not after:
        problems.append("no request started after the kill: the run proves nothing")
    if report["after"]["failed"]:
        problems.append(f"{report['after']['failed']} request(s) started after the kill failed: {report['after']['statuses']}")
    if args.victim in report["after"]["hosts"]:
        problems.append("the killed host answered after the kill")
    if not before or args.victim not in report["before"]["hosts"]:
        problems.append(f"the victim served nothing before the kill ({report['before']['hosts']}): it was no worker")
    if problems:
        print("FAILED: " + "; ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
