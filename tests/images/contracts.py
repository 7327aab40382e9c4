#!/usr/bin/env python3
"""Check every kit image against the contract of the official image it stands in for.

A contract (tests/images/contracts/<name>.yml) holds the facts of an OFFICIAL
image that the collection relies on -- entrypoint, command, user and uid/gid,
working dir, paths, the tools its health checks and `docker exec` calls use,
tools it lacks, package manager, environment, ports -- each with its source.
Where the kit image cannot match, the contract lists the fact under `differs`
with the reason the roles must not depend on it.

Two checks:

* image (needs the kit built, `kit.py up --with n8n`): for each contract,
  `docker image inspect <official name>` and ONE `docker run --rm
  --entrypoint sh` probe as the image's own user; every fact is compared.
  A contract's `also_images` (other official tags the kit builds from the
  same Dockerfiles, e.g. the previous n8n release) are checked the same way,
  each on its own line; an entry may override the facts that differ for its
  tag (e.g. `config.env.PG_MAJOR` of pgvector/pgvector:0.8.0-pg15).
  A fact that differs fails unless the contract documents it under
  `differs`; a documented difference that no longer differs fails too
  (stale contract).
* roles (static): every in-container command of the roles and the molecule
  tests (healthcheck `test:` lines, `docker_container_exec`, `docker exec`,
  `docker run --entrypoint`) must be claimed by a contract's `role_usage`
  (or by `_not_kit_images.yml` for images the kit does not serve), and the
  tools and paths a claim names must be facts of that contract (listed in
  `commands`/`paths`, never in `absent`); every VARIABLE_FILE a role passes
  (a claim's `file_variables`) must be one the official image reads (the
  contract's `file_variables`).

Usage:
    python3 tests/images/contracts.py                 # everything
    python3 tests/images/contracts.py redis:8.0.2     # one or more images (+ roles)
    python3 tests/images/contracts.py --static        # roles only, no docker
    python3 tests/images/contracts.py --json          # machine-readable results (tests/run.py)
    python3 tests/images/contracts.py --use redis:8.0.2=my/redis:test   # another image against a contract

Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = Path(__file__).resolve().parent / "contracts"
NOT_KIT = CONTRACTS / "_not_kit_images.yml"
# Every binary that can install OS packages; "no package manager" means none resolves.
PACKAGE_MANAGERS = ("apk", "apt", "apt-get", "dpkg", "dpkg-deb", "yum", "dnf", "microdnf", "rpm", "zypper")
PROBE_TIMEOUT = 60


@dataclass
class Result:
    """One check line: an image (or the roles cross-check) and what failed."""

    name: str
    failures: list[str] = field(default_factory=list)
    documented: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 1),
                "failures": self.failures, "documented": self.documented}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, mappings merged key by key (lists and values replaced)."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            value = merged(result[key], value)
        result[key] = value
    return result


def per_image(contracts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One contract per official reference to check: `image` and each of its `also_images`.

    An `also_images` entry is a reference (every fact holds for it as well) or a mapping
    `{image: REF, config: {env: {PG_MAJOR: "15"}}, ...}`: the facts that differ for that
    tag, laid over the contract's (mappings merged key by key).
    """
    checked = []
    for contract in contracts:
        checked.append(contract)
        for entry in contract.get("also_images", []):
            entry = {"image": entry} if isinstance(entry, str) else entry
            checked.append({**merged(contract, entry), "also_images": []})
    return checked


def load_contracts() -> list[dict[str, Any]]:
    contracts = []
    for path in sorted(CONTRACTS.glob("*.yml")):
        if path.name.startswith("_"):
            continue
        data = yaml.safe_load(path.read_text())
        data["_file"] = str(path.relative_to(ROOT))
        contracts.append(data)
    return contracts


# --------------------------------------------------------------------------
# Image facts
# --------------------------------------------------------------------------

def inspect(ref: str) -> dict[str, Any] | None:
    proc = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]["Config"]


