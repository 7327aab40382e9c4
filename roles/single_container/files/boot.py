"""Entrypoint of the single_container image (n8n + agent + reverse proxy under supervisord).

``boot.py`` (default, the image's entrypoint, runs as UID 1000):

1. derives n8n's public URLs from ``AISTACK_PUBLIC_URL``, else ``SPACE_HOST``
   (set by Hugging Face Spaces), else ``http://localhost:<AISTACK_PORT>/``:
   ``N8N_WEBHOOK_URL`` / ``WEBHOOK_URL``, ``N8N_EDITOR_BASE_URL``, ``N8N_HOST``, ``N8N_PROTOCOL``
   (values already in the environment win);
2. refuses to start without ``N8N_ENCRYPTION_KEY`` (a key n8n generates itself
   would live on the ephemeral disk, and every credential with it) and without
   the owner account ``AISTACK_OWNER_EMAIL`` / ``AISTACK_OWNER_PASSWORD`` (n8n's
   password rules: 8-64 characters, a digit, an upper-case letter);
3. with SQLite, on a new database (no ``database.sqlite`` yet: a fresh Space
   disk), re-imports the last export from ``AISTACK_BACKUP_DIR``;
4. imports the workflows baked into the image (``AISTACK_WORKFLOWS_DIR``) and
   the credentials from the ``N8N_CREDENTIALS_JSON`` secret, when they changed
   since the last boot (a digest is kept in the n8n folder), and publishes
   (activates) the workflows whose JSON says ``"active": true``;
5. replaces itself with supervisord.

``boot.py proxy``: supervisord's ``proxy`` program. Waits until n8n answers on
127.0.0.1, creates the owner account (``POST /rest/owner/setup``) when n8n still
offers its first-run setup, confirms n8n no longer does (and that the owner
credentials log in), and only then replaces itself with nginx: the public port
stays closed until the owner exists, so nobody can claim the instance.

``boot.py export``: run by the n8n program after n8n stopped (SQLite only):
exports every workflow and credential (encrypted) to ``AISTACK_BACKUP_DIR``,
replacing the previous export atomically.

``boot.py health``: the container health check (the proxy, n8n readiness and
the agent, all through the one public port).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, MutableMapping, Sequence
from urllib.parse import urlsplit

Runner = Callable[[Sequence[str]], int]
# (method, URL path, JSON body or None) -> (HTTP status, decoded JSON body or None)
Http = Callable[[str, str, "dict | None"], "tuple[int, object]"]

SUPERVISORD_CONF = "/opt/aistack/supervisord.conf"
NGINX_CONF = "/opt/aistack/nginx.conf"
STAMP_NAME = ".aistack-seed.sha256"
FULL_ICU = "/usr/local/lib/node_modules/full-icu"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def log(message: str) -> None:
    """One line on stderr (the container log)."""
    print(f"aistack-boot: {message}", file=sys.stderr, flush=True)


def public_url(env: Mapping[str, str]) -> str:
    """The URL the world reaches the container's one port at, with a trailing slash."""
    url = env.get("AISTACK_PUBLIC_URL", "").strip()
    if not url and env.get("SPACE_HOST", "").strip():
        url = "https://" + env["SPACE_HOST"].strip()
    if not url:
        url = f"http://localhost:{env.get('AISTACK_PORT', '7860')}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"public URL {url!r} is not an http(s) URL (AISTACK_PUBLIC_URL / SPACE_HOST)")
    return url.rstrip("/") + "/"


def n8n_url_env(env: Mapping[str, str]) -> dict[str, str]:
    """n8n's URL settings derived from the public URL (only those not set already)."""
    url = public_url(env)
    parts = urlsplit(url)
    derived = {
        # N8N_WEBHOOK_URL is n8n 2.x's name, WEBHOOK_URL the older one (both kept).
        "N8N_WEBHOOK_URL": url,
        "WEBHOOK_URL": url,
        "N8N_EDITOR_BASE_URL": url,
        "N8N_HOST": parts.hostname or "localhost",
        "N8N_PROTOCOL": parts.scheme,
    }
    if parts.scheme == "http":
        # Browsers drop Secure cookies on plain HTTP: the login would not stick.
        derived["N8N_SECURE_COOKIE"] = "false"
    return {key: value for key, value in derived.items() if not env.get(key)}


