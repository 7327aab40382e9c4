#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Ollama models present (and, opt-in, nothing else), through Ollama's HTTP API."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ollama_models
short_description: Pull the listed Ollama models when missing, optionally delete the others
version_added: 0.1.0
description:
  - Asks a running Ollama server for its local models (C(GET /api/tags)) and pulls
    (C(POST /api/pull), streamed progress read to the end) only the listed models
    it does not have yet, so a second run changes nothing and downloads nothing.
  - Model names are compared the way Ollama resolves them - C(llama3.2) and
    C(llama3.2:latest) are the same model, the default registry prefix
    C(registry.ollama.ai/library/) is ignored, and case does not matter.
  - With O(prune=true), models the server has but the list does not name are
    deleted (C(DELETE /api/delete)).
  - Talks to Ollama directly (e.g. its address on the stack network), not through
    Traefik; the API itself has no authentication.
options:
  url:
    description:
      - Base URL of the Ollama API, e.g. C(http://172.20.0.7:11434).
      - Exactly one of O(url) and O(container) is required.
    type: str
  container:
    description:
      - Name of Ollama's container; its address on the first of O(networks) it is on (else on any
        network), port O(port), is used.
      - When the container does not exist, nothing is done in check mode (a first run's dry run,
        before Compose created it) and the module fails otherwise.
    type: str
  networks:
    description: The Docker networks whose address of O(container) is preferred, in order.
    type: list
    elements: str
    default: []
  port:
    description: Ollama's port inside O(container).
    type: int
    default: 11434
  models:
    description: Models that must be present, C(name) or C(name:tag) (C(namespace/name:tag), C(host/namespace/name:tag)).
    type: list
    elements: str
    default: []
  prune:
    description: Delete the models the server has that O(models) does not list.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for any single answer or progress line (not for a whole pull).
    type: int
    default: 600
  insecure:
    description: Pass C(insecure) to the pull (registries without TLS).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Only GET /api/tags is called; pulls and deletes are reported, not done.
  diff_mode:
    support: full
    details: The model lists before and after.
  platform:
    platforms: posix
author:
  - aistack.hosting contributors (@aistack-hosting)
notes:
  - Supports check mode (only C(/api/tags) is read) and diff mode (the model lists before and after).
"""

EXAMPLES = r"""
- name: Pull the models the stack uses
  aistack.hosting.ollama_models:
    url: "http://{{ ollama_ip }}:11434"
    models: [llama3.2:1b, nomic-embed-text]

- name: Keep exactly these models
  aistack.hosting.ollama_models:
    url: http://127.0.0.1:11434
    models: [llama3.2:1b]
    prune: true
"""

RETURN = r"""
pulled:
  description: Models pulled in this run (as listed in O(models)).
  returned: always
  type: list
  elements: str
  sample: [llama3.2:1b]
deleted:
  description: Models deleted in this run (as the server named them).
  returned: always
  type: list
  elements: str
models:
  description: Normalised names of the models on the server after this run (predicted in check mode).
  returned: always
  type: list
  elements: str
  sample: [llama3.2:1b, nomic-embed-text:latest]
"""

import json
import re
import urllib.error
from typing import Any, Iterable, Iterator

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.hosting.plugins.module_utils.container_address import api_url
from ansible_collections.aistack.hosting.plugins.module_utils.json_api import JsonApi

DEFAULT_PREFIX = "registry.ollama.ai/library/"
# name[:tag]: path components of lower/upper letters, digits, '.', '_', '-'
# (a registry host may carry a port); the tag after the LAST component.
MODEL_NAME = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*(?::[0-9]+)?/){0,2}[A-Za-z0-9][A-Za-z0-9._-]*(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$"
)


class OllamaError(Exception):
    """A failed API call, with the server's message."""


def normalize(name: str) -> str:
    """The name Ollama resolves ``name`` to: default tag ``latest``, no default registry prefix, lower case."""
    name = name.strip()
    if name.lower().startswith(DEFAULT_PREFIX):
        name = name[len(DEFAULT_PREFIX):]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    return name.lower()


