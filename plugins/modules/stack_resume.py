#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Start, all at once, the stack's Compose projects stopped (or with their containers removed) since their last good `up`."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_resume
short_description: Bring back together the stack's stopped or removed Compose projects, as the engine starts containers at boot
version_added: 0.1.0
description:
  - A converge brings every project up in the layout's order, each C(docker compose up --wait) waiting for
    its services to be healthy before the next project starts. When the stack was stopped (C(docker compose
    stop), a maintenance window) or its containers were removed (C(docker compose down), C(docker system
    prune), an engine reinstalled), that makes the converge the sum of every project's start time.
  - This module runs first (the docker role, right after the images are pulled) and brings back, side by
    side, every project under O(base_dir) that holds the record of a successful C(up) of
    aistack.hosting.compose_project (C(.aistack-up.json); compose_project removes it before it changes any
    file and writes it again only after a successful C(up), so the files on disk are those that C(up)
    applied). Each role's own C(up --wait) later finds its containers starting and only waits for their
    health, or recreates what its new configuration changes.
  - A project stopped exactly as that C(up) left it (the recorded container ids are its containers and none
    runs) has its containers started by ONE C(docker start) for all such projects, in O(projects) order,
    without Compose's ordering, the same as the engine does at boot, which every service of the stack
    survives (a service whose dependency is not ready yet exits and its restart policy starts it again).
    One-shot containers (restart policy C(no), e.g. a volume's permission fix) are left to their project's
    C(up), which orders them.
  - A project with no container at all (O(create_removed)) gets C(docker compose up -d) of its files on
    disk, all such projects at once (each Compose orders its own services; the images are on the host, none
    is pulled). A project whose C(up) fails here is reported in RV(left) and left to its role's ordered
    C(up), which fails with the reason if it is not a passing one (a dependency in another project not
    ready yet).
  - A project with any container running, with containers other than those recorded (a failed upgrade,
    a manual C(docker run)), or without a record is left alone (its role's C(up) decides).
  - Waits for no health; health is each project's C(up --wait).
  - In check mode nothing is started; the projects that would be are reported.
options:
  base_dir:
    description: The stack's base directory (C(aistack_base_dir)); every C(<base_dir>/<project>/) holding a record is a candidate.
    type: path
    required: true
  holds:
    description:
      - Paths on the host whose presence means a role stopped containers on purpose while it moves data (a
        Postgres major upgrade whose load is still due); while any of them exists nothing is started, and each
        project waits for its role's ordered C(up) (which finishes the move first).
      - The roles publish them (C(<role>_published.resume_holds)); the docker role passes them all.
    type: list
    elements: path
    default: []
  create_removed:
    description: Also bring up (C(docker compose up -d), no wait) the recorded projects that have no container at all.
    type: bool
    default: true
  timeout:
    description: Seconds each C(docker compose up -d) of O(create_removed) may take; one still running then is reported in RV(left).
    type: int
    default: 300
  projects:
    description:
      - Start order (project names, dependencies first); the containers of an earlier project are started first.
      - Projects not named here start after the named ones; an empty list starts them in name order.
    type: list
    elements: str
    default: []
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Bring back together the stack's stopped or removed projects
  aistack.hosting.stack_resume:
    base_dir: /opt/aistack
    projects: [postgres, redis, traefik, n8n]
"""

RETURN = r"""
started:
  description: Project name to the names of the containers started (or that would be, in check mode).
  returned: always
  type: dict
  sample: {postgres: [aistack-postgres], n8n: [aistack-n8n, aistack-n8n-worker-1]}
created:
  description: Projects that had no container and were brought up with C(docker compose up -d) (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [redis, n8n]
held:
  description: The O(holds) that exist (nothing was started because of them).
  returned: always
  type: list
  elements: str
  sample: [/var/backups/aistack/postgres/major-upgrade.pending]
left:
  description: Projects with stopped containers that were not started, or whose C(up -d) here failed, and why.
  returned: always
  type: dict
  sample: {n8n: containers differ from the last successful up}
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.hosting.plugins.module_utils.up_record import read_up_record

PROJECT_LABEL = "com.docker.compose.project"


def recorded(base_dir: str) -> dict[str, list[str]]:
    """Project name to the container ids its last successful `up` left, for every project with a record."""
    records = {}
    try:
        names = sorted(os.listdir(base_dir))
    except OSError:
        return records
    for name in names:
        record = read_up_record(os.path.join(base_dir, name)) or {}
        if isinstance(record.get("containers"), list) and record["containers"]:
            records[name] = record["containers"]
    return records


def inspect_containers(module: AnsibleModule) -> list[dict]:
    """Every Compose container on the host (two daemon questions)."""
    ids = module.run_command(["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={PROJECT_LABEL}"],
                             check_rc=True)[1].split()
    if not ids:
        return []
    out = module.run_command(["docker", "inspect", *ids], check_rc=True)[1]
    return json.loads(out)


def plan(records: dict[str, list[str]], containers: list[dict]) -> tuple[dict[str, list[dict]], list[str], dict[str, str]]:
    """Projects to start (their containers to start), recorded projects without any container (to bring up)
    and the stopped ones left alone, with why."""
    by_project: dict[str, list[dict]] = {}
    for container in containers:
        project = (container.get("Config", {}).get("Labels") or {}).get(PROJECT_LABEL)
        if project:
            by_project.setdefault(project, []).append(container)
    start, left = {}, {}
    for project, members in sorted(by_project.items()):
        states = [c.get("State", {}).get("Status") for c in members]
        if any(state not in ("exited", "created") for state in states):
            continue  # something runs (or restarts, or is paused): the project's own `up` decides
        if project not in records:
            left[project] = "no record of a successful up"
        elif sorted(c["Id"] for c in members) != sorted(records[project]):
            left[project] = "containers differ from the last successful up"
        else:
            chosen = [c for c in members
                      if (c.get("HostConfig", {}).get("RestartPolicy") or {}).get("Name", "no") not in ("", "no")]
            if chosen:
                start[project] = chosen
    removed = sorted(set(records) - set(by_project))
    return start, removed, left


def compose_up(module: AnsibleModule, base_dir: str, names: list[str]) -> dict[str, str]:
    """`docker compose up -d` of each project from its files on disk, all at once; the failed ones, with why."""
    def up(name: str) -> tuple[str, int, str]:
        cmd = ["timeout", str(module.params["timeout"]), "docker", "compose", "--ansi", "never", "--progress", "plain",
               "--project-directory", os.path.join(base_dir, name), "-p", name,
               "up", "-d", "--remove-orphans", "--pull", "never"]
        rc, out, err = module.run_command(cmd)
        return name, rc, (err or out).strip()

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        results = list(pool.map(up, names))
    return {name: f"docker compose up -d failed here (rc {rc}), left to its role: {(text.splitlines() or [''])[-1][-300:]}"
            for name, rc, text in results if rc != 0}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "base_dir": {"type": "path", "required": True},
            "projects": {"type": "list", "elements": "str", "default": []},
            "holds": {"type": "list", "elements": "path", "default": []},
            "create_removed": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 300},
        },
        supports_check_mode=True,
    )
    held = [path for path in module.params["holds"] if os.path.lexists(path)]
    records = recorded(module.params["base_dir"]) if not held else {}
    if not records:
        module.exit_json(changed=False, started={}, created=[], left={}, held=held)
    start, removed, left = plan(records, inspect_containers(module))
    order = module.params["projects"]

    def in_order(projects) -> list[str]:
        return sorted(projects, key=lambda name: (order.index(name) if name in order else len(order), name))

    names = in_order(start)
    created = in_order(removed) if module.params["create_removed"] else []
    started = {name: sorted(c["Name"].lstrip("/") for c in start[name]) for name in names}
    if start and not module.check_mode:
        # One `docker start` for all: the engine starts them in this order without waiting on health.
        ids = [c["Id"] for name in names for c in start[name]]
        rc, out, err = module.run_command(["docker", "start", *ids])
        if rc != 0:
            module.fail_json(msg=f"docker start of the stopped projects {', '.join(names)} failed: "
                                 f"{(err or out).strip()[-400:]}", started=started, created=[], left=left, held=[])
    if created and not module.check_mode:
        failed = compose_up(module, module.params["base_dir"], created)
        left.update(failed)
        created = [name for name in created if name not in failed]
    module.exit_json(changed=bool(start or created), started=started, created=created, left=left, held=[])


if __name__ == "__main__":
    main()
