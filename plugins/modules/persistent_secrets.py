#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Secrets given by the operator or generated once, persisted on the target, reused forever."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: persistent_secrets
short_description: Resolve stack secrets once and keep them on the target
version_added: 0.1.0
description:
  - For each requested secret, the value is the operator's (inventory or Vault)
    when given, else the one persisted under O(dir) from an earlier run, else a
    new random value generated here and persisted (mode 0600, root).
  - Secrets marked O(secrets.immutable) (encryption keys) are never rotated
    implicitly - an operator value that differs from the persisted one fails.
  - Values are returned for templating; callers must set C(no_log) on the task.
options:
  dir:
    description: Directory holding one file per secret.
    type: path
    default: /etc/aistack/secrets
  secrets:
    description:
      - Secrets to resolve, by name (file name under O(dir)).
      - Required unless O(read_all=true).
    type: dict
    suboptions:
      value:
        description: The operator's value; empty or omitted means persisted-or-generated.
        type: str
      length:
        description: Length of a generated value.
        type: int
        default: 32
      charset:
        description: Alphabet of a generated value.
        type: str
        choices: [alnum, hex, urlsafe]
        default: alnum
      immutable:
        description: Refuse to replace a persisted value with a different operator value.
        type: bool
        default: false
      guard:
        description:
          - Run before a value would be GENERATED (none given, none persisted), e.g. to refuse a new
            encryption key while data encrypted with a lost one exists.
          - C(argv) is run on the target; when it exits 0 and prints a number greater than zero,
            the secret is refused - left out of RV(secrets), C(msg) (C({count}) in it replaced by that
            number) added to RV(refused) - and nothing at all is written. Any other outcome (a failing
            command, no database yet) lets the value be generated.
          - The module does not fail on a refusal, because the task's C(no_log) would hide the message;
            the caller asserts RV(refused) is empty and shows it (see the example).
        type: dict
  read_all:
    description:
      - Only read every secret persisted under O(dir) (files named like a secret, up to 64 KiB)
        and return them in RV(secrets), with RV(dir) and RV(host); nothing is resolved or written.
      - Registered once per run (no_log) and passed as O(known) to the later calls, it lets them
        be answered on the controller without a round trip (roles/common does this for the stack).
    type: bool
    default: false
  known:
    description:
      - The registered result of an earlier O(read_all=true) call of this run, on the same host and O(dir).
      - The action plugin answers the call itself when every requested secret is there and nothing has to
        be written (no operator value, or the same one as persisted) and no call of this run has written
        it since; otherwise, or when O(known) is from another host or directory, the module runs on the
        host as without it.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    details: An action plugin answers from O(known) on the controller when it can, else runs the module.
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Nothing is written; values that would be generated are returned.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Resolve the Postgres secrets
  aistack.hosting.persistent_secrets:
    secrets:
      postgres_superuser_password: {value: "{{ postgres_superuser_password }}"}
      n8n_encryption_key: {length: 48, immutable: true}
  register: __secrets
  no_log: true

- name: Never generate a new n8n key over a database with credentials encrypted by the lost one
  aistack.hosting.persistent_secrets:
    secrets:
      n8n_encryption_key:
        length: 48
        immutable: true
        guard:
          argv: [docker, exec, aistack-postgres, psql, -qtA, -U, postgres, -d, n8n, -c, SELECT count(*) FROM credentials_entity]
          msg: "the key file is missing but {count} credential(s) exist: restore it"
  register: __secrets
  no_log: true

- name: Refuse to generate an encryption key over existing data
  ansible.builtin.assert:
    that: __secrets.refused | length == 0
    fail_msg: "{{ __secrets.refused | join(' ') }}"
    quiet: true
"""

RETURN = r"""
secrets:
  description: Name to value.
  returned: always
  type: dict
dir:
  description: The directory read.
  returned: when O(read_all=true)
  type: str
