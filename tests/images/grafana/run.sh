#!/bin/sh
# aistack test kit: TEST DOUBLE of Grafana's /run.sh. As upstream: every
# GF_<NAME>__FILE variable becomes GF_<NAME> with the file's content, then
# `grafana server` runs with the given arguments.
set -eu
for var in $(env | sed -n 's/^\(GF_[A-Za-z0-9_]*__FILE\)=.*/\1/p'); do
    file=$(printenv "$var")
    name=${var%__FILE}
    if [ ! -f "$file" ] || [ ! -r "$file" ]; then
        echo "run.sh: $var: cannot read the file $file" >&2
        exit 1
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "$var"
done
exec grafana server --homepath="$GF_PATHS_HOME" --config="$GF_PATHS_CONFIG" --packaging=docker "$@"
