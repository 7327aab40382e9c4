#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""One Compose project in one round trip: files, validation, compose up, Traefik routes."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_project
short_description: Write a Compose project's files, validate them, bring it up and publish its routes in one call
version_added: 0.2.0
description:
  - Replaces a chain of C(file), C(copy), C(template) and
    M(community.docker.docker_compose_v2) tasks (one round trip each) with one
    module run per project, so a run that changes nothing costs one round trip
    and one C(docker compose up) per project.
  - Writes the project directory O(dir) (mode 0750), its C(.env) (O(env), mode
    0600), the configuration files (O(files) and O(secret_files)) and
    C(compose.yml) (O(project), mode 0640), each only when its content, mode or
    owner differs, through a temporary file in the same directory that is
    validated (the file's O(files[].validate) command; C(docker compose config -q)
    for C(compose.yml)) before it replaces the old one.
  - Then runs C(docker compose up -d --wait --remove-orphans) (images pulled
    when missing), unless no file differs and the project's containers are
    exactly those the last successful C(up) of the same inputs left, all
    running and none unhealthy or starting (recorded in C(.aistack-up.json)
    in O(dir)); then there is nothing for Compose to do and C(up) is skipped.
    That record is removed before the first file changes and written again only
    after a successful C(up), so while it exists the files on disk are those
    its C(up) applied (aistack.hosting.stack_resume relies on it).
    Compose recreates only the services whose definition or environment
    changed; the module reports a change only when Compose
    created, recreated, started, stopped or removed something.
  - Once the project is healthy, writes O(routes) to O(routes_path) (Traefik's
    file provider), or removes that file when O(routes) is empty.
  - In check mode nothing is written or started; a change is predicted from
    the files, and with unchanged files from C(docker compose up --dry-run).
