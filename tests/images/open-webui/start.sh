#!/usr/bin/env bash
# The kit's own start script, keeping the interface of the official image's
# backend/start.sh that the collection relies on: run from /app/backend,
# WEBUI_SECRET_KEY from the environment (else generated once into
# .webui_secret_key next to this script), uvicorn on HOST:PORT (0.0.0.0:8080)
# trusting the proxy's X-Forwarded-* headers, UVICORN_WORKERS workers.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")"
if [ -z "${WEBUI_SECRET_KEY:-}${WEBUI_JWT_SECRET_KEY:-}" ]; then
    key_file=.webui_secret_key
    if [ ! -e "$key_file" ]; then
        head -c 12 /dev/random | base64 > "$key_file"
    fi
    WEBUI_SECRET_KEY=$(cat "$key_file")
fi
export WEBUI_SECRET_KEY
exec uvicorn open_webui.main:app --host "${HOST:-0.0.0.0}" --port "${PORT:-8080}" \
    --forwarded-allow-ips '*' --workers "${UVICORN_WORKERS:-1}"
