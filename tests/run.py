#!/usr/bin/env python3
"""The whole test suite: lint, unit, collection artifact, molecule scenarios.

`make test` runs this after setting up the machine. It ends with one line
`N passed, N failed` (one check per line item printed above it) and exits
non-zero when anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))
import image_store  # noqa: E402  (tests/image_store.py)
from checkout_link import ensure as ensure_checkout_link  # noqa: E402
from sanity import checks as galaxy_checks  # noqa: E402  (tests/sanity/checks.py)
CACHE = ROOT / ".cache"
INSTALLED_COLLECTIONS = CACHE / "collections"
# Every scenario runs in CI (see README, "Tests").
SCENARIOS = ["docker", "data_edge", "n8n", "nvidia_toolkit", "gpu_host", "single_container", "split_railway", "lifecycle",
             "assistant", "multi_host"]
# Start order when they run in parallel: longest first, so the lanes end together.
SCENARIO_ORDER = ["lifecycle", "multi_host", "gpu_host", "n8n", "assistant", "single_container", "data_edge", "split_railway",
                  "docker", "nvidia_toolkit"]
LOGS = ROOT / ".cache" / "logs"
# The one molecule test sequence (and the settings every scenario shares).
MOLECULE_BASE = ROOT / ".config" / "molecule" / "config.yml"
# Paths that must never ship in the Galaxy artifact.
NOT_IN_ARTIFACT = ("molecule/", "tests/", ".ci/", "collections/", ".venv/", ".cache/", "benchmarks/")
RECAP = re.compile(r"([\w.-]+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Report:
    """Collects one result per check and prints the closing line."""

    results: list[tuple[str, bool, float, str]] = field(default_factory=list)

    def record(self, name: str, ok: bool, seconds: float, detail: str = "") -> bool:
        self.results.append((name, ok, seconds, detail))
        status = "PASS" if ok else "FAIL"
        print(f"[{status}] {name} ({seconds:.0f}s){' - ' + detail if detail else ''}", flush=True)
        return ok

    def summary(self) -> int:
        passed = sum(1 for _, ok, _, _ in self.results if ok)
        failed = len(self.results) - passed
        print()
        for name, ok, seconds, detail in self.results:
            print(f"  {'ok  ' if ok else 'FAIL'} {name:<48} {seconds:7.0f}s")
            # The cause right under the line: CI often shows only the end of the output.
            if not ok and detail:
                print(f"       {detail[:2000]}")
        print(f"{passed} passed, {failed} failed")
        return 0 if failed == 0 and passed > 0 else 1


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    # One exec per module on the docker connection (molecule writes its own
    # ansible.cfg, without the checkout's [connection] pipelining).
    env.setdefault("ANSIBLE_PIPELINING", "True")
    env.update(extra)
    return env


def run(cmd: list[str], *, env: dict[str, str] | None = None, capture: bool = False) -> subprocess.CompletedProcess:
    """Run a command from the repo root, streaming its output unless captured."""
    print(f"$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env or env_with(), text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)
    if capture:
        print(proc.stdout, end="", flush=True)
    return proc


def check(report: Report, name: str, cmd: list[str], **kwargs) -> bool:
    start = time.monotonic()
    ok = run(cmd, **kwargs).returncode == 0
    return report.record(name, ok, time.monotonic() - start)


def playbooks() -> list[Path]:
    return [ROOT / "site.yml", *sorted((ROOT / "playbooks").glob("*.yml"))]


def main_site_packages() -> Path:
    """The main venv's site-packages: the ansible package's collections (community.docker, ...) live there."""
    return VENV_BIN.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def check_together(report: Report, checks: list[tuple[str, list[str], dict[str, str] | None]]) -> None:
    """Run independent checks at the same time (ansible-lint is single-threaded and takes
    minutes: two of them fill the two cores); print each one's output when it ends."""
    procs = []
    for name, cmd, env in checks:
        print(f"$ {' '.join(cmd)}  (in parallel)", flush=True)
        out = tempfile.TemporaryFile(mode="w+")
        procs.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env or env_with(), text=True,
                                             stdout=out, stderr=subprocess.STDOUT), out, time.monotonic()))
    for name, proc, out, start in procs:
        rc = proc.wait()
        seconds = time.monotonic() - start
        out.seek(0)
        print(f"----- {name}", flush=True)
        print(out.read(), end="", flush=True)
        out.close()
        report.record(name, rc == 0, seconds)


