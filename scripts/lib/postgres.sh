# shellcheck shell=bash
# A private, throw-away PostgreSQL cluster for the tests. Needs common.sh sourced first.
# The system's own cluster (if any) is never touched: ours lives in a temp dir, on a free
# loopback port, and is stopped and deleted by the EXIT trap.

# The newest Debian server binaries; pg_ctl on PATH as a fallback for other layouts.
_pg_bindir() {
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)
    if [[ -z $dir ]] && command -v pg_ctl >/dev/null; then
        dir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
    fi
    [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl ]] || return 1
    printf '%s\n' "$dir"
}

# _pg_as_owner DIR CMD...: runs CMD as the cluster's owner, from inside DIR. PostgreSQL
# refuses to run as root, so as root that owner is the postgres account; the cd keeps it
# from complaining about a working directory it cannot enter (e.g. under /root).
_pg_as_owner() {
    local dir=$1
    shift
    if [[ $EUID -eq 0 ]]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

# _pg_teardown BINDIR DIR: stops the cluster if it ever started, then deletes it.
_pg_teardown() {
    local bindir=$1 dir=$2
    if [[ -f $dir/data/postmaster.pid ]]; then
        _pg_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
            echo "warning: could not stop PostgreSQL in $dir" >&2
    fi
    rm -rf "$dir"
}

# start_postgres: starts the cluster and exports
#   GOVTUI_TEST_PG_URL=postgresql://postgres@127.0.0.1:PORT/govtui_test
# (an empty database; trust authentication, so no password, on 127.0.0.1 only).
start_postgres() {
    local bindir dir port base
    bindir=$(_pg_bindir) || die "PostgreSQL server binaries not found (Debian package postgresql)"
    # As root the postgres account must be able to reach the directory, which a private
    # $TMPDIR (say under /root) would not allow; /tmp always does. The socket path must also
    # stay under ~100 characters, which a short base keeps true.
    if [[ $EUID -eq 0 ]]; then base=/tmp; else base=${TMPDIR:-/tmp}; fi
    dir=$(mktemp -d "$base/govtui-pg.XXXXXX")
    # Registered before anything starts, so a half-started cluster is cleaned up too.
    add_cleanup _pg_teardown "$bindir" "$dir"
    if [[ $EUID -eq 0 ]]; then
        chown postgres: "$dir"
    fi
    port=$(free_port)

    step "starting PostgreSQL $(basename "$(dirname "$bindir")") on 127.0.0.1:$port ($dir)"
    # Trust auth is fine for a cluster that listens on loopback only and is deleted at exit.
    # C.UTF-8 gives codepoint ordering (the same on every machine) with Unicode case rules,
    # and exists on every Debian, unlike whatever locale the caller's environment names.
    if ! _pg_as_owner "$dir" "$bindir/initdb" -D "$dir/data" --auth=trust --username=postgres \
        -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
        tail -n 30 "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    # fsync off: a crash loses a cluster we delete anyway, and the tests run much faster.
    if ! _pg_as_owner "$dir" "$bindir/pg_ctl" -w -D "$dir/data" -l "$dir/log" \
        -o "-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" \
        start >/dev/null; then
        echo "--- PostgreSQL log ($dir/log) ---" >&2
        tail -n 30 "$dir/log" >&2 || true
        die "PostgreSQL did not start"
    fi
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres govtui_test ||
        die "could not create database govtui_test"

    export GOVTUI_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/govtui_test"
    echo "GOVTUI_TEST_PG_URL=$GOVTUI_TEST_PG_URL"
}
