#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""A role's host files and systemd units in one call (one round trip instead of one per file and unit)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_files
short_description: Place a role's host files and run its systemd units in one call
version_added: 0.1.0
description:
  - Makes directories, writes files (tools, configuration, systemd units) and removes
    files, each only when its content, owner, group or mode differs, atomically and
    after its own validation command accepted the candidate. Then reloads systemd when
    a unit file was written or removed, and brings each listed unit to its wanted state.
  - Replaces a C(file), C(copy) or C(template) task per file and a C(systemd_service)
    task per unit; the templates are rendered on the controller (C(lookup('template'))).
  - Units that must stop are stopped and disabled before any file is removed; units
    that must run are enabled and started after their files are in place.
  - In check mode nothing is written or started; a unit whose file would be written is
    reported as it would be changed.
options:
  directories:
    description: Directories made with exactly this owner, group and mode.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
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
  files:
    description: Files without secrets (shown in diff mode). A missing parent directory is made root, mode 0750.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path.
        type: path
        required: true
      content:
        description: The file's content.
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
        description: Octal mode, for example C("0644").
        type: str
        default: "0644"
      validate:
        description: Command run on the candidate file (C(%s) is its path) before it replaces the old one.
        type: str
  secret_files:
    description: Files that hold secrets; their content is never shown or diffed.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path.
        type: path
        required: true
      content:
        description: The file's content.
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
        description: Octal mode, for example C("0600").
        type: str
        default: "0600"
      validate:
        description: Command run on the candidate file (C(%s) is its path) before it replaces the old one.
        type: str
  absent:
    description: Files that must not exist (a feature turned off); removed when present.
    type: list
    elements: path
    default: []
  units:
    description: Systemd units and the state they must be in, handled in this order.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Unit name, for example C(aistack-backup.timer).
        type: str
        required: true
      enabled:
        description: Whether it starts at boot.
        type: bool
        default: true
      state:
        description:
          - C(started) or C(stopped); C(restarted) restarts it only when a file of this call was
            written or removed (a timer whose schedule changed), and otherwise only starts it.
          - Omitted, only O(units[].enabled) is enforced.
        type: str
        choices: [started, stopped, restarted]
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Install the backup tool, its configuration, units and timers
  aistack.hosting.host_files:
    directories:
      - {path: /etc/aistack/backup, mode: "0700"}
    files:
      - dest: /usr/local/lib/aistack/aistack-backup.py
        content: "{{ lookup('file', 'aistack-backup.py', rstrip=false) }}"
      - dest: /etc/systemd/system/aistack-backup.timer
        content: "{{ lookup('template', 'aistack-backup.timer.j2') }}"
    secret_files:
      - dest: /etc/aistack/backup/config.json
        content: "{{ config | to_nice_json }}"
    units:
      - {name: aistack-backup.timer, state: started}
  no_log: true  # only when a secret could reach the arguments' display
"""

RETURN = r"""
files_changed:
  description: Paths written, made or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
units_changed:
  description: What was done to the units, for example C(aistack-backup.timer started).
  returned: always
  type: list
  elements: str
daemon_reloaded:
  description: Whether systemd re-read its unit files (a unit file was written or removed).
  returned: always
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.hosting.plugins.module_utils.file_set import FileSet, gid, uid

UNIT_DIRS = ("/etc/systemd/", "/usr/lib/systemd/", "/lib/systemd/", "/run/systemd/")


