#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for the test suite (a ctest fixture).
#   pg_harness.sh start STATE_FILE   initdb + start on a free port; writes DATABASE_URL etc. to STATE_FILE
#   pg_harness.sh stop  STATE_FILE   stop and remove it
# initdb refuses root, so as root the cluster runs as the postgres user; its directory (data + unix socket) lives in a
# fresh /tmp directory because a CI checkout under /root is not reachable by that user.
set -euo pipefail
cmd=$1 state=$2
bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
start)
    dir=$(mktemp -d /tmp/glint-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null
    # the least-privilege role of sql/007 (created NOLOGIN there); workers under test log in with it
    as_pg "$bindir/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE glint_worker LOGIN PASSWORD 'test-worker-password'" >/dev/null
    cat >"$state" <<EOS
PG_DIR=$dir
PG_BINDIR=$bindir
PGHOST=$dir
PGPORT=$port
PGUSER=postgres
DATABASE_URL=postgresql:///postgres?host=$dir&port=$port&user=postgres
EOS
    echo "postgres started: port $port, dir $dir"
    ;;
stop)
    [ -f "$state" ] || exit 0
    dir=$(sed -n 's/^PG_DIR=//p' "$state")
    if [ -n "$dir" ] && [ -d "$dir" ]; then
        as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$dir"
    fi
    rm -f "$state"
    echo "postgres stopped"
    ;;
*)
    echo "usage: $0 start|stop STATE_FILE" >&2
    exit 2
    ;;
esac
