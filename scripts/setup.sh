#!/usr/bin/env bash
# Prepare this machine for the demo and the tests: Docker engine + debootstrap
# from Debian, a running dockerd, and the Python venv from requirements.txt.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
# ansible-test sanity's shellcheck test is skipped (with only a warning) without it.
command -v shellcheck >/dev/null 2>&1 || need_pkgs+=(shellcheck)
# The backup tool's unit tests run real restic against a local repository.
command -v restic >/dev/null 2>&1 || need_pkgs+=(restic)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd (log: /var/log/dockerd.log)"
  (setsid dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start, see /var/log/dockerd.log" >&2; exit 1; }
fi

# requirements-test.txt: what the unit tests import beyond the tooling (the
# sample app's pinned dependencies), so no test skips for a missing import.
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-test.txt apps/sample_app/requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building .venv from requirements.txt + requirements-test.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip 2>/dev/null
  .venv/bin/pip install -q -r requirements.txt -r requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c 'import ansible, molecule, testinfra, xdist, fastapi.testclient, celery, sqlalchemy'
  echo "$want" > "$stamp"
fi
# The checkout as collection aistack.hosting (collections/ansible_collections/aistack/hosting -> ../../..),
# made here rather than kept in git (a directory symlink in the tree fails ansible-test and Galaxy).
python3 tests/checkout_link.py
echo "setup: ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null) engine, $(.venv/bin/ansible --version | head -1))"
