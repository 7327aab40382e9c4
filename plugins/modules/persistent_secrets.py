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
    description: Secrets to resolve, by name (file name under O(dir)).
    type: dict
    required: true
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
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
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
import re
import secrets as random_source
import string

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.hosting.plugins.module_utils.atomic import write_atomically

ALPHABETS = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
}
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


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
    given = spec.get("value") or ""
    if given:
        if persisted is None:
            return given, "update"
        if given == persisted:
            return given, "keep"
        if spec.get("immutable"):
            raise ValueError(
                f"secret {name} is immutable: the inventory value differs from the one persisted on the host. "
                "Rotating it would make existing data unreadable; remove the inventory value to keep the "
                "persisted one, or rotate deliberately (see docs/secrets.md)."
            )
        return given, "update"
    if persisted:
        return persisted, "keep"
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
            secrets=dict(
                type="dict",
                required=True,
                no_log=False,
            ),
        ),
        supports_check_mode=True,
    )
    directory = module.params["dir"]
    requested = module.params["secrets"]
    for name, spec in requested.items():
        if not NAME.match(name):
            module.fail_json(msg=f"secret name {name!r} may only use letters, digits, '.', '_' and '-'")
        if spec is not None and not isinstance(spec, dict):
            module.fail_json(msg=f"secret {name}: expected a dict of options, got {type(spec).__name__}")
        length = (spec or {}).get("length", 32)
        if not isinstance(length, int) or length < 16:
            module.fail_json(msg=f"secret {name}: length must be an integer >= 16")
        if (spec or {}).get("charset", "alnum") not in ALPHABETS:
            module.fail_json(msg=f"secret {name}: charset must be one of {sorted(ALPHABETS)}")
        guard = (spec or {}).get("guard")
        if guard is not None and not (isinstance(guard, dict) and isinstance(guard.get("argv"), list)
                                      and guard["argv"] and isinstance(guard.get("msg"), str)):
            module.fail_json(msg=f"secret {name}: guard needs argv (a non-empty list) and msg (a string)")

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
