#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Make the checkout importable as the collection aistack.hosting.

Ansible finds a collection only under ``ansible_collections/<namespace>/<name>``.
For running from a checkout (ansible.cfg's collections_path, molecule
--from-checkout, unit tests), ``collections/ansible_collections/aistack/hosting``
points back at the checkout. The link is made here, at setup time, and is not
in git: a directory symlink inside the collection's own tree is something
ansible-test and Galaxy reject. Called by scripts/setup.sh, tests/run.py and
tests/unit/conftest.py; idempotent.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = ROOT / "collections" / "ansible_collections" / "aistack" / "hosting"


def ensure() -> Path:
    """Create (or repair) the link; return the directory to put on the collections path."""
    LINK.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(LINK) and os.readlink(LINK) == "../../..":
        return ROOT / "collections"
    if os.path.islink(LINK):
        LINK.unlink()
    os.symlink("../../..", LINK)
    return ROOT / "collections"


if __name__ == "__main__":
    ensure()
