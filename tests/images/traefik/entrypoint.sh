#!/bin/sh
# aistack test kit: an entrypoint with the official traefik image's contract,
# written for the kit (not upstream's script).
#
# * `docker run IMAGE --providers.docker ...` runs `traefik --providers.docker ...`.
# * `docker run IMAGE version` (or healthcheck, ...: any traefik subcommand)
#   runs `traefik version`.
# * Anything else (`sh -c ...`, `wget ...`) is executed as given.
set -e

case "$1" in
    -*) set -- traefik "$@" ;;
esac

if [ "$1" != traefik ] && traefik "$1" --help >/dev/null 2>&1; then
    set -- traefik "$@"
fi

exec "$@"
