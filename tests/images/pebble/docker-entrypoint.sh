#!/bin/sh
# aistack test kit: accepts both official pebble image styles (written for
# the kit, not upstream's):
# * Docker Hub letsencrypt/pebble (no entrypoint): `command: pebble -config ...`
# * ghcr.io/letsencrypt/pebble (entrypoint = pebble): `command: -config ...`
# Options without a program name run pebble. PEBBLE_* variables
# (PEBBLE_VA_NOSLEEP, PEBBLE_VA_ALWAYS_VALID, ...) are read by pebble itself.
set -e
case "$1" in
    -*) set -- pebble "$@" ;;
esac
exec "$@"
