# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""The multi_host layout's wiring: which roles a host runs and how it reaches the others.

Documented in multi_host_plan.yml beside this file; docs/multi_host.md explains the layout.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any, Mapping, Sequence

from ansible.errors import AnsibleFilterError

GROUPS = {"edge": "multi_edge", "data": "multi_data", "workers": "multi_workers", "gpu": "multi_gpu",
          "monitoring": "multi_monitoring"}
# The roles of each group (a host in several groups runs the union).
EVERY_HOST = ["docker", "wireguard", "firewall", "ssh_hardening", "unattended_upgrades", "monitoring"]
GROUP_ROLES = {
    "edge": ["traefik", "n8n", "fastapi_celery", "open_webui"],
    "data": ["postgres", "redis", "object_storage", "backup"],
    "workers": ["n8n", "fastapi_celery"],
    "gpu": ["nvidia_toolkit", "ollama", "comfyui", "fastapi_celery"],
    "monitoring": [],
}
ROLE_ORDER = ["docker", "wireguard", "firewall", "ssh_hardening", "unattended_upgrades", "nvidia_toolkit", "postgres",
              "redis", "traefik", "n8n", "ollama", "comfyui", "object_storage", "fastapi_celery", "open_webui",
              "monitoring", "backup"]
# Each stack service another host may use: the group that runs it and the
# roles whose processes call it (a monitoring server calls the exporters' targets).
SERVICES = {
    "postgres": ("data", ["n8n", "fastapi_celery", "open_webui", "monitoring_server"]),
    "redis": ("data", ["n8n", "fastapi_celery", "monitoring_server"]),
    "s3": ("data", ["fastapi_celery"]),
    "ollama": ("gpu", ["n8n", "fastapi_celery", "open_webui"]),
    "comfyui": ("gpu", ["n8n", "fastapi_celery", "traefik"]),
    "monitoring": (None, ["monitoring_server"]),
}
PORTS = {"postgres": [5432], "redis": [6379], "s3": [8333], "ollama": [11434], "comfyui": [8188],
         "monitoring": [9100, 8080]}


def _members(groups: Mapping[str, Sequence[str]], key: str) -> list[str]:
    return list(groups.get(GROUPS[key], []) or [])


def _address(hostvars: Mapping[str, Any], host: str, wireguard: bool) -> str:
    """A host's private address: its multi_host_private_address, its mesh address, else its default IPv4."""
    variables = hostvars[host]
    given = variables.get("multi_host_private_address") or ""
    if not given and wireguard:
        given = variables.get("wireguard_address") or ""
    if not given:
        facts = variables.get("ansible_facts") or {}
        given = (facts.get("default_ipv4") or {}).get("address") or ""
    if not given:
        raise AnsibleFilterError(
            f"multi_host: no private address for {host}: set multi_host_private_address for it (or let the play "
            "gather its facts: its default IPv4 address is used; a host that is down gives none: take it out of "
            "the inventory, or set its address)")
    try:
        ipaddress.IPv4Address(str(given))
    except ValueError as exc:
        raise AnsibleFilterError(f"multi_host: multi_host_private_address of {host} ({given}) is not an IPv4 address") from exc
    return str(given)


def _check(groups: Mapping[str, Sequence[str]], hosts: list[str]) -> None:
    problems = []
    for key in ("edge", "data"):
        if len(_members(groups, key)) != 1:
            problems.append(f"{GROUPS[key]} must hold exactly one host (has {len(_members(groups, key))}): "
                            + ("Traefik and n8n's main process run once" if key == "edge"
                               else "Postgres and Redis run once (a managed database: see docs/multi_host.md)"))
    if not _members(groups, "workers") and not _members(groups, "gpu"):
        problems.append("multi_workers or multi_gpu needs at least one host: nothing would execute workflows")
    if len(_members(groups, "monitoring")) > 1:
        problems.append("multi_monitoring holds at most one host (one Prometheus scrapes every host)")
    for host in _members(groups, "monitoring"):
        if host not in _members(groups, "edge"):
            problems.append(f"the monitoring host {host} must also be in multi_edge: Grafana is served by the edge's Traefik")
    strays = sorted({h for key in GROUPS for h in _members(groups, key)} - set(hosts))
    if strays:
        problems.append(f"hosts in the layout's groups but not in multi_hosts: {', '.join(strays)}")
    if problems:
        raise AnsibleFilterError("multi_host inventory: " + "; ".join(problems))


