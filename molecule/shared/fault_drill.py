"""Fault drill: crash containers and reboot a converged test host, under load.

Run on the molecule controller (the test host is a container of the local
Docker daemon); every check runs inside the test host, through the controller's
Docker CLI.

For each container named with --crash, while load_probe.py sends a bounded
load through Traefik (--path, a Code-node workflow: Traefik, the webhook
processor, Redis, a worker, its runner and Postgres all take part):
  1. the container's main process is killed with SIGKILL from the host (a
     crash: `docker kill` would count as a manual stop, which restart policies
     honour by leaving the container down);
  2. Docker must start it again and every stack container must be healthy
     within --recover-within seconds (the moment of recovery): Docker says
     so, and each container's own health check, run by the drill at that
     moment, passes (Docker's verdict lags: n8n stays "healthy" for ten failed
     readiness probes while it answers 503 until it has reconnected to
     Postgres);
  3. load goes on for --after seconds; every request started after recovery
     must be answered (--ok, 200);
  4. a crashed dependency (--dependencies: data stores, the edge) must not
     restart any other container: its clients reconnect by themselves.

With --reboot, --queue requests are sent to a workflow that answers at once
and then waits (--queue-path): more than the workers take at a time, so some
wait in Redis. The test host is then stopped and started (its systemd shuts
down and boots as on a reboot) and, with no Ansible run:
  - every stack container must be healthy within --boot-within seconds;
  - the Code-node workflow answers 200 through Traefik;
  - every queued execution reaches a final state; the ones that had not
    started before the restart must all succeed. What n8n does with the ones
    in flight at the restart is counted, not assumed.

Prints a table and writes the figures to --report (JSON); exits 1 when a rule
above was broken, naming it.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = "/opt/aistack-tests/load_probe.py"
OWNER_PROBE = "/opt/aistack-tests/owner_claim_probe.py"
# One line per fault step, "<start> <end> <fault>" (Unix seconds): tests that watched the stack
# all along (the owner-claim prober) tell what a fault caused from what it must never see.
FAULT_WINDOWS = "/var/log/aistack-fault-windows.log"


class Drill:
    def __init__(self, args):
        self.args = args
        self.failures: list[str] = []
        self.report: dict = {"crashes": [], "reboot": None}

    def sh(self, command: str, check: bool = True, timeout: int = 120) -> str:
        proc = subprocess.run(["docker", "exec", self.args.host, "sh", "-c", command],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{command!r} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc.stdout.strip()

    def succeeds(self, command: str) -> bool:
        try:
            return subprocess.run(["docker", "exec", self.args.host, "sh", "-c", command], capture_output=True,
                                  timeout=120, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def sql(self, query: str) -> list[list[str]]:
        out = self.sh(f"docker exec aistack-postgres psql -U postgres -d {self.args.database} -qtA -F ' ' "
                      f"-c {shlex.quote(query)}")
        return [row.split(" ") for row in out.splitlines() if row]

    def stack(self) -> dict:
        """Every stack container (org.aistack.role) -> (state, health or '')."""
        rows = self.sh("docker ps -aq --filter label=org.aistack.role | xargs -r docker inspect --format "
                       "'{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}'")
        return {parts[0].lstrip("/"): (parts[1], parts[2] if len(parts) > 2 else "")
                for parts in (row.split() for row in rows.splitlines())}

    def wait_healthy(self, within: float, expected: int) -> float | None:
        """When every stack container ran healthy and passed its own health check, or None after within."""
        start = time.time()
        while time.time() - start < within:
            try:
                stack = self.stack()
                healthy = len(stack) >= expected and all(s == "running" and h in ("healthy", "")
                                                         for s, h in stack.values())
                if healthy and not self.failing_health_checks():
                    return time.time()
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            time.sleep(1)
        return None

    def failing_health_checks(self) -> list[str]:
        """Run every stack container's own health check now (its compose test, as Docker runs it);
        the containers whose check failed."""
        configs = json.loads(self.sh("docker inspect $(docker ps -q --filter label=org.aistack.role)"))
        checks = []
        for config in configs:
            test = (config["Config"].get("Healthcheck") or {}).get("Test") or ["NONE"]
            if test[0] == "NONE":
                continue
            argv = ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
            name = config["Name"].lstrip("/")
            checks.append(f"(timeout 10 docker exec {name} {shlex.join(argv)} >/dev/null 2>&1 || echo {name}) &")
        return self.sh(" ".join(checks) + " wait", timeout=60).split()

    def start_load(self, name: str, path: str, clients: int) -> tuple[str, str]:
        out, stop = f"/opt/aistack-tests/load-{name}.jsonl", f"/opt/aistack-tests/load-{name}.stop"
        self.sh(f"rm -f {out} {stop}")
        self.sh(f"nohup python3 {PROBE} {self.args.hostname} {path} {clients} 900 {out} {stop} "
                f"{shlex.quote(self.args.body)} {self.args.method} >/dev/null 2>&1 &")
        return out, stop

    def stop_load(self, out: str, stop: str) -> list[dict]:
        self.sh(f"touch {stop}")
        deadline = time.time() + 75  # a request in flight times out after 60 s
        # "[l]oad": the pattern does not match the shell running pgrep.
        pattern = f"[l]oad_probe.py .* {out}"
        while time.time() < deadline and self.sh(f"pgrep -f '{pattern}' || true"):
            time.sleep(1)
        return [json.loads(line) for line in self.sh(f"cat {out}").splitlines() if line]

    def count_executions(self, workflow: str, since: float, until: float, started_after: float = 0) -> dict:
        """Executions of workflow created between since and until (started after started_after), by status."""
        rows = self.sql(f"SELECT status, count(*) FROM execution_entity WHERE \"workflowId\" = '{workflow}' "
                        f"AND \"createdAt\" BETWEEN to_timestamp({since}) AND to_timestamp({until}) "
                        f"AND coalesce(\"startedAt\", now()) >= to_timestamp({started_after}) GROUP BY status")
        return {status: int(count) for status, count in rows}

    def send(self, count: int, path: str, timeout: int = 120) -> list[str]:
        return self.sh(f"python3 {PROBE} --send {count} {self.args.hostname} {path}", timeout=timeout).split()

    def started(self) -> dict:
        """Every stack container -> when it last started."""
        rows = self.sh("docker ps -aq --filter label=org.aistack.role | xargs -r docker inspect --format "
                       "'{{.Name}} {{.State.StartedAt}}'")
        return dict(row.lstrip("/").split() for row in rows.splitlines())

    def crash(self, container: str) -> None:
        args, expected = self.args, len(self.stack())
        others = self.started()
        out, stop = self.start_load(container, args.path, args.clients)
        time.sleep(args.before)
        started = f"docker inspect --format '{{{{.State.StartedAt}}}}' {container}"
        before = self.sh(started)
        killed_at = time.time()
        self.sh(f"kill -KILL $(docker inspect --format '{{{{.State.Pid}}}}' {container})")
        # Docker starts it again (a new StartedAt); only then can the stack be healthy again.
        while time.time() - killed_at < args.recover_within and self.sh(started) == before:
            time.sleep(0.5)
        restarted = self.sh(started) != before
        recovered_at = self.wait_healthy(args.recover_within - (time.time() - killed_at), expected)
        time.sleep(args.after)
        requests = self.stop_load(out, stop)
        if recovered_at is None:
            self.failures.append(f"{container}: the stack was not healthy {args.recover_within} s after the crash: "
                                 f"{self.stack()}")
            recovered_at = time.time()
        if not restarted:
            self.failures.append(f"{container}: Docker did not restart it after the crash")
        # After a dependency's crash the others reconnect to it; none may need a restart of its own.
        collateral = sorted(name for name, at in self.started().items() if name != container and others.get(name) != at)
        if collateral and container in args.dependencies.split(","):
            self.failures.append(f"{container}: its crash also restarted {collateral}")
        row = {"container": container, "recovery_s": round(recovered_at - killed_at, 1), "restarted": restarted,
               "also_restarted": collateral, **self.count(requests, killed_at, recovered_at, args.ok),
               "executions": self.count_executions(args.workflow, killed_at - args.before, time.time())
               if args.workflow else "n/a"}
        if row["after_failed"] or not row["after_sent"]:
            self.failures.append(f"{container}: {row['after_failed']} of {row['after_sent']} requests started after "
                                 f"recovery failed: {row['after_errors']}")
        self.report["crashes"].append(row)
        self.window(killed_at, container)

    def window(self, start: float, fault: str) -> None:
        """Record that a fault step ran from start until now."""
        self.sh(f"echo '{int(start)} {int(time.time()) + 1} {fault}' >> {FAULT_WINDOWS}")

    @staticmethod
    def count(requests: list[dict], killed_at: float, recovered_at: float, expected: str = "200") -> dict:
        def ok(r):
            return r["status"] == expected
        during = [r for r in requests if killed_at <= r["t0"] < recovered_at or r["t0"] < killed_at < r["t1"]]
        after = [r for r in requests if r["t0"] >= recovered_at]
        return {"sent": len(requests), "answered": sum(not r["status"].startswith("error:") for r in requests),
                "ok": sum(map(ok, requests)), "failed": sum(not ok(r) for r in requests),
                "failed_during": sum(not ok(r) for r in during),
                "after_sent": len(after), "after_failed": sum(not ok(r) for r in after),
                "after_errors": sorted({r["status"] for r in after if not ok(r)})}

    def reboot(self) -> None:
        args, expected = self.args, len(self.stack())
        sent_from = time.time()
        answers = self.send(args.queue, args.queue_path, timeout=600)
        accepted = answers.count("200")
        sent_until = time.time()
        subprocess.run(["docker", "stop", "--time", "180", args.host], check=True, capture_output=True, timeout=300)
        down_at = time.time()
        subprocess.run(["docker", "start", args.host], check=True, capture_output=True, timeout=300)
        booted_at = time.time()
        if args.owner_probe:  # the prober ran until the host went down: it watches the boot too
            restart = ("systemd-run --unit=aistack-owner-probe --property=Restart=always python3 "
                       f"{OWNER_PROBE} {args.owner_probe} /var/log/aistack-owner-probe.log")
            deadline = time.time() + 120  # systemd takes a moment before it accepts units
            while not self.succeeds(restart) and time.time() < deadline:
                time.sleep(1)
        healthy_at = self.wait_healthy(args.boot_within, expected)
        facts = None
        for _ in range(30):  # Traefik may still be loading the routes it had
            facts = self.send(1, args.path)[0]
            if facts == "200":
                break
            time.sleep(2)
        final = {"success", "error", "crashed", "canceled"}
        deadline, statuses = time.time() + args.queue_within, {}
        while time.time() < deadline:
            statuses = self.count_executions(args.queue_workflow, sent_from - 5, sent_until + 5)
            if sum(statuses.values()) >= accepted and set(statuses) <= final:
                break
            time.sleep(5)
        late = self.count_executions(args.queue_workflow, sent_from - 5, sent_until + 5, started_after=booted_at)
        self.report["reboot"] = {
            "queued_sent": len(answers), "queued_accepted": accepted, "queued_in_s": round(sent_until - sent_from, 1),
            "down_s": round(down_at - sent_until, 1),
            "healthy_after_boot_s": round(healthy_at - booted_at, 1) if healthy_at else None,
            "code_node_through_traefik": facts, "executions": statuses, "started_after_boot": late}
        self.window(sent_until, "reboot")
        if accepted != args.queue:
            self.failures.append(f"reboot: only {accepted} of {args.queue} queued requests were accepted: {answers}")
        if healthy_at is None:
            self.failures.append(f"reboot: not every container was healthy {args.boot_within} s after boot: {self.stack()}")
        if facts != "200":
            self.failures.append(f"reboot: the Code-node workflow answered {facts} through Traefik after boot")
        if sum(statuses.values()) != accepted or not set(statuses) <= final:
            self.failures.append(f"reboot: the queued executions did not all end: {statuses} of {accepted}")
        if not late or set(late) != {"success"}:
            self.failures.append(f"reboot: no queued execution waited out the restart, or one that did failed: {late} "
                                 f"(the {accepted} jobs were queued in {self.report['reboot']['queued_in_s']} s)")

    def table(self) -> str:
        lines = ["| fault | recovery s | sent | ok | failed (during) | after recovery: sent / failed | executions "
                 "| also restarted |", "|---|---|---|---|---|---|---|---|"]
        for row in self.report["crashes"]:
            lines.append(f"| SIGKILL {row['container']} | {row['recovery_s']} | {row['sent']} | {row['ok']} | "
                         f"{row['failed']} ({row['failed_during']}) | {row['after_sent']} / {row['after_failed']} | "
                         f"{row['executions']} | {', '.join(row['also_restarted']) or '-'} |")
        reboot = self.report["reboot"]
        if reboot:
            lines.append(f"| reboot | {reboot['healthy_after_boot_s']} (healthy after boot) | {reboot['queued_sent']} "
                         f"queued in {reboot['queued_in_s']} s | {reboot['queued_accepted']} accepted | | Code node after boot: "
                         f"{reboot['code_node_through_traefik']} | {reboot['executions']}; started after boot: "
                         f"{reboot['started_after_boot']} | |")
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="the test host container")
    parser.add_argument("--hostname", required=True, help="the public name Traefik routes")
    parser.add_argument("--path", required=True, help="POST path served by the containers crashed (e.g. an n8n "
                                                      "Code-node workflow answering when done)")
    parser.add_argument("--workflow", default="", help="its n8n workflow id: executions are counted")
    parser.add_argument("--body", default="{}", help="JSON body of each request")
    parser.add_argument("--method", default="POST", choices=["POST", "GET"])
    parser.add_argument("--ok", default="200", help="the status of a request served")
    parser.add_argument("--database", default="n8n")
    parser.add_argument("--crash", default="", help="comma-separated containers to crash, one after another")
    parser.add_argument("--dependencies", default="", help="of the crashed: those whose crash must restart no other "
                                                             "container (data stores, the edge)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--before", type=float, default=8)
    parser.add_argument("--after", type=float, default=20)
    parser.add_argument("--recover-within", type=float, default=300)
    parser.add_argument("--reboot", action="store_true")
    parser.add_argument("--queue-path", default="")
    parser.add_argument("--queue-workflow", default="")
    parser.add_argument("--queue", type=int, default=40)
    parser.add_argument("--boot-within", type=float, default=600)
    parser.add_argument("--queue-within", type=float, default=300)
    parser.add_argument("--owner-probe", default="", help="restart the owner-claim prober after boot for this name")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    subprocess.run(["docker", "exec", args.host, "mkdir", "-p", "/opt/aistack-tests"], check=True)
    subprocess.run(["docker", "cp", str(HERE / "load_probe.py"), f"{args.host}:{PROBE}"], check=True)
    drill = Drill(args)
    # Appended to, never emptied: a side effect logs its planned restarts there too.
    for container in filter(None, args.crash.split(",")):
        drill.crash(container)
    if args.reboot:
        drill.reboot()
    Path(args.report).write_text(json.dumps({**drill.report, "failures": drill.failures}, indent=1))
    print(drill.table())
    for failure in drill.failures:
        print("FAIL:", failure)
    sys.exit(1 if drill.failures else 0)


if __name__ == "__main__":
    main()
