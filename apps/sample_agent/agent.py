"""Sample agent: a small HTTP service that sits beside n8n (standard library only).

Routes (all under ``/agent/`` so one reverse proxy can put it next to n8n):

* ``GET  /agent/health``  liveness: ``{"status": "ok"}``.
* ``POST /agent/answer``  what an n8n workflow calls: takes ``{"question": ...}``
  and answers it (a deterministic toy "reasoning": word count, reversed words).
* ``POST /agent/ask``     the other direction, as seed 000's agent does: forwards
  ``{"question": ...}`` to the n8n webhook in ``N8N_WEBHOOK_URL`` and returns what
  the workflow answered.

Settings (environment): ``AGENT_HOST`` (default 127.0.0.1), ``AGENT_PORT``
(8000), ``N8N_WEBHOOK_URL`` (no default: ``/agent/ask`` answers 503 without it),
``AGENT_WEBHOOK_TIMEOUT`` seconds (30).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

LOG = logging.getLogger("sample_agent")
MAX_BODY = 1024 * 1024
AGENT_NAME = "sample_agent"


class HttpError(Exception):
    """An error answered to the client as ``{"error": message}`` with a status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def answer(question: str) -> dict[str, Any]:
    """The agent's answer to a question (deterministic, so tests can check it)."""
    words = question.split()
    return {
        "agent": AGENT_NAME,
        "question": question,
        "answer": " ".join(reversed(words)),
        "words": len(words),
    }


def parse_question(body: bytes) -> str:
    """The ``question`` of a JSON request body; HttpError(400) when it is missing."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise HttpError(400, f"body is not JSON: {exc}") from exc
    question = payload.get("question") if isinstance(payload, dict) else None
    if not isinstance(question, str) or not question.strip():
        raise HttpError(400, 'body must be a JSON object with a non-empty "question" string')
    return question.strip()


def ask_n8n(question: str, webhook_url: str, timeout: float,
            opener: Callable[..., Any] = urllib.request.urlopen) -> Any:
    """POST the question to the n8n webhook and return its decoded JSON answer."""
    if not webhook_url:
        raise HttpError(503, "N8N_WEBHOOK_URL is not set: the agent does not know which n8n webhook to call")
    request = urllib.request.Request(
        webhook_url, data=json.dumps({"question": question}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"}, method="POST",
    )
    try:
        with opener(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise HttpError(502, f"n8n webhook answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise HttpError(502, f"n8n webhook unreachable: {getattr(exc, 'reason', exc)}") from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise HttpError(502, "n8n webhook did not answer JSON") from exc


class AgentHandler(BaseHTTPRequestHandler):
    """Routes of the agent; settings come from the server (``self.server.settings``)."""

    server_version = "aistack-sample-agent/0.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        """Health."""
        if self.path.split("?")[0] in ("/agent/health", "/agent/health/"):
            self.reply(200, {"status": "ok", "agent": AGENT_NAME})
        else:
            self.reply(404, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        """The answer route (called by n8n) and the ask route (calls n8n)."""
        route = self.path.split("?")[0].rstrip("/")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise HttpError(413, f"body larger than {MAX_BODY} bytes")
            question = parse_question(self.rfile.read(length))
            settings = self.server.settings  # type: ignore[attr-defined]
            if route == "/agent/answer":
                self.reply(200, answer(question))
            elif route == "/agent/ask":
                self.reply(200, {"agent": AGENT_NAME, "via": "n8n",
                                 "n8n": ask_n8n(question, settings["webhook_url"], settings["timeout"])})
            else:
                raise HttpError(404, f"no route POST {self.path}")
        except HttpError as exc:
            self.reply(exc.status, {"error": exc.message})

    def reply(self, status: int, payload: Any) -> None:
        """Send a JSON response."""
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server signature)
        """Access log to stderr through logging (supervisord forwards it to the container log)."""
        LOG.info("%s %s", self.address_string(), format % args)


def make_server(host: str, port: int, webhook_url: str, timeout: float) -> ThreadingHTTPServer:
    """A ready-to-serve agent server (port 0 picks a free port)."""
    server = ThreadingHTTPServer((host, port), AgentHandler)
    server.settings = {"webhook_url": webhook_url, "timeout": timeout}  # type: ignore[attr-defined]
    return server


def main() -> int:
    """Serve until interrupted (SIGTERM from supervisord ends the process)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="sample_agent: %(message)s")
    server = make_server(
        os.environ.get("AGENT_HOST", "127.0.0.1"), int(os.environ.get("AGENT_PORT", "8000")),
        os.environ.get("N8N_WEBHOOK_URL", ""), float(os.environ.get("AGENT_WEBHOOK_TIMEOUT", "30")),
    )
    LOG.info("listening on %s:%s, n8n webhook %s", *server.server_address[:2],
             os.environ.get("N8N_WEBHOOK_URL") or "(unset)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