def n8n_folder(env: Mapping[str, str]) -> Path:
    """n8n's data folder (``$N8N_USER_FOLDER/.n8n``)."""
    return Path(env.get("N8N_USER_FOLDER") or env.get("HOME") or "/home/node") / ".n8n"


def uses_sqlite(env: Mapping[str, str]) -> bool:
    """True unless n8n is told to use Postgres."""
    return env.get("DB_TYPE", "sqlite") in ("", "sqlite")


def backup_dir(env: Mapping[str, str]) -> Path:
    """Where the SQLite export goes at shutdown and comes back from at boot."""
    return Path(env.get("AISTACK_BACKUP_DIR") or n8n_folder(env) / "backup")


def read_workflows(directory: Path) -> list[tuple[Path, dict]]:
    """The workflow objects of the *.json files of a directory (a file may hold one or a list)."""
    found: list[tuple[Path, dict]] = []
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.json")):
        content = json.loads(path.read_text())
        for workflow in content if isinstance(content, list) else [content]:
            if not isinstance(workflow, dict) or not workflow.get("id"):
                raise ValueError(f"{path}: every workflow needs a stable \"id\" (import is an upsert by id)")
            found.append((path, workflow))
    return found


def active_ids(workflows: Sequence[tuple[Path, dict]]) -> list[str]:
    """Ids of the workflows to publish (activate), in file order, without duplicates."""
    ids: list[str] = []
    for _name, workflow in workflows:
        if workflow.get("active") and str(workflow["id"]) not in ids:
            ids.append(str(workflow["id"]))
    return ids


def credentials_from_env(env: Mapping[str, str]) -> list[dict]:
    """Credentials from the ``N8N_CREDENTIALS_JSON`` secret: a JSON list of {id, name, type, data}."""
    raw = env.get("N8N_CREDENTIALS_JSON", "").strip()
    if not raw:
        return []
    try:
        credentials = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"N8N_CREDENTIALS_JSON is not JSON: {exc.msg}") from None
    if not isinstance(credentials, list) or not all(
        isinstance(c, dict) and {"id", "name", "type", "data"} <= c.keys() for c in credentials
    ):
        raise ValueError("N8N_CREDENTIALS_JSON must be a JSON list of objects with id, name, type and data")
    return credentials


