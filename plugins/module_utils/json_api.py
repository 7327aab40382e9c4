# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""JSON over HTTP for the modules that drive a service's REST API (n8n, Ollama).

Requests go through ``ansible.module_utils.urls.Request`` as in every Ansible
module: proxy settings from the environment, verified TLS with the system CA
store, a recognisable User-Agent. Errors are left to the caller, which knows
what to say: ``urllib.error.HTTPError`` for an HTTP error status (its body is
readable), ``urllib.error.URLError`` (an ``OSError``) when nothing answered.
"""

from __future__ import annotations

import json
from typing import Any

from ansible.module_utils.urls import Request, make_context

USER_AGENT = "aistack.hosting"


class JsonApi:
    """A base URL, a timeout, and JSON request bodies."""

    def __init__(self, url: str, timeout: int, validate_certs: bool = True) -> None:
        self.base = url.rstrip("/")
        self.timeout = timeout
        # One TLS context per client: building it loads the CA store (~0.1 s), once, not per call.
        self._request = Request(http_agent=USER_AGENT, timeout=timeout, validate_certs=validate_certs,
                                context=make_context(validate_certs=validate_certs))

    def open(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):
        """Send ``body`` (JSON-encoded unless None) to ``base + path``; return the open response.

        The response is a file-like object (``read()``, iteration by line,
        ``headers``); use it as a context manager to close it.
        """
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", "Accept": "application/json"}
        sent.update(headers or {})
        return self._request.open(method, f"{self.base}{path}", data=data, headers=sent)
