"""The HTTP API (``uvicorn sample_app.main:app``). Every route is under /api, so the
app can share a host name with others behind a path-prefix route."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Iterator

from celery.result import AsyncResult
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from . import SERVICE_NAME, __version__
from .celery_app import QUEUE_GPU, QUEUE_RENDER
from .celery_app import app as celery
from .db import Job, session_factory
from .migrate import LATEST, current_version
from .settings import get_settings
from .storage import OUTPUT_NAME
from .tasks import generate, render

router = APIRouter(prefix="/api")


class RenderRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=500)
    width: int = Field(256, ge=16, le=1024)
    height: int = Field(256, ge=16, le=1024)


class GenerateRequest(RenderRequest):
    width: int = Field(512, ge=64, le=2048)
    height: int = Field(512, ge=64, le=2048)
    steps: int = Field(20, ge=1, le=150)
    seed: int = Field(0, ge=0)


class Accepted(BaseModel):
    task_id: str
    job_id: int
    queue: str


def get_session() -> Iterator[Session]:
    with session_factory(get_settings().database_url)() as session:
        yield session


def canonical_sha256(value: Any) -> str:
    """sha256 of the canonical JSON form (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _enqueue(session: Session, kind: str, queue: str, prompt: str, params: dict[str, Any], task: Any) -> Accepted:
    """Record the job, then send the task (its id is stored first, so the worker always finds it)."""
    task_id = str(uuid.uuid4())
    job = Job(kind=kind, queue=queue, prompt=prompt, params=params, task_id=task_id)
    session.add(job)
    session.commit()
    try:
        task.apply_async(kwargs={"job_id": job.id, "prompt": prompt, **params}, task_id=task_id, queue=queue)
    except Exception as error:  # broker down: the job is recorded as failed, the client may retry
        job.status, job.error = "failed", f"enqueue failed: {error}"
        session.commit()
        raise HTTPException(503, "the task queue is not reachable") from error
    return Accepted(task_id=task_id, job_id=job.id, queue=queue)


@router.get("/health")
def health() -> JSONResponse:
    """200 when the database (migrated to this code's schema) and the broker answer, else 503."""
    checks: dict[str, Any] = {}
    try:
        with session_factory(get_settings().database_url)() as session:
            session.execute(text("SELECT 1"))
            version = current_version(session.connection())
        checks["database"] = "ok" if version >= LATEST else f"schema {version} < {LATEST}: run sample_app.migrate"
    except Exception as error:
        checks["database"] = f"error: {type(error).__name__}"
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
        checks["broker"] = "ok"
    except Exception as error:
        checks["broker"] = f"error: {type(error).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if healthy else "error", "version": __version__, **checks},
                        status_code=200 if healthy else 503)


@router.post("/render", status_code=202, response_model=Accepted)
def post_render(request: RenderRequest, session: Session = Depends(get_session)) -> Accepted:
    """Queue a render on the CPU workers (queue ``render``)."""
    params = {"width": request.width, "height": request.height}
    return _enqueue(session, "render", QUEUE_RENDER, request.prompt, params, render)


@router.post("/generate", status_code=202, response_model=Accepted)
def post_generate(request: GenerateRequest, session: Session = Depends(get_session)) -> Accepted:
    """Queue a generation on the GPU workers (queue ``gpu``; reports ``device: cpu`` without a GPU)."""
    params = {"width": request.width, "height": request.height, "steps": request.steps, "seed": request.seed}
    return _enqueue(session, "generate", QUEUE_GPU, request.prompt, params, generate)


@router.get("/tasks/{task_id}")
def get_task(task_id: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    """A task's state (PENDING, STARTED, SUCCESS, FAILURE...) and, when done, its result."""
    job = session.scalars(select(Job).where(Job.task_id == task_id)).first()
    result = AsyncResult(task_id, app=celery)
    if job is None and result.state == "PENDING":
        raise HTTPException(404, "no such task")
    answer: dict[str, Any] = {"task_id": task_id, "state": result.state, "ready": result.ready(),
                              "job_id": job.id if job else None}
    if result.successful():
        answer["result"] = result.result
    elif result.failed():
        answer["error"] = f"{type(result.result).__name__}: {result.result}"
    return answer


@router.get("/jobs/{job_id}")
def get_job(job_id: int, session: Session = Depends(get_session)) -> dict[str, Any]:
    job = session.get(Job, job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    return job.as_dict()


@router.get("/outputs/{name}")
def get_output(name: str) -> FileResponse:
    """A file a task wrote to the outputs directory."""
    path = get_settings().output_dir / name
    if not OUTPUT_NAME.match(name) or not path.is_file():
        raise HTTPException(404, "no such output")
    return FileResponse(path, media_type="image/png" if name.endswith(".png") else None)


@router.post("/echo")
def echo(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """A deterministic answer for integration tests and n8n workflows: the same body, the same answer."""
    return {"service": SERVICE_NAME, "version": __version__, "echo": payload,
            "keys": sorted(payload), "sha256": canonical_sha256(payload)}


app = FastAPI(title="aistack sample app", version=__version__,
              docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
app.include_router(router)
