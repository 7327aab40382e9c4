"""railway_* modules: DOCUMENTATION/EXAMPLES/RETURN parse and DOCUMENTATION options == argument_spec."""

from __future__ import annotations

import pytest
import yaml

from ansible.module_utils import basic
from ansible_collections.aistack.hosting.plugins.doc_fragments.railway import ModuleDocFragment
from ansible_collections.aistack.hosting.plugins.modules import railway_project, railway_service

MODULES = [railway_project, railway_service]


class SpecCaptured(Exception):
    pass


def argument_spec(module, monkeypatch) -> dict:
    """The argument_spec main() builds, caught before any work is done."""
    captured = {}

    def fake_init(self, argument_spec, **kwargs):
        captured.update(argument_spec)
        raise SpecCaptured

    monkeypatch.setattr(basic.AnsibleModule, "__init__", fake_init)
    with pytest.raises(SpecCaptured):
        module.main()
    return captured


def documentation(module) -> dict:
    """The module's DOCUMENTATION with its fragment's options merged in, as ansible-doc shows it."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert "aistack.hosting.railway" in doc["extends_documentation_fragment"]
    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    assert not set(fragment["options"]) & set(doc["options"])
    doc["options"].update(fragment["options"])
    return doc


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_documentation_matches_argument_spec(module, monkeypatch):
    doc = documentation(module)
    assert doc["module"] == module.__name__.rsplit(".", 1)[-1]
    yaml.safe_load(module.RETURN)
    assert yaml.safe_load(module.EXAMPLES)
    spec = argument_spec(module, monkeypatch)
    assert set(doc["options"]) == set(spec)
    for name, option in doc["options"].items():
        assert isinstance(option["description"], (str, list)), name
        assert all(isinstance(line, str) for line in (option["description"] if isinstance(option["description"], list)
                                                      else [option["description"]])), name
        assert option.get("type", "str") == spec[name].get("type", "str"), name
        assert option.get("default") == spec[name].get("default"), name
        assert bool(option.get("required")) == bool(spec[name].get("required")), name
    assert spec["railway_token"]["no_log"] is True


def test_secret_variables_are_no_log(monkeypatch):
    assert argument_spec(railway_service, monkeypatch)["secret_variables"]["no_log"] is True
