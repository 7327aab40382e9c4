"""The test hosts' shared store of the kit's big images, pulled once per suite.

Every Debian 13 test host pulled the same gigabytes (n8n is 2.4 GB and
~275k files; two n8n releases, Open WebUI, pgvector and Prometheus besides)
from the kit registry into its own /var/lib/docker: 5-6 min of each converge
on CI's two cores, ten times per suite. Here one throwaway test host (same
image, same Debian docker.io as the docker role installs) pulls them once into
a volume; each test host's /var/lib/docker starts as a copy of that store
whose layer files are hard links, so a host gets them in seconds and no disk.

What the tests still prove: every converge pulls the stack's other images
for real through the registry mirror (the docker role's parallel pull); the
big images are present as if an earlier run had pulled them, which the role
treats exactly like a re-run does (present images are not pulled again).
Image layers are read-only lower layers for overlayfs, so hosts sharing the
files cannot change each other's images; the image metadata (small) is copied.
Only hosts run by tests/run.py are filled; `molecule test` alone pulls everything.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "images"))
import kit  # noqa: E402  (tests/images/kit.py)

VOLUME = "aistack-test-image-store"
SEEDER = "aistack-test-image-store-seeder"
TEST_HOST_IMAGE = "aistack-testhost:debian13"
# The kit images of 300 MB and more (each name's official references).
SEEDED = ("n8n-official", "n8n-runners", "n8n-broken", "n8n-official-previous", "n8n-runners-previous",
          "open-webui", "pgvector", "pgvector-pg15", "prometheus")
# Written into the volume after a complete seeding: what it holds.
KEY_FILE = "aistack-image-store.key"
# What of a daemon's data root is the image store (the rest is per daemon: networks, engine id).
STORE_DIRS = ("image", "overlay2")
# The test hosts' run options (molecule/*/molecule.yml platforms).
HOST_RUN_OPTIONS = ("--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE",
                    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns", "host",
                    "-e", "container=docker", "--stop-signal", "SIGRTMIN+3")


def seeded() -> list[tuple[str, str]]:
    """(official reference, what a test host pulls) of each seeded image: Docker Hub
    names through the registry mirror, other registries' by their kit registry path."""
    pairs = []
    for name in SEEDED:
        for official_ref in kit.IMAGES[name].official_refs:
            path, tag = kit.registry_path(official_ref)
            first = official_ref.partition("/")[0]
            on_hub = not ("." in first or ":" in first) or first in ("docker.io", "index.docker.io")
            pairs.append((official_ref, official_ref if on_hub else f"{kit.REGISTRY_ALIAS}:5000/{path}:{tag}"))
    return pairs


def pull_refs() -> list[str]:
    return [pull_ref for _, pull_ref in seeded()]


