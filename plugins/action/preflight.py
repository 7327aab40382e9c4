# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""A role's preflight checks in one task: every failed check's own message, no host contact."""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

try:  # ansible-core 2.19: checks are evaluated, and messages rendered, only here
    from ansible._internal._templating import _jinja_bits
except ImportError:  # ansible-core 2.18 templates every task argument before the action runs
    _jinja_bits = None


class ActionModule(ActionBase):
    """Evaluate a list of checks like ansible.builtin.assert, failing with the message of each check that failed."""

    _requires_connection = False
    TRANSFERS_FILES = False

    @classmethod
    def finalize_task_arg(cls, name, value, templar, context):
        # Leave the checks as written: their conditions are expressions (evaluated in run()), and a
        # message is rendered only when its check fails, so it may name values a passing check never has.
        if name != "checks" or _jinja_bits is None:
            return super().finalize_task_arg(name, value, templar, context)
        if isinstance(value, str) and _jinja_bits.is_possibly_all_template(value):
            return templar.resolve_to_container(value)
        return value

    def _condition(self, expression, task_vars):
        if hasattr(self._templar, "evaluate_conditional"):  # 2.19
            return bool(self._templar.evaluate_conditional(conditional=expression))
        from ansible.playbook.conditional import Conditional  # 2.18

        conditional = Conditional(loader=self._loader)
        conditional.when = [expression]
        return conditional.evaluate_conditional(templar=self._templar, all_vars=task_vars)

    def _message(self, text):
        if _jinja_bits is None:  # 2.18: already rendered with the task's arguments
            return to_text(text)
        return to_text(self._templar.template(text))

    @staticmethod
    def _expressions(check, key, number):
        value = check.get(key, [])
        value = [value] if isinstance(value, (str, bool)) else value
        if not isinstance(value, list) or not all(isinstance(item, (str, bool)) for item in value):
            raise AnsibleError("check %d: %s must be an expression or a list of expressions" % (number, key))
        return value

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        checks = self._task.args.get("checks")
        unknown = set(self._task.args) - {"checks"}
        if unknown or not isinstance(checks, list) or not checks:
            result.update(failed=True, msg="preflight takes one argument, checks: a non-empty list of {that, msg, when}")
            return result

        failures = []
        for number, check in enumerate(checks, 1):
            if not isinstance(check, dict) or "that" not in check or "msg" not in check or set(check) - {"that", "msg", "when"}:
                result.update(failed=True, msg="check %d must be a dict of that, msg and (optionally) when" % number)
                return result
            try:
                if not all(self._condition(expression, task_vars) for expression in self._expressions(check, "when", number)):
                    continue
                passed = all(self._condition(expression, task_vars) for expression in self._expressions(check, "that", number))
            except Exception as error:  # pylint: disable=broad-except  # 2.18 lets e.g. a ZeroDivisionError through as it is
                if failures:  # an earlier check failed, and this one depends on what it checked
                    break
                raise AnsibleError("preflight check %d (%s) could not be evaluated: %s" % (number, check["that"], to_text(error))) from error
            if not passed:
                failures.append(self._message(check["msg"]).strip())

        result["changed"] = False
        if failures:
            result["failed"] = True
            result["failures"] = failures
            result["msg"] = failures[0] if len(failures) == 1 else " ".join(
                "(%d) %s" % (index, text) for index, text in enumerate(failures, 1))
        else:
            result["msg"] = "%d checks passed" % len(checks)
        return result
