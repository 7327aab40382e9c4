#!/bin/sh
# aistack test kit: an entrypoint with the official redis image's contract,
# written for the kit (not upstream's script).
#
# * `docker run IMAGE --appendonly yes` or `docker run IMAGE /path/x.conf`
#   runs `redis-server --appendonly yes` / `redis-server /path/x.conf`.
# * For redis-server started as root: files in the working directory (/data)
#   not owned by redis are chowned, then the script re-executes itself as
#   redis (gosu).
# * Protected mode is pointless in a container (ports are published
#   explicitly), so `--protected-mode no` is inserted unless the config file
#   given as the first argument has a `protected-mode` line; a later
#   `--protected-mode yes` argument still wins.
# * umask 0077 when the inherited one is the default 0022.
set -e

case "$1" in
    -*|*.conf) set -- redis-server "$@" ;;
esac

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$0" "$@"
fi

if [ "$1" = redis-server ]; then
    shift
    config=
    if [ -f "${1:-}" ]; then
        config="$1"
        shift
    fi
    if [ -z "$config" ] || ! grep -qE '^[[:space:]]*protected-mode[[:space:]]' "$config"; then
        set -- --protected-mode no "$@"
    fi
    if [ -n "$config" ]; then
        set -- "$config" "$@"
    fi
    set -- redis-server "$@"
fi

if [ "$(umask)" = 0022 ]; then
    umask 0077
fi

exec "$@"
