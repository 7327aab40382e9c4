"""Where results go: the shared outputs directory, and S3 when it is configured.

S3 uploads are a plain ``PUT`` signed with AWS Signature Version 4 (works
with AWS, MinIO, Yandex Object Storage...), so the image needs no SDK.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping
from urllib.parse import quote, urlsplit

from .settings import S3Settings

OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def save_output(output_dir: Path, name: str, data: bytes) -> Path:
    """Write ``data`` as ``output_dir/name`` atomically."""
    if not OUTPUT_NAME.match(name):
        raise ValueError(f"bad output name {name!r}")
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / name
    temporary = output_dir / f".{name}.{os.getpid()}"
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return path


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def sigv4_headers(method: str, url: str, *, region: str, access_key_id: str, secret_access_key: str,
                  payload_sha256: str, now: datetime, headers: Mapping[str, str] | None = None,
                  service: str = "s3") -> dict[str, str]:
    """The request headers, ``Authorization`` included, of an AWS SigV4-signed request.

    ``url``'s path must already be URI-encoded (S3 signs it as sent).
    """
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    signed = {"host": parts.netloc, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    signed.update({key.lower(): " ".join(value.split()) for key, value in (headers or {}).items()})
    names = sorted(signed)
    query = "&".join(sorted(
        f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}"
        for key, _sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair)))
    canonical = "\n".join([
        method, parts.path or "/", query,
        "".join(f"{name}:{signed[name]}\n" for name in names), ";".join(names), payload_sha256,
    ])
    scope = f"{now:%Y%m%d}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret_access_key).encode("utf-8"), f"{now:%Y%m%d}")
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, "
                               f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return signed


def s3_upload(s3: S3Settings, key: str, data: bytes, content_type: str = "application/octet-stream",
              timeout: float = 30.0) -> str:
    """PUT ``data`` at ``key`` in the bucket (path-style URL); return ``s3://bucket/key``."""
    url = f"{s3.endpoint_url.rstrip('/')}/{quote(s3.bucket)}/{quote(key)}"
    headers = sigv4_headers("PUT", url, region=s3.region, access_key_id=s3.access_key_id,
                            secret_access_key=s3.secret_access_key,
                            payload_sha256=hashlib.sha256(data).hexdigest(),
                            now=datetime.now(timezone.utc), headers={"content-type": content_type})
    headers.pop("host")  # urllib sets it from the URL
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout):
        pass
    return f"s3://{s3.bucket}/{key}"
