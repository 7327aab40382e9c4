# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Benchmark-only callback: a cProfile of every task's worker process.

Ansible forks a worker per task and runs the task there (templating, module
build, the round trip to the host), so a profile of ansible-playbook itself
misses most of a run. Loaded by `benchmarks/run.py --profile` through
ANSIBLE_CALLBACK_PLUGINS; it wraps TaskExecutor.run before any worker is
forked, and each worker writes <pid>-<task>.prof into AISTACK_PROFILE_DIR.
Never part of the collection (benchmarks/ is not in the artifact).
"""

from __future__ import annotations

import cProfile
import os
import re

from ansible.executor import task_executor
from ansible.plugins.callback import CallbackBase

_RUN = task_executor.TaskExecutor.run


def _profiled_run(self, *args, **kwargs):
    profile = cProfile.Profile()
    profile.enable()
    try:
        return _RUN(self, *args, **kwargs)
    finally:
        profile.disable()
        name = re.sub(r"[^A-Za-z0-9]+", "_", self._task.get_name())[:90]
        profile.dump_stats(os.path.join(os.environ["AISTACK_PROFILE_DIR"], f"{os.getpid()}-{name}.prof"))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "profile_workers"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if os.environ.get("AISTACK_PROFILE_DIR"):
            task_executor.TaskExecutor.run = _profiled_run
