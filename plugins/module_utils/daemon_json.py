# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Pure merge logic for /etc/docker/daemon.json (one owner, many contributors).

The docker role owns daemon.json. Its content is:

    existing file
      minus top-level keys this role set last time that no input mentions now
      deep-merged with: fragments (sorted by name) then the role's options

Keys nobody mentions and this role never set (an operator's hand edit, another
tool's key) are preserved. Dicts merge recursively; lists and scalars replace.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable, Mapping


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return base updated by override; nested dicts merge, everything else replaces."""
    result: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def desired_config(fragments: Iterable[Mapping[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
    """Merge contributed fragments in order, then the owner's options on top."""
    desired: dict[str, Any] = {}
    for fragment in fragments:
        desired = deep_merge(desired, fragment)
    return deep_merge(desired, options)


def merge_daemon_config(
    current: Mapping[str, Any],
    desired: Mapping[str, Any],
    previously_managed: Iterable[str],
) -> dict[str, Any]:
    """Compute the new daemon.json content.

    Top-level keys that were managed before but are no longer desired are
    dropped; every other existing key is kept; desired keys merge on top.
    """
    stale = set(previously_managed) - set(desired)
    kept = {key: value for key, value in current.items() if key not in stale}
    return deep_merge(kept, desired)


def remove_managed(current: Mapping[str, Any], previously_managed: Iterable[str]) -> dict[str, Any]:
    """Content left behind when the owner goes away: only foreign keys survive."""
    managed = set(previously_managed)
    return {key: copy.deepcopy(value) for key, value in current.items() if key not in managed}


def render(config: Mapping[str, Any]) -> str:
    """Stable, human-friendly serialisation (sorted keys, 2-space indent, final newline)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def parse(text: str, source: str) -> dict[str, Any]:
    """Parse a daemon.json document; empty text is an empty config."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{source} must hold a JSON object, not {type(value).__name__}")
    return value
