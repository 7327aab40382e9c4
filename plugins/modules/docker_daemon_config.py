#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Own /etc/docker/daemon.json: merge inputs, keep foreign keys, validate before landing."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_config
short_description: Merge-manage Docker's daemon.json without clobbering foreign keys
version_added: 0.1.0
description:
  - Computes C(daemon.json) from the existing file, fragment files other roles
    contribute (one JSON object per C(*.json) file in O(fragments_dir), merged in
    name order) and O(options) on top.
  - Top-level keys that an earlier run managed but that no input mentions any
    more are removed; keys this module never managed are preserved.
  - The candidate file is validated (JSON object; C(dockerd --validate) where the
    installed engine supports it) before it replaces the live file atomically.
  - With O(state=present) it also makes the directory of O(path) (0755) and
    O(fragments_dir) (0700) when missing, or sets their owner (root) and mode, so a
    run needs no separate round trip for them.
  - Supports check mode and diff mode.
options:
  path:
    description: The daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  options:
    description: Daemon options owned by the caller; they win over fragments.
    type: dict
    default: {}
  fragments_dir:
    description: Directory of C(*.json) fragments contributed by other roles.
    type: path
    default: /etc/aistack/docker/daemon.d
  state_path:
    description: Where the list of managed top-level keys is remembered between runs.
    type: path
    default: /etc/aistack/docker/daemon.managed.json
  state:
    description:
      - V(present) writes the merged configuration.
      - V(absent) removes every key this module manages and keeps foreign ones;
        the file is deleted when nothing is left.
    type: str
    choices: [present, absent]
    default: present
  validate:
    description: Run C(dockerd --validate --config-file) on the candidate when dockerd supports it.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Nothing is written; the merged file is validated and returned.
  diff_mode:
    support: full
    details: The file before and after the merge.
  platform:
    platforms: posix
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Configure the Docker daemon
  aistack.hosting.docker_daemon_config:
    options:
      live-restore: true
      registry-mirrors: ["https://mirror.example.com"]
  notify: Restart docker
"""

RETURN = r"""
config:
  description: The configuration now in effect (or that would be, in check mode).
  returned: always
  type: dict
managed_keys:
  description: Top-level keys owned by this module after the run.
  returned: always
  type: list
  elements: str
directories:
  description: The directories made or whose owner or mode was set (or would be, in check mode).
  returned: always
  type: list
  elements: str
validated_with:
  description: C(dockerd) when the engine validated the file, C(json) when only JSON structure was checked.
  returned: when state=present
  type: str
"""

import glob
import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.hosting.plugins.module_utils.atomic import write_atomically
from ansible_collections.aistack.hosting.plugins.module_utils.file_set import FileSet

from ansible_collections.aistack.hosting.plugins.module_utils.daemon_json import (
    desired_config,
    merge_daemon_config,
    parse,
    remove_managed,
    render,
)


def read_text(path: str) -> str:
    """Return a file's text, or '' when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def load_fragments(directory: str) -> list[dict]:
    """Fragments in name order, so the merge result never depends on readdir order."""
    return [parse(read_text(path), path) for path in sorted(glob.glob(os.path.join(directory, "*.json")))]


def load_managed_keys(path: str) -> list[str]:
    """Keys written by the previous run (empty on the first run)."""
    state = parse(read_text(path), path)
    keys = state.get("managed_keys", [])
    return [str(key) for key in keys] if isinstance(keys, list) else []


def validate_with_dockerd(module: AnsibleModule, candidate: str) -> str:
    """Validate with the engine when it can; fall back to the JSON check already done."""
    dockerd = module.get_bin_path("dockerd")
    if not dockerd:
        return "json"
    rc, out, err = module.run_command([dockerd, "--validate", "--config-file", candidate])
    if rc == 0:
        return "dockerd"
    message = (err or out).strip()
    if "unknown flag" in message:
        return "json"  # engines before 23.0 have no --validate
    module.fail_json(msg=f"dockerd rejected the merged daemon.json: {message}")
    return "dockerd"


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/docker/daemon.json"),
            options=dict(type="dict", default={}),
            fragments_dir=dict(type="path", default="/etc/aistack/docker/daemon.d"),
            state_path=dict(type="path", default="/etc/aistack/docker/daemon.managed.json"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            validate=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    path, state_path = params["path"], params["state_path"]

    try:
        before_text = read_text(path)
        current = parse(before_text, path)
        previously_managed = load_managed_keys(state_path)
        if params["state"] == "present":
            desired = desired_config(load_fragments(params["fragments_dir"]), params["options"])
            new_config = merge_daemon_config(current, desired, previously_managed)
            managed_keys = sorted(desired)
        else:
            new_config = remove_managed(current, previously_managed)
            managed_keys = []
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    after_text = render(new_config) if new_config or params["state"] == "present" else ""
    state_text = json.dumps({"managed_keys": managed_keys}, indent=2) + "\n"
    file_changed = after_text != before_text and not (params["state"] == "absent" and not before_text)
    state_changed = read_text(state_path) != state_text and (managed_keys or os.path.exists(state_path))
    # Declared directories (root, exact mode), made or fixed now: nothing in check mode.
    directories = FileSet(module, "/")
    if params["state"] == "present":
        directories.ensure_dir(os.path.dirname(path), 0o755)
        directories.ensure_dir(params["fragments_dir"], 0o700)
    result = dict(
        changed=file_changed or bool(directories.changed),
        directories=[directories.path(rel) for rel in directories.changed],
        config=new_config,
        managed_keys=managed_keys,
        diff=dict(before=before_text, after=after_text, before_header=path, after_header=path),
    )

    if params["state"] == "present":
        result["validated_with"] = "json"
        if file_changed and params["validate"]:
            with tempfile.TemporaryDirectory() as scratch:
                candidate = os.path.join(scratch, "daemon.json")
                with open(candidate, "w", encoding="utf-8") as handle:
                    handle.write(after_text)
                result["validated_with"] = validate_with_dockerd(module, candidate)

    if module.check_mode:
        module.exit_json(**result)

    if file_changed:
        if after_text:
            write_atomically(path, after_text, 0o644)
        else:
            os.remove(path)
    if state_changed:
        if managed_keys:
            write_atomically(state_path, state_text, 0o600)
        elif os.path.exists(state_path):
            os.remove(state_path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
