#!/bin/sh
# aistack test kit: an entrypoint with the official n8nio/n8n image's
# contract, written for the kit (not upstream's script).
#
# * No arguments: runs `n8n` (the main process: editor, API, webhooks).
# * Arguments: runs `n8n "$@"`, e.g. `worker`, `webhook`,
#   `import:workflow --input=...`, `--version`.
# * A directory /opt/custom-certificates (mounted by the operator) holds
#   extra CA certificates to trust: Node.js is switched to OpenSSL's CA store
#   (--use-openssl-ca) with SSL_CERT_DIR pointing at it.
set -e

if [ -d /opt/custom-certificates ]; then
    echo "Trusting custom certificates from /opt/custom-certificates."
    export NODE_OPTIONS="--use-openssl-ca ${NODE_OPTIONS:-}"
    export SSL_CERT_DIR=/opt/custom-certificates
    c_rehash /opt/custom-certificates >/dev/null 2>&1 \
        || openssl rehash /opt/custom-certificates
fi

if [ "$#" -gt 0 ]; then
    exec n8n "$@"
fi
exec n8n