class HostFiles(FileSet):
    def __init__(self, module: AnsibleModule):
        super().__init__(module, "/")
        self.params = module.params
        self.units_changed: list[str] = []
        self.daemon_reloaded = False

    def systemctl(self, *args: str) -> int:
        return self.module.run_command(["systemctl", *args])[0]

    def act(self, unit: str, *args: str) -> None:
        """Run a systemctl action that changes a unit (reported; skipped in check mode)."""
        self.units_changed.append(f"{unit} {' '.join(args)}")
        if self.check:
            return
        rc, out, err = self.module.run_command(["systemctl", *args, unit])
        if rc != 0:
            self.module.fail_json(msg=f"systemctl {' '.join(args)} {unit} failed: {(err or out).strip()}",
                                  files_changed=self.changed, units_changed=self.units_changed)

    def stop(self, unit: dict) -> None:
        """Units that must not run: stopped and disabled, before their files go."""
        name = unit["name"]
        if unit["state"] == "stopped" and self.systemctl("is-active", "--quiet", name) == 0:
            self.act(name, "stop")
        if not unit["enabled"] and self.systemctl("is-enabled", "--quiet", name) == 0:
            self.act(name, "disable")

    def run(self, unit: dict, files_written: bool) -> None:
        """Units that must run: enabled and started (restarted when asked and a file changed)."""
        name = unit["name"]
        new = self.check and any(path.endswith("/" + name) for path in self.changed)
        if unit["enabled"] and (new or self.systemctl("is-enabled", "--quiet", name) != 0):
            self.act(name, "enable")
        if unit["state"] == "restarted" and files_written:
            self.act(name, "restart")
        elif unit["state"] in ("started", "restarted") and (new or self.systemctl("is-active", "--quiet", name) != 0):
            self.act(name, "start")

    def apply(self) -> None:
        p = self.params
        for unit in p["units"]:
            if unit["state"] == "stopped" or not unit["enabled"]:
                self.stop(unit)
        for item in p["directories"]:
            self.ensure_dir(item["path"], int(item["mode"], 8), (uid(item["owner"]), gid(item["group"])))
        for items, show in ((p["secret_files"], False), (p["files"], True)):
            for item in items:
                self.put(item["dest"], item["content"], item["owner"], item["group"], item["mode"],
                         item["validate"], show=show)
        for path in p["absent"]:
            if os.path.isfile(path) or os.path.islink(path):
                self.remove(path)
        files_written = bool(self.changed)
        if any(path.startswith(UNIT_DIRS) for path in self.changed):
            self.daemon_reloaded = True
            if not self.check and self.systemctl("daemon-reload") != 0:
                self.module.fail_json(msg="systemctl daemon-reload failed", files_changed=self.changed)
        for unit in p["units"]:
            if unit["state"] != "stopped":
                self.run(unit, files_written)

    def label(self, path: str) -> str:
        return path  # every path is absolute here


def main() -> None:
    owner = {"owner": {"type": "raw", "default": "root"}, "group": {"type": "raw", "default": "root"}}
    file_spec = {"dest": {"type": "path", "required": True}, "content": {"type": "str", "required": True},
                 "mode": {"type": "str", "default": "0644"}, "validate": {"type": "str"}, **owner}
    secret_spec = dict(file_spec, content={"type": "str", "required": True, "no_log": True},
                       mode={"type": "str", "default": "0600"})
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [], "options": {
                "path": {"type": "path", "required": True}, "mode": {"type": "str", "default": "0755"}, **owner}},
            "files": {"type": "list", "elements": "dict", "default": [], "options": file_spec},
            # Not a secret itself (paths, modes); each content is no_log above.
            "secret_files": {"type": "list", "elements": "dict", "default": [], "options": secret_spec,
                             "no_log": False},
            "absent": {"type": "list", "elements": "path", "default": []},
            "units": {"type": "list", "elements": "dict", "default": [], "options": {
                "name": {"type": "str", "required": True},
                "enabled": {"type": "bool", "default": True},
                "state": {"type": "str", "choices": ["started", "stopped", "restarted"]}}},
        },
        supports_check_mode=True,
    )
    host = HostFiles(module)
    host.apply()
    result = {"changed": bool(host.changed or host.units_changed), "files_changed": host.changed,
              "units_changed": host.units_changed, "daemon_reloaded": host.daemon_reloaded}
    if module._diff:
        result["diff"] = host.diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
