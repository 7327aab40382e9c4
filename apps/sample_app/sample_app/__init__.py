"""aistack sample application: a FastAPI API whose work runs on Celery workers.

One image, several processes (the command picks one): the web API
(``uvicorn sample_app.main:app``), Celery workers on the ``gpu`` and
``render`` queues (``celery -A sample_app.celery_app worker``) and the
schema migration (``python -m sample_app.migrate``).
"""

from __future__ import annotations

__version__ = "0.1.0"
SERVICE_NAME = "aistack-sample-app"
