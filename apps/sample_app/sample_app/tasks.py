"""Worker tasks. Each records its outcome on its job row and returns a JSON result."""

from __future__ import annotations

import glob
import hashlib
import logging
from typing import Any, Callable

from celery import Task

from . import imaging
from .celery_app import app
from .comfy import ComfyClient, txt2img_workflow
from .db import Job, session_factory
from .settings import get_settings
from .storage import s3_upload, save_output

log = logging.getLogger(__name__)


def detect_device() -> dict[str, Any]:
    """``cuda`` when the container was given NVIDIA GPUs (their device nodes exist), else ``cpu``."""
    gpus = sorted(glob.glob("/dev/nvidia[0-9]*"))
    return {"device": "cuda" if gpus else "cpu", "gpus": len(gpus)}


def _set_job(job_id: int, **values: Any) -> None:
    with session_factory(get_settings().database_url)() as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("job %s is gone; result not recorded", job_id)
            return
        for key, value in values.items():
            setattr(job, key, value)
        session.commit()


def _run_job(task: Task, job_id: int, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Mark the job running, run ``work``, record its result (or error) and who ran it."""
    _set_job(job_id, status="running", task_id=task.request.id)
    try:
        result = work()
    except Exception as error:
        _set_job(job_id, status="failed", error=f"{type(error).__name__}: {error}")
        raise
    result.update(job_id=job_id, worker=task.request.hostname or "eager")
    _set_job(job_id, status="done", result=result)
    return result


def _store(name: str, data: bytes) -> dict[str, Any]:
    settings = get_settings()
    path = save_output(settings.output_dir, name, data)
    stored: dict[str, Any] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if settings.s3:
        stored["s3"] = s3_upload(settings.s3, f"outputs/{name}", data, "image/png")
    return stored


@app.task(name="sample_app.tasks.render", bind=True)
def render(self: Task, job_id: int, prompt: str, width: int, height: int) -> dict[str, Any]:
    """CPU work: render the prompt's image into the outputs directory (and S3)."""
    def work() -> dict[str, Any]:
        data = imaging.render(prompt, width, height)
        return {"kind": "render", "width": width, "height": height, **_store(f"render-{job_id}.png", data)}

    return _run_job(self, job_id, work)


@app.task(name="sample_app.tasks.generate", bind=True)
def generate(self: Task, job_id: int, prompt: str, width: int, height: int, steps: int, seed: int) -> dict[str, Any]:
    """GPU work: through ComfyUI when COMFY_BASE_URL is set, else a local image with the cached palette."""
    def work() -> dict[str, Any]:
        settings = get_settings()
        result: dict[str, Any] = {"kind": "generate", **detect_device()}
        if settings.comfy_base_url:
            client = ComfyClient(settings.comfy_base_url, timeout=settings.comfy_timeout)
            workflow = txt2img_workflow(prompt, checkpoint=settings.comfy_checkpoint,
                                        width=width, height=height, steps=steps, seed=seed)
            result.update(backend="comfyui", comfyui=client.run(workflow))
            return result
        palette, downloaded = imaging.load_palette(settings.hf_home)
        data = imaging.render(f"{prompt}#{seed}", width, height, palette)
        result.update(backend="local", model=imaging.PALETTE_MODEL, model_downloaded=downloaded,
                      **_store(f"generate-{job_id}.png", data))
        return result

    return _run_job(self, job_id, work)
