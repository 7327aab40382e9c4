# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Galaxy-grade checks of the shipped collection, used by tests/run.py (stage "sanity").

- ``ansible-test sanity`` on exactly what ships: the Galaxy artifact unpacked
  under ``.cache/sanity/<core>/ansible_collections/aistack/hosting`` with this
  directory's ``ignore-<core>.txt``, once per tested ansible-core (the main
  venv's 2.19 and ``.cache/venv-2.18``);
- ``galaxy-importer`` on the artifact with the offline config beside this file
  (``GALAXY_IMPORTER_CONFIG``: ansible-lint offline, no ansible-test container);
- ``antsibull-docs lint-collection-docs --plugin-docs`` and ``antsibull-changelog lint``.

The extra venvs are built from requirements-<name>.txt and rebuilt only when that
file changes (a stamp holds its hash).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
# ansible-test fetches get-pip.py from a host this machine cannot reach; it uses this cache first.
GET_PIP_CACHE = Path.home() / ".ansible" / "test" / "cache"


def venv(name: str, requirements: str) -> Path:
    """``.cache/venv-<name>`` built from ``requirements`` (rebuilt when the file changes); its bin dir."""
    path = CACHE / f"venv-{name}"
    stamp = path / ".requirements.sha256"
    wanted = hashlib.sha256()
    for req in [ROOT / requirements, *included(ROOT / requirements)]:
        wanted.update(req.read_bytes())
    if not (path / "bin" / "python").exists() or not stamp.exists() or stamp.read_text() != wanted.hexdigest():
        print(f"sanity: building {path.relative_to(ROOT)} from {requirements}", flush=True)
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", "-r", str(ROOT / requirements)], check=True, cwd=ROOT)
        stamp.write_text(wanted.hexdigest())
    return path / "bin"


def included(requirements: Path) -> list[Path]:
    """Files a requirements file pulls in with ``-r`` (recursively)."""
    found = []
    for line in requirements.read_text().splitlines():
        if line.startswith("-r "):
            child = (requirements.parent / line[3:].strip()).resolve()
            found += [child, *included(child)]
    return found


def install_get_pip(bin_dir: Path) -> None:
    """Put the offline get-pip stand-in where ansible-test looks for its cached copy."""
    code = ("import ansible_test._internal.python_requirements as r, ansible_test._internal.util as u;"
            "print(r.get_venv_packages(None)['pip'] if hasattr(r, 'get_venv_packages') else '')")
    proc = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=False)
    versions = {proc.stdout.strip()} if proc.returncode == 0 and proc.stdout.strip() else {"24.2", "24.0", "23.1.2"}
    GET_PIP_CACHE.mkdir(parents=True, exist_ok=True)
    for version in versions:
        shutil.copyfile(HERE / "get_pip.py", GET_PIP_CACHE / f"get_pip_{version.replace('.', '_')}.py")


def unpack(artifact: Path, core: str, base: Path) -> Path:
    """The artifact unpacked where ansible-test wants a collection, plus the ignore file for ``core``.

    ``base`` must lie outside this git checkout: inside it, ansible-test asks git
    for the files and finds none (.cache is ignored).
    """
    tree = base / core / "ansible_collections" / "aistack" / "hosting"
    tree.mkdir(parents=True)
    with tarfile.open(artifact) as tar:
        tar.extractall(tree, filter="data")
    # A source tree as ansible-test expects it: galaxy.yml (the collection version, for the
    # version checks of pylint and validate-modules) instead of the build's manifest files.
    for name in ("MANIFEST.json", "FILES.json"):
        (tree / name).unlink(missing_ok=True)
    shutil.copyfile(ROOT / "galaxy.yml", tree / "galaxy.yml")
    (tree / "tests" / "sanity").mkdir(parents=True)
    shutil.copyfile(HERE / f"ignore-{core}.txt", tree / "tests" / "sanity" / f"ignore-{core}.txt")
    return tree


def ansible_test(bin_dir: Path, tree: Path) -> list[str]:
    """The ansible-test sanity command for ``tree`` (each test in its own venv, cached under ~/.ansible/test)."""
    return [str(bin_dir / "ansible-test"), "sanity", "--venv", "--python", f"{sys.version_info[0]}.{sys.version_info[1]}",
            "--color", "no"]


def importer_env(tools: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    env["GALAXY_IMPORTER_CONFIG"] = str(HERE / "galaxy-importer.cfg")
    env["ANSIBLE_LOCAL_TEMP"] = str(CACHE / "importer-tmp")
    return env