def multi_host_plan(host: str, groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Any],
                    wireguard: bool = False, n8n_workers: int = 2,
                    celery_workers: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What ``host`` runs in the multi_host layout and how it reaches the other hosts."""
    hosts = list(groups.get("multi_hosts", []) or [])
    if host not in hosts:
        raise AnsibleFilterError(f"multi_host: {host} is not in the group multi_hosts")
    _check(groups, hosts)
    address = {h: _address(hostvars, h, wireguard) for h in hosts}
    duplicates = sorted(a for a, count in Counter(address.values()).items() if count > 1)
    if duplicates:
        raise AnsibleFilterError(f"multi_host: several hosts share the private address(es) {', '.join(duplicates)}")

    def roles_of(name: str) -> list[str]:
        found = set(EVERY_HOST)
        for key, roles in GROUP_ROLES.items():
            if name in _members(groups, key):
                found.update(roles)
        if name in _members(groups, "monitoring"):
            found.add("monitoring_server")
        return sorted(found, key=lambda role: ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER))

    runs = {h: roles_of(h) for h in hosts}
    edge = _members(groups, "edge")[0]
    data = _members(groups, "data")[0]
    gpu = _members(groups, "gpu")

    # Each service's hosts (its group; monitoring's agents run everywhere) and users.
    providers = {service: hosts if group is None else _members(groups, group)
                 for service, (group, _users) in SERVICES.items()}
    consumers = {service: [h for h in hosts if set(runs[h]) & set(users)]
                 for service, (_group, users) in SERVICES.items()}

    private_services, sources = [], {}
    for service in SERVICES:
        clients = [h for h in consumers[service] if h != host]
        if host in providers[service] and clients:
            private_services.append(service)
            for port in PORTS[service]:
                sources[port] = sorted(address[h] for h in clients)

    remote = {}
    for service in SERVICES:
        serving = providers[service]
        if service == "monitoring" or not serving or host in serving or host not in consumers[service]:
            continue
        # Several GPU hosts: the consumers are spread over them, host by host.
        remote[service] = address[serving[consumers[service].index(host) % len(serving)]]

    in_workers = host in _members(groups, "workers")
    in_gpu = host in gpu
    workers = [dict(w) for w in celery_workers
               if (bool(w.get("gpu", False)) and in_gpu) or (not bool(w.get("gpu", False)) and in_workers)]
    return {
        "roles": [r for r in runs[host] if r != "monitoring_server"],
        "private_address": address[host],
        "addresses": address,
        "private_services": private_services,
        "remote_services": remote,
        "secrets_host": data,
        "edge_host": edge,
        # Traefik on the edge host routes every public name; a service of another host
        # is routed to its private address. Several GPU hosts: the first serves ComfyUI's.
        "public_routes": host == edge or (in_gpu and host == gpu[0]),
        "firewall_tcp_sources": [{"port": port, "sources": srcs} for port, srcs in sorted(sources.items())],
        "monitoring_server": "monitoring_server" in runs[host],
        "monitoring_remote_hosts": [{"name": h, "address": address[h]} for h in hosts if h != host]
        if "monitoring_server" in runs[host] else [],
        "n8n_main": host == edge,
        "n8n_workers": int(n8n_workers) if in_workers else 0,
        "fastapi_celery_web": host == edge,
        "fastapi_celery_workers": workers,
        "gpu": in_gpu,
    }


class FilterModule:
    """aistack.hosting multi_host filters."""

    def filters(self) -> dict[str, Any]:
        return {"multi_host_plan": multi_host_plan}
