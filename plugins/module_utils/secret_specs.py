# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""What a persistent_secrets request may hold, and which value an operator's, a persisted
and no value resolve to. Shared by the module (on the secrets host) and its action plugin
(on the controller, which answers from values read earlier in the run)."""

from __future__ import annotations

import re

CHARSETS = ("alnum", "hex", "urlsafe")
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def spec_error(name, spec) -> str | None:
    """The message for a malformed request of secret ``name``, else None."""
    if not NAME.match(str(name)):
        return f"secret name {name!r} may only use letters, digits, '.', '_' and '-'"
    if spec is not None and not isinstance(spec, dict):
        return f"secret {name}: expected a dict of options, got {type(spec).__name__}"
    spec = spec or {}
    length = spec.get("length", 32)
    if not isinstance(length, int) or length < 16:
        return f"secret {name}: length must be an integer >= 16"
    if spec.get("charset", "alnum") not in CHARSETS:
        return f"secret {name}: charset must be one of {sorted(CHARSETS)}"
    guard = spec.get("guard")
    if guard is not None and not (isinstance(guard, dict) and isinstance(guard.get("argv"), list)
                                  and guard["argv"] and isinstance(guard.get("msg"), str)):
        return f"secret {name}: guard needs argv (a non-empty list) and msg (a string)"
    return None


def kept_value(spec, persisted: str | None) -> str | None:
    """The value to use when nothing has to be written: the persisted one, when the operator
    gave none or the same; None when the secret must be generated, updated or refused."""
    given = (spec or {}).get("value") or ""
    if given:
        return given if persisted is not None and given == persisted else None
    return persisted or None