def probe_script(runtime: dict[str, Any]) -> str:
    """A POSIX sh script printing one `key<TAB>value` line per runtime fact."""
    q = shlex.quote
    lines = ['printf "id\\t%s:%s\\n" "$(id -u)" "$(id -g)"',
             # The C library native code in the image is linked against.
             'l=none; for f in /lib/ld-musl-*; do [ -e "$f" ] && l=musl; done; '
             'for f in /lib64/ld-linux-* /lib/ld-linux-* /lib/*-linux-gnu/libc.so.6; do [ -e "$f" ] && l=glibc; done; '
             'printf "libc\\t%s\\n" "$l"']
    for name in runtime.get("users", {}):
        lines.append(f'printf "user\\t%s\\t%s:%s\\n" {q(name)} "$(id -u {q(name)} 2>/dev/null)" '
                     f'"$(id -g {q(name)} 2>/dev/null)"')
    tools = list(runtime.get("commands", [])) + list(runtime.get("absent", [])) + list(PACKAGE_MANAGERS)
    for tool in dict.fromkeys(tools):
        lines.append(f'printf "cmd\\t%s\\t%s\\n" {q(tool)} "$(command -v {q(tool)} 2>/dev/null)"')
    for path in runtime.get("paths", {}):
        lines.append(
            f'p={q(path)}; if [ -d "$p" ]; then t=dir; elif [ -f "$p" ]; then t=file; '
            f'elif [ -e "$p" ]; then t=other; else t=missing; fi; '
            f'x=no; [ -x "$p" ] && x=yes; o=$(stat -c %u:%g "$p" 2>/dev/null); '
            f'printf "path\\t%s\\t%s\\t%s\\t%s\\n" "$p" "$t" "$x" "$o"')
    # Options the roles pass: each must appear in the command's own help output.
    for command, options in (runtime.get("options") or {}).items():
        for option in options:
            lines.append(f'o=$({command} 2>&1); r=no; case "$o" in *{q(option)}*) r=yes;; esac; '
                         f'printf "option\\t%s\\t%s\\t%s\\n" {q(command)} {q(option)} "$r"')
    return "\n".join(lines) + "\n"


