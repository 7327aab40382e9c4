# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Keep forked task workers from copying the controller's heap."""

from __future__ import annotations

DOCUMENTATION = r"""
name: gc_freeze
type: aggregate
short_description: Freeze the controller's garbage collector before each task's workers fork
version_added: 0.2.0
description:
  - Ansible forks a worker process for every task and host. The worker inherits the
    controller's whole heap (the loaded playbook, every variable, the results so far)
    copy-on-write, and the first garbage collection in the worker walks every object
    it inherited, which writes to each one and makes the kernel copy nearly every page.
  - This callback calls Python's C(gc.freeze()) in the controller when each task starts,
    just before its workers fork. Frozen objects are left out of every later collection,
    in the controller and in the workers, so a worker copies only what it touches.
  - Measured on the demo host (docs/performance.md, "The controller's forks"), a no-op
    C(site.yml) run took about 10% less time and controller CPU with it.
  - Objects frozen are never collected, so cyclic garbage made before a freeze would stay;
    every O(collect_every) tasks the callback unfreezes, collects once and
    freezes again, which bounds what a long run can keep.
  - It changes nothing a task does or reports. Enable it with C(callbacks_enabled) in
    C(ansible.cfg) (the collection's own C(ansible.cfg) does).
options:
  collect_every:
    description: Tasks between two full collections (unfreeze, collect, freeze again).
    type: int
    default: 500
    env:
      - name: AISTACK_GC_FREEZE_COLLECT_EVERY
    ini:
      - section: callback_gc_freeze
        key: collect_every
"""

import gc

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "aistack.hosting.gc_freeze"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.tasks_started = 0

    def _before_forks(self) -> None:
        self.tasks_started += 1
        if self.tasks_started % max(1, int(self.get_option("collect_every"))) == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._before_forks()

    def v2_playbook_on_handler_task_start(self, task):
        self._before_forks()

    def v2_playbook_on_stats(self, stats):
        # Nothing forks after this: let the rest of the process end as it normally would.
        gc.unfreeze()