options:
  name:
    description: Compose project name.
    type: str
    required: true
  dir:
    description: Project directory (created, root, mode 0750).
    type: path
    required: true
  env:
    description: Content of the project's C(.env) file (may hold secrets, never shown).
    type: str
    default: ""
  project:
    description: Content of C(compose.yml).
    type: str
    required: true
  directories:
    description:
      - Directories under O(dir) the configuration lives in, made first with exactly this owner, group and
        mode (a container's user may need to read them).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - Path relative to O(dir), or absolute for a host directory the project mounts
            (a backup directory); an absolute one is kept when the project is removed.
        type: str
        required: true
      owner:
        description: Owner (name or uid).
        type: raw
        default: root
      group:
        description: Group (name or gid).
        type: raw
        default: root
      mode:
        description: Octal mode, for example C("0750").
        type: str
        default: "0750"
      exclusive:
        description: Regular files in it that no O(files) or O(secret_files) entry declares are removed.
        type: bool
        default: false
      reload:
        description: Services sent SIGHUP when a file in it was removed (see O(files[].reload)).
        type: list
        elements: str
        default: []
  absent:
    description: Paths (relative to O(dir)) of files that must not exist (a feature turned off); removed when present.
    type: list
    elements: str
    default: []
  files:
    description: Configuration files without secrets (shown in diff mode).
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Path relative to O(dir).
        type: str
        required: true
      content:
        description: The file's content.
        type: str
        required: true
      owner:
        description: Owner (name or uid).
        type: str
        default: root
      group:
        description: Group (name or gid).
        type: str
        default: root
      mode:
        description: Octal mode, for example C("0644").
        type: str
        default: "0644"
      validate:
        description: Command run on the candidate file (C(%s) is its path) before it replaces the old one.
        type: str
      reload:
        description:
          - Compose services that re-read this file on SIGHUP (Prometheus, Alertmanager). When it was written
            and C(docker compose up) did not just create or recreate them, they get SIGHUP instead of a restart.
        type: list
        elements: str
        default: []
  secret_files:
    description: Configuration files that hold secrets; their content is never shown or diffed.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Path relative to O(dir).
        type: str
        required: true
      content:
        description: The file's content.
        type: str
        required: true
      owner:
        description: Owner (name or uid).
        type: str
        default: root
      group:
        description: Group (name or gid).
        type: str
        default: root
      mode:
        description: Octal mode, for example C("0600").
        type: str
        default: "0600"
      validate:
        description: Command run on the candidate file (C(%s) is its path) before it replaces the old one.
        type: str
      reload:
        description: As O(files[].reload).
        type: list
        elements: str
        default: []
      restart:
        description:
          - Compose services that read this file only when they start (a C(_FILE) secret mounted from
            C(secrets/<service>/)). When the file was written and C(docker compose up) did not create or
            recreate them anyway, they are recreated (C(--force-recreate --no-deps --wait)), because Compose
            cannot see a change in a mounted file.
          - A directory holding such files is made mode 0711 (traverse, no listing) so that a container's
            non-root user reaches the files its own owner and mode allow.
        type: list
        elements: str
        default: []
  volumes:
    description:
      - Named volumes the project mounts as C(external) (shared with another project, or kept when this one is
        removed), created before C(up) when missing; never removed or relabelled here.
      - Replaces a M(community.docker.docker_volume) task (and a C(file) task per directory inside it) per volume;
        the check rides on the project's own round trip.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Volume name.
        type: str
        required: true
      labels:
        description: Labels the volume is created with.
        type: dict
        default: {}
      directories:
        description: Directories inside the volume made with exactly this owner, group and mode (a container user's own part).
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Path relative to the volume's root.
            type: str
            required: true
          owner:
            description: Owner (name or uid).
            type: raw
            default: root
          group:
            description: Group (name or gid).
            type: raw
            default: root
          mode:
            description: Octal mode, for example C("0755").
            type: str
            default: "0755"
  wait_timeout:
    description: Seconds C(docker compose up --wait) waits for every service to be running and healthy.
    type: int
    default: 300
  routes:
    description: Traefik dynamic configuration of the project's routes; empty removes O(routes_path).
    type: str
    default: ""
  routes_path:
    description: Where Traefik's file provider reads the project's routes.
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Nothing is written or started; files are compared and Compose is asked with C(--dry-run).
  diff_mode:
    support: partial
    details: C(compose.yml), the routes and O(files) are diffed; C(.env) and O(secret_files) never.
  platform:
    platforms: posix
requirements:
  - Docker Engine with the Compose v2 plugin (C(docker compose)) on the host.
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Render, validate, bring up and route the project redis
  aistack.hosting.compose_project:
    name: redis
    dir: /opt/aistack/redis
    env: "REDISCLI_AUTH=...\n"
    project: "{{ lookup('ansible.builtin.template', 'compose.yml.j2') }}"
    secret_files:
      - {dest: redis.conf, content: "{{ lookup('ansible.builtin.template', 'redis.conf.j2') }}", owner: "999", mode: "0600"}
    routes_path: /opt/aistack/traefik/dynamic/routes-redis.yml
  no_log: false
"""

RETURN = r"""
files_changed:
  description:
    - Paths (relative to O(dir)) that were (or in check mode would be) written; C(volume NAME) for a volume
      created and C(volume NAME:PATH) for a directory made or fixed inside one.
  returned: always
  type: list
  elements: str
  sample: [redis.conf, compose.yml]
compose_changed:
  description: Whether Compose created, recreated, started, stopped or removed something (or would).
  returned: always
  type: bool
compose_events:
  description: The Compose events that were changes, for example C(Container aistack-redis  Recreated).
  returned: always
  type: list
  elements: str
routes_changed:
  description: Whether the routes file was written or removed (or would be).
  returned: always
  type: bool
"""

import contextlib
import hashlib
import json
import os
import re
import shlex

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.hosting.plugins.module_utils.atomic import write_atomically
from ansible_collections.aistack.hosting.plugins.module_utils.file_set import FileSet, current, gid, uid
from ansible_collections.aistack.hosting.plugins.module_utils.up_record import UP_RECORD, read_up_record, up_record_content

# Compose progress lines that mean something was done, not merely looked at
# ("Running", "Waiting", "Healthy" are the no-op ones).
CHANGE_EVENT = re.compile(r"^\s*(?:DRY-RUN MODE -\s+)?((?:Container|Network|Volume)\s+\S+\s+(?:Created|Recreated|Started|Stopped|Removed))\s*$")


class Project(FileSet):
    def __init__(self, module: AnsibleModule):
        super().__init__(module, module.params["dir"])
        self.params = module.params
        # Services to recreate because a file they read at start was written,
        # and services to send SIGHUP because a file they re-read was.
        self.restart: set[str] = set()
        self.reload: set[str] = set()
        # What this run applies (every input that reaches the project directory), for the up record.
        applied = {k: self.params[k] for k in ("env", "project", "files", "secret_files", "directories", "absent", "volumes")}
        self.digest = hashlib.sha256(json.dumps(applied, sort_keys=True).encode()).hexdigest()
        self.record_dropped = False

    def before_write(self) -> None:
        """The record goes before the first file changes and comes back only after a successful `up`: while
        it exists, the files on disk are those its `up` applied (stack_resume brings such a project back)."""
        if not self.record_dropped:
            self.record_dropped = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(UP_RECORD))

    def docker_compose(self, *args: str, check_rc: bool = False) -> tuple[int, str]:
        cmd = ["docker", "compose", "--ansi", "never", "--progress", "plain",
               "--project-directory", self.base, "-p", self.params["name"], *args]
        rc, out, err = self.module.run_command(cmd, check_rc=check_rc)
        return rc, (out + err)

    def ensure_volumes(self) -> None:
        """The external volumes: created when missing, then their declared directories."""
        for volume in self.params["volumes"]:
            name = volume["name"]
            inspect = ["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", name]
            rc, out, _err = self.module.run_command(inspect)
            if rc != 0:
                self.changed.append(f"volume {name}")
                if self.check:
                    continue  # its directories would be made too
                self.before_write()
                labels = [arg for key, value in sorted(volume["labels"].items()) for arg in ("--label", f"{key}={value}")]
                self.module.run_command(["docker", "volume", "create", *labels, name], check_rc=True)
                rc, out, _err = self.module.run_command(inspect, check_rc=True)
            for item in volume["directories"]:
                before = len(self.changed)
                self.ensure_declared_dir(os.path.join(out.strip(), item["path"]), item)
                if len(self.changed) > before:
                    self.changed[-1] = f"volume {name}:{item['path']}"

    def ensure_declared_dir(self, path: str, item: dict) -> None:
        """A declared directory (of the project or inside a volume): exactly its owner, group and mode."""
        self.ensure_dir(path, int(item["mode"], 8), (uid(item["owner"]), gid(item["group"])))

    def apply_files(self) -> None:
        p = self.params
        self.ensure_volumes()
        self.ensure_dir(self.base, 0o750)
        for item in p["directories"]:
            self.ensure_declared_dir(self.path(item["path"]), item)
        self.put(".env", p["env"], "root", "root", "0600", None, show=False)
        for item in p["secret_files"]:
            if item["restart"]:
                self.ensure_dir(os.path.dirname(self.path(item["dest"])), mode=0o711)
            self.put_item(item, show=False)
        for item in p["files"]:
            self.put_item(item, show=True)
        self.prune()
        for rel in self.params["absent"]:
            if os.path.isfile(self.path(rel)):
                self.remove(rel, show=False)
        # Compose reads .env and the files beside it: validate compose.yml last, in place.
        self.put("compose.yml", p["project"], "root", "root", "0640",
                 f"docker compose --project-directory {shlex.quote(self.base)} -f %s config -q", show=True)

    def put_item(self, item: dict, show: bool) -> None:
        """One declared file; remember which services must restart or reload when it was written."""
        if self.put(item["dest"], item["content"], item["owner"], item["group"], item["mode"], item["validate"], show=show):
            self.restart.update(item.get("restart") or [])
            self.reload.update(item.get("reload") or [])

    def prune(self) -> None:
        """Remove undeclared regular files from the exclusive directories."""
        declared = {os.path.normpath(item["dest"]) for item in self.params["files"] + self.params["secret_files"]}
        for item in self.params["directories"]:
            path = self.path(item["path"])
            if not item["exclusive"] or not os.path.isdir(path):
                continue
            for name in sorted(os.listdir(path)):
                rel = os.path.normpath(os.path.join(item["path"], name))
                if rel in declared or not os.path.isfile(os.path.join(path, name)) or name.startswith("."):
                    continue
                self.reload.update(item["reload"])
                self.remove(rel)

    def containers(self) -> list[list[str]] | None:
        """[id, state, status] of every container of the project (one daemon question), None when unreadable."""
        rc, out, _err = self.module.run_command(
            ["docker", "ps", "-a", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.params['name']}",
             "--format", "{{.ID}}\t{{.State}}\t{{.Status}}"])
        return [line.split("\t") for line in out.splitlines() if line.strip()] if rc == 0 else None

    def settled(self) -> bool:
        """No file differs and the containers are exactly those the last successful `up` of these inputs left,
        all running and none unhealthy or still starting: `up` would do nothing."""
        if self.changed:
            return False
        # The record of the last successful `up` (module_utils/up_record.py); skipping saves ~1-4 s per project.
        record = read_up_record(self.base)
        if record is None or record.get("digest") != self.digest:
            return False  # the last `up` of these inputs did not succeed
        rows = self.containers()
        if not rows or sorted(r[0] for r in rows) != record.get("containers"):
            return False
        return all(len(r) == 3 and r[1] == "running" and "unhealthy" not in r[2] and "health: starting" not in r[2]
                   for r in rows)

    def record(self) -> None:
        """Remember what the successful `up` applied and which containers it left."""
        rows = self.containers()
        if rows is None:
            return
        content = up_record_content(self.digest, [r[0] for r in rows])
        path = self.path(UP_RECORD)
        if current(path) != (content, (0, 0, 0o600)):
            write_atomically(path, content, 0o600)

    def up(self) -> tuple[bool, list[str]]:
        """docker compose up (or its dry run); whether anything changed, and what."""
        if self.settled():
            return False, []
        if self.check:
            if self.changed:
                return True, []
            rc, out = self.docker_compose("up", "--dry-run", "-d", "--remove-orphans")
            if rc != 0:
                # No project to dry-run against (first deploy): it would be created.
                return True, []
            events = [m.group(1) for m in map(CHANGE_EVENT.match, out.splitlines()) if m]
            return bool(events), events
        rc, out = self.docker_compose("up", "-d", "--wait", "--wait-timeout", str(self.params["wait_timeout"]),
                                      "--remove-orphans", "--pull", "missing")
        if rc != 0:
            ps = self.docker_compose("ps", "-a", "--format", "table {{.Name}}\t{{.State}}\t{{.Status}}")[1]
            self.module.fail_json(
                msg=f"docker compose up of {self.params['name']} failed or did not become healthy within "
                    f"{self.params['wait_timeout']} s: {out.strip().splitlines()[-1] if out.strip() else rc}",
                compose_output=out.splitlines()[-40:], compose_ps=ps.splitlines(), files_changed=self.changed)
        events = [m.group(1) for m in map(CHANGE_EVENT.match, out.splitlines()) if m]
        # Files read at start or re-read on SIGHUP: Compose cannot see them change.
        stale = self.services_not_fresh(self.restart | self.reload, events)
        events += self.recreate(sorted(stale & self.restart))
        events += self.send_reload(sorted(stale & (self.reload - self.restart)))
        self.record()
        return bool(events), events

    def services_not_fresh(self, wanted: set[str], events: list[str]) -> set[str]:
        """Of the wanted services, those up did not just create or recreate (one `ps`, only when asked)."""
        if not wanted:
            return set()
        rc, out = self.docker_compose("ps", "-a", "--format", "{{.Service}} {{.Name}}")
        fresh = {event.split()[1] for event in events if event.split()[-1] in ("Created", "Recreated")}
        return {service for service, name in (line.split() for line in out.splitlines() if line.strip())
                if service in wanted and name not in fresh}

    def send_reload(self, services: list[str]) -> list[str]:
        """SIGHUP to the services whose re-readable files were written."""
        if not services:
            return []
        rc, out = self.docker_compose("kill", "-s", "SIGHUP", *services)
        if rc != 0:
            self.module.fail_json(msg=f"sending SIGHUP to {', '.join(services)} of {self.params['name']} failed",
                                  compose_output=out.splitlines()[-20:], files_changed=self.changed)
        return [f"Container {service}  Reloaded" for service in services]

    def recreate(self, services: list[str]) -> list[str]:
        """Recreate the services whose start-time files were written."""
        if not services:
            return []
        rc, out = self.docker_compose("up", "-d", "--wait", "--wait-timeout", str(self.params["wait_timeout"]),
                                      "--no-deps", "--force-recreate", *services)
        if rc != 0:
            self.module.fail_json(msg=f"recreating {', '.join(services)} of {self.params['name']} (a file they read at "
                                      f"start changed) failed or did not become healthy",
                                  compose_output=out.splitlines()[-40:], files_changed=self.changed)
        return [m.group(1) for m in map(CHANGE_EVENT.match, out.splitlines()) if m]

    def routes(self) -> bool:
        path, content = self.params["routes_path"], self.params["routes"]
        have, have_meta = current(path)
        if not content:
            if have is None:
                return False
            if not self.check:
                os.unlink(path)
            self.diffs.append({"before_header": path, "after_header": path, "before": have, "after": ""})
            return True
        if have == content and have_meta == (0, 0, 0o600):
            return False
        if have != content:
            self.diffs.append({"before_header": path, "after_header": path, "before": have or "", "after": content})
        if not self.check:
            os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
            write_atomically(path, content, 0o600)  # basic-auth hashes
        return True


def main() -> None:
    file_spec = {
        "dest": {"type": "str", "required": True},
        "content": {"type": "str", "required": True},
        "owner": {"type": "str", "default": "root"},
        "group": {"type": "str", "default": "root"},
        "mode": {"type": "str", "default": "0644"},
        "validate": {"type": "str"},
        "reload": {"type": "list", "elements": "str", "default": []},
    }
    secret_spec = dict(file_spec, content={"type": "str", "required": True, "no_log": True},
                       mode={"type": "str", "default": "0600"},
                       restart={"type": "list", "elements": "str", "default": []})
    directory_spec = {
        "path": {"type": "str", "required": True},
        # raw: a uid given as a number (e.g. a role's uid variable) is used as it is, no conversion warning.
        "owner": {"type": "raw", "default": "root"},
        "group": {"type": "raw", "default": "root"},
        "mode": {"type": "str", "default": "0750"},
        "exclusive": {"type": "bool", "default": False},
        "reload": {"type": "list", "elements": "str", "default": []},
    }
    volume_spec = {
        "name": {"type": "str", "required": True},
        "labels": {"type": "dict", "default": {}},
        # The project's directory entries without its pruning and reload (a volume's part is the container's).
        "directories": {"type": "list", "elements": "dict", "default": [], "options": {
            **{key: directory_spec[key] for key in ("path", "owner", "group")},
            "mode": {"type": "str", "default": "0755"},
        }},
    }
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "dir": {"type": "path", "required": True},
            "env": {"type": "str", "default": "", "no_log": True},
            "project": {"type": "str", "required": True},
            "directories": {"type": "list", "elements": "dict", "default": [], "options": directory_spec},
            "absent": {"type": "list", "elements": "str", "default": []},
            "files": {"type": "list", "elements": "dict", "default": [], "options": file_spec},
            # Not a secret itself (paths, modes); each content is no_log above.
            "secret_files": {"type": "list", "elements": "dict", "default": [], "options": secret_spec, "no_log": False},
            "volumes": {"type": "list", "elements": "dict", "default": [], "options": volume_spec},
            "wait_timeout": {"type": "int", "default": 300},
            "routes": {"type": "str", "default": ""},
            "routes_path": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    project = Project(module)
    project.apply_files()
    compose_changed, events = project.up()
    routes_changed = project.routes()
    result = {
        "changed": bool(project.changed) or compose_changed or routes_changed,
        "files_changed": project.changed,
        "compose_changed": compose_changed,
        "compose_events": events,
        "routes_changed": routes_changed,
    }
    if module._diff:
        result["diff"] = project.diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
