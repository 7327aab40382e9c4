#!/bin/sh
# aistack test kit: options without a program name run pebble-challtestsrv
# (`command: -defaultIPv4 10.30.50.3`); `command: pebble-challtestsrv ...`
# (the official image's style) runs as given. Written for the kit.
set -e
case "$1" in
    -*) set -- pebble-challtestsrv "$@" ;;
esac
exec "$@"
