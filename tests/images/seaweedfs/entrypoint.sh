#!/bin/sh
# TEST DOUBLE (aistack test kit): the official image's /entrypoint.sh
# contract for the subcommand the collection runs: `server` gets the data
# directory and volume defaults first (a later flag of the caller wins);
# anything else goes to weed as it is.
if [ "$1" = server ]; then
  shift
  exec /usr/bin/weed server -dir=/data -volume.max=0 -master.volumePreallocate -master.volumeSizeLimitMB=1024 "$@"
fi
exec /usr/bin/weed "$@"
