"""The sample agent (apps/sample_agent/agent.py): its routes over real HTTP.

The agent runs on a free local port; a second local HTTP server stands in for
the n8n webhook it calls (``N8N_WEBHOOK_URL``). The agent inside the container,
behind nginx and called by a real n8n workflow, is tested by the
single_container molecule scenario.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

AGENT = Path(__file__).resolve().parents[2] / "apps" / "sample_agent" / "agent.py"


def load_agent() -> Any:
    """Import agent.py without writing a __pycache__ into apps/ (it is copied into images)."""
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("sample_agent_under_test", AGENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent = load_agent()


def serve(server: ThreadingHTTPServer) -> str:
    """Serve in a thread; return the base URL."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


class FakeN8n(BaseHTTPRequestHandler):
    """Stands in for an n8n production webhook: echoes the question, or fails on demand."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/webhook/broken":
            self.send_response(500)
            self.end_headers()
            return
        payload = b"not json" if self.path == "/webhook/text" else json.dumps({"workflow": "fake", "got": body}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def n8n_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeN8n)
    yield serve(server)
    server.shutdown()


def start_agent(webhook_url: str) -> tuple[ThreadingHTTPServer, str]:
    server = agent.make_server("127.0.0.1", 0, webhook_url, 5.0)
    return server, serve(server)


def call(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def agent_url(n8n_url) -> Iterator[str]:
    server, url = start_agent(n8n_url + "/webhook/agent-ask")
    yield url
    server.shutdown()


def test_health(agent_url):
    assert call(agent_url + "/agent/health") == (200, {"status": "ok", "agent": "sample_agent"})


def test_answer_is_deterministic(agent_url):
    status, body = call(agent_url + "/agent/answer", {"question": "  what is n8n  "})
    assert status == 200
    assert body == {"agent": "sample_agent", "question": "what is n8n", "answer": "n8n is what", "words": 3}


@pytest.mark.parametrize("body", [b"{not json", {"question": ""}, {"q": "x"}, ["question"], {"question": 3}])
def test_bad_question_is_400(agent_url, body):
    status, payload = call(agent_url + "/agent/answer", body)
    assert status == 400 and ("question" in payload["error"] or "JSON" in payload["error"])


def test_unknown_routes_are_404(agent_url):
    assert call(agent_url + "/elsewhere")[0] == 404
    assert call(agent_url + "/agent/nothing", {"question": "x"})[0] == 404


def test_ask_forwards_to_the_n8n_webhook(agent_url):
    status, body = call(agent_url + "/agent/ask", {"question": "hello"})
    assert status == 200
    assert body == {"agent": "sample_agent", "via": "n8n", "n8n": {"workflow": "fake", "got": {"question": "hello"}}}


@pytest.mark.parametrize("path,message", [("/webhook/broken", "HTTP 500"), ("/webhook/text", "did not answer JSON")])
def test_ask_reports_n8n_failures_as_502(n8n_url, path, message):
    server, url = start_agent(n8n_url + path)
    try:
        status, body = call(url + "/agent/ask", {"question": "hello"})
    finally:
        server.shutdown()
    assert status == 502 and message in body["error"]


def test_ask_unreachable_n8n_is_502():
    server, url = start_agent("http://127.0.0.1:9/webhook/x")
    try:
        status, body = call(url + "/agent/ask", {"question": "hello"})
    finally:
        server.shutdown()
    assert status == 502 and "unreachable" in body["error"]


def test_ask_without_webhook_url_is_503():
    server, url = start_agent("")
    try:
        status, body = call(url + "/agent/ask", {"question": "hello"})
    finally:
        server.shutdown()
    assert status == 503 and "N8N_WEBHOOK_URL" in body["error"]
