#!/usr/bin/env python3
"""Backup and restore benchmark on the demo host: `make bench-backup` (after `make demo`).

Prints one table for the demo data set:
- a backup run (`aistack-backup run` to the demo's local restic repository):
  wall time, bytes covered, bytes added, repository size;
- the restore drill (`aistack-backup check`): wall time;
- a disaster and its recovery (RTO): every Compose project is taken down with
  its volumes, /etc/aistack and /opt/aistack are deleted, then
  `playbooks/restore.yml` brings the layout back from the latest snapshot;
  wall time until the play ends and n8n answers through Traefik.
RPO is the backup schedule's interval (backup_schedule, daily by default).

Not a timed test: figures depend on the machine; docs/backup.md keeps the
latest ones. The demo's Docker engine and images survive the "disaster" (the
repository is on the same disk), so the RTO here excludes installing Docker
and pulling images, which a brand-new machine adds (see the lifecycle
scenario for a restore onto another host).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "aistack-demo"


def on_host(script: str) -> str:
    return subprocess.run(["docker", "exec", HOST, "sh", "-ec", script], check=True, text=True,
                          capture_output=True).stdout


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.monotonic()
    result = subprocess.run(argv, cwd=ROOT, text=True, capture_output=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - start, result.stdout


def metric(name: str) -> float:
    text = on_host("cat /var/lib/aistack/metrics/aistack_backup.prom")
    return float(re.search(rf'^{name}{{target="local"}} (\S+)$', text, re.M).group(1))


def main() -> int:
    if subprocess.run(["docker", "inspect", HOST], capture_output=True).returncode != 0:
        sys.exit("no demo host: run `make demo` first")
    rows = []
    seconds, out = timed(["docker", "exec", HOST, "/usr/local/sbin/aistack-backup", "run"])
    repo = int(on_host("du -sb /var/backups/aistack/restic | cut -f1"))
    rows += [("backup run (local repository)", f"{seconds:.1f} s", out.strip().splitlines()[-1]),
             ("  bytes covered / added", f"{metric('aistack_backup_processed_bytes') / 1e6:.1f} MB / "
                                         f"{metric('aistack_backup_added_bytes') / 1e6:.1f} MB", ""),
             ("  repository size", f"{repo / 1e6:.1f} MB", "all snapshots kept, compressed and deduplicated")]
    seconds, out = timed(["docker", "exec", HOST, "/usr/local/sbin/aistack-backup", "check"])
    rows.append(("restore drill (check + test restore)", f"{seconds:.1f} s", out.strip().splitlines()[-1]))

    print("disaster: every project down with its volumes, /etc/aistack and /opt/aistack deleted", flush=True)
    on_host("for f in /opt/aistack/*/compose.yml; do docker compose -f \"$f\" down --volumes --remove-orphans; done; "
            "rm -rf /etc/aistack /opt/aistack")
    seconds, out = timed([str(VENV_BIN / "ansible-playbook"), "playbooks/restore.yml", "-i", "inventories/demo"])
    recap = re.search(r"aistack-demo\s*:\s*(ok=\d+\s+changed=\d+\s+unreachable=\d+\s+failed=\d+)", out)
    probe = ("import ssl,socket,http.client;ctx=ssl._create_unverified_context();"
             "c=http.client.HTTPSConnection('n8n.demo.aistack.test',context=ctx);"
             "c.sock=ctx.wrap_socket(socket.create_connection(('127.0.0.1',443)),server_hostname='n8n.demo.aistack.test');"
             "c.request('GET','/healthz/readiness',headers={'Host':'n8n.demo.aistack.test'});print(c.getresponse().status)")
    status = on_host(f"python3 -c \"{probe}\"").strip()
    rows.append(("restore of the whole layout (RTO)", f"{seconds:.0f} s",
                 f"{recap.group(1) if recap else '?'}; n8n readiness through Traefik: {status}"))
    rows.append(("RPO", "24 h", "the backup_schedule interval (daily)"))

    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>14}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")
    print(json.dumps({name.strip(): value for name, value, _ in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