def stage_lint(report: Report) -> None:
    check(report, "lint: yamllint", [str(VENV_BIN / "yamllint"), "--strict", "."])
    check(report, "lint: argument_specs == defaults", [sys.executable, "tests/lint/argspec_parity.py", "roles"])
    for book in playbooks():
        rel = book.relative_to(ROOT)
        check(report, f"lint: syntax-check {rel}",
              [str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "inventories/prod", str(rel)])
    lints = [("lint: ansible-lint (production profile)", [str(VENV_BIN / "ansible-lint"), "--profile", "production"], None)]
    # The previous ansible-core line lints and parses every playbook and role too (meta/runtime.yml
    # claims >=2.18); the dependency collections come from the main venv's ansible package.
    bin_218 = venv_218(report, "lint (ansible-core 2.18)")
    if bin_218 is not None:
        env = env_with(ANSIBLE_COLLECTIONS_PATH=f"{ensure_checkout_link()}{os.pathsep}{main_site_packages()}")
        env["PATH"] = f"{bin_218}{os.pathsep}{env['PATH']}"
        check(report, "lint: syntax-check all playbooks (ansible-core 2.18)",
              [str(bin_218 / "ansible-playbook"), "--syntax-check", "-i", "inventories/prod",
               *[str(book.relative_to(ROOT)) for book in playbooks()]], env=env)
        # No second ansible-lint under 2.18: the rules are the same ansible-lint's, and what
        # 2.18 itself must accept (parsing every playbook and role) is the syntax-check above;
        # the plugins get ansible-test sanity and the unit tests under 2.18. It saves ~4 min of a core.
    check_together(report, lints)


def venv_218(report: Report, what: str) -> Path | None:
    """.cache/venv-2.18's bin dir (built on first use); a failed build is recorded as `what` failing."""
    start = time.monotonic()
    try:
        return galaxy_checks.venv("2.18", "requirements-2.18.txt")
    except subprocess.CalledProcessError as exc:
        report.record(what, False, time.monotonic() - start, f"venv: {exc}")
        return None


# A skipped test is a test that did not run: it fails its check unless it is
# listed here with the reason it may skip. Unit tests: "file::test" -> reason.
ALLOWED_UNIT_SKIPS: dict[str, str] = {}
# Testinfra in molecule verify: (scenario, skip reason) -> why. Verify runs twice
# (before and after side_effect); tests of the other phase skip on purpose.
ALLOWED_VERIFY_SKIPS: dict[tuple[str, str], str] = {
    ("docker", "host is in the uninstalled phase"): "first verify: the side effect has not uninstalled Docker yet",
    ("docker", "host is in the installed phase"): "second verify: Docker was uninstalled by the side effect",
    ("data_edge", "the backup/restore round trip runs in side_effect"): "first verify",
    ("n8n", "runs after side_effect scaled and recreated n8n"): "first verify",
    ("nvidia_toolkit", "removed"): "second verify: the toolkit was uninstalled by the side effect",
    ("single_container", "runs after side_effect killed n8n"): "first verify",
    ("multi_host", "runs after the side effect"): "first verify: no host added or killed yet",
    ("multi_host", "worker1 was killed by the side effect"): "second verify: the worker-loss drill killed it",
    ("multi_host", "worker2 has joined the layout (checked in TestScaleOut)"): "second verify: no outsider left",
    ("multi_host", "after the side effect: TestWorkerLoss counts who served"): "second verify",
}
SKIP_LINE = re.compile(r"^SKIPPED \[(\d+)\] ([^:]+(?::\d+)?): (.*)$", re.M)
SKIP_COUNT = re.compile(r"\b(\d+) skipped\b")


