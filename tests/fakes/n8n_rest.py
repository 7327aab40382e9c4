# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""FAKE of the part of n8n's internal REST API that n8n_provision calls, for unit tests only.

It is NOT n8n (the real n8n is exercised by the n8n molecule scenario). It
answers the endpoints the module uses, in n8n's shapes, keeping state in memory:

- ``GET  /healthz/readiness``: HTTP 503 for the first ``unready`` calls (n8n still
  connecting to or migrating its database), then 200;
- ``GET  /rest/settings``: ``userManagement.showSetupOnFirstLoad`` is true until an owner exists;
- ``POST /rest/owner/setup``: creates the owner once (a second call is HTTP 400), logs it in;
- ``POST /rest/login`` (``emailOrLdapLoginId``, ``password``): sets the ``n8n-auth``
  cookie, marked ``Secure; HttpOnly`` as n8n does (the module must send it back
  by hand over plain HTTP); the next ``refuse_logins`` logins are refused with
  HTTP 429 and ``Retry-After: 1``, as n8n's per-address login limit does;
- ``GET /rest/login``: the session's user (HTTP 401 without a session n8n accepts);
- with that cookie only (else HTTP 401): ``GET /rest/workflows/<id>/exists``,
  ``GET /rest/workflows/<id>``, ``POST /rest/workflows`` (keeps the given id),
  ``PATCH /rest/workflows/<id>?forceSave=true`` (new ``versionId``),
  ``POST /rest/workflows/<id>/activate`` (the ``versionId`` must be the current
  one, as n8n 2.x requires), ``GET/POST /rest/credentials``, ``PATCH /rest/credentials/<id>``.

Every answer is wrapped in ``{"data": ...}`` as n8n does. ``calls`` records
(method, path, body) of every request; :data:`MUTATIONS` tells which change state.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from contextlib import contextmanager

COOKIE = "n8n-auth"
# Requests that change n8n's state (login only opens a session).
MUTATIONS = re.compile(r"^(POST /rest/owner/setup|POST /rest/workflows|PATCH /rest/workflows/|"
                       r"POST /rest/workflows/[^/]+/activate|POST /rest/credentials|PATCH /rest/credentials/)")


