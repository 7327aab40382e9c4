"""The state a backup must carry to another machine, read on a test host (python3 stdlib).

Prints one JSON document; the lifecycle scenario takes it on the first host
before the backup and on the restored host after, and compares:
- the certificate Traefik serves for n8n (SHA-256 of the DER) and the
  webhook's answer through Traefik;
- n8n's credential as n8n's own CLI decrypts it (with the key it runs with);
- counts of n8n's workflows, credentials and executions in Postgres;
- a digest of every row of the application's table;
- the Grafana dashboard edited through its API;
- a digest of every file under /etc/aistack/secrets.

usage: stack_facts.py [--edit]   (--edit first makes the state: rows, executions, dashboard)
"""

import base64
import hashlib
import http.client
import json
import pathlib
import socket
import ssl
import subprocess
import sys
import time

HOST = "n8n.aistack.test"
SECRETS = pathlib.Path("/etc/aistack/secrets")


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def psql(database: str, user: str, sql: str) -> str:
    return sh("docker", "exec", "aistack-postgres", "psql", "-qtAX", "-U", user, "-d", database, "-c", sql)


def tls(path: str, body: dict | None = None) -> tuple[int, str, str]:
    """Through Traefik's published 443 with SNI, as a browser would; returns status, body, cert digest."""
    ctx = ssl._create_unverified_context()  # the digest is compared instead: the same certificate
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=30), server_hostname=HOST)
    digest = hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()
    conn = http.client.HTTPSConnection(HOST, 443, context=ctx, timeout=60)
    conn.sock = sock
    conn.request("POST" if body is not None else "GET", path, body=json.dumps(body) if body is not None else None,
                 headers={"Host": HOST, "Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read().decode(errors="replace"), digest


def grafana(method: str, path: str, body: dict | None = None) -> dict:
    ip = sh("docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            "aistack-grafana").split()[0]
    password = (SECRETS / "grafana_admin_password").read_text().strip()
    conn = http.client.HTTPConnection(ip, 3000, timeout=30)
    auth = base64.b64encode(f"admin:{password}".encode()).decode()
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
    response = conn.getresponse()
    return {**json.loads(response.read() or b"{}"), "http_status": response.status}


def webhook(n: int) -> dict:
    for _ in range(60):  # the workflow registers its webhook shortly after n8n is ready
        status, text, _ = tls("/webhook/aistack-lifecycle", {"n": n})
        if status == 200:
            return json.loads(text)
        time.sleep(2)
    raise SystemExit(f"webhook answered {status}: {text[:300]}")


def edit() -> None:
    psql("app", "app", "CREATE TABLE IF NOT EXISTS notes (id integer PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL)")
    psql("app", "app", "INSERT INTO notes SELECT i, md5(i::text), now() - i * interval '1 minute' "
                       "FROM generate_series(1, 5000) AS i ON CONFLICT (id) DO NOTHING")
    for n in (2, 3, 4):
        webhook(n)
    saved = grafana("POST", "/api/dashboards/db", {"dashboard": {"uid": "aistack-lifecycle", "title": "Edited before the backup",
                                                                 "panels": [], "tags": ["lifecycle"]}, "overwrite": True})
    assert saved["http_status"] == 200, saved


def facts() -> dict:
    status, _, digest = tls("/healthz")
    exported = sh("docker", "exec", "aistack-n8n", "sh", "-c",
                  "n8n export:credentials --all --decrypted --output=/tmp/c.json >/dev/null 2>&1; "
                  "cat /tmp/c.json; rm -f /tmp/c.json")
    dashboard = grafana("GET", "/api/dashboards/uid/aistack-lifecycle")
    return {
        "certificate_sha256": digest,
        "webhook": webhook(9),
        "credentials": {c["name"]: c["data"] for c in json.loads(exported)},
        "n8n_counts": {table: int(psql("n8n", "postgres", f"SELECT count(*) FROM {table}"))
                       for table in ("workflow_entity", "credentials_entity", "execution_entity")},
        "app_rows": psql("app", "app", "SELECT count(*) || ' ' || md5(string_agg(id || ':' || body || ':' || at, ',' "
                                       "ORDER BY id)) FROM notes"),
        "grafana_dashboard": {k: dashboard.get("dashboard", {}).get(k) for k in ("uid", "title", "version", "tags")},
        "secrets": {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(SECRETS.iterdir())},
    }


if __name__ == "__main__":
    if "--edit" in sys.argv:
        edit()
    print(json.dumps(facts(), sort_keys=True))
