#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Create a Hugging Face Space (docker SDK), set its secrets and variables, upload a folder: idempotently."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hf_space_push
short_description: Push a Docker build context to a Hugging Face Space, idempotently
version_added: 0.1.0
description:
  - Creates the Space O(space) as a C(docker) Space when it does not exist, sets the
    Space variables that differ, sets the Space secrets whose value changed since the
    last run (secret values cannot be read back, so digests are kept in O(state_path)),
    and uploads O(folder) when its content or the Space's head changed since the last push.
  - Uses C(huggingface_hub.HfApi) on the target; the token is never logged or returned.
  - Check mode reads the Space and reports what would change without changing it.
requirements:
  - huggingface_hub >= 0.20
options:
  space:
    description: Space repository id, C(owner/name).
    type: str
    required: true
  token:
    description: Hugging Face token with write access to O(space).
    type: str
    required: true
  folder:
    description: Directory to upload (must hold a C(Dockerfile) and a C(README.md) with the Space card).
    type: path
    required: true
  private:
    description: Visibility when the Space is created (an existing Space is not changed).
    type: bool
    default: true
  secrets:
    description: Space secrets, name to value.
    type: dict
    default: {}
  variables:
    description: Space variables (public), name to value.
    type: dict
    default: {}
  state_path:
    description: File (mode 0600) recording digests of what was pushed, for idempotence.
    type: path
    required: true
  commit_message:
    description: Commit message of an upload.
    type: str
    default: Update from aistack.hosting
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Only reads the Space; reports what would be created, set or uploaded.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Push the single container to a Space
  aistack.hosting.hf_space_push:
    space: my-org/n8n-agent
    token: "{{ vault_hf_token }}"
    folder: /opt/aistack/single_container/build
    secrets: {N8N_ENCRYPTION_KEY: "{{ key }}"}
    variables: {GENERIC_TIMEZONE: UTC}
    state_path: /opt/aistack/single_container/hf_space_push.json
  no_log: true
"""

RETURN = r"""
url:
  description: The Space's page.
  returned: always
  type: str
  sample: https://huggingface.co/spaces/my-org/n8n-agent
app_url:
  description: Where the app answers (C(https://<owner>-<name>.hf.space)).
  returned: always
  type: str
created:
  description: Whether the Space was created.
  returned: always
  type: bool
secrets_set:
  description: Names of the secrets set (never values).
  returned: always
  type: list
  elements: str
variables_set:
  description: Names of the variables set.
  returned: always
  type: list
  elements: str
uploaded:
  description: Whether the folder was uploaded (a new commit).
  returned: always
  type: bool
commit:
  description: The Space's head commit after the run (empty in check mode when unknown).
  returned: always
  type: str
"""

import hashlib
import json
import os
import re
import traceback
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.aistack.hosting.plugins.module_utils.atomic import write_json_atomically

try:
    from huggingface_hub import HfApi
    HF_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised through missing_required_lib
    HfApi = None
    HF_IMPORT_ERROR = traceback.format_exc()

SPACE_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def app_url(space: str) -> str:
    """The *.hf.space URL of a Space (owner and name lower-cased, '_' and '.' as '-')."""
    return "https://" + re.sub(r"[_.]", "-", space.replace("/", "-").lower()) + ".hf.space"


def folder_digest(folder: str) -> str:
    """Digest over the relative paths and contents of every file under folder (dot-dirs skipped)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def secret_digest(space: str, name: str, value: str) -> str:
    """What is kept of a secret value: a digest, bound to the Space and the name."""
    return hashlib.sha256(f"{space}\0{name}\0{value}".encode()).hexdigest()


def load_state(path: str) -> dict:
    """The state of earlier runs ({} when absent or unreadable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(path: str, state: dict) -> None:
    """Write the state atomically, mode 0600."""
    write_json_atomically(path, state, 0o600)


def push(api: Any, params: dict, state: dict, check_mode: bool) -> dict:
    """Bring the Space to the wanted state; return the result (and update state in place)."""
    space = params["space"]
    result: dict[str, Any] = {"created": False, "secrets_set": [], "variables_set": [], "uploaded": False, "commit": ""}

    exists = api.repo_exists(space, repo_type="space")
    if not exists:
        result["created"] = True
        if not check_mode:
            api.create_repo(space, repo_type="space", space_sdk="docker", private=params["private"], exist_ok=True)

    current_vars = {} if not exists else {k: getattr(v, "value", v) for k, v in (api.get_space_variables(space) or {}).items()}
    for name, value in sorted(params["variables"].items()):
        if current_vars.get(name) != str(value):
            result["variables_set"].append(name)
            if not check_mode:
                api.add_space_variable(space, name, str(value))

    known = state.get("secrets", {}) if exists else {}
    for name, value in sorted(params["secrets"].items()):
        digest = secret_digest(space, name, str(value))
        if known.get(name) != digest:
            result["secrets_set"].append(name)
            if not check_mode:
                api.add_space_secret(space, name, str(value))
                known[name] = digest
    state["secrets"] = known

    head = api.repo_info(space, repo_type="space").sha if exists else ""
    content = folder_digest(params["folder"])
    if not exists or state.get("folder") != content or state.get("commit") != head:
        if check_mode:
            result["uploaded"] = True
        else:
            info = api.upload_folder(repo_id=space, repo_type="space", folder_path=params["folder"],
                                     commit_message=params["commit_message"])
            new_head = getattr(info, "oid", "") or api.repo_info(space, repo_type="space").sha
            # huggingface_hub skips a commit when no file changed: same head, nothing uploaded.
            result["uploaded"] = new_head != head
            head = new_head
            state["folder"] = content
            state["commit"] = head
    result["commit"] = head or ""
    return result


def main() -> None:
    """Module entry point."""
    module = AnsibleModule(
        argument_spec={
            "space": {"type": "str", "required": True},
            "token": {"type": "str", "required": True, "no_log": True},
            "folder": {"type": "path", "required": True},
            "private": {"type": "bool", "default": True},
            "secrets": {"type": "dict", "default": {}, "no_log": True},
            "variables": {"type": "dict", "default": {}},
            "state_path": {"type": "path", "required": True},
            "commit_message": {"type": "str", "default": "Update from aistack.hosting"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if HfApi is None:
        module.fail_json(msg=missing_required_lib("huggingface_hub"), exception=HF_IMPORT_ERROR)
    if not SPACE_ID.match(params["space"]):
        module.fail_json(msg=f"space={params['space']!r} is not a Space id of the form owner/name")
    for required in ("Dockerfile", "README.md"):
        if not os.path.isfile(os.path.join(params["folder"], required)):
            module.fail_json(msg=f"{params['folder']} has no {required}: a docker Space needs both")
    base = {"url": f"https://huggingface.co/spaces/{params['space']}", "app_url": app_url(params["space"])}
    state = load_state(params["state_path"])
    try:
        result = push(HfApi(token=params["token"]), params, state, module.check_mode)
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many HTTP error types
        message = str(exc).replace(params["token"], "********")
        module.fail_json(msg=f"Hugging Face API error on {params['space']}: {message}", **base)
    if not module.check_mode:
        save_state(params["state_path"], state)
    changed = result["created"] or result["uploaded"] or bool(result["secrets_set"]) or bool(result["variables_set"])
    module.exit_json(changed=changed, **base, **result)


if __name__ == "__main__":
    main()
