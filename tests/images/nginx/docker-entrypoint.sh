#!/bin/sh
# Same contract as the official image's entrypoint: when the command is
# nginx, run the executable /docker-entrypoint.d/*.sh scripts (sorted) and
# source the *.envsh ones, then exec the command.
set -e

log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    for f in $(find /docker-entrypoint.d/ -follow -type f | sort -V); do
        case "$f" in
            *.envsh)
                log "$0: sourcing $f"
                . "$f"
                ;;
            *.sh)
                if [ -x "$f" ]; then
                    log "$0: launching $f"
                    "$f"
                else
                    log "$0: ignoring $f, not executable"
                fi
                ;;
            *)
                log "$0: ignoring $f"
                ;;
        esac
    done
    log "$0: configuration complete; ready for start up"
fi

exec "$@"