class FakeN8n:
    """In-memory state of the fake: owner, sessions, workflows, credentials, call log."""

    def __init__(self) -> None:
        self.owner: dict[str, str] | None = None
        self.sessions: set[str] = set()
        self.workflows: dict[str, dict[str, Any]] = {}
        self.credentials: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.unready = 0
        self.refuse_logins = 0
        self.lock = threading.Lock()

    def mutations(self) -> list[str]:
        """'METHOD path' of the calls that changed state, in order."""
        return [f"{method} {path}" for method, path, _body in self.calls if MUTATIONS.match(f"{method} {path}")]

    def handle(self, method: str, path: str, body: Any, cookie: str | None) -> tuple[int, Any, str | None]:
        """(status, payload, Set-Cookie value or None) for one request."""
        with self.lock:
            self.calls.append((method, path, body))
            route = path.split("?", 1)[0]
            if method == "GET" and route == "/healthz/readiness":
                if self.unready > 0:
                    self.unready -= 1
                    return 503, {"status": "error"}, None
                return 200, {"status": "ok"}, None
            if method == "GET" and route == "/rest/settings":
                return 200, {"userManagement": {"showSetupOnFirstLoad": self.owner is None}}, None
            if method == "POST" and route == "/rest/owner/setup":
                if self.owner is not None:
                    return 400, {"message": "Instance owner already setup"}, None
                missing = [k for k in ("email", "password", "firstName", "lastName") if not body.get(k)]
                if missing:
                    return 400, {"message": f"missing {missing}"}, None
                self.owner = dict(body)
                return 200, {"email": body["email"]}, self._session()
            if method == "POST" and route == "/rest/login":
                if self.refuse_logins > 0:
                    self.refuse_logins -= 1
                    return 429, "Too many requests, please try again later.", None
                if not self.owner or body.get("emailOrLdapLoginId") != self.owner["email"] \
                        or body.get("password") != self.owner["password"]:
                    return 401, {"message": "Wrong username or password. Do you have caps lock on?"}, None
                return 200, {"email": self.owner["email"]}, self._session()
            if cookie not in self.sessions:
                return 401, {"message": "Unauthorized"}, None
            if method == "GET" and route == "/rest/login":
                return 200, {"email": self.owner["email"], "firstName": self.owner.get("firstName")}, None
            return self._authenticated(method, route, body)

    def _session(self) -> str:
        token = secrets.token_hex(8)
        self.sessions.add(token)
        return f"{COOKIE}={token}; Max-Age=604800; Path=/; HttpOnly; Secure; SameSite=Lax"

    def _authenticated(self, method: str, route: str, body: Any) -> tuple[int, Any, None]:
        parts = route.strip("/").split("/")  # rest, workflows|credentials, [id], [action]
        kind, ident, action = parts[1], (parts[2] if len(parts) > 2 else None), (parts[3] if len(parts) > 3 else None)
        if kind == "workflows":
            return (*self._workflows(method, ident, action, body), None)
        if kind == "credentials":
            return (*self._credentials(method, ident, body), None)
        return 404, {"message": f"no route {method} {route}"}, None

    def _workflows(self, method: str, ident: str | None, action: str | None, body: Any) -> tuple[int, Any]:
        if method == "GET" and ident and action == "exists":
            return 200, {"exists": ident in self.workflows}
        if method == "GET" and ident and not action:
            return (200, self.workflows[ident]) if ident in self.workflows else (404, {"message": "not found"})
        if method == "POST" and not ident:
            if body.get("id") in self.workflows:
                return 400, {"message": "duplicate id"}
            workflow = {**body, "id": body.get("id") or uuid.uuid4().hex[:16], "active": False, "versionId": str(uuid.uuid4())}
            self.workflows[workflow["id"]] = workflow
            return 200, workflow
        if method == "PATCH" and ident in self.workflows:
            workflow = self.workflows[ident]
            workflow.update({k: v for k, v in body.items() if k not in ("id", "versionId")})
            workflow["versionId"] = str(uuid.uuid4())
            return 200, workflow
        if method == "POST" and ident in self.workflows and action == "activate":
            workflow = self.workflows[ident]
            if body.get("versionId") != workflow["versionId"]:
                return 400, {"message": "versionId does not match the current version"}
            workflow["active"] = True
            return 200, workflow
        return 404, {"message": "not found"}

    def _credentials(self, method: str, ident: str | None, body: Any) -> tuple[int, Any]:
        if method == "GET" and not ident:
            return 200, [{"id": c["id"], "name": c["name"], "type": c["type"]} for c in self.credentials.values()]
        if method == "POST" and not ident:
            credential = {"id": uuid.uuid4().hex[:16], **body}
            self.credentials[credential["id"]] = credential
            return 200, {k: v for k, v in credential.items() if k != "data"}
        if method == "PATCH" and ident in self.credentials:
            self.credentials[ident].update(body)
            return 200, {"id": ident, "name": self.credentials[ident]["name"]}
        return 404, {"message": "not found"}


def make_handler(state: FakeN8n) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            cookies = dict(part.strip().split("=", 1) for part in (self.headers.get("Cookie") or "").split(";") if "=" in part)
            status, payload, set_cookie = state.handle(self.command, self.path, body, cookies.get(COOKIE))
            data = json.dumps({"data": payload} if status < 400 else payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if set_cookie:
                self.send_header("Set-Cookie", set_cookie)
            if status == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

    return Handler


@contextmanager
def serve() -> Iterator[tuple[FakeN8n, str]]:
    """Run a fake on a free loopback port; yield (state, base URL)."""
    state = FakeN8n()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
