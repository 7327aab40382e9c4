#!/bin/sh
# supervisord program "n8n": runs `n8n start`; after a requested stop (SIGTERM
# to the process group, supervisord's stopasgroup) waits for n8n's graceful
# shutdown, then exports workflows and credentials (SQLite; boot.py export).
# When n8n dies on its own, this exits with its status and supervisord
# restarts it (autorestart).
stopping=0
trap 'stopping=1' TERM INT
n8n start &
child=$!
wait "$child"
status=$?
if [ "$stopping" = 1 ]; then
    # The trap interrupted `wait`: n8n got the same signal and is shutting down.
    wait "$child"
    status=$?
    python3 /opt/aistack/bin/boot.py export || echo "aistack: export at shutdown failed" >&2
fi
exit "$status"