class OllamaClient:
    """The few calls of Ollama's REST API this module needs."""

    def __init__(self, url: str, timeout: int) -> None:
        self.api = JsonApi(url, timeout)
        self.base = self.api.base
        self.timeout = timeout

    def _open(self, method: str, path: str, body: Any = None):
        try:
            return self.api.open(method, path, body)
        except urllib.error.HTTPError as exc:
            raise OllamaError(f"{method} {path} -> HTTP {exc.code}: {error_text(exc.read())}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise OllamaError(f"{method} {path}: cannot reach Ollama at {self.base}: {exc}") from exc

    def tags(self) -> list[str]:
        """Names of the local models."""
        with self._open("GET", "/api/tags") as response:
            payload = json.loads(response.read() or b"{}")
        return [model.get("name") or model.get("model") or "" for model in payload.get("models") or []]

    def pull(self, name: str, insecure: bool) -> list[str]:
        """Pull one model, reading the NDJSON progress stream until ``success``; return the statuses seen."""
        body = {"model": name, "name": name, "stream": True}
        if insecure:
            body["insecure"] = True
        statuses: list[str] = []
        with self._open("POST", "/api/pull", body) as response:
            for line in ndjson(response):
                if "error" in line:
                    raise OllamaError(f"pull {name}: {line['error']}")
                status = str(line.get("status", ""))
                if status and (not statuses or statuses[-1] != status):
                    statuses.append(status)
                if status == "success":
                    return statuses
        raise OllamaError(f"pull {name}: the progress stream ended without 'success' (last: {statuses[-1:]})")

    def delete(self, name: str) -> None:
        with self._open("DELETE", "/api/delete", {"model": name, "name": name}) as response:
            response.read()


def ndjson(lines: Iterable[bytes]) -> Iterator[dict]:
    """Parsed objects of a newline-delimited JSON stream (blank lines skipped)."""
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise OllamaError(f"unexpected line in the progress stream: {raw[:200]!r}") from exc
        if isinstance(value, dict):
            yield value


def error_text(body: bytes) -> str:
    """Ollama's ``{"error": ...}`` message, else the raw body (shortened)."""
    text = body.decode("utf-8", "replace")
    try:
        return str(json.loads(text).get("error", text))[:500]
    except (ValueError, AttributeError):
        return text[:500]


def plan(wanted: list[str], present: list[str], prune: bool) -> tuple[list[str], list[str]]:
    """(models to pull as listed, server names to delete)."""
    have = {normalize(name) for name in present}
    keep = {normalize(name) for name in wanted}
    to_pull, seen = [], set()
    for name in wanted:
        key = normalize(name)
        if key not in have and key not in seen:
            to_pull.append(name)
        seen.add(key)
    to_delete = [name for name in present if prune and normalize(name) not in keep]
    return to_pull, to_delete


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str"),
            container=dict(type="str"),
            networks=dict(type="list", elements="str", default=[]),
            port=dict(type="int", default=11434),
            models=dict(type="list", elements="str", default=[]),
            prune=dict(type="bool", default=False),
            timeout=dict(type="int", default=600),
            insecure=dict(type="bool", default=False),
        ),
        required_one_of=[("url", "container")],
        mutually_exclusive=[("url", "container")],
        supports_check_mode=True,
    )
    params = module.params
    bad = [name for name in params["models"] if not MODEL_NAME.match(name.strip())]
    if bad:
        module.fail_json(msg=f"not Ollama model names (name or name:tag): {bad}")
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second")

    url = api_url(module, params["networks"], params["port"], no_op=dict(pulled=[], deleted=[], models=[]))
    client = OllamaClient(url, params["timeout"])
    try:
        present = client.tags()
    except OllamaError as exc:
        module.fail_json(msg=str(exc))
    to_pull, to_delete = plan(params["models"], present, params["prune"])

    before = sorted({normalize(name) for name in present})
    after = sorted((set(before) - {normalize(name) for name in to_delete}) | {normalize(name) for name in to_pull})
    result: dict[str, Any] = {
        "changed": bool(to_pull or to_delete), "pulled": [], "deleted": [], "models": after,
    }
    if module._diff:
        result["diff"] = {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n",
                          "before_header": "ollama models", "after_header": "ollama models"}
    if module.check_mode:
        result.update(pulled=to_pull, deleted=to_delete)
        module.exit_json(**result)

    try:
        for name in to_pull:
            client.pull(name.strip(), params["insecure"])
            result["pulled"].append(name)
        for name in to_delete:
            client.delete(name)
            result["deleted"].append(name)
        result["models"] = sorted({normalize(name) for name in client.tags()})
    except OllamaError as exc:
        result["changed"] = bool(result["pulled"] or result["deleted"])
        module.fail_json(msg=str(exc), **{k: v for k, v in result.items() if k != "diff"})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
