"""Settings from the environment (the aistack fastapi_celery role sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class S3Settings:
    """Where results are uploaded; only when endpoint, bucket and keys are all set."""

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"


@dataclass(frozen=True)
class Settings:
    """Everything the processes read from their environment."""

    database_url: str
    broker_url: str
    result_backend: str
    output_dir: Path
    hf_home: Path
    comfy_base_url: str = ""
    comfy_checkpoint: str = "v1-5-pruned-emaonly.safetensors"
    comfy_timeout: float = 120.0
    s3: S3Settings | None = None
    task_always_eager: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the settings (from ``env``, default the process environment); unset values fall back to a local development setup."""
        env = os.environ if env is None else env
        broker = env.get("CELERY_BROKER_URL") or "redis://redis:6379/0"
        s3 = None
        s3_values = [env.get(name, "") for name in
                     ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")]
        if all(s3_values):
            s3 = S3Settings(*s3_values, region=env.get("S3_REGION") or "us-east-1")
        return cls(
            database_url=normalize_database_url(env.get("DATABASE_URL") or "sqlite:///sample_app.db"),
            broker_url=broker,
            result_backend=env.get("CELERY_RESULT_BACKEND") or broker,
            output_dir=Path(env.get("OUTPUT_DIR") or "/data/outputs"),
            hf_home=Path(env.get("HF_HOME") or "/models/hf"),
            comfy_base_url=(env.get("COMFY_BASE_URL") or "").rstrip("/"),
            comfy_checkpoint=env.get("COMFY_CHECKPOINT") or cls.comfy_checkpoint,
            comfy_timeout=float(env.get("COMFY_TIMEOUT") or cls.comfy_timeout),
            s3=s3,
            task_always_eager=(env.get("CELERY_TASK_ALWAYS_EAGER") or "").lower() in ("1", "true", "yes"),
        )


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgres://`` / ``postgresql://`` URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()
