# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Compare-and-write of a set of declared files and directories, shared by the
modules that place many files in one call (compose_project, host_files).

Each file is read and compared (content, owner, group, mode) and written only
when something differs, atomically, after its own validation command accepted
the candidate. What was written (or would be, in check mode) is collected in
``changed`` (paths relative to ``base``) and, for files that may be shown,
``diffs`` (Ansible's diff format).
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex

from ansible_collections.aistack.hosting.plugins.module_utils.atomic import write_atomically


def uid(owner) -> int:
    owner = str(owner)
    return int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid


def gid(group) -> int:
    group = str(group)
    return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid


def current(path: str) -> tuple[str | None, tuple[int, int, int] | None]:
    """A file's text and (uid, gid, mode); (None, None) when missing, "" for a file that is not UTF-8."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = handle.read()
        st = os.stat(path)
        return content, (st.st_uid, st.st_gid, st.st_mode & 0o7777)
    except FileNotFoundError:
        return None, None
    except UnicodeDecodeError:
        st = os.stat(path)
        return "", (st.st_uid, st.st_gid, st.st_mode & 0o7777)


class FileSet:
    def __init__(self, module, base: str):
        self.module = module
        self.base = base
        self.check = module.check_mode
        self.changed: list[str] = []
        self.diffs: list[dict] = []

    def path(self, rel: str) -> str:
        return os.path.join(self.base, rel)

    def before_write(self) -> None:
        """Called before each change this set makes on the host (never in check mode); a subclass may
        invalidate a record of its own there."""

    def label(self, path: str) -> str:
        """How a path is reported: relative to the base."""
        return os.path.relpath(path, self.base)

    def ensure_dir(self, path: str, mode: int | None = None, owner: tuple[int, int] = (0, 0)) -> None:
        """A declared directory (mode given) gets exactly that owner and mode; an undeclared
        parent is only created (root, 0750) when missing."""
        enforce = mode is not None
        mode = 0o750 if mode is None else mode
        rel = self.label(path)
        if os.path.isdir(path):
            st = os.stat(path)
            if enforce and (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (*owner, mode):
                self.changed.append(rel)
                if not self.check:
                    self.before_write()
                    os.chown(path, *owner)
                    os.chmod(path, mode)
            return
        if enforce:
            self.changed.append(rel)
        if not self.check:
            self.before_write()
            os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
            os.makedirs(path, mode=mode, exist_ok=True)
            os.chown(path, *owner)
            os.chmod(path, mode)

    def put(self, rel: str, content: str, owner, group, mode: str, validate: str | None, show: bool) -> bool:
        """Write one file when content, owner or mode differ (validated first); whether it was (or would be)."""
        path = self.path(rel)
        want_meta = (uid(owner), gid(group), int(mode, 8))
        have, have_meta = current(path)
        if have == content and have_meta == want_meta:
            return False
        self.changed.append(rel)
        if show and have != content:
            self.diffs.append({"before_header": path, "after_header": path, "before": have or "", "after": content})
        if self.check:
            return True
        self.before_write()
        self.ensure_dir(os.path.dirname(path))

        def validated(candidate: str) -> None:
            """The candidate passes the file's own check, or the run fails with the old file kept."""
            if not validate:
                return
            if "%s" not in validate:
                self.module.fail_json(msg=f"validate of {rel} must contain %s: {validate}")
            rc, out, err = self.module.run_command(shlex.split(validate.replace("%s", shlex.quote(candidate))))
            if rc != 0:
                self.module.fail_json(msg=f"{rel} failed its validation ({validate}), the old file was kept",
                                      rc=rc, stdout=out, stderr=err, files_changed=self.changed)

        write_atomically(path, content, want_meta[2], owner=want_meta[:2], check=validated)
        return True

    def remove(self, rel: str, show: bool = True) -> None:
        """Delete a file (in check mode: only report it)."""
        path = self.path(rel)
        self.changed.append(rel)
        if show:
            self.diffs.append({"before_header": path, "after_header": "(removed)", "before": "", "after": ""})
        if not self.check:
            self.before_write()
            os.unlink(path)
