#!/usr/bin/env bash
# Throwaway local servers for the warehouse example: MariaDB holds the shop's `sales`
# table (the source), PostgreSQL the `warehouse` database (the star schema sink).
#
#   pipelines/warehouse/servers.sh start    # start both, create and seed, print the URLs
#   pipelines/warehouse/servers.sh add N    # append N more sales rows (incremental runs)
#   pipelines/warehouse/servers.sh status   # running or not, and the URLs
#   pipelines/warehouse/servers.sh stop     # stop both and delete their data
#
#   eval "$(pipelines/warehouse/servers.sh start)"   # exports SHOP_URL and WAREHOUSE_URL
#
# Ports: WAREHOUSE_PG_PORT (default 55432) and SHOP_MARIADB_PORT (default 53306).
# Data and logs: pipelines/warehouse/.servers/ (git-ignored). Only the URLs go to stdout.
# Needs PostgreSQL (initdb, pg_ctl, psql) and MariaDB (mariadbd, mariadb-install-db,
# mariadb); on Debian: apt-get install postgresql mariadb-server. As root, PostgreSQL runs
# as the `postgres` user (runuser); as a normal user, as that user.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
data="$here/.servers"
state="$data/state"
password=etl   # of the `etl` login on both servers; local throwaway servers only

say() { echo "servers.sh: $*" >&2; }
die() { say "$*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# A tool on PATH, else in `dir` (Debian keeps the PostgreSQL server tools off PATH).
tool() {
  local name=$1 dirs=$2 d
  if command -v "$name" >/dev/null; then command -v "$name"; return; fi
  for d in $(printf '%s\n' $dirs | sort -rV); do
    if [ -x "$d/$name" ]; then echo "$d/$name"; return; fi
  done
  die "$name not found: install PostgreSQL and MariaDB (Debian: apt-get install postgresql mariadb-server)"
}

as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

# True while process $1 runs (a zombie counts as gone).
alive() {
  local pid=$1 st=
  kill -0 "$pid" 2>/dev/null || return 1
  [ -r "/proc/$pid/stat" ] || return 0
  read -r _ _ st _ <"/proc/$pid/stat" || return 1
  [ "$st" != Z ]
}

load_state() {
  [ -f "$state" ] || return 1
  # shellcheck disable=SC1090
  . "$state"
}

urls() {
  echo "export SHOP_URL='mysql://etl:$password@127.0.0.1:$my_port/shop?prefer_socket=false'"
  echo "export WAREHOUSE_URL='postgres://etl:$password@127.0.0.1:$pg_port/warehouse?sslmode=disable'"
}

pg_pid() { head -n 1 "$pgdir/data/postmaster.pid" 2>/dev/null || true; }
my_pid() { cat "$data/mariadb/mariadbd.pid" 2>/dev/null || true; }

running() {
  load_state || return 1
  local p m
  p=$(pg_pid); m=$(my_pid)
  [ -n "$p" ] && [ -n "$m" ] && alive "$p" && alive "$m"
}

mariadb_root() {
  mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$my_port" -u root "$@"
}

start_pg() {
  local bins=/usr/lib/postgresql/*/bin initdb pg_ctl
  initdb=$(tool initdb "$bins"); pg_ctl=$(tool pg_ctl "$bins"); tool psql "$bins" >/dev/null
  pgdir="$data/pg"
  mkdir -p "$pgdir"
  if is_root; then
    chown postgres: "$pgdir"
    if ! runuser -u postgres -- test -w "$pgdir"; then
      # The postgres user cannot reach the checkout (e.g. under /root): data in /tmp.
      rmdir "$pgdir"
      pgdir=$(mktemp -d "${TMPDIR:-/tmp}/etl-warehouse-pg.XXXXXX")
      chown postgres: "$pgdir"
    fi
  fi
  printf 'pgdir=%q\n' "$pgdir" >>"$state"
  printf '%s\n' "$password" >"$pgdir/pwfile"
  chmod 644 "$pgdir/pwfile"
  say "PostgreSQL: initdb in $pgdir/data"
  as_pg "$initdb" -D "$pgdir/data" -U postgres -E UTF8 --no-locale --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile="$pgdir/pwfile" --no-sync >"$data/pg-initdb.log" 2>&1 ||
    die "initdb failed, see $data/pg-initdb.log"
  rm -f "$pgdir/pwfile"
  local opts="-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=''"
  opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  opts="$opts -c max_prepared_transactions=10"   # two-phase commit for exactly-once sinks
  if ! as_pg "$pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 -o "$opts" start \
    >"$data/pg-ctl.log" 2>&1; then
    tail -n 5 "$pgdir/server.log" >&2 || true
    die "PostgreSQL did not start on port $pg_port (WAREHOUSE_PG_PORT), see $pgdir/server.log"
  fi
  say "PostgreSQL: pid $(pg_pid), port $pg_port"
  PGPASSWORD=$password psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -c "CREATE ROLE etl LOGIN PASSWORD '$password'" \
    -c "CREATE DATABASE warehouse OWNER etl" >/dev/null
}

start_mariadb() {
  local mariadbd install user=() sock i=0
  mariadbd=$(tool mariadbd /usr/sbin); install=$(tool mariadb-install-db /usr/bin)
  tool mariadb /usr/bin >/dev/null
  if is_root; then user=(--user=root); fi
  mkdir -p "$data/mariadb"
  say "MariaDB: mariadb-install-db in $data/mariadb/data"
  "$install" --no-defaults "${user[@]}" --datadir="$data/mariadb/data" --skip-test-db \
    --auth-root-authentication-method=normal --innodb-log-file-size=10M \
    >"$data/mariadb-install.log" 2>&1 || die "mariadb-install-db failed, see $data/mariadb-install.log"
  sock="$data/mariadb/mysqld.sock"
  if [ ${#sock} -gt 100 ]; then sock="${TMPDIR:-/tmp}/etl-shop-$my_port.sock"; fi
  setsid "$mariadbd" --no-defaults "${user[@]}" --datadir="$data/mariadb/data" \
    --port="$my_port" --bind-address=127.0.0.1 --socket="$sock" \
    --pid-file="$data/mariadb/mariadbd.pid" --log-error="$data/mariadb/error.log" \
    --skip-name-resolve --skip-log-bin --innodb-buffer-pool-size=64M \
    --innodb-log-file-size=10M --innodb-flush-log-at-trx-commit=0 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    </dev/null >/dev/null 2>&1 &
  until mariadb_root -e 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 600 ] || grep -qs Aborting "$data/mariadb/error.log"; then
      tail -n 5 "$data/mariadb/error.log" >&2 || true
      die "MariaDB did not start on port $my_port (SHOP_MARIADB_PORT), see $data/mariadb/error.log"
    fi
    sleep 0.1
  done
  say "MariaDB: pid $(my_pid), port $my_port"
  mariadb_root -e "CREATE DATABASE shop CHARACTER SET utf8mb4;
    CREATE USER 'etl'@'%' IDENTIFIED BY '$password'; GRANT ALL ON shop.* TO 'etl'@'%';"
}

# Appends $1 rows to shop.sales (sales.sql) and reports the table's size.
add_rows() {
  { echo "SET @n = $1;"; cat "$here/sales.sql"; } | mariadb_root shop
  say "shop.sales: $(mariadb_root -N -B shop -e 'SELECT CONCAT(COUNT(*), " rows, rowid up to ", MAX(rowid)) FROM sales')"
}

# Sends signal $2 to process $1 and waits (30 s at most) until it is gone.
stop_pid() {
  local pid=$1 sig=$2 name=$3 i=0
  if [ -z "$pid" ] || ! alive "$pid"; then return 0; fi
  if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$name"; then
    say "pid $pid is not $name any more; not signalled"
    return 0
  fi
  kill "-$sig" "$pid"
  while alive "$pid"; do
    i=$((i + 1))
    if [ $i -gt 300 ]; then die "$name (pid $pid) did not stop"; fi
    sleep 0.1
  done
  say "stopped $name (pid $pid)"
}

cmd_start() {
  if running; then
    say "already running"
    urls
    return
  fi
  if [ -e "$data" ]; then
    say "removing the data of stopped servers"
    cmd_stop
  fi
  pg_port=${WAREHOUSE_PG_PORT:-55432}
  my_port=${SHOP_MARIADB_PORT:-53306}
  mkdir -p "$data"
  printf 'pg_port=%q\nmy_port=%q\n' "$pg_port" "$my_port" >"$state"
  start_pg
  start_mariadb
  add_rows 2000
  urls
}

cmd_add() {
  local n=${1:-}
  [[ "$n" =~ ^[1-9][0-9]{0,7}$ ]] || die "usage: servers.sh add N (N rows, 1 to 99999999)"
  running || die "not running: servers.sh start first"
  add_rows "$n"
}

cmd_stop() {
  if ! load_state; then
    say "not running"
    rm -rf "$data"
    return
  fi
  stop_pid "$(pg_pid)" INT postgres
  stop_pid "$(my_pid)" TERM mariadbd
  if [ -n "${pgdir:-}" ] && [ "$pgdir" != "$data/pg" ]; then rm -rf "$pgdir"; fi
  rm -rf "$data"
}

cmd_status() {
  if running; then
    say "running: PostgreSQL pid $(pg_pid), MariaDB pid $(my_pid)"
    urls
  else
    say "not running"
    return 1
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  add) cmd_add "${2:-}" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die "usage: servers.sh start | add N | status | stop" ;;
esac
