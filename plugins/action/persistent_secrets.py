# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""persistent_secrets on the controller when the answer is already known.

Each service role resolves its secrets in its own call; on a converged host every
one of them only reads files that roles/common read once at the start of the run
(``read_all``). Such a call is answered here from that read (``known``) without a
round trip to the host. Anything that has to be written, generated or refused,
a secret with a guard (its guard must see the files as they are), a malformed
request, or values read on another host or directory, goes to the module as
before.

A secret written by a call of this run (an operator's new value, a generated one)
is never answered from the earlier read: its name (not its value) is marked in
this run's private temporary directory on the controller, which every worker of
the run shares, so the next call for it reads the file again.
"""

from __future__ import annotations

import hashlib
import os

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible_collections.aistack.hosting.plugins.module_utils.secret_specs import kept_value, spec_error

DEFAULT_DIR = "/etc/aistack/secrets"


def _written_marker(host: str, directory: str, name: str) -> str:
    digest = hashlib.sha256(f"{host}\0{directory}\0{name}".encode()).hexdigest()
    return os.path.join(C.DEFAULT_LOCAL_TMP, "aistack-secrets-written", digest)


class ActionModule(ActionBase):
    """Answer from an earlier read of this run when nothing has to be written, else run the module."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        known = args.pop("known", None) or {}
        directory = os.path.normpath(args.get("dir") or DEFAULT_DIR)
        host = self._task.delegate_to or task_vars.get("inventory_hostname", "")

        if not args.get("read_all"):
            answer = self._answer(args.get("secrets"), known, host, directory)
            if answer is not None:
                result.update(changed=False, secrets=answer, generated=[], updated=[], refused=[])
                return result

        result.update(self._execute_module(module_name="aistack.hosting.persistent_secrets",
                                           module_args=args, task_vars=task_vars))
        if args.get("read_all"):
            result["host"] = host
        elif not self._play_context.check_mode:
            for name in (result.get("generated") or []) + (result.get("updated") or []):
                marker = _written_marker(host, directory, name)
                os.makedirs(os.path.dirname(marker), mode=0o700, exist_ok=True)
                with open(marker, "w", encoding="utf-8"):
                    pass
        return result

    @staticmethod
    def _answer(requested, known: dict, host: str, directory: str) -> dict | None:
        """Every requested value from ``known``, or None when the module has to run."""
        if not isinstance(requested, dict) or not isinstance(known, dict):
            return None
        if not requested:
            return {}  # nothing asked (a host of the layout that needs none of them)
        if known.get("host") != host or os.path.normpath(known.get("dir") or "") != directory:
            return None
        persisted = known.get("secrets")
        if not isinstance(persisted, dict):
            return None
        answer = {}
        for name, spec in requested.items():
            if spec_error(name, spec) or os.path.exists(_written_marker(host, directory, name)):
                return None
            # A guarded secret (n8n's encryption key) is resolved on the host every time: its guard
            # must see the key file as it is now, even if it went missing after the run's read.
            if (spec or {}).get("guard"):
                return None
            value = kept_value(spec, persisted.get(name))
            if value is None:
                return None
            answer[name] = value
        return answer