def junit_skips(path: Path) -> list[tuple[str, str]]:
    """(test id, reason) of every skipped (or xfailed) test in a pytest junit xml."""
    import xml.etree.ElementTree as ET

    skips = []
    for case in ET.parse(path).iter("testcase"):
        for skipped in case.findall("skipped"):
            classname = case.get("classname") or ""  # empty for a module skipped at collection
            test_id = f"{classname.replace('.', '/')}.py::{case.get('name')}" if classname else case.get("name", "")
            skips.append((test_id, skipped.get("message") or ""))
    return skips


def pytest_check(report: Report, name: str, python: Path, args: list[str], junit: Path,
                 env: dict[str, str] | None = None) -> bool:
    """Run pytest with a junit report; fail on a non-zero exit or any skip not in ALLOWED_UNIT_SKIPS."""
    start = time.monotonic()
    junit.unlink(missing_ok=True)
    proc = run([str(python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={junit}", *args],
               env=env)
    # pytest exits 5 when it collected nothing: that is a failure here too.
    ok = proc.returncode == 0 and junit.exists()
    unexpected = [f"{test} ({reason})" for test, reason in (junit_skips(junit) if junit.exists() else [])
                  if not any(test.endswith(allowed) for allowed in ALLOWED_UNIT_SKIPS)]
    detail = f"{len(unexpected)} unexpected skip(s): {'; '.join(unexpected)}" if unexpected else ""
    return report.record(name, ok and not unexpected, time.monotonic() - start, detail)


def plugin_unit_tests() -> list[str]:
    """Unit tests of plugins/ (they import the collection's Python code): run under every tested core."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "unit").glob("test_*.py")
                  if "ansible_collections.aistack.hosting.plugins" in p.read_text())


def stage_unit(report: Report) -> None:
    ensure_checkout_link()
    # Most of the time is ansible-playbook runs (the two bad-input batches, the stack renders):
    # one pytest worker per core.
    pytest_check(report, "unit: pytest tests/unit (ansible-core 2.19)", Path(sys.executable),
                 ["-n", str(min(4, os.cpu_count() or 1)), "tests/unit"], CACHE / "junit-unit.xml")
    bin_218 = venv_218(report, "unit: plugin tests (ansible-core 2.18)")
    if bin_218 is None:
        return
    # As in lint: the 2.18 venv has ansible-core only; community.docker comes from the main venv.
    pytest_check(report, "unit: plugin tests (ansible-core 2.18)", bin_218 / "python", plugin_unit_tests(),
                 CACHE / "junit-unit-2.18.xml",
                 env=env_with(ANSIBLE_COLLECTIONS_PATH=f"{ensure_checkout_link()}{os.pathsep}{main_site_packages()}"))


def stage_sanity(report: Report) -> None:
    """ansible-test sanity (2.19 and 2.18), galaxy-importer (offline) and antsibull-docs lint on what ships."""
    ensure_checkout_link()
    start = time.monotonic()
    dist = CACHE / "sanity-dist"
    shutil.rmtree(dist, ignore_errors=True)
    ok = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(dist)]).returncode == 0
    if not report.record("sanity: build artifact", ok, time.monotonic() - start) and not ok:
        return
    artifact = next(dist.glob("aistack-hosting-*.tar.gz"))
    try:
        cores = {"2.19": VENV_BIN, "2.18": galaxy_checks.venv("2.18", "requirements-2.18.txt")}
        tools = galaxy_checks.venv("tools", "requirements-tools.txt")
    except subprocess.CalledProcessError as exc:
        report.record("sanity: venvs for ansible-core 2.18 and the release tools", False, time.monotonic() - start, str(exc))
        return
    with tempfile.TemporaryDirectory(prefix="aistack-sanity-") as scratch:
        for core, bin_dir in cores.items():
            start = time.monotonic()
            galaxy_checks.install_get_pip(bin_dir)
            tree = galaxy_checks.unpack(artifact, core, Path(scratch))
            print(f"$ (cd {tree} && ansible-test sanity) [ansible-core {core}]", flush=True)
            proc = subprocess.run(galaxy_checks.ansible_test(bin_dir, tree), cwd=tree, text=True, check=False,
                                  env=env_with(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            # pip's progress is noise; the test names and every finding are kept.
            print("\n".join(line for line in proc.stdout.splitlines()
                            if not line.startswith(("WARNING: Location", "Collecting ", "  Downloading ", "  Using cached ",
                                                    "Requirement already", "Installing collected", "Successfully installed"))),
                  flush=True)
            # A test ansible-test could not run (missing program, no targets) only warns: that fails here.
            skipped = [line for line in proc.stdout.splitlines()
                       if line.startswith(("WARNING: Required program", "WARNING: Skipping", "WARNING: All targets skipped"))]
            report.record(f"sanity: ansible-test sanity (ansible-core {core})", proc.returncode == 0 and not skipped,
                          time.monotonic() - start, "; ".join(skipped))
    start = time.monotonic()
    # The importer writes importer_result.json into its working directory: keep it in .cache.
    cmd = [str(tools / "python"), "-m", "galaxy_importer.main", str(artifact)]
    (CACHE / "importer_result.json").unlink(missing_ok=True)
    print(f"$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=CACHE, env=galaxy_checks.importer_env(tools), text=True, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(proc.stdout, end="", flush=True)
    # The importer exits 0 with findings it logs as ERROR/WARNING (Galaxy would show them): those fail here.
    findings = [line for line in proc.stdout.splitlines() if line.startswith(("ERROR", "WARNING"))]
    # A module or role whose docs the importer could not read is imported without a description
    # (and without docs on Galaxy), silently: check the result it wrote.
    result_file = CACHE / "importer_result.json"
    if proc.returncode == 0 and result_file.exists():
        contents = json.loads(result_file.read_text()).get("contents", [])
        findings += [f"{c['content_type']} {c['name']}: no description (docs unreadable)" for c in contents
                     if c.get("content_type") in ("module", "role") and not c.get("description")]
    ok = proc.returncode == 0 and "Importer processing completed successfully" in proc.stdout and not findings
    report.record("sanity: galaxy-importer (offline config)", ok, time.monotonic() - start, "; ".join(findings[:3]))
    start = time.monotonic()
    docs_env = env_with(PATH=f"{tools}{os.pathsep}{os.environ.get('PATH', '')}",
                        ANSIBLE_COLLECTIONS_PATH=f"{ROOT / 'collections'}{os.pathsep}{main_site_packages()}")
    proc = subprocess.run([str(tools / "antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."], text=True, check=False,
                          cwd=ROOT / "collections" / "ansible_collections" / "aistack" / "hosting", env=docs_env)
    report.record("sanity: antsibull-docs lint-collection-docs --plugin-docs", proc.returncode == 0, time.monotonic() - start)


def stage_contracts(report: Report) -> None:
    """Each kit image against its official image's contract (tests/images/contracts/), one check per image.

    Needs the kit built (`make test` runs `kit.py up --with n8n --with n8n-previous` first); ~1 min.
    """
    cmd = [sys.executable, "tests/images/contracts.py", "--json"]
    print(f"$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
    try:
        results = json.loads(proc.stdout)
    except ValueError:
        print(proc.stdout + proc.stderr, flush=True)
        report.record("contracts: tests/images/contracts.py", False, 0, f"exit {proc.returncode}, no results")
        return
    for result in results:
        for line in result["failures"]:
            print(f"  FAIL {line}", flush=True)
        failures = result["failures"]
        detail = f"{len(failures)} failed, first: {failures[0]}" if failures else ""
        report.record(f"contracts: {result['name']}", result["ok"], result["seconds"], detail)


def stage_collection(report: Report) -> None:
    """Build the Galaxy artifact, check what it holds, install it for molecule."""
    start = time.monotonic()
    dist = CACHE / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    shutil.rmtree(INSTALLED_COLLECTIONS, ignore_errors=True)
    ok = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(dist)]).returncode == 0
    detail = ""
    if ok:
        artifact = next(dist.glob("aistack-hosting-*.tar.gz"))
        with tarfile.open(artifact) as tar:
            names = tar.getnames()
        leaked = sorted({n.split("/")[0] + "/" for n in names if n.startswith(NOT_IN_ARTIFACT)})
        required = {"roles/docker/meta/argument_specs.yml", "plugins/modules/docker_daemon_config.py", "meta/runtime.yml"}
        missing = sorted(required - set(names))
        ok = not leaked and not missing
        detail = f"leaked {leaked} missing {missing}" if not ok else f"{artifact.name}, {len(names)} members"
        ok = ok and run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--force", "--offline",
                         "-p", str(INSTALLED_COLLECTIONS), str(artifact)]).returncode == 0
    report.record("collection: build artifact + install", ok, time.monotonic() - start, detail)
    if ok:
        start = time.monotonic()
        env = env_with(ANSIBLE_COLLECTIONS_PATH=str(INSTALLED_COLLECTIONS))
        missing = []
        for defaults in sorted(ROOT.glob("roles/*/defaults/main.yml")):
            role = defaults.parent.parent.name
            options = [line.split(":")[0] for line in defaults.read_text().splitlines() if line.startswith(role + "_")]
            doc = run([str(VENV_BIN / "ansible-doc"), "-t", "role", f"aistack.hosting.{role}"], capture=True, env=env)
            missing += [f"{role}:{o}" for o in options if doc.returncode != 0 or o not in doc.stdout]
        report.record("collection: ansible-doc -t role shows every option (installed)", not missing,
                      time.monotonic() - start, f"missing {missing}" if missing else "")


# --from-checkout: molecule loads the roles from this checkout (collections/ symlink), not the artifact.
FROM_CHECKOUT = False
# Scenarios whose first converge runs at -vvv; its output is kept apart and its verify
# searches it for every secret value (AISTACK_CONVERGE_LOG, molecule/shared/testlib.py).
VERBOSE_CONVERGE = {"n8n"}


def converge_log(scenario: str) -> Path:
    return LOGS / f"molecule-{scenario}-converge-vvv.log"


# Mitogen (scripts/mitogen): one persistent Python per test host instead of a `docker
# exec` and a fresh interpreter per task, ~7x less wall time per task on CI's two
# cores (docs/testing.md). The same playbooks, modules and assertions. Not for molecule's
# own create/destroy (their async container removal hangs under Mitogen's local
# connection) nor the side effects (an ansible-playbook started by a task under
# Mitogen hung connecting to its host): those run as before.
MITOGEN_STRATEGY = "aistack_mitogen_linear"
MITOGEN_ACTIONS = ("prepare", "converge", "idempotence", "check")
# single_container's first verify once found its imported workflow's webhook unregistered
# (404) after a Mitogen converge with five scenarios loading the machine; until that is
# explained it runs as before (a ~5 min scenario: little to gain).
WITHOUT_MITOGEN = {"single_container"}


def molecule(action: str, scenario: str, log) -> subprocess.CompletedProcess:
    """One molecule action, its output appended to the scenario's log file."""
    if FROM_CHECKOUT or not INSTALLED_COLLECTIONS.exists():
        env = env_with(AISTACK_COLLECTIONS_PATH="/nonexistent")
    else:
        env = env_with(AISTACK_COLLECTIONS_PATH=str(INSTALLED_COLLECTIONS))
    # testinfra's summary then names every skipped test and its reason (see verify_skips).
    env["PYTEST_ADDOPTS"] = (env.get("PYTEST_ADDOPTS", "") + " -rs").strip()
    verbose = action == "converge" and scenario in VERBOSE_CONVERGE
    if scenario in VERBOSE_CONVERGE:
        env["AISTACK_CONVERGE_LOG"] = str(converge_log(scenario))
    if verbose:
        env["ANSIBLE_VERBOSITY"] = "3"
    # The -vvv converge whose output is searched for secrets runs as users run it (no Mitogen).
    if action in MITOGEN_ACTIONS and not verbose and scenario not in WITHOUT_MITOGEN:
        env["ANSIBLE_STRATEGY"] = MITOGEN_STRATEGY
    cmd = [str(VENV_BIN / "molecule"), action, "-s", scenario]
    print(f"  molecule {action} -s {scenario}{' (-vvv)' if verbose else ''}", flush=True)
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if verbose:
        converge_log(scenario).write_text(proc.stdout)
        log.write(f"(-vvv output: {converge_log(scenario)}, {len(proc.stdout)} characters)\n")
        log.write("\n".join(proc.stdout.splitlines()[-60:]) + "\n")
    else:
        log.write(proc.stdout)
    log.flush()
    return proc


def check_mode_changes(output: str) -> dict[str, int]:
    """Changed-task counts per host from a play recap."""
    return {host: int(changed) for host, changed, _, _ in RECAP.findall(ANSI.sub("", output))}


def molecule_sequence(scenario: str) -> list[str]:
    """The scenario's molecule test_sequence, as molecule itself merges it: the base
    config (.config/molecule/config.yml), unless the scenario's molecule.yml sets one."""
    import yaml  # the venv's (ansible's dependency), like the rest of the molecule stage

    sequence = yaml.safe_load(MOLECULE_BASE.read_text())["scenario"]["test_sequence"]
    return (scenario_spec(scenario).get("scenario") or {}).get("test_sequence", sequence)


def scenario_spec(scenario: str) -> dict:
    """The scenario's own molecule.yml (what differs from the base config)."""
    import yaml

    return yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text()) or {}


def verify_skips(scenario: str, output: str) -> list[str]:
    """Skipped testinfra tests of one verify that ALLOWED_VERIFY_SKIPS does not allow ("N x reason")."""
    text = ANSI.sub("", output)
    listed = SKIP_LINE.findall(text)
    unexpected = [f"{count} x {where}: {reason}" for count, where, reason in listed
                  if (scenario, reason.strip()) not in ALLOWED_VERIFY_SKIPS]
    # A skip the summary counts but does not list (no -rs) cannot be checked against the list.
    summaries = [line for line in text.splitlines() if line.startswith("=") and " in " in line]
    counted = sum(int(n) for line in summaries for n in SKIP_COUNT.findall(line))
    listed_count = sum(int(count) for count, _where, _reason in listed)
    if counted > listed_count:
        unexpected.append(f"{counted} skipped in the summary, only {listed_count} listed")
    return unexpected


# The cause of a failed molecule action, most telling first: a failed task, a failed
# testinfra test, an Ansible error, then molecule's own complaint.
FIRST_ERROR = [re.compile(pattern, re.MULTILINE) for pattern in (
    r"^(?:fatal|failed): \[.*", r"^\S+::\S+ FAILED.*", r"^E   .*", r"^\[ERROR\]: .*",
    r"^(?:CRITICAL|ERROR) (?!'molecule/default/molecule.yml' glob failed).*")]
# A failed task Ansible went on after: ignore_errors prints this on the next line.
IGNORED = re.compile(r"\A\s*\.\.\.ignoring")
TASK_HEADER = re.compile(r"^TASK \[(.*)\]", re.MULTILINE)


def first_error(output: str) -> str:
    """The line that best explains a failed molecule action. For failed tasks that is
    the last one not ignored: a failure a block rescued (a test expecting a refusal)
    comes before the one that ended the play."""
    text = ANSI.sub("", output)
    for index, pattern in enumerate(FIRST_ERROR):
        found = [match for match in pattern.finditer(text)
                 if index or not IGNORED.match(text[match.end():])]
        if found:
            match = found[-1] if index == 0 else found[0]
            line = match.group(0).strip()
            if index == 0 and line.endswith("{"):
                # A multi-line result (YAML/pretty callbacks): the message is in its body.
                body = text[match.end():].split("\n}", 1)[0]
                line += " ".join(part.strip() for part in body.splitlines()) + " }"
            tasks = TASK_HEADER.findall(text, 0, match.start()) if index == 0 else []
            return f"{tasks[-1]}: {line}" if tasks else line
    return ""


def platform_names(scenario: str) -> list[str]:
    return [platform["name"] for platform in scenario_spec(scenario).get("platforms", [])]


def present_hosts(names: list[str]) -> list[str]:
    """Those of these test hosts that exist (running or not)."""
    present = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], text=True,
                             stdout=subprocess.PIPE, check=False).stdout.split()
    return [name for name in names if name in present]


