# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""The record compose_project leaves in a project's directory after each successful `docker compose up`.

It holds a digest of what that `up` applied and the ids of the containers it
left. compose_project reads it to skip an `up` that would do nothing;
stack_resume reads it to start only projects stopped exactly as that `up`
left them. One definition of the file and its format for both.
"""

from __future__ import annotations

import json
import os

UP_RECORD = ".aistack-up.json"


def up_record_content(digest: str, containers: list[str]) -> str:
    """The record's text for an `up` that applied `digest` and left `containers` (ids)."""
    return json.dumps({"digest": digest, "containers": sorted(containers)}, indent=1) + "\n"


def read_up_record(directory: str) -> dict | None:
    """The project's record ({"digest", "containers"}), or None when missing or unreadable."""
    try:
        with open(os.path.join(directory, UP_RECORD), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