def seed_digest(workflows: Sequence[tuple[Path, dict]], credentials: Sequence[dict]) -> str:
    """A digest over what the boot seeds (so an unchanged seed is not imported again)."""
    payload = json.dumps([[w for _name, w in workflows], list(credentials)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def run_n8n(runner: Runner, *args: str) -> None:
    """Run one n8n CLI command; raise when it fails."""
    code = runner(["n8n", *args])
    if code != 0:
        raise RuntimeError(f"`n8n {' '.join(a for a in args if not a.startswith('--input'))}` failed ({code})")


def restore_backup(env: Mapping[str, str], runner: Runner) -> list[str]:
    """Re-import the last export into a new SQLite database; return the workflow ids to publish."""
    if not uses_sqlite(env) or (n8n_folder(env) / "database.sqlite").exists():
        return []
    backup = backup_dir(env)
    workflows = read_workflows(backup / "workflows")
    if workflows:
        log(f"new database: re-importing {len(workflows)} workflow(s) from {backup}")
        run_n8n(runner, "import:workflow", "--separate", f"--input={backup / 'workflows'}")
    if any((backup / "credentials").glob("*.json")):
        log(f"new database: re-importing credentials from {backup}")
        run_n8n(runner, "import:credentials", "--separate", f"--input={backup / 'credentials'}")
    return active_ids(workflows)


def import_seed(env: Mapping[str, str], runner: Runner, force: bool) -> list[str]:
    """Import the image's workflows and the secret credentials when changed; return ids to publish."""
    workflows = read_workflows(Path(env.get("AISTACK_WORKFLOWS_DIR", "/opt/aistack/workflows")))
    credentials = credentials_from_env(env)
    stamp = n8n_folder(env) / STAMP_NAME
    digest = seed_digest(workflows, credentials)
    if not force and stamp.exists() and stamp.read_text().strip() == digest:
        log("seed workflows and credentials unchanged since the last boot")
        return []
    if credentials:
        # n8n encrypts plain `data` objects on import; the file never outlives the import.
        with tempfile.TemporaryDirectory(prefix="aistack-creds-") as tmp:
            path = Path(tmp) / "credentials.json"
            path.touch(mode=0o600)
            path.write_text(json.dumps(credentials))
            log(f"importing {len(credentials)} credential(s) from N8N_CREDENTIALS_JSON")
            run_n8n(runner, "import:credentials", f"--input={path}")
    if workflows:
        log(f"importing {len(workflows)} workflow(s) from the image")
        run_n8n(runner, "import:workflow", "--separate", f"--input={workflows[0][0].parent}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    return active_ids(workflows)


def owner_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The owner account from ``AISTACK_OWNER_*``; raise when missing or n8n would reject it."""
    email = env.get("AISTACK_OWNER_EMAIL", "").strip()
    password = env.get("AISTACK_OWNER_PASSWORD", "")
    if not email or not password:
        raise ValueError("AISTACK_OWNER_EMAIL and AISTACK_OWNER_PASSWORD are not both set: set them as secrets "
                         "(the owner account is created at boot, before the public port opens, so that "
                         "nobody else can claim this n8n)")
    if not EMAIL.match(email):
        raise ValueError(f"AISTACK_OWNER_EMAIL ({email!r}) is not an e-mail address")
    if not (8 <= len(password) <= 64 and re.search(r"[0-9]", password) and re.search(r"[A-Z]", password)):
        raise ValueError("AISTACK_OWNER_PASSWORD does not meet n8n's rules: 8-64 characters with at least "
                         "one digit and one upper-case letter")
    return {"email": email, "password": password,
            "firstName": env.get("AISTACK_OWNER_FIRST_NAME", "").strip() or "Owner",
            "lastName": env.get("AISTACK_OWNER_LAST_NAME", "").strip() or "aistack"}


def boot(env: MutableMapping[str, str], runner: Runner) -> None:
    """Steps 1-4 of the module docstring (everything before supervisord)."""
    env.update(n8n_url_env(env))
    log(f"public URL {env['WEBHOOK_URL']} ({'SQLite' if uses_sqlite(env) else 'Postgres'})")
    if not env.get("N8N_ENCRYPTION_KEY"):
        raise ValueError("N8N_ENCRYPTION_KEY is not set: set it as a secret (it encrypts every credential "
                         "and must survive restarts)")
    owner_from_env(env)
    # The official image sets NODE_ICU_DATA for its full-icu package; an n8n
    # image without that package (Node's built-in ICU) must not point at it.
    if not env.get("NODE_ICU_DATA") and Path(FULL_ICU).is_dir():
        env["NODE_ICU_DATA"] = FULL_ICU
    restored = restore_backup(env, runner)
    to_publish = restored + [i for i in import_seed(env, runner, force=bool(restored)) if i not in restored]
    for workflow_id in to_publish:
        log(f"publishing workflow {workflow_id}")
        run_n8n(runner, "publish:workflow", f"--id={workflow_id}")


def export(env: Mapping[str, str], runner: Runner) -> None:
    """Export every workflow and credential (SQLite only), replacing the last export atomically."""
    if not uses_sqlite(env):
        return
    backup = backup_dir(env)
    backup.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=backup.parent))
    try:
        for kind in ("workflow", "credentials"):
            out = staging / ("workflows" if kind == "workflow" else "credentials")
            out.mkdir()
            if runner(["n8n", f"export:{kind}", "--all", "--separate", f"--output={out}/"]) != 0:
                # Nothing to export (n8n fails on "none found") or a real failure:
                # either way the previous export of this kind is kept, not lost.
                log(f"export:{kind} failed or found nothing: keeping the previous {out.name} export")
                shutil.rmtree(out)
                if (backup / out.name).is_dir():
                    shutil.copytree(backup / out.name, out)
                else:
                    out.mkdir()
        old = backup.with_name(backup.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if backup.exists():
            backup.rename(old)
        staging.rename(backup)
        shutil.rmtree(old, ignore_errors=True)
        log(f"exported workflows and credentials to {backup}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def health(env: Mapping[str, str], timeout: float = 5.0) -> bool:
    """The proxy answers on the public port, n8n is ready and the agent is up."""
    base = f"http://127.0.0.1:{env.get('AISTACK_PORT', '7860')}"
    for path in ("/healthz/readiness", "/agent/health"):
        try:
            with urllib.request.urlopen(base + path, timeout=timeout) as response:  # noqa: S310 (fixed URL)
                if response.status != 200:
                    return False
        except OSError:
            return False
    return True


def n8n_http(env: Mapping[str, str], timeout: float = 30.0) -> Http:
    """A JSON client for n8n on loopback (no proxies: it is this container's n8n)."""
    base = f"http://127.0.0.1:{env.get('N8N_PORT', '5678')}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with opener.open(request, timeout=timeout) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, None
    return call


def setup_pending(http: Http) -> bool | None:
    """Whether n8n still offers its first-run owner setup; None while n8n does not answer yet."""
    try:
        status, body = http("GET", "/rest/settings", None)
    except OSError:
        return None
    if status != 200 or not isinstance(body, dict):
        return None
    settings = body.get("data", body)
    management = settings.get("userManagement") if isinstance(settings, dict) else None
    if not isinstance(management, dict) or "showSetupOnFirstLoad" not in management:
        return None
    return bool(management["showSetupOnFirstLoad"])


def ensure_owner(owner: Mapping[str, str], http: Http, timeout: float = 900.0, interval: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> bool:
    """Create n8n's owner account unless it exists; return True when created here.

    Waits (up to ``timeout`` seconds) until n8n answers ``/rest/settings``;
    raises RuntimeError when n8n never answers, refuses the setup, or still
    offers the setup afterwards. A login failure with existing credentials is
    only logged: the owner exists (nobody can claim it), its password was
    changed in n8n.
    """
    deadline = clock() + timeout
    pending = setup_pending(http)
    while pending is None:
        if clock() >= deadline:
            raise RuntimeError(f"n8n did not answer /rest/settings on 127.0.0.1 within {timeout:.0f}s")
        sleep(interval)
        pending = setup_pending(http)
    created = False
    if pending:
        status, body = http("POST", "/rest/owner/setup", dict(owner))
        if status != 200:
            message = body.get("message") if isinstance(body, dict) else body
            raise RuntimeError(f"n8n refused the owner setup for {owner['email']} (HTTP {status}: {message})")
        created = True
        if setup_pending(http) is not False:
            raise RuntimeError("n8n still offers its owner setup after POST /rest/owner/setup")
    status, _body = http("POST", "/rest/login", {"emailOrLdapLoginId": owner["email"], "password": owner["password"]})
    if status == 200:
        log(f"owner account {owner['email']} {'created' if created else 'exists'}")
    else:
        log(f"warning: an owner account exists but {owner['email']} with AISTACK_OWNER_PASSWORD does not log in "
            f"(HTTP {status}): it was changed in n8n; the instance stays unclaimable")
    return created


def proxy(env: MutableMapping[str, str], http: Http, exec_proxy: Callable[[], None], interval: float = 2.0) -> None:
    """The ``proxy`` program: the owner exists first, then nginx takes over this process."""
    ensure_owner(owner_from_env(env), http, timeout=float(env.get("AISTACK_OWNER_TIMEOUT", "900")), interval=interval)
    log("opening the public port")
    exec_proxy()


def exec_nginx() -> None:
    """Replace this process with nginx in the foreground."""
    os.execvp("nginx", ["nginx", "-e", "stderr", "-c", os.environ.get("AISTACK_NGINX_CONF", NGINX_CONF)])


def subprocess_runner(argv: Sequence[str]) -> int:
    """Run a command with the container's environment, output to the container log."""
    return subprocess.call(list(argv), stdout=sys.stderr)


def main(argv: Sequence[str]) -> int:
    """Dispatch: boot (default), proxy, export, health."""
    command = argv[1] if len(argv) > 1 else "boot"
    try:
        if command == "health":
            return 0 if health(os.environ) else 1
        if command == "export":
            export(os.environ, subprocess_runner)
            return 0
        if command == "proxy":
            proxy(os.environ, n8n_http(os.environ), exec_nginx)
            return 1  # not reached: nginx replaced this process
        if command != "boot":
            log(f"unknown command {command!r} (boot, proxy, export, health)")
            return 64
        boot(os.environ, subprocess_runner)
    except (ValueError, RuntimeError, OSError) as exc:
        log(f"error: {exc}")
        return 1
    os.execvp("supervisord", ["supervisord", "-c", os.environ.get("AISTACK_SUPERVISORD_CONF", SUPERVISORD_CONF)])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
