# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Atomic file writes shared by the modules that keep state or secrets on the host.

A reader (dockerd, a later run of the module, an operator) sees either the old
file or the new one, never half of it: the content goes to a temporary file in
the same directory, created with mode 0600 (so a secret never sits readable by
others, even for a moment), gets its final mode, and is renamed over the
target (``os.replace`` within one filesystem is atomic).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable


def write_atomically(path: str, content: str, mode: int = 0o600, owner: tuple[int, int] | None = None,
                     check: Callable[[str], None] | None = None, replace: bool = True) -> None:
    """Replace ``path`` with ``content`` (UTF-8 text) in one rename; the file ends with ``mode``.

    ``owner`` (uid, gid) is set on the candidate before the rename. ``check``
    is called with the candidate's path, complete, with its final mode and
    owner, before the rename: raising (or exiting) there keeps the old file.
    Missing parent directories are created (with the default mode); a failed
    write leaves the old file in place and no temporary file behind.
    ``replace=False`` creates the file only if it does not exist yet (a hard
    link, atomic too) and raises FileExistsError otherwise: of two writers
    racing to create it, exactly one wins and the other can read its content.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if owner is not None:
            os.chown(tmp, owner[0], owner[1])
        os.chmod(tmp, mode)
        if check is not None:
            check(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomically(path: str, data: Any, mode: int = 0o600) -> None:
    """Write ``data`` as indented JSON with sorted keys (a stable file for stable input)."""
    write_atomically(path, json.dumps(data, indent=2, sort_keys=True), mode)
