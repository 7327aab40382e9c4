"""ollama_models: pull only what is missing, prune only when asked, against a local fake Ollama API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from ansible_collections.aistack.hosting.plugins.modules import ollama_models


class FakeOllama:
    """State and call log of the fake server: the API subset of Ollama the module uses."""

    def __init__(self) -> None:
        self.models: list[str] = []
        self.calls: list[tuple[str, str, dict]] = []
        self.fail_pull_midway: set[str] = set()
        self.stream_without_success: set[str] = set()


def make_handler(state: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _json(self, code: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.calls.append(("GET", self.path, {}))
            if self.path == "/api/tags":
                self._json(200, {"models": [{"name": name, "model": name, "size": 1} for name in state.models]})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = self._body()
            state.calls.append(("POST", self.path, body))
            if self.path != "/api/pull":
                self._json(404, {"error": "not found"})
                return
            name = body.get("model") or body.get("name")
            if name.startswith("unknown"):
                self._json(500, {"error": "pull model manifest: file does not exist"})
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            lines = [{"status": "pulling manifest"},
                     {"status": "pulling abc", "digest": "sha256:abc", "total": 10, "completed": 5},
                     {"status": "pulling abc", "digest": "sha256:abc", "total": 10, "completed": 10}]
            if name in state.fail_pull_midway:
                lines.append({"error": "max retries exceeded: connection reset"})
            elif name not in state.stream_without_success:
                lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
                full = name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"
                state.models.append(full)
            for line in lines:
                self.wfile.write(json.dumps(line).encode() + b"\n")
                self.wfile.flush()

        def do_DELETE(self) -> None:
            body = self._body()
            state.calls.append(("DELETE", self.path, body))
            name = body.get("model") or body.get("name")
            if name not in state.models:
                self._json(404, {"error": f"model '{name}' not found"})
                return
            state.models.remove(name)
            self._json(200, {})

    return Handler


@pytest.fixture()
def server() -> Iterator[tuple[str, FakeOllama]]:
    state = FakeOllama()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def run(run_module, server):
    url, _ = server

    def runner(check_mode: bool = False, **args) -> dict:
        return run_module(ollama_models, {"url": url, **args}, check_mode)
    return runner


def mutating(state: FakeOllama) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in state.calls if method != "GET"]


def test_pulls_missing_models_once(run, server):
    _, state = server
    first = run(models=["llama3.2:1b", "nomic-embed-text"])
    assert first["changed"] and first["pulled"] == ["llama3.2:1b", "nomic-embed-text"]
    assert first["models"] == ["llama3.2:1b", "nomic-embed-text:latest"]
    pulls = [body for method, path, body in state.calls if path == "/api/pull"]
    assert [body["model"] for body in pulls] == ["llama3.2:1b", "nomic-embed-text"] and all(body["stream"] for body in pulls)
    state.calls.clear()
    second = run(models=["llama3.2:1b", "nomic-embed-text"])
    assert not second["changed"] and second["pulled"] == [] and mutating(state) == []


@pytest.mark.parametrize("listed,on_server", [
    ("llama3.2", "llama3.2:latest"),
    ("llama3.2:latest", "llama3.2:latest"),
    ("Llama3.2:1B", "llama3.2:1b"),
    ("registry.ollama.ai/library/qwen2.5:0.5b", "qwen2.5:0.5b"),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:latest"),
])
def test_names_compare_as_ollama_resolves_them(run, server, listed, on_server):
    _, state = server
    state.models = [on_server]
    result = run(models=[listed])
    assert not result["changed"] and mutating(state) == []


def test_same_model_listed_twice_is_pulled_once(run, server):
    _, state = server
    result = run(models=["phi3", "phi3:latest"])
    assert result["pulled"] == ["phi3"] and len(mutating(state)) == 1


def test_unlisted_models_stay_unless_prune(run, server):
    _, state = server
    state.models = ["llama3.2:1b", "old-model:7b"]
    kept = run(models=["llama3.2:1b"])
    assert not kept["changed"] and "old-model:7b" in state.models
    pruned = run(models=["llama3.2:1b"], prune=True)
    assert pruned["changed"] and pruned["deleted"] == ["old-model:7b"]
    assert state.models == ["llama3.2:1b"] and pruned["models"] == ["llama3.2:1b"]
    assert [body["model"] for method, _, body in state.calls if method == "DELETE"] == ["old-model:7b"]


def test_prune_with_empty_list_deletes_everything(run, server):
    _, state = server
    state.models = ["a:1", "b:latest"]
    result = run(models=[], prune=True)
    assert result["deleted"] == ["a:1", "b:latest"] and state.models == []


def test_check_mode_only_reads(run, server):
    _, state = server
    state.models = ["stale:1"]
    result = run(check_mode=True, models=["llama3.2:1b"], prune=True, _ansible_diff=True)
    assert result["changed"] and result["pulled"] == ["llama3.2:1b"] and result["deleted"] == ["stale:1"]
    assert result["models"] == ["llama3.2:1b"]
    assert result["diff"]["before"] == "stale:1\n" and result["diff"]["after"] == "llama3.2:1b\n"
    assert mutating(state) == [] and state.models == ["stale:1"]


def test_error_line_in_the_stream_fails(run, server):
    _, state = server
    state.fail_pull_midway.add("broken:1b")
    result = run(models=["ok:1b", "broken:1b"])
    assert result["failed"] and "pull broken:1b: max retries exceeded" in result["msg"]
    assert result["pulled"] == ["ok:1b"] and result["changed"]


def test_http_error_fails_with_the_server_message(run):
    result = run(models=["unknown-model:1b"])
    assert result["failed"] and "file does not exist" in result["msg"] and "HTTP 500" in result["msg"]


def test_stream_that_ends_without_success_fails(run, server):
    _, state = server
    state.stream_without_success.add("cut:1b")
    result = run(models=["cut:1b"])
    assert result["failed"] and "without 'success'" in result["msg"]


def test_unreachable_server_fails_clearly(run_module):
    result = run_module(ollama_models, {"url": "http://127.0.0.1:9", "models": ["x"], "timeout": 2})
    assert result["failed"] and "cannot reach Ollama" in result["msg"]


@pytest.mark.parametrize("name", ["", "bad name", "a:b:c", "-leading", "x:" + "t" * 200])
def test_bad_model_names_are_refused(run, server, name):
    _, state = server
    result = run(models=[name])
    assert result["failed"] and "not Ollama model names" in result["msg"] and state.calls == []


@pytest.mark.parametrize("name,expected", [
    ("llama3.2", "llama3.2:latest"),
    ("llama3.2:1b", "llama3.2:1b"),
    ("user/model", "user/model:latest"),
    ("localhost:5000/user/model", "localhost:5000/user/model:latest"),
    ("registry.ollama.ai/library/phi3:mini", "phi3:mini"),
])
def test_normalize(name, expected):
    assert ollama_models.normalize(name) == expected


def test_container_address_is_looked_up_in_the_same_call(run_module, server, docker, monkeypatch):
    url, state = server
    port = int(url.rsplit(":", 1)[1])
    monkeypatch.setenv("FAKE_DOCKER_NETWORKS", json.dumps({"0_decoy": {"IPAddress": "192.0.2.1"},
                                                           "ollama_default": {"IPAddress": "127.0.0.1"}}))
    args = {"container": "aistack-ollama", "networks": ["aistack", "ollama_default"], "port": port, "models": ["llama3.2"]}
    result = run_module(ollama_models, args)
    assert not result["failed"], result
    assert result["pulled"] == ["llama3.2"] and ("POST", "/api/pull") in mutating(state)


def test_missing_container_is_a_no_op_in_check_mode_and_an_error_otherwise(run_module, server, docker, monkeypatch):
    _url, state = server
    monkeypatch.delenv("FAKE_DOCKER_NETWORKS", raising=False)
    args = {"container": "aistack-ollama", "models": ["llama3.2"]}
    result = run_module(ollama_models, args, True)
    assert not result["failed"] and result["changed"] is False
    result = run_module(ollama_models, args)
    assert result["failed"] and "there is no container aistack-ollama" in result["msg"]
    assert state.calls == []