def remove_stale_hosts(scenarios: list[str]) -> None:
    """Remove test hosts a previous, interrupted run left behind (same names), with
    their anonymous volumes. A host's /var/lib/docker volume holds gigabytes of
    images: removing it can outlast the Docker API's 60 s read timeout that
    molecule's destroy playbook uses, so the CLI (no client timeout) does it first."""
    stale = present_hosts([name for scenario in scenarios for name in platform_names(scenario)])
    if stale:
        print(f"molecule: force-removing leftover test hosts: {', '.join(stale)}", flush=True)
        subprocess.run(["docker", "rm", "--force", "--volumes", *stale], check=False)


def run_scenario(scenario: str) -> tuple[str, bool, float, str, Path]:
    """Molecule's test_sequence, step by step; `check` must also report 0 changed,
    and the closing `destroy` runs even after a failure."""
    start = time.monotonic()
    ok = True
    detail = ""
    sequence = molecule_sequence(scenario)
    closing = sequence[-1:] if sequence[-1:] == ["destroy"] else []
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"molecule-{scenario}.log"
    with log_path.open("w") as log:
        try:
            for action in sequence[:len(sequence) - len(closing)]:
                proc = molecule(action.replace("_", "-"), scenario, log)
                if action == "create" and proc.returncode == 0:
                    fill_image_stores(scenario, log)
                if proc.returncode != 0:
                    ok, detail = False, f"{action} failed: {first_error(proc.stdout) or 'see the log above'}"
                    break
                if action == "check":
                    changes = check_mode_changes(proc.stdout)
                    if not changes or any(changes.values()):
                        ok, detail = False, f"check mode re-run reported changes: {changes or 'no recap'}"
                        break
                elif action == "verify" and verify_skips(scenario, proc.stdout):
                    ok, detail = False, f"verify skipped tests: {'; '.join(verify_skips(scenario, proc.stdout))}"
                    break
        finally:
            volumes = remove_hosts_keep_volumes(scenario)
            for action in closing:
                if molecule(action, scenario, log).returncode != 0:
                    # Never leave a host behind for the next run (or the next scenario's disk).
                    remove_stale_hosts([scenario])
            remove_volumes_in_background(volumes)
    return scenario, ok, time.monotonic() - start, detail, log_path


