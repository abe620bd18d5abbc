#!/usr/bin/env bash
# Local Pressroom topology without Docker: a PostgreSQL primary, one streaming hot-standby replica,
# PgBouncer (transaction mode) in front of the primary, and Redis — all under one folder, on given ports.
# Sourced by ops/up, ops/down and ops/test. PostgreSQL and PgBouncer refuse to run as root, so they run
# as the `postgres` user, which owns the data folders.
# shellcheck disable=SC2034

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

topo_log() { echo "[topology] $*" >&2; }

as_pg() { runuser -u postgres -- "$@"; }

# topo_init DIR PRIMARY_PORT REPLICA_PORT PGBOUNCER_PORT REDIS_PORT PGBOUNCER_BIN [durable]
# Creates whatever is missing under DIR and starts whatever is not running. Idempotent.
topo_init() {
  local dir=$1 pport=$2 rport=$3 bport=$4 redport=$5 pgb_src=$6 durable=${7:-durable}
  mkdir -p "$dir/run" "$dir/log" "$dir/redis" "$dir/pgbouncer" "$dir/bin" "$dir/wal-archive"
  chown postgres:postgres "$dir/run" "$dir/log" "$dir/pgbouncer" "$dir/bin" "$dir/wal-archive"
  chmod 0755 "$dir"
  # pgbouncer lives under root's cache; the postgres user needs a copy it can execute.
  install -o postgres -m 0755 "$pgb_src" "$dir/bin/pgbouncer"

  local mem_mb shared_mb cache_mb idle_timeout=60
  [ "$durable" = durable ] || idle_timeout=5
  mem_mb=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
  if [ "$durable" = durable ]; then
    shared_mb=$((mem_mb / 4)); cache_mb=$((mem_mb * 3 / 4))
  else
    # Throwaway test clusters share the machine with builds: keep them small.
    shared_mb=256; cache_mb=$((mem_mb / 4))
  fi

  if [ ! -f "$dir/primary/PG_VERSION" ]; then
    topo_log "initdb primary ($dir/primary)"
    mkdir -p "$dir/primary" && chown postgres:postgres "$dir/primary" && chmod 0700 "$dir/primary"
    as_pg "$PG_BIN/initdb" -D "$dir/primary" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/log/initdb.log"
    cat >>"$dir/primary/postgresql.conf" <<CONF
# --- pressroom ---
listen_addresses = '127.0.0.1'
port = $pport
unix_socket_directories = '$dir/run'
max_connections = 300
shared_buffers = ${shared_mb}MB
effective_cache_size = ${cache_mb}MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 512MB
hot_standby = on
hot_standby_feedback = on
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
log_min_duration_statement = 100
log_line_prefix = '%m [%p] %q%u@%d '
logging_collector = off
# Continuous archiving: with a base backup (pressroom-ops backup), point-in-time recovery.
archive_mode = on
archive_command = 'test ! -f $dir/wal-archive/%f && cp %p $dir/wal-archive/%f'
# Commit latency under write load (#19, bench/RESULTS.md): after a checkpoint, the projector filling pages
# vacuum freed writes a full-page image per page, most of the WAL a draft's commit waits to flush; lz4
# shrinks them. A new WAL segment is not zero-filled first: filling 16 MB inside the WAL write stalled
# every commit for tens of milliseconds (recycled segments never needed it).
wal_compression = lz4
wal_init_zero = off
CONF
    if [ "$durable" != durable ]; then
      echo "fsync = off" >>"$dir/primary/postgresql.conf"
      echo "full_page_writes = off" >>"$dir/primary/postgresql.conf"
    fi
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/primary" status >/dev/null 2>&1; then
    topo_log "starting primary on 127.0.0.1:$pport"
    as_pg "$PG_BIN/pg_ctl" -D "$dir/primary" -l "$dir/log/primary.log" -w -t 60 start >/dev/null
  fi
  psql_super "$pport" postgres -tAc "select 1 from pg_database where datname='pressroom'" | grep -q 1 \
    || psql_super "$pport" postgres -qc "create database pressroom"
  psql_super "$pport" pressroom -qc "create extension if not exists pg_stat_statements"
  # The application role (not a superuser). Migrations grant it what it needs; timeouts keep one idle
  # transaction from stalling every projection (the xid horizon is cluster-wide).
  psql_super "$pport" postgres -qc "do \$\$ begin
      if not exists (select from pg_roles where rolname = 'pressroom_app') then create role pressroom_app login; end if;
    end \$\$;
    alter role pressroom_app set idle_in_transaction_session_timeout = '15s';
    alter role pressroom_app set statement_timeout = '30s';"

  if [ ! -f "$dir/replica/PG_VERSION" ]; then
    topo_log "pg_basebackup replica ($dir/replica)"
    psql_super "$pport" postgres -tAc "select 1 from pg_replication_slots where slot_name='replica1'" | grep -q 1 \
      || psql_super "$pport" postgres -qAtc "select pg_create_physical_replication_slot('replica1')" >/dev/null
    mkdir -p "$dir/replica" && chown postgres:postgres "$dir/replica" && chmod 0700 "$dir/replica"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$dir/replica" -R -X stream -c fast -S replica1
    echo "port = $rport" >>"$dir/replica/postgresql.conf"
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/replica" status >/dev/null 2>&1; then
    topo_log "starting replica on 127.0.0.1:$rport"
    as_pg "$PG_BIN/pg_ctl" -D "$dir/replica" -l "$dir/log/replica.log" -w -t 60 start >/dev/null
  fi

  cat >"$dir/pgbouncer/pgbouncer.ini" <<INI
[databases]
pressroom = host=127.0.0.1 port=$pport dbname=pressroom
; any other database (the test suite makes one per test) goes to the same primary
* = host=127.0.0.1 port=$pport

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/pgbouncer/userlist.txt
pool_mode = transaction
max_prepared_statements = 200
ignore_startup_parameters = extra_float_digits,options
max_client_conn = 2000
default_pool_size = 40
reserve_pool_size = 10
; close server connections idle this long: a database nobody uses any more (a finished test's) must
; not hold PostgreSQL connection slots
server_idle_timeout = $idle_timeout
server_reset_query =
logfile = $dir/log/pgbouncer.log
pidfile = $dir/pgbouncer/pgbouncer.pid
admin_users = postgres
INI
  printf '"pressroom_app" ""\n"postgres" ""\n' >"$dir/pgbouncer/userlist.txt"
  chown postgres:postgres "$dir/pgbouncer/pgbouncer.ini" "$dir/pgbouncer/userlist.txt"
  touch "$dir/log/pgbouncer.log" && chown postgres:postgres "$dir/log/pgbouncer.log"
  if pid_alive "$dir/pgbouncer/pgbouncer.pid"; then
    kill -HUP "$(cat "$dir/pgbouncer/pgbouncer.pid")" # reload the (re)written configuration
  else
    topo_log "starting pgbouncer on 127.0.0.1:$bport"
    as_pg "$dir/bin/pgbouncer" -d "$dir/pgbouncer/pgbouncer.ini"
    wait_for 50 pid_alive "$dir/pgbouncer/pgbouncer.pid" || { tail -20 "$dir/log/pgbouncer.log" >&2; return 1; }
  fi

  if ! pid_alive "$dir/redis/redis.pid"; then
    topo_log "starting redis on 127.0.0.1:$redport"
    local save=(--save "")
    [ "$durable" = durable ] && save=(--save "60 1" --appendonly yes)
    redis-server --bind 127.0.0.1 --port "$redport" --daemonize yes --dir "$dir/redis" \
      --pidfile "$dir/redis/redis.pid" --logfile "$dir/log/redis.log" "${save[@]}" >/dev/null
    wait_for 50 redis_ping "$redport" || return 1
  fi
  wait_for 100 pg_ready "$rport" || { topo_log "replica not ready"; return 1; }
  wait_for 100 pg_ready "$bport" || { topo_log "pgbouncer not ready"; return 1; }
}

# topo_stop DIR — stops everything under DIR, keeps data.
topo_stop() {
  local dir=$1
  if [ -f "$dir/redis/redis.pid" ]; then
    kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true
    wait_for 50 pid_dead "$dir/redis/redis.pid" || true
  fi
  if [ -f "$dir/pgbouncer/pgbouncer.pid" ]; then
    kill "$(cat "$dir/pgbouncer/pgbouncer.pid")" 2>/dev/null || true
    wait_for 50 pid_dead "$dir/pgbouncer/pgbouncer.pid" || true
  fi
  local node
  for node in replica primary; do
    if [ -f "$dir/$node/postmaster.pid" ]; then
      as_pg "$PG_BIN/pg_ctl" -D "$dir/$node" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
  done
}

psql_super() { local port=$1 db=$2; shift 2; PGOPTIONS="--client-min-messages=warning" psql -X -h 127.0.0.1 -p "$port" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"; }
pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -d pressroom -U postgres; }
redis_ping() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }
pid_dead() { ! pid_alive "$1"; }
wait_for() { local n=$1; shift; local i; for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_port: a port nobody listens on, from a random start in 20000-59999.
# A free TCP port below Linux's ephemeral range (32768 and up), where outgoing connections could take it
# between this check and the bind. Callers that need several must exclude the ones they already have
# (this runs in a subshell: USED_PORTS does not survive `$(free_port)`).
free_port() {
  local p=$((20000 + RANDOM % 12000)) i
  for ((i = 0; i < 200; i++)); do
    if port_free "$p" && [[ " ${USED_PORTS:-} " != *" $p "* ]]; then USED_PORTS="${USED_PORTS:-} $p"; echo "$p"; return 0; fi
    p=$((p + 1))
  done
  return 1
}