def run_probe(ref: str, runtime: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Run the probe in a throwaway container of the image, as its own user."""
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", ref, "-c", probe_script(runtime)],
        capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    found: dict[str, Any] = {"users": {}, "cmd": {}, "path": {}, "option": {}}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] in ("id", "libc"):
            found[parts[0]] = parts[1]
        elif parts[0] == "user":
            found["users"][parts[1]] = parts[2] if parts[2] != ":" else "missing"
        elif parts[0] == "cmd":
            found["cmd"][parts[1]] = parts[2]
        elif parts[0] == "option":
            found["option"][(parts[1], parts[2])] = parts[3] == "yes"
        elif parts[0] == "path":
            found["path"][parts[1]] = {"type": parts[2], "exec": parts[3] == "yes", "owner": parts[4]}
    error = "" if proc.returncode == 0 else f"probe exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
    return found, error


def env_map(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config.get("Env") or [])


def image_facts(contract: dict[str, Any], config: dict[str, Any], found: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(fact, expected, found) for every fact the contract states."""
    facts: list[tuple[str, Any, Any]] = []
    cfg = contract.get("config", {})
    if "entrypoint" in cfg:
        facts.append(("config.entrypoint", cfg["entrypoint"], config.get("Entrypoint")))
    if "cmd" in cfg:
        facts.append(("config.cmd", cfg["cmd"], config.get("Cmd")))
    if "user" in cfg:
        facts.append(("config.user", str(cfg["user"]), config.get("User") or ""))
    if "workdir" in cfg:
        facts.append(("config.workdir", cfg["workdir"], config.get("WorkingDir") or "/"))
    if "exposed_ports" in cfg:
        facts.append(("config.exposed_ports", sorted(cfg["exposed_ports"]), sorted(config.get("ExposedPorts") or {})))
    if "volumes" in cfg:
        facts.append(("config.volumes", sorted(cfg["volumes"]), sorted(config.get("Volumes") or {})))
    if "stop_signal" in cfg:
        facts.append(("config.stop_signal", cfg["stop_signal"], config.get("StopSignal")))
    env = env_map(config)
    for key, value in (cfg.get("env") or {}).items():
        # null: the variable must be set, any value.
        facts.append((f"config.env.{key}", "<set>" if value is None else str(value),
                      ("<set>" if key in env else None) if value is None else env.get(key)))
    rt = contract.get("runtime", {})
    if "id" in rt:
        facts.append(("runtime.id", str(rt["id"]), found.get("id")))
    if "libc" in rt:
        facts.append(("runtime.libc", rt["libc"], found.get("libc")))
    for name, ids in (rt.get("users") or {}).items():
        facts.append((f"runtime.users.{name}", str(ids), found["users"].get(name, "missing")))
    for tool in rt.get("commands", []):
        facts.append((f"runtime.commands.{tool}", "on PATH", "on PATH" if found["cmd"].get(tool) else "not found"))
    for tool in rt.get("absent", []):
        path = found["cmd"].get(tool)
        facts.append((f"runtime.absent.{tool}", "not found", f"present ({path})" if path else "not found"))
    if "package_manager" in rt:
        # "absent": no binary that installs packages resolves on PATH (the found value names them).
        present = sorted(f"{t} ({found['cmd'][t]})" for t in PACKAGE_MANAGERS if found["cmd"].get(t))
        if rt["package_manager"] == "absent":
            got = "present: " + ", ".join(present) if present else "absent"
        else:
            got = "present" if present else "absent"
        facts.append(("runtime.package_manager", rt["package_manager"], got))
    for command, options in (rt.get("options") or {}).items():
        for option in options:
            facts.append((f"runtime.options.{command}: {option}", "in its help",
                          "in its help" if found["option"].get((command, option)) else "not in its help"))
    for path, want in (rt.get("paths") or {}).items():
        want = {"type": want} if isinstance(want, str) else dict(want)
        got = found["path"].get(path, {"type": "missing", "exec": False, "owner": ""})
        if want.get("type") == "exec":
            facts.append((f"runtime.paths.{path}", "executable file",
                          "executable file" if got["type"] == "file" and got["exec"] else got["type"]))
        else:
            facts.append((f"runtime.paths.{path}", want["type"], got["type"]))
        if "owner" in want:
            facts.append((f"runtime.paths.{path}.owner", str(want["owner"]), got["owner"] or "missing"))
    return facts


def check_image(contract: dict[str, Any], local: str | None = None) -> Result:
    """All facts of one contract against the local image `local` (default: the official name)."""
    start = time.monotonic()
    ref = contract["image"]
    result = Result(ref if not local or local == ref else f"{ref} (as {local})")
    local = local or ref
    config = inspect(local)
    if config is None:
        result.failures.append(f"{local}: image not found locally (build the kit: tests/images/kit.py up --with n8n)")
        result.seconds = time.monotonic() - start
        return result
    try:
        found, error = run_probe(local, contract.get("runtime", {}))
    except subprocess.TimeoutExpired:
        found, error = {"users": {}, "cmd": {}, "path": {}}, f"probe timed out after {PROBE_TIMEOUT}s"
    if error:
        result.failures.append(f"{ref}: {error}")
    documented = {d["fact"]: d for d in contract.get("differs", []) if "fact" in d}
    seen = set()
    for fact, expected, got in image_facts(contract, config, found):
        seen.add(fact)
        if fact in documented:
            if expected == got:
                result.failures.append(f"{ref}: {fact}: listed under differs but the kit image matches "
                                       f"the official fact ({expected!r}): remove the differs entry")
            else:
                result.documented.append(f"{fact}: official {expected!r}, kit {got!r} "
                                         f"({documented[fact].get('why', '').strip()[:80]})")
        elif expected != got:
            result.failures.append(f"{ref}: {fact}: expected {expected!r}, found {got!r}")
    for fact in documented:
        if fact not in seen:
            result.failures.append(f"{ref}: differs entry {fact!r} names no fact of this contract")
    result.seconds = time.monotonic() - start
    return result


# --------------------------------------------------------------------------
# Roles and tests against the contracts
# --------------------------------------------------------------------------

@dataclass
class Site:
    """A place where the collection or its tests run a command inside a container."""

    file: str
    line: int
    text: str  # the line and the few after it (a block-style list, argv...)

    def __str__(self) -> str:
        first = self.text.splitlines()[0].strip()
        return f"{self.file}:{self.line}: {first[:100]}"


SITE_PATTERNS = (
    re.compile(r"^\s*test:"),                       # compose healthchecks
    re.compile(r"\bcompose\.(wget_)?healthcheck\("),  # compose healthchecks through roles/common's building blocks
    re.compile(r"docker_container_exec:"),          # community.docker exec
    re.compile(r"docker exec\b"),                   # CLI exec (tasks, scripts, tests)
    re.compile(r"--entrypoint\b"),                  # one-shot runs of a service image's tool
    re.compile(r"docker_container:"),               # one-shot containers (e.g. a migration command)
    re.compile(r"docker run\b.*\b(nginx|pebble)"),  # test fixtures run by official name
    re.compile(r"\.docker\(\"(exec|run)\""),          # host tools' own docker wrappers (roles/*/files/*.py)
)
SITE_FILES = ("roles/*/templates/*.j2", "roles/*/tasks/*.yml", "roles/*/vars/*.yml", "roles/*/files/*.py",
              "molecule/*/*.yml", "molecule/*/tests/*.py", "molecule/shared/*")
BUILDING_BLOCKS = Path("roles/common/templates/compose_lib.j2")
WINDOW = 12  # at most this many lines belong to one site (argv lists, block-style test lists)


def find_sites() -> list[Site]:
    sites = []
    files = sorted({path for pattern in SITE_FILES for path in ROOT.glob(pattern) if path.is_file()})
    # The compose building blocks only shape a health check; the roles calling them are the sites.
    files = [path for path in files if path.relative_to(ROOT) != BUILDING_BLOCKS]
    for path in files:
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if any(p.search(line) for p in SITE_PATTERNS):
                # The site's own statement: its line plus the lines indented deeper
                # (a block-style test list, a module's arguments, a continued string).
                indent = len(line) - len(line.lstrip())
                end = index + 1
                while end < min(len(lines), index + WINDOW):
                    following = lines[end]
                    if following.strip() and len(following) - len(following.lstrip()) <= indent:
                        break
                    end += 1
                sites.append(Site(str(path.relative_to(ROOT)), index + 1, "\n".join(lines[index:end])))
    return sites


def check_roles(contracts: list[dict[str, Any]]) -> Result:
    start = time.monotonic()
    result = Result("roles and tests use only contracted tools")
    claims: list[tuple[str, dict[str, Any]]] = []
    for contract in contracts:
        ref = contract["image"]
        rt = contract.get("runtime", {})
        commands, absent, paths = set(rt.get("commands", [])), set(rt.get("absent", [])), set(rt.get("paths") or {})
        for usage in contract.get("role_usage", []):
            where = f"{contract['_file']}: role_usage {usage['file']} {usage['match']!r}"
            path = ROOT / usage["file"]
            if not path.is_file() or usage["match"] not in path.read_text():
                result.failures.append(f"{where}: not found in {usage['file']} (stale contract)")
            for tool in usage.get("tools", []):
                if tool in absent:
                    result.failures.append(f"{ref}: {usage['file']} runs `{tool}`, which the official image "
                                           f"lacks ({contract['_file']} lists it under absent)")
                elif tool not in commands:
                    result.failures.append(f"{ref}: {usage['file']} runs `{tool}`, which is not a fact of "
                                           f"{contract['_file']} (add it to runtime.commands if the official "
                                           f"image has it)")
            if "uid" in usage:
                uids = {str(rt.get("id", "")).split(":")[0]} | {str(ids).split(":")[0]
                                                                for ids in (rt.get("users") or {}).values()}
                if str(usage["uid"]) not in uids:
                    result.failures.append(f"{ref}: {usage['file']} assumes uid {usage['uid']}, but the official "
                                           f"image's users are {sorted(uids)} ({contract['_file']})")
            # A secret read through VARIABLE_FILE works only where the official image reads that file.
            for variable in usage.get("file_variables", []):
                if variable not in contract.get("file_variables", []):
                    result.failures.append(f"{ref}: {usage['file']} passes {variable}_FILE, which is not a fact of "
                                           f"{contract['_file']} (file_variables)")
            for used in usage.get("paths", []):
                if used not in paths:
                    result.failures.append(f"{ref}: {usage['file']} relies on {used}, which is not a fact of "
                                           f"{contract['_file']} (runtime.paths)")
            claims.append((ref, usage))
    not_kit = yaml.safe_load(NOT_KIT.read_text()) if NOT_KIT.exists() else {"sites": []}
    for entry in not_kit.get("sites", []):
        path = ROOT / entry["file"]
        if not path.is_file() or entry["match"] not in path.read_text():
            result.failures.append(f"{NOT_KIT.relative_to(ROOT)}: {entry['file']} {entry['match']!r} not found "
                                   "(stale entry)")
        claims.append(("not a kit image", entry))
    for site in find_sites():
        if not any(usage["file"] == site.file and usage["match"] in site.text for _, usage in claims):
            result.failures.append(f"{site}: runs a command in a container, but no contract claims it "
                                   "(add a role_usage entry to the image's contract)")
    result.seconds = time.monotonic() - start
    return result


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", help="official image references to check (default: all contracts)")
    parser.add_argument("--static", action="store_true", help="only the roles cross-check (no docker)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--jobs", type=int, default=4, help="probes run at a time (default 4)")
    parser.add_argument("--use", action="append", default=[], metavar="OFFICIAL=LOCAL",
                        help="check the local image LOCAL against OFFICIAL's contract (e.g. the real "
                             "official image pulled elsewhere, or a deliberately broken variant)")
    args = parser.parse_args()
    contracts = load_contracts()
    images = per_image(contracts)
    use = dict(item.split("=", 1) for item in args.use)
    unknown = (set(args.images) | set(use)) - {c["image"] for c in images}
    if unknown:
        parser.error(f"no contract for {sorted(unknown)}")
    results = [check_roles(contracts)]
    if not args.static:
        chosen = [c for c in images if not (args.images or use) or c["image"] in args.images or c["image"] in use]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results += list(pool.map(lambda c: check_image(c, use.get(c["image"])), chosen))
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        for r in results:
            print(f"[{'PASS' if r.ok else 'FAIL'}] contracts: {r.name} ({r.seconds:.1f}s)")
            for line in r.failures:
                print(f"    FAIL {line}")
            for line in r.documented:
                print(f"    differs (documented) {line}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