host:
  description: The inventory name of the host the secrets were read on (the task's delegate, else the host).
  returned: when O(read_all=true)
  type: str
generated:
  description: Names that were generated in this run.
  returned: always
  type: list
  elements: str
updated:
  description: Names whose persisted value was replaced by the operator's value.
  returned: always
  type: list
  elements: str
refused:
  description: The messages of the guards that refused a generation; when not empty, nothing was written.
  returned: always
  type: list
  elements: str
"""

import os
import secrets as random_source
import string

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.hosting.plugins.module_utils.atomic import write_atomically
from ansible_collections.aistack.hosting.plugins.module_utils.secret_specs import NAME, kept_value, spec_error

ALPHABETS = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
}
READ_ALL_MAX_BYTES = 64 * 1024


def generate(length: int, charset: str) -> str:
    """A new random value from the OS CSPRNG."""
    alphabet = ALPHABETS[charset]
    return "".join(random_source.choice(alphabet) for _index in range(length))


def read_secret(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().rstrip("\n")
    except FileNotFoundError:
        return None


def read_all(directory: str) -> dict[str, str]:
    """Every persisted secret under ``directory`` (none when it does not exist yet)."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}
    found = {}
    for name in names:
        path = os.path.join(directory, name)
        if NAME.match(name) and os.path.isfile(path) and os.path.getsize(path) <= READ_ALL_MAX_BYTES:
            try:
                value = read_secret(path)
            except UnicodeDecodeError:  # not a secret of this module's (a key in another format)
                continue
            if value is not None:
                found[name] = value
    return found


def write_secret(path: str, value: str, replace: bool = True) -> None:
    """Write atomically with 0600 from the start: the value never sits world-readable."""
    write_atomically(path, value + "\n", 0o600, replace=replace)


def create_secret(path: str, value: str) -> str:
    """Persist a generated value unless another run created the file first; return the value kept.

    Several hosts may resolve the same secret on one secrets host at once
    (aistack_secrets_host, multi_host): the first writer wins and every other
    run takes its value, so they all end up with one key.
    """
    try:
        write_secret(path, value, replace=False)
        return value
    except FileExistsError:
        return read_secret(path) or value


def resolve(name: str, spec: dict, persisted: str | None) -> tuple[str, str]:
    """Return (value, action) where action is keep, generate or update."""
    kept = kept_value(spec, persisted)
    if kept is not None:
        return kept, "keep"
    given = spec.get("value") or ""
    if given:
        if persisted is None:
            return given, "update"
        if spec.get("immutable"):
            raise ValueError(
                f"secret {name} is immutable: the inventory value differs from the one persisted on the host. "
                "Rotating it would make existing data unreadable; remove the inventory value to keep the "
                "persisted one, or rotate deliberately (see docs/secrets.md)."
            )
        return given, "update"
    return generate(spec.get("length") or 32, spec.get("charset") or "alnum"), "generate"


def refusal(module: AnsibleModule, guard: dict) -> str | None:
    """The guard's message when its command counts something a new value would lock away."""
    rc, out, _err = module.run_command([str(arg) for arg in guard["argv"]])
    count = out.strip()
    if rc == 0 and count.isdigit() and int(count) > 0:
        return guard["msg"].replace("{count}", count)
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", default="/etc/aistack/secrets"),
            secrets=dict(type="dict", no_log=False),
            read_all=dict(type="bool", default=False),
            known=dict(type="dict", no_log=True),  # the action plugin's; never sent here
        ),
        supports_check_mode=True,
    )
    directory = module.params["dir"]
    if module.params["read_all"]:
        module.exit_json(changed=False, secrets=read_all(directory), dir=directory, generated=[], updated=[], refused=[])
    requested = module.params["secrets"]
    if requested is None:  # an empty dict is a request for nothing (a host that needs none)
        module.fail_json(msg="secrets is required (the secrets to resolve), unless read_all is true")
    for name, spec in requested.items():
        error = spec_error(name, spec)
        if error:
            module.fail_json(msg=error)

    values: dict[str, str] = {}
    refused: list[str] = []
    generated: list[str] = []
    updated: list[str] = []
    to_write: dict[str, str] = {}
    try:
        for name, spec in sorted(requested.items()):
            spec = spec or {}
            value, action = resolve(name, spec, read_secret(os.path.join(directory, name)))
            if action == "generate" and spec.get("guard"):
                message = refusal(module, spec["guard"])
                if message:
                    refused.append(message)
                    continue
            values[name] = value
            if action != "keep":
                to_write[name] = value
                (generated if action == "generate" else updated).append(name)
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    if refused:
        module.exit_json(changed=False, secrets=values, generated=[], updated=[], refused=refused)
    if to_write and not module.check_mode:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        for name, value in to_write.items():
            path = os.path.join(directory, name)
            if name in generated:
                kept = create_secret(path, value)
                if kept != value:
                    values[name] = kept
                    generated.remove(name)
            else:
                write_secret(path, value)

    module.exit_json(changed=bool(generated or updated), secrets=values, generated=generated, updated=updated, refused=[])


if __name__ == "__main__":
    main()
