"""Helpers shared by the scenarios' testinfra tests (imported via sys.path)."""

import json
from pathlib import Path

PROBE = (Path(__file__).parent / "https_probe.py").read_text()
PROBE_PATH = "/opt/aistack-tests/https_probe.py"


def phase(host) -> str:
    """Which verify this is: 'converged' or what side_effect wrote."""
    marker = host.file("/etc/aistack-test-phase")
    return marker.content_string.strip() if marker.exists else "converged"


def secret(host, name: str) -> str:
    return host.file(f"/etc/aistack/secrets/{name}").content_string.strip()


def pebble_root(host) -> str:
    """Pebble's current issuing root (management API on the stack network), saved on the host."""
    ip = host.check_output(
        "docker inspect --format '{{(index .NetworkSettings.Networks \"aistack\").IPAddress}}' pebble"
    )
    pem = host.check_output(
        "python3 -c \"import ssl,urllib.request;ctx=ssl._create_unverified_context();"
        f"print(urllib.request.urlopen('https://{ip}:15000/roots/0',context=ctx).read().decode())\""
    )
    host.run("mkdir -p /opt/aistack-tests && cat > /opt/aistack-tests/pebble-root.pem <<'EOF'\n" + pem + "\nEOF")
    return "/opt/aistack-tests/pebble-root.pem"


def probe(host, hostname: str, port: int, path: str = "/", cafile: str = "", *extra: str) -> dict:
    """Run https_probe.py on the host; extra are its options (--auth, --post, --cookie-login)."""
    host.run("mkdir -p /opt/aistack-tests && cat > " + PROBE_PATH + " <<'EOF'\n" + PROBE + "\nEOF")
    quoted = " ".join("'" + arg.replace("'", "'\\''") + "'" for arg in (hostname, str(port), path, cafile, *extra))
    cmd = host.run(f"python3 {PROBE_PATH} {quoted}")
    assert cmd.rc == 0, cmd.stderr
    return json.loads(cmd.stdout)
