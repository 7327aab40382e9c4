"""The Celery application: ``celery -A sample_app.celery_app worker -Q render,celery``.

Queues: ``gpu`` (one task at a time per GPU worker), ``render`` (CPU work)
and ``celery``, the default both kinds of worker also consume.
"""

from __future__ import annotations

from celery import Celery

from .settings import Settings, get_settings

QUEUE_GPU = "gpu"
QUEUE_RENDER = "render"
QUEUE_DEFAULT = "celery"


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``."""
    celery = Celery("sample_app", broker=settings.broker_url, backend=settings.result_backend,
                    include=["sample_app.tasks"])
    celery.conf.update(
        task_default_queue=QUEUE_DEFAULT,
        task_routes={
            "sample_app.tasks.render": {"queue": QUEUE_RENDER},
            "sample_app.tasks.generate": {"queue": QUEUE_GPU},
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_track_started=True,
        # A job is acknowledged once done: a worker that dies mid-task hands it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=86400,
        result_extended=True,
        broker_connection_retry_on_startup=True,
        task_always_eager=settings.task_always_eager,
        task_eager_propagates=False,
        task_store_eager_result=settings.task_always_eager,
    )
    return celery


app = make_celery(get_settings())
