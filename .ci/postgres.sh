#!/usr/bin/env bash
# Start or stop a throwaway, socket-only PostgreSQL for the test suite.
#   .ci/postgres.sh start DIR   -> prints the admin URL to export as CRM_ML_TEST_POSTGRES_URL
#   .ci/postgres.sh stop DIR
# initdb refuses root, so the server runs as the postgres user, with its data and
# socket in DIR, which that user must be able to enter (pytest's tmp_path is not).
set -euo pipefail
action=${1:?start or stop}; dir=${2:?folder for data and socket}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$action" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    chmod 755 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bindir/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 -A trust >"$dir/initdb.log" 2>&1
    fi
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null
    echo "postgresql+psycopg://postgres@/postgres?host=$dir"
    ;;
  stop)
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
