"""Merge rules for /etc/docker/daemon.json (plugins/module_utils/daemon_json.py)."""

import pytest

from ansible_collections.aistack.hosting.plugins.module_utils.daemon_json import (
    deep_merge,
    desired_config,
    merge_daemon_config,
    parse,
    remove_managed,
    render,
)


def test_deep_merge_merges_dicts_and_replaces_lists():
    base = {"log-opts": {"max-size": "10m", "max-file": "3"}, "registry-mirrors": ["a"]}
    override = {"log-opts": {"max-size": "50m"}, "registry-mirrors": ["b"]}
    assert deep_merge(base, override) == {
        "log-opts": {"max-size": "50m", "max-file": "3"},
        "registry-mirrors": ["b"],
    }


def test_deep_merge_does_not_mutate_inputs():
    base = {"a": {"b": 1}}
    deep_merge(base, {"a": {"c": 2}})
    assert base == {"a": {"b": 1}}


def test_fragments_merge_in_order_and_options_win():
    fragments = [{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}, "default-runtime": "runc"},
                 {"default-runtime": "nvidia"}]
    desired = desired_config(fragments, {"default-runtime": "runc", "live-restore": True})
    assert desired == {
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
        "default-runtime": "runc",
        "live-restore": True,
    }


def test_foreign_keys_survive_and_stale_managed_keys_go():
    current = {"labels": ["foreign"], "debug": True, "registry-mirrors": ["old"]}
    desired = {"live-restore": True}
    merged = merge_daemon_config(current, desired, previously_managed=["registry-mirrors", "debug-never-set"])
    assert merged == {"labels": ["foreign"], "debug": True, "live-restore": True}


def test_nested_foreign_keys_are_kept_when_we_add_to_a_dict():
    current = {"runtimes": {"custom": {"path": "/usr/bin/crun"}}}
    merged = merge_daemon_config(current, {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}, [])
    assert set(merged["runtimes"]) == {"custom", "nvidia"}


def test_remove_managed_keeps_only_foreign_keys():
    current = {"labels": ["foreign"], "live-restore": True, "log-driver": "json-file"}
    assert remove_managed(current, ["live-restore", "log-driver"]) == {"labels": ["foreign"]}


def test_render_is_stable():
    assert render({"b": 1, "a": {"d": 2, "c": 3}}) == render({"a": {"c": 3, "d": 2}, "b": 1})
    assert render({}).endswith("\n")


@pytest.mark.parametrize("text,expected", [("", {}), ("  \n", {}), ('{"a": 1}', {"a": 1})])
def test_parse_accepts_objects_and_empty_files(text, expected):
    assert parse(text, "daemon.json") == expected


@pytest.mark.parametrize("text,message", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_parse_names_the_file_on_bad_content(text, message):
    with pytest.raises(ValueError, match=message) as err:
        parse(text, "/etc/docker/daemon.json")
    assert "/etc/docker/daemon.json" in str(err.value)
