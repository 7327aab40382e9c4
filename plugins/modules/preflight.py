#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
# The work is done by the action plugin of the same name (plugins/action/preflight.py); this file is its documentation.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: preflight
short_description: A role's preflight checks in one task, each failed check with its own message
version_added: 0.1.0
description:
  - Evaluates a list of checks on the controller, each like an C(ansible.builtin.assert) task of its own, and fails
    with the message of every check that failed (in order), so an operator sees all of a role's problems in one run.
  - One task instead of one C(assert) task per check. Every task costs a forked worker on the controller (about
    0.05 s on the 2-core machine of docs/performance.md, more with its message to render), and a role's preflight
    held up to fourteen of them.
  - A check's message is rendered only when the check fails (on ansible-core 2.19; 2.18 renders every task
    argument before the action runs), so it may name values a passing check never has.
  - When a check cannot be evaluated after an earlier one failed (it relies on what the earlier one checked), the
    evaluation stops there and only the failures so far are reported.
  - Never contacts the host.
options:
  checks:
    description: The checks, evaluated in order.
    type: list
    elements: dict
    required: true
    suboptions:
      that:
        description: Conditions (expressions, as in C(when) or C(assert)'s C(that)); the check fails when any is false.
        type: list
        elements: str
        required: true
      msg:
        description: What to tell the operator when the check fails. Name the variable and the fix.
        type: str
        required: true
      when:
        description: Conditions under which the check applies at all (all must be true); it always applies without them.
        type: list
        elements: str
author:
  - aistack.hosting contributors (@aistack-hosting)
attributes:
  check_mode:
    description: Can run in check mode and return the same result (it only evaluates, on the controller).
    support: full
  diff_mode:
    description: Would show what changed; nothing changes.
    support: none
  platform:
    description: Runs on the controller only; any target.
    support: full
    platforms: all
seealso:
  - module: ansible.builtin.assert
"""

EXAMPLES = r"""
- name: Check the worker settings
  aistack.hosting.preflight:
    checks:
      - that: n8n_workers >= 0
        msg: "n8n_workers ({{ n8n_workers }}) must be >= 0."
      - that: n8n_owner_password is search('[0-9]')
        msg: n8n_owner_password must contain a digit.
        when: n8n_owner_managed_by_env
"""

RETURN = r"""
failures:
  description: The message of each check that failed, in order.
  returned: failure
  type: list
  elements: str
  sample: ["n8n_workers (-1) must be >= 0."]
msg:
  description: The failed checks' messages (numbered when more than one), or how many checks passed.
  returned: always
  type: str
"""
