"""The sample FastAPI/Celery app (apps/sample_app) without services.

SQLite stands in for Postgres, Celery runs tasks eagerly (in the calling
thread) with the in-memory broker and result backend; the HTTP API is
exercised through FastAPI's TestClient. The image and the deployed stack
are tested by the fastapi_celery molecule scenario.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "apps" / "sample_app"

fastapi_testclient = pytest.importorskip("fastapi.testclient")
pytest.importorskip("celery")
pytest.importorskip("sqlalchemy")


@pytest.fixture(scope="module")
def app_env(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The app's modules, imported with a test environment, and a migrated SQLite database."""
    root = tmp_path_factory.mktemp("sample_app")
    env = {
        "DATABASE_URL": f"sqlite:///{root / 'app.db'}",
        "CELERY_BROKER_URL": "memory://",
        "CELERY_RESULT_BACKEND": "cache+memory://",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "OUTPUT_DIR": str(root / "outputs"),
        "HF_HOME": str(root / "hf"),
        "COMFY_BASE_URL": "",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        for key in ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
            patch.delenv(key, raising=False)
        patch.syspath_prepend(str(APP_DIR))
        for name in [name for name in sys.modules if name == "sample_app" or name.startswith("sample_app.")]:
            patch.delitem(sys.modules, name)
        from sample_app import db, imaging, main, migrate, settings, storage, comfy  # noqa: F401

        migrate.main()
        with fastapi_testclient.TestClient(main.app) as client:
            yield SimpleNamespace(client=client, root=root, db=db, imaging=imaging, main=main,
                                  migrate=migrate, settings=settings, storage=storage, comfy=comfy)
        for name in [name for name in sys.modules if name == "sample_app" or name.startswith("sample_app.")]:
            del sys.modules[name]


class TestMigrations:
    def test_fresh_database_gets_every_step_once(self, app_env, tmp_path):
        engine = app_env.db.create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        assert app_env.migrate.migrate(engine) == [app_env.migrate.LATEST]
        assert app_env.migrate.migrate(engine) == []
        with engine.connect() as conn:
            assert app_env.migrate.current_version(conn) == app_env.migrate.LATEST
            assert engine.dialect.has_table(conn, "jobs")

    def test_command_reports_no_change_when_current(self, app_env, capsys):
        app_env.migrate.main()
        assert json.loads(capsys.readouterr().out) == {
            "schema_version": app_env.migrate.LATEST, "applied": [], "changed": False}


class TestApi:
    def test_health_checks_database_and_broker(self, app_env):
        answer = app_env.client.get("/api/health")
        assert answer.status_code == 200, answer.text
        assert answer.json() | {"version": None} == {
            "status": "ok", "version": None, "database": "ok", "broker": "ok"}

    def test_render_runs_the_task_and_records_the_job(self, app_env):
        accepted = app_env.client.post("/api/render", json={"prompt": "a red fox", "width": 40, "height": 24})
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["queue"] == "render"
        task = app_env.client.get(f"/api/tasks/{body['task_id']}").json()
        assert task["state"] == "SUCCESS" and task["ready"] and task["job_id"] == body["job_id"]
        result = task["result"]
        assert result["kind"] == "render" and result["job_id"] == body["job_id"]
        data = (app_env.root / "outputs" / result["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == result["sha256"]
        assert app_env.imaging.png_size(data) == (40, 24)
        job = app_env.client.get(f"/api/jobs/{body['job_id']}").json()
        assert job["status"] == "done" and job["result"] == result and job["task_id"] == body["task_id"]
        download = app_env.client.get(f"/api/outputs/{result['file']}")
        assert download.status_code == 200 and download.content == data
        assert download.headers["content-type"] == "image/png"

    def test_same_prompt_same_image(self, app_env):
        results = []
        for _ in range(2):
            task_id = app_env.client.post("/api/render", json={"prompt": "same", "width": 16, "height": 16}).json()["task_id"]
            results.append(app_env.client.get(f"/api/tasks/{task_id}").json()["result"])
        assert results[0]["sha256"] == results[1]["sha256"]
        assert results[0]["file"] != results[1]["file"]

    def test_generate_reports_cpu_and_caches_the_model(self, app_env):
        results = []
        for seed in (1, 2):
            body = app_env.client.post("/api/generate", json={"prompt": "a lighthouse", "width": 64, "height": 64,
                                                               "seed": seed}).json()
            assert body["queue"] == "gpu"
            results.append(app_env.client.get(f"/api/tasks/{body['task_id']}").json()["result"])
        assert [r["device"] for r in results] == ["cpu", "cpu"]
        assert [r["model_downloaded"] for r in results] == [True, False]
        assert (app_env.root / "hf" / app_env.imaging.PALETTE_MODEL).is_file()
        assert results[0]["sha256"] != results[1]["sha256"]

    @pytest.mark.parametrize("body", [{"prompt": ""}, {"prompt": "x", "width": 5000}, {"width": 64}])
    def test_bad_requests_are_refused(self, app_env, body):
        assert app_env.client.post("/api/render", json=body).status_code == 422

    def test_unknown_task_job_and_output_are_404(self, app_env):
        assert app_env.client.get("/api/tasks/not-a-task").status_code == 404
        assert app_env.client.get("/api/jobs/99999").status_code == 404
        assert app_env.client.get("/api/outputs/..%2Fapp.db").status_code == 404

    def test_echo_is_deterministic(self, app_env):
        first = app_env.client.post("/api/echo", json={"b": [1, 2], "a": "x"}).json()
        second = app_env.client.post("/api/echo", json={"a": "x", "b": [1, 2]}).json()
        assert first == second
        assert first["echo"] == {"a": "x", "b": [1, 2]} and first["keys"] == ["a", "b"]
        assert first["sha256"] == hashlib.sha256(b'{"a":"x","b":[1,2]}').hexdigest()


class FakeServer:
    """A threaded HTTP server whose handler is a function (method, path, body) -> (status, json)."""

    def __init__(self, respond: Callable[[str, str, bytes, dict[str, str]], tuple[int, Any]]) -> None:
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = (self.command, self.path, body, {k.lower(): v for k, v in self.headers.items()})
                outer.requests.append(request)
                status, answer = respond(*request)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TestComfyClient:
    def test_queues_the_workflow_and_waits_for_history(self, app_env):
        polls = []

        def respond(method, path, body, headers):
            if method == "POST" and path == "/prompt":
                assert json.loads(body)["prompt"]["9"]["class_type"] == "SaveImage"
                return 200, {"prompt_id": "p1", "number": 0, "node_errors": {}}
            polls.append(path)
            if len(polls) < 2:
                return 200, {}
            return 200, {"p1": {"status": {"status_str": "success", "completed": True},
                                "outputs": {"9": {"images": [{"filename": "aistack_00001_.png", "type": "output"}]}}}}

        server = FakeServer(respond)
        try:
            workflow = app_env.comfy.txt2img_workflow("fox", checkpoint="m.safetensors", width=64, height=64, steps=2, seed=3)
            client = app_env.comfy.ComfyClient(server.url, timeout=10, sleep=lambda _: None)
            assert client.run(workflow) == {"prompt_id": "p1", "images": ["aistack_00001_.png"]}
            assert polls == ["/history/p1", "/history/p1"]
        finally:
            server.close()

    def test_a_failed_prompt_raises(self, app_env):
        def respond(method, path, body, headers):
            if path == "/prompt":
                return 200, {"prompt_id": "p2"}
            return 200, {"p2": {"status": {"status_str": "error", "completed": False, "messages": ["boom"]}}}

        server = FakeServer(respond)
        try:
            client = app_env.comfy.ComfyClient(server.url, timeout=10, sleep=lambda _: None)
            with pytest.raises(app_env.comfy.ComfyError, match="failed prompt p2"):
                client.run({})
        finally:
            server.close()


class TestStorageAndSettings:
    def test_sigv4_matches_the_aws_documentation_example(self, app_env):
        # "GET Object" example of the S3 SigV4 documentation (header-based auth).
        headers = app_env.storage.sigv4_headers(
            "GET", "https://examplebucket.s3.amazonaws.com/test.txt", region="us-east-1",
            access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            payload_sha256=hashlib.sha256(b"").hexdigest(), now=datetime(2013, 5, 24, tzinfo=timezone.utc),
            headers={"Range": "bytes=0-9"})
        assert headers["authorization"] == (
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")

    def test_upload_puts_a_signed_object(self, app_env):
        server = FakeServer(lambda method, path, body, headers: (200, {}))
        try:
            s3 = app_env.settings.S3Settings(server.url, "results", "key-id", "secret")
            assert app_env.storage.s3_upload(s3, "outputs/a.png", b"PNG", "image/png") == "s3://results/outputs/a.png"
            method, path, body, headers = server.requests[0]
            assert (method, path, body) == ("PUT", "/results/outputs/a.png", b"PNG")
            assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=key-id/")
            assert headers["x-amz-content-sha256"] == hashlib.sha256(b"PNG").hexdigest()
        finally:
            server.close()

    def test_settings_from_env(self, app_env):
        settings = app_env.settings.Settings.from_env({
            "DATABASE_URL": "postgresql://app:pw@postgres:5432/app",
            "CELERY_BROKER_URL": "redis://:pw@redis:6379/1",
            "S3_ENDPOINT_URL": "http://minio:9000", "S3_BUCKET": "b", "S3_ACCESS_KEY_ID": "k",
            "COMFY_BASE_URL": "http://comfyui:8188/",
        })
        assert settings.database_url == "postgresql+psycopg://app:pw@postgres:5432/app"
        assert settings.result_backend == "redis://:pw@redis:6379/1"
        assert settings.s3 is None  # no secret key: uploads stay off
        assert settings.comfy_base_url == "http://comfyui:8188"
        assert settings.hf_home == Path("/models/hf")
