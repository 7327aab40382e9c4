# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""FAKE of the WhatsApp Cloud API's send endpoint, for tests only (it is NOT Meta's API).

It answers what the n8n WhatsApp assistant's workflows call, in the Cloud API's
shapes, and keeps what it received, so a test can assert the payloads:

- ``POST /<version>/<phone number id>/messages`` with ``Authorization: Bearer
  <$FAKE_WHATSAPP_TOKEN>`` (else HTTP 401, as Graph answers a bad token): the JSON
  body is recorded and answered ``{"messaging_product", "contacts", "messages":
  [{"id": "wamid.FAKE<n>"}]}``; while failures are armed, HTTP 500 with a Graph
  error body instead (recorded as a failed attempt);
- ``GET /_fake/sent``: ``{"sent": [...], "attempts": n, "failures": n}``;
- ``POST /_fake/fail`` ``{"count": n}``: the next n sends fail;
- ``POST /_fake/reset``: forget everything.

Run: ``python3 whatsapp_cloud.py [port]`` (default 8080, all interfaces).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEND = re.compile(r"^/v[0-9.]+/[0-9]+/messages$")
STATE = {"sent": [], "attempts": 0, "failures": 0, "fail_next": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _answer(self, code: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:
        if self.path == "/_fake/sent":
            with LOCK:
                return self._answer(200, {k: v for k, v in STATE.items() if k in ("sent", "attempts", "failures")})
        return self._answer(404, {"error": {"message": "unknown path"}})

    def do_POST(self) -> None:
        body = self._body()
        with LOCK:
            if self.path == "/_fake/fail":
                STATE["fail_next"] = int(body.get("count", 1))
                return self._answer(200, {"fail_next": STATE["fail_next"]})
            if self.path == "/_fake/reset":
                STATE.update(sent=[], attempts=0, failures=0, fail_next=0)  # ids keep counting
                return self._answer(200, {})
            if not SEND.match(self.path):
                return self._answer(404, {"error": {"message": "unknown path"}})
            if self.headers.get("Authorization") != f"Bearer {os.environ.get('FAKE_WHATSAPP_TOKEN', '')}":
                return self._answer(401, {"error": {"message": "Invalid OAuth access token.", "code": 190}})
            STATE["attempts"] += 1
            if STATE["fail_next"] > 0:
                STATE["fail_next"] -= 1
                STATE["failures"] += 1
                return self._answer(500, {"error": {"message": "fake outage", "code": 131000}})
            STATE["sent"].append({"path": self.path, "body": body})
            STATE["ids"] = STATE.get("ids", 0) + 1  # unique across resets, as wamids are
            number = STATE["ids"]
        to = body.get("to", "") if isinstance(body, dict) else ""
        return self._answer(200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                  "messages": [{"id": f"wamid.FAKE{number}"}]})


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
