"""Mitogen's linear strategy, also for the test hosts' ``community.docker.docker``.

Molecule's docker driver names the connection by its FQCN; Mitogen replaces
connections it knows by their short names only (``docker`` -> ``mitogen_docker``).
This strategy maps the FQCN to ``docker`` first, then is ``mitogen_linear``.
The test runs (tests/run.py, .config/molecule/config.yml) and the demo and its
benchmark (scripts/demo.py, benchmarks/run.py) select it; docs/performance.md
says what Mitogen changes, why production SSH runs do not use it by default and
how to enable it there.
"""
from __future__ import annotations

import ansible_mitogen.connection
import ansible_mitogen.loaders
import ansible_mitogen.strategy
from ansible.playbook.play_context import PlayContext

DOCKER_FQCN = "community.docker.docker"
_mitogen_get_with_context = ansible_mitogen.strategy.wrap_connection_loader__get_with_context


def _docker_by_short_name(name, *args, **kwargs):
    if name == DOCKER_FQCN:
        name = "docker"
    if args and isinstance(args[0], PlayContext) and args[0].connection == DOCKER_FQCN:
        args[0].connection = "docker"
    return _mitogen_get_with_context(name, *args, **kwargs)


# Read by StrategyMixin._install_wrappers when a run starts.
ansible_mitogen.strategy.wrap_connection_loader__get_with_context = _docker_by_short_name

_mitogen_reset = ansible_mitogen.connection.Connection.reset


def _reset_keeps_docker_context(self):
    """`wait_for_connection` resets the connection before its ping; Mitogen's reset
    shuts the host's context down and the ping then fails on the closed broker. Over
    `docker exec` a new connection crosses no network or firewall, so the ping runs
    in the live context: the same module on the same host, as a reconnect would."""
    if getattr(self, "transport", None) == "docker":
        return None
    return _mitogen_reset(self)


ansible_mitogen.connection.Connection.reset = _reset_keeps_docker_context
ansible_mitogen.connection.Connection._reset = _reset_keeps_docker_context

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    pass
