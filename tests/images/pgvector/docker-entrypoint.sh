#!/usr/bin/env bash
# aistack test kit: an entrypoint with the official postgres image's contract,
# written for the kit (not upstream's script).
#
# * `docker run IMAGE -c key=value` runs `postgres -c key=value`.
# * For `postgres`: started as root, it fixes the ownership of PGDATA and
#   /var/run/postgresql and re-executes itself as postgres (gosu).
# * On an empty PGDATA: initdb with POSTGRES_USER (default postgres),
#   POSTGRES_PASSWORD, POSTGRES_INITDB_ARGS and POSTGRES_INITDB_WALDIR; then
#   `host all all all $POSTGRES_HOST_AUTH_METHOD` (default scram-sha-256) in
#   pg_hba.conf; a socket-only temporary server creates POSTGRES_DB (default
#   POSTGRES_USER) and runs /docker-entrypoint-initdb.d/* once (*.sh:
#   executed if executable, else sourced; *.sql, *.sql.gz, *.sql.xz,
#   *.sql.zst: fed to psql).
# * POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB and POSTGRES_INITDB_ARGS can
#   come from a file instead: POSTGRES_PASSWORD_FILE=/run/secrets/x.
# * Without a password initialization fails, unless
#   POSTGRES_HOST_AUTH_METHOD=trust. Inside the container (unix socket,
#   127.0.0.1, ::1) initdb's default trust rules apply, so `pg_isready` and
#   `psql -U "$POSTGRES_USER"` work without a password, as upstream.
set -Eeo pipefail

log() { printf '%s\n' "$*"; }
die() { printf 'docker-entrypoint.sh: error: %s\n' "$*" >&2; exit 1; }

# VAR or VAR_FILE (not both) -> VAR; VAR_FILE is unset afterwards.
from_env_or_file() {
    local name="$1" default="${2:-}" file_name="${1}_FILE"
    local value="$default"
    if [ -n "${!name:-}" ] && [ -n "${!file_name:-}" ]; then
        die "both $name and $file_name are set (they are exclusive)"
    fi
    if [ -n "${!name:-}" ]; then
        value="${!name}"
    elif [ -n "${!file_name:-}" ]; then
        value="$(< "${!file_name}")"
    fi
    export "$name"="$value"
    unset "$file_name"
}

load_settings() {
    from_env_or_file POSTGRES_PASSWORD
    from_env_or_file POSTGRES_USER postgres
    from_env_or_file POSTGRES_DB "$POSTGRES_USER"
    from_env_or_file POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
    export POSTGRES_HOST_AUTH_METHOD
    DATABASE_EXISTS=
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_EXISTS=yes
    fi
}

prepare_directories() {
    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA" || :
    mkdir -p /var/run/postgresql
    chmod 03775 /var/run/postgresql || :
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        if [ "$(id -u)" = 0 ]; then
            find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
        fi
        chmod 700 "$POSTGRES_INITDB_WALDIR"
    fi
    if [ "$(id -u)" = 0 ]; then
        find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
        find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
    fi
}

check_password() {
    if [ -n "$POSTGRES_PASSWORD" ]; then
        if [ "${#POSTGRES_PASSWORD}" -ge 100 ]; then
            log "WARNING: POSTGRES_PASSWORD is ${#POSTGRES_PASSWORD} characters long;"
            log "         some clients cannot handle passwords of 100 characters or more."
        fi
        return
    fi
    if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
        log "WARNING: POSTGRES_HOST_AUTH_METHOD=trust: anyone who reaches this"
        log "         server can connect as any user without a password."
        return
    fi
    cat >&2 <<'EOF'
Error: the database is uninitialized and no superuser password is set.
       Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value
       for the superuser (POSTGRES_USER, default "postgres"), or set
       POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a
       password (NOT recommended).
EOF
    exit 1
}

run_initdb() {
    local args=(--username="$POSTGRES_USER")
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        args+=(--waldir="$POSTGRES_INITDB_WALDIR")
    fi
    # POSTGRES_INITDB_ARGS is word-split on purpose (like upstream).
    # shellcheck disable=SC2086
    initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
}

allow_network_clients() {
    {
        printf '\n# Added by docker-entrypoint.sh: all users, all databases, all hosts\n'
        printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
    } >> "$PGDATA/pg_hba.conf"
}

psql_init() {
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

start_temporary_server() {
    # Unix socket only, so nothing outside reaches a half-initialized server.
    PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -w start \
        -o "-c listen_addresses='' -p ${PGPORT:-5432}"
}

stop_temporary_server() {
    PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
}

create_database() {
    if [ "$POSTGRES_DB" = postgres ]; then
        return
    fi
    local exists
    exists="$(psql_init --dbname postgres --set db="$POSTGRES_DB" --tuples-only \
        <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
    if [ -z "${exists// /}" ]; then
        psql_init --dbname postgres --set db="$POSTGRES_DB" \
            <<<'CREATE DATABASE :"db";'
        log
    fi
}

run_init_scripts() {
    local file
    for file in "$@"; do
        case "$file" in
            *.sh)
                if [ -x "$file" ]; then
                    log "$0: running $file"
                    "$file"
                else
                    log "$0: sourcing $file"
                    # shellcheck disable=SC1090
                    . "$file"
                fi
                ;;
            *.sql) log "$0: running $file"; psql_init --dbname "$POSTGRES_DB" -f "$file"; log ;;
            *.sql.gz) log "$0: running $file"; gunzip -c "$file" | psql_init --dbname "$POSTGRES_DB"; log ;;
            *.sql.xz) log "$0: running $file"; xz -dc "$file" | psql_init --dbname "$POSTGRES_DB"; log ;;
            *.sql.zst) log "$0: running $file"; zstd -dc "$file" | psql_init --dbname "$POSTGRES_DB"; log ;;
            *) log "$0: ignoring $file" ;;
        esac
    done
}

initialize() {
    check_password
    run_initdb
    allow_network_clients
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    start_temporary_server
    create_database
    run_init_scripts /docker-entrypoint-initdb.d/*
    stop_temporary_server
    unset PGPASSWORD
    log
    log "PostgreSQL init process complete; ready for start up."
    log
}

# Asking postgres for help, its version or a config value needs no setup.
wants_setup() {
    local arg
    for arg in "$@"; do
        case "$arg" in
            -'?'|--help|--describe-config|-V|--version|-C) return 1 ;;
        esac
    done
    return 0
}

main() {
    if [ "${1:0:1}" = '-' ]; then
        set -- postgres "$@"
    fi
    if [ "$1" = postgres ] && wants_setup "$@"; then
        load_settings
        prepare_directories
        if [ "$(id -u)" = 0 ]; then
            exec gosu postgres "${BASH_SOURCE[0]}" "$@"
        fi
        if [ -z "$DATABASE_EXISTS" ]; then
            shopt -s nullglob
            initialize
        else
            log
            log "PostgreSQL Database directory appears to contain a database; Skipping initialization"
            log
        fi
    fi
    exec "$@"
}

main "$@"