def wanted_key() -> str | None:
    """What the store must hold: the test-host image and each reference's image
    in the registry. None when the registry lacks one (then nothing is seeded)."""
    parts = [docker("image", "inspect", "--format", "{{.Id}}", TEST_HOST_IMAGE).stdout.strip()]
    for official_ref, pull_ref in seeded():
        digest = kit.remote_config_digest(official_ref)
        if not digest:
            return None
        parts.append(f"{pull_ref}={digest}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], text=True, capture_output=True, check=check)


def volume_dir(volume: str) -> Path | None:
    result = docker("volume", "inspect", "--format", "{{.Mountpoint}}", volume, check=False)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def ensure() -> Path | None:
    """The store's directory, seeded now if missing or stale; None (hosts then
    pull everything) when the registry lacks an image or seeding fails."""
    key = wanted_key()
    if key is None:
        print("image store: the kit registry lacks a seeded image; test hosts pull everything", flush=True)
        return None
    store = volume_dir(VOLUME)
    if store and (store / KEY_FILE).exists() and (store / KEY_FILE).read_text() == key:
        print(f"image store: up to date ({VOLUME})", flush=True)
        return store
    started = time.monotonic()
    docker("rm", "--force", SEEDER, check=False)
    docker("volume", "rm", "--force", VOLUME, check=False)
    try:
        seed()
    except subprocess.CalledProcessError as error:
        print(f"image store: seeding failed ({' '.join(error.cmd[:4])}: {error.stderr.strip()[-400:]}); "
              "test hosts pull everything", flush=True)
        docker("volume", "rm", "--force", VOLUME, check=False)
        return None
    finally:
        docker("rm", "--force", SEEDER, check=False)
    store = volume_dir(VOLUME)
    for leftover in store.iterdir():
        if leftover.name not in STORE_DIRS:
            subprocess.run(["rm", "-rf", str(leftover)], check=True)
    (store / KEY_FILE).write_text(key)
    print(f"image store: seeded {len(pull_refs())} references in {time.monotonic() - started:.0f}s ({VOLUME})",
          flush=True)
    return store


def seed() -> None:
    """A test host with Debian's docker.io pulls the references into the volume."""
    docker("run", "--detach", "--name", SEEDER, "--network", kit.NETWORK, *HOST_RUN_OPTIONS,
           "-v", f"{VOLUME}:/var/lib/docker", TEST_HOST_IMAGE)
    daemon = {"registry-mirrors": [f"http://{kit.REGISTRY_ALIAS}:5000"],
              "insecure-registries": [f"{kit.REGISTRY_ALIAS}:5000"]}
    script = f"""set -eu
for _ in $(seq 60); do
  case "$(systemctl is-system-running --wait 2>/dev/null)" in running|degraded) break;; esac; sleep 1
done
mkdir -p /etc/docker
echo '{json.dumps(daemon)}' > /etc/docker/daemon.json
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io docker-cli >/dev/null
systemctl restart docker
printf '%s\\n' {' '.join(pull_refs())} | xargs -P 4 -n 1 docker pull -q >/dev/null
systemctl stop docker.socket docker containerd
"""
    subprocess.run(["docker", "exec", SEEDER, "sh", "-c", script], text=True, capture_output=True, check=True)


def fill(container: str, store: Path) -> float:
    """Give a created, not yet prepared test host the store (before its Docker exists).

    Returns the seconds it took; 0 when the host has no /var/lib/docker volume
    or already has a data root."""
    started = time.monotonic()
    mounts = json.loads(docker("inspect", "--format", "{{json .Mounts}}", container).stdout)
    target = next((Path(mount["Source"]) for mount in mounts
                   if mount["Destination"] == "/var/lib/docker" and mount["Type"] == "volume"), None)
    if target is None or not fill_dir(target, store):
        return 0.0
    return time.monotonic() - started


def fill_all(containers: list[str], store: Path) -> list[tuple[str, float]]:
    """fill() each host side by side (each is a few hundred thousand hard links, mostly
    waiting on the disk: three hosts 57 s instead of 100 s); (host, seconds) in order."""
    with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
        return list(zip(containers, pool.map(lambda container: fill(container, store), containers)))


def fill_dir(target: Path, store: Path) -> bool:
    """An empty data root becomes the store: layer files as hard links, the image
    metadata (a few MB, rewritten by each daemon) as copies of its own."""
    if any(target.iterdir()):
        return False
    subprocess.run(["cp", "-al", str(store / "overlay2"), str(target / "overlay2")], check=True)
    subprocess.run(["cp", "-a", str(store / "image"), str(target / "image")], check=True)
    return True


if __name__ == "__main__":
    # `python tests/image_store.py [HOST...]`: seed (if needed), then fill the named hosts;
    # `python tests/image_store.py --clean`: remove the store (make clean).
    if sys.argv[1:] == ["--clean"]:
        docker("volume", "rm", "--force", VOLUME, check=False)
        sys.exit(0)
    directory = ensure()
    for host, seconds in fill_all(sys.argv[1:], directory) if directory else []:
        print(f"image store: {host} filled in {seconds:.1f}s", flush=True)