def fill_image_stores(scenario: str, log) -> None:
    """The scenario's Debian 13 hosts start with the shared store of the big images (tests/image_store.py)."""
    # Seeded beside the lanes' first destroy and create (stage_molecule); waited for here.
    try:
        store = IMAGE_STORE.result() if IMAGE_STORE is not None else None
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        log.write(f"image store: not available ({error}); the hosts pull everything\n")
        store = None
    if store is None:
        return
    hosts = [platform["name"] for platform in scenario_spec(scenario).get("platforms", [])
             if platform.get("image") == image_store.TEST_HOST_IMAGE]
    for name, seconds in image_store.fill_all(present_hosts(hosts), store):
        log.write(f"image store: {name} filled in {seconds:.1f}s\n")


# The shared image store's directory, when seeded (None: hosts pull everything).
IMAGE_STORE: Future | None = None
# Volume removals still running (joined at the end of the molecule stage).
VOLUME_REMOVALS: list[subprocess.Popen] = []


def remove_hosts_keep_volumes(scenario: str) -> list[str]:
    """Stop and remove a scenario's test hosts, returning their anonymous volumes.

    A host's /var/lib/docker volume holds gigabytes of images: deleting it took
    1-3 min of each scenario's closing destroy (5 hosts: 189 s), time the lane
    only waited. The hosts go now; their volumes go in the background."""
    present = present_hosts(platform_names(scenario))
    if not present:
        return []
    volumes = subprocess.run(["docker", "inspect", "--format",
                              "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}", *present],
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False).stdout.split()
    subprocess.run(["docker", "rm", "--force", *present], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return volumes


def remove_volumes_in_background(volumes: list[str]) -> None:
    if volumes:
        VOLUME_REMOVALS.append(subprocess.Popen(["docker", "volume", "rm", "--force", *volumes],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def stage_molecule(report: Report, scenarios: list[str], jobs: int) -> None:
    """Run the scenarios `jobs` at a time (longest first); print each one's log when it ends.

    A scenario mostly waits (image pulls into its host, health checks), so two
    at a time on two cores cut the wall time without starving either; each
    has its own host, molecule state and log under .cache/logs.
    """
    global IMAGE_STORE
    ordered = sorted(scenarios, key=lambda name: SCENARIO_ORDER.index(name) if name in SCENARIO_ORDER else -1)
    remove_stale_hosts(ordered)
    IMAGE_STORE = ThreadPoolExecutor(max_workers=1).submit(image_store.ensure)
    print(f"molecule: {len(ordered)} scenario(s), {jobs} at a time: {', '.join(ordered)}", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in as_completed([pool.submit(run_scenario, name) for name in ordered]):
            scenario, ok, seconds, detail, log_path = future.result()
            text = log_path.read_text()
            lines = text.splitlines()
            # The whole log of a failed scenario; the end of a passed one.
            shown = lines if not ok else lines[-25:]
            print(f"----- {log_path.relative_to(ROOT)} ({'all' if not ok else 'last 25'} of {len(lines)} lines)", flush=True)
            print("\n".join(shown), flush=True)
            report.record(f"molecule: {scenario}", ok, seconds, detail)
    for removal in VOLUME_REMOVALS:
        removal.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stages", default="lint,unit,sanity,contracts,collection,molecule",
                        help="comma-separated subset of lint,unit,sanity,contracts,collection,molecule (molecule implies collection)")
    parser.add_argument("--scenario", action="append", help="molecule scenario(s) to run (default: all)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("AISTACK_TEST_JOBS", "2")),
                        help="molecule scenarios run at a time (env AISTACK_TEST_JOBS, default 2)")
    parser.add_argument("--no-overlap", action="store_true",
                        help="run the static stages first and molecule after them (default: side by side)")
    parser.add_argument("--from-checkout", action="store_true",
                        help="molecule without building the artifact: roles load from this checkout (development)")
    args = parser.parse_args()
    global FROM_CHECKOUT
    FROM_CHECKOUT = args.from_checkout
    stages = args.stages.split(",")
    ensure_checkout_link()
    report = Report()
    began = time.monotonic()
    molecule_lanes = None
    # Molecule converges the roles from the installed artifact: always build it first.
    if "collection" in stages or ("molecule" in stages and not FROM_CHECKOUT):
        stage_collection(report)
    if "molecule" in stages and not args.no_overlap:
        # The scenarios mostly wait (image pulls, health checks, timers): the static stages
        # (minutes of single-threaded CPU) run beside them instead of before them.
        print("molecule: starting now; the static stages run beside it", flush=True)
        molecule_lanes = ThreadPoolExecutor(max_workers=1)
        molecule_done = molecule_lanes.submit(stage_molecule, report, args.scenario or SCENARIOS, args.jobs)
    if "lint" in stages:
        stage_lint(report)
    if "unit" in stages:
        stage_unit(report)
    if "sanity" in stages:
        stage_sanity(report)
    if "contracts" in stages:
        stage_contracts(report)
    if molecule_lanes is not None:
        molecule_done.result()
        molecule_lanes.shutdown()
    elif "molecule" in stages:
        stage_molecule(report, args.scenario or SCENARIOS, args.jobs)
    print(f"total {time.monotonic() - began:.0f}s")
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
