"""multi_host_plan: the multi_host layout's wiring, computed from the inventory groups."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aistack.hosting.plugins.filter.multi_host import multi_host_plan

CELERY = [{"name": "gpu", "queues": ["gpu"], "gpu": True}, {"name": "cpu", "queues": ["render"], "gpu": False}]
ADDRESSES = {"edge": "10.0.0.1", "data": "10.0.0.2", "w1": "10.0.0.3", "gpu": "10.0.0.4", "gpu2": "10.0.0.5"}


def inventory(**extra):
    groups = {"multi_edge": ["edge"], "multi_data": ["data"], "multi_workers": ["w1", "gpu"], "multi_gpu": ["gpu"],
              "multi_monitoring": ["edge"]}
    groups.update(extra)
    members = sorted({h for hosts in groups.values() for h in hosts})
    groups["multi_hosts"] = members
    hostvars = {h: {"ansible_facts": {"default_ipv4": {"address": ADDRESSES[h]}}} for h in members}
    return groups, hostvars


def plan(host, **extra):
    groups, hostvars = inventory(**extra)
    return multi_host_plan(host, groups, hostvars, n8n_workers=2, celery_workers=CELERY)


def test_each_group_runs_its_roles():
    assert plan("edge")["roles"] == ["docker", "wireguard", "firewall", "ssh_hardening", "unattended_upgrades", "traefik",
                                     "n8n", "fastapi_celery", "open_webui", "monitoring"]
    assert {"postgres", "redis", "backup"} <= set(plan("data")["roles"]) and "n8n" not in plan("data")["roles"]
    assert {"n8n", "fastapi_celery"} <= set(plan("w1")["roles"]) and "traefik" not in plan("w1")["roles"]
    assert {"ollama", "comfyui", "nvidia_toolkit", "n8n"} <= set(plan("gpu")["roles"])


def test_processes_per_host():
    edge, worker, gpu = plan("edge"), plan("w1"), plan("gpu")
    assert (edge["n8n_main"], edge["n8n_workers"], edge["fastapi_celery_web"]) == (True, 0, True)
    assert (worker["n8n_main"], worker["n8n_workers"], worker["fastapi_celery_web"]) == (False, 2, False)
    assert [w["name"] for w in worker["fastapi_celery_workers"]] == ["cpu"]
    assert [w["name"] for w in gpu["fastapi_celery_workers"]] == ["gpu", "cpu"]  # a GPU host doubling as a worker
    assert edge["fastapi_celery_workers"] == []


def test_data_services_published_to_their_users_only():
    data = plan("data")
    assert data["private_address"] == "10.0.0.2" and data["secrets_host"] == "data"
    assert set(data["private_services"]) == {"postgres", "redis", "s3", "monitoring"}
    rules = {rule["port"]: rule["sources"] for rule in data["firewall_tcp_sources"]}
    assert rules[5432] == ["10.0.0.1", "10.0.0.3", "10.0.0.4"]  # edge, worker, gpu; never itself
    assert rules[9100] == ["10.0.0.1"]  # node-exporter: the monitoring host alone
    assert rules[8333] == ["10.0.0.1", "10.0.0.3", "10.0.0.4"]


def test_consumers_find_remote_services_by_group():
    worker = plan("w1")
    assert worker["remote_services"] == {"postgres": "10.0.0.2", "redis": "10.0.0.2", "s3": "10.0.0.2",
                                         "ollama": "10.0.0.4", "comfyui": "10.0.0.4"}
    gpu = plan("gpu")
    assert "ollama" not in gpu["remote_services"] and gpu["remote_services"]["postgres"] == "10.0.0.2"
    assert set(gpu["private_services"]) == {"ollama", "comfyui", "monitoring"}
    assert plan("data")["remote_services"] == {}


def test_several_gpu_hosts_share_the_consumers():
    groups = {"multi_gpu": ["gpu", "gpu2"], "multi_workers": ["w1"]}
    used = {plan(h, **groups)["remote_services"]["ollama"] for h in ("edge", "w1")}
    assert used == {"10.0.0.4", "10.0.0.5"}


def test_public_routes_are_written_to_the_edge_and_only_one_comfyui_is_public():
    groups = {"multi_gpu": ["gpu", "gpu2"], "multi_workers": ["w1"]}
    assert {plan(h, **groups)["edge_host"] for h in ("edge", "w1", "gpu", "gpu2")} == {"edge"}
    assert [plan(h, **groups)["public_routes"] for h in ("edge", "gpu", "gpu2")] == [True, True, False]
    # Traefik reaches ComfyUI on the GPU host: the edge is admitted to its port.
    rules = {rule["port"]: rule["sources"] for rule in plan("gpu")["firewall_tcp_sources"]}
    assert "10.0.0.1" in rules[8188]


def test_monitoring_server_scrapes_every_other_host():
    edge = plan("edge")
    assert edge["monitoring_server"] and [h["name"] for h in edge["monitoring_remote_hosts"]] == ["data", "gpu", "w1"]
    assert not plan("w1")["monitoring_server"] and plan("w1")["monitoring_remote_hosts"] == []


def test_one_host_in_every_group_needs_no_wiring():
    groups = {"multi_edge": ["edge"], "multi_data": ["edge"], "multi_workers": ["edge"], "multi_gpu": ["edge"],
              "multi_monitoring": ["edge"], "multi_hosts": ["edge"]}
    hostvars = {"edge": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.1"}}}}
    alone = multi_host_plan("edge", groups, hostvars, celery_workers=CELERY)
    assert alone["private_services"] == [] and alone["remote_services"] == {} and alone["firewall_tcp_sources"] == []
    assert alone["n8n_main"] and alone["n8n_workers"] == 2


def test_address_from_inventory_or_mesh_wins_over_facts():
    groups, hostvars = inventory()
    hostvars["data"]["multi_host_private_address"] = "192.168.5.2"
    hostvars["w1"]["wireguard_address"] = "10.77.0.3"
    assert multi_host_plan("edge", groups, hostvars)["remote_services"]["postgres"] == "192.168.5.2"
    assert multi_host_plan("w1", groups, hostvars, wireguard=True)["private_address"] == "10.77.0.3"
    assert multi_host_plan("w1", groups, hostvars)["private_address"] == "10.0.0.3"


@pytest.mark.parametrize("change, message", [
    ({"multi_edge": ["edge", "w1"]}, "multi_edge must hold exactly one host"),
    ({"multi_data": []}, "multi_data must hold exactly one host"),
    ({"multi_workers": [], "multi_gpu": []}, "multi_workers or multi_gpu needs at least one host"),
    ({"multi_monitoring": ["data"]}, "must also be in multi_edge"),
])
def test_inventories_that_cannot_make_a_stack_fail_naming_the_group(change, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plan("edge", **change)


def test_missing_or_shared_addresses_fail():
    groups, hostvars = inventory()
    hostvars["w1"] = {}
    with pytest.raises(AnsibleFilterError, match="no private address for w1: set multi_host_private_address"):
        multi_host_plan("edge", groups, hostvars)
    groups, hostvars = inventory()
    hostvars["w1"]["multi_host_private_address"] = "10.0.0.2"
    with pytest.raises(AnsibleFilterError, match="share the private address"):
        multi_host_plan("edge", groups, hostvars)
    hostvars["w1"]["multi_host_private_address"] = "not-an-ip"
    with pytest.raises(AnsibleFilterError, match="is not an IPv4 address"):
        multi_host_plan("edge", groups, hostvars)
