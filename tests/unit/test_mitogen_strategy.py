"""scripts/mitogen/aistack_mitogen_linear.py: the docker driver's FQCN connection goes to Mitogen's docker transport."""
import importlib.util
from pathlib import Path

from ansible.playbook.play_context import PlayContext

SHIM = Path(__file__).resolve().parents[2] / "scripts" / "mitogen" / "aistack_mitogen_linear.py"


def load_shim():
    spec = importlib.util.spec_from_file_location("aistack_mitogen_linear", SHIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fqcn_docker_connection_is_handed_to_mitogen_as_docker(monkeypatch):
    shim = load_shim()
    seen = []
    monkeypatch.setattr(shim, "_mitogen_get_with_context", lambda name, *args, **kwargs: seen.append((name, args)))
    play_context = PlayContext()
    play_context.connection = "community.docker.docker"
    shim._docker_by_short_name("community.docker.docker", play_context)
    assert seen[0][0] == "docker" and play_context.connection == "docker"


def test_other_connections_are_left_to_mitogen_unchanged(monkeypatch):
    shim = load_shim()
    seen = []
    monkeypatch.setattr(shim, "_mitogen_get_with_context", lambda name, *args, **kwargs: seen.append(name))
    play_context = PlayContext()
    play_context.connection = "ssh"
    shim._docker_by_short_name("ssh", play_context)
    assert seen == ["ssh"] and play_context.connection == "ssh"


def test_the_strategy_is_mitogens_linear_strategy():
    import ansible_mitogen.strategy

    shim = load_shim()
    assert issubclass(shim.StrategyModule, ansible_mitogen.strategy.StrategyMixin)
    assert ansible_mitogen.strategy.wrap_connection_loader__get_with_context is shim._docker_by_short_name


def test_reset_keeps_a_docker_context_and_resets_any_other(monkeypatch):
    shim = load_shim()
    calls = []
    monkeypatch.setattr(shim, "_mitogen_reset", lambda connection: calls.append(connection.transport))

    class Docker:
        transport = "docker"

    class Ssh:
        transport = "ssh"

    assert shim._reset_keeps_docker_context(Docker()) is None and calls == []
    shim._reset_keeps_docker_context(Ssh())
    assert calls == ["ssh"]
