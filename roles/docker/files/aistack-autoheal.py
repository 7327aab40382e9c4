"""Restart the stack's containers that Docker reports unhealthy, and report the
stack's health to monitoring.

Docker runs health checks but never acts on them outside Swarm: a container
that stays unhealthy keeps running (and, behind Traefik, drops out of its
routes). The aistack-autoheal.timer runs this every few seconds. It restarts
each running container that carries LABEL and is unhealthy, unless it started
less than MIN_UPTIME seconds ago (a container that cannot become healthy is
restarted at most once per MIN_UPTIME, never in a tight loop). One journal
line per decision.

With METRICS_DIR, each run also writes METRICS_DIR/aistack_stack.prom for
node-exporter's textfile collector: every stack container (running or not)
up or down, whether all of them are, and the boot check: how long after this
boot every container was running and healthy for the first time (remembered
in /run, which a reboot empties). The timer starts with the host, so after a
reboot monitoring learns whether the stack came back with no one acting.

usage: python3 aistack-autoheal LABEL MIN_UPTIME [METRICS_DIR] (the service runs it so: no shebang)
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

BOOT_MARK = "/run/aistack/stack-healthy-after-boot"


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def uptime(started_at: str, now: datetime.datetime) -> float:
    # "2026-11-30T21:20:01.123456789Z": seconds precision is enough here.
    started = datetime.datetime.strptime(started_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return (now - started).total_seconds()


def boot_time() -> float:
    """When PID 1 (systemd) started: the boot, on a machine and in a system container alike."""
    with open("/proc/stat", encoding="ascii") as stat:
        kernel_boot = float(next(line.split()[1] for line in stat if line.startswith("btime ")))
    with open("/proc/1/stat", encoding="ascii") as init:
        started_ticks = float(init.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
    return kernel_boot + started_ticks / os.sysconf("SC_CLK_TCK")


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def report(label: str, directory: str) -> None:
    """Write the stack's health for node-exporter's textfile collector (atomically)."""
    ids = docker("ps", "--all", "--quiet", "--filter", f"label={label}").split()
    containers = json.loads(docker("inspect", *ids)) if ids else []
    now, boot = time.time(), boot_time()
    lines = ["# HELP aistack_container_up 1 when the stack container runs and is healthy (or has no health check).",
             "# TYPE aistack_container_up gauge"]
    ups = []
    for container in sorted(containers, key=lambda c: c["Name"]):
        state = container["State"]
        health = state.get("Health", {}).get("Status", "none")
        up = state["Status"] == "running" and health in ("healthy", "none")
        ups.append(up)
        role = (container["Config"].get("Labels") or {}).get(label, "")
        lines.append(f'aistack_container_up{{container="{escape(container["Name"].lstrip("/"))}",'
                     f'role="{escape(role)}",state="{state["Status"]}",health="{health}"}} {int(up)}')
    healthy = bool(ups) and all(ups)
    if healthy and not os.path.exists(BOOT_MARK):
        os.makedirs(os.path.dirname(BOOT_MARK), exist_ok=True)
        with open(BOOT_MARK, "w", encoding="ascii") as mark:
            mark.write(f"{now - boot:.0f}\n")
        print(f"every stack container is healthy, {now - boot:.0f}s after boot")
    recovered = None
    if os.path.exists(BOOT_MARK):
        with open(BOOT_MARK, encoding="ascii") as mark:
            recovered = float(mark.read().strip() or 0)
    lines += ["# HELP aistack_stack_healthy 1 when every stack container runs and is healthy.",
              "# TYPE aistack_stack_healthy gauge", f"aistack_stack_healthy {int(healthy)}",
              "# HELP aistack_stack_containers Stack containers Docker knows (running or not).",
              "# TYPE aistack_stack_containers gauge", f"aistack_stack_containers {len(ups)}",
              "# HELP aistack_stack_boot_check_ok 1 once every stack container was healthy since the last boot.",
              "# TYPE aistack_stack_boot_check_ok gauge", f"aistack_stack_boot_check_ok {int(recovered is not None)}",
              "# HELP aistack_stack_boot_time_seconds The host's boot time (unix seconds).",
              "# TYPE aistack_stack_boot_time_seconds gauge", f"aistack_stack_boot_time_seconds {boot:.0f}",
              "# HELP aistack_stack_check_timestamp_seconds When this check last ran (unix seconds).",
              "# TYPE aistack_stack_check_timestamp_seconds gauge", f"aistack_stack_check_timestamp_seconds {now:.0f}"]
    if recovered is not None:
        lines += ["# HELP aistack_stack_healthy_after_boot_seconds Seconds from boot until every stack container "
                  "was healthy.", "# TYPE aistack_stack_healthy_after_boot_seconds gauge",
                  f"aistack_stack_healthy_after_boot_seconds {recovered:.0f}"]
    os.makedirs(directory, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=directory, prefix=".aistack_stack.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    os.chmod(temp, 0o644)
    os.replace(temp, os.path.join(directory, "aistack_stack.prom"))


def main() -> int:
    label, min_uptime = sys.argv[1], float(sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3]:
        report(label, sys.argv[3])
    ids = docker("ps", "--quiet", "--filter", "health=unhealthy", "--filter", f"label={label}").split()
    if not ids:
        return 0
    now = datetime.datetime.now(datetime.timezone.utc)
    failed = 0
    for container in json.loads(docker("inspect", *ids)):
        name = container["Name"].lstrip("/")
        up = uptime(container["State"]["StartedAt"], now)
        streak = container["State"].get("Health", {}).get("FailingStreak", 0)
        if up < min_uptime:
            print(f"{name}: unhealthy ({streak} failed checks), up {up:.0f}s < {min_uptime:.0f}s: not yet")
            continue
        print(f"{name}: unhealthy ({streak} failed checks), up {up:.0f}s: restarting")
        try:
            docker("restart", "--time", "30", container["Id"])
        except subprocess.CalledProcessError as exc:
            print(f"{name}: restart failed: {exc.stderr.strip()}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
