"""Restart the stack's containers that Docker reports unhealthy.

Docker runs health checks but never acts on them outside Swarm: a container
that stays unhealthy keeps running (and, behind Traefik, drops out of its
routes). The aistack-autoheal.timer runs this every few seconds. It restarts
each running container that carries LABEL and is unhealthy, unless it started
less than MIN_UPTIME seconds ago (a container that cannot become healthy is
restarted at most once per MIN_UPTIME, never in a tight loop). One journal
line per decision.

usage: python3 aistack-autoheal LABEL MIN_UPTIME (the service runs it so: no shebang)
"""

import datetime
import json
import subprocess
import sys


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def uptime(started_at: str, now: datetime.datetime) -> float:
    # "2026-11-30T21:20:01.123456789Z": seconds precision is enough here.
    started = datetime.datetime.strptime(started_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return (now - started).total_seconds()


def main() -> int:
    label, min_uptime = sys.argv[1], float(sys.argv[2])
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
