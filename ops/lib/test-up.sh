#!/usr/bin/env bash
# The README's `./ops/up`, driven as a newcomer and an operator would, against a topology of its own (a temp
# folder, free ports, the debug binaries): a first start, an address change, settings that stick and a
# reset, a taken port, scaling up and down. One line per check; the last line is `N passed, N failed`.
# Usage: ops/lib/test-up.sh BIN_DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=topology.sh
source ops/lib/topology.sh

bin=$1
dir=$(mktemp -d /tmp/pressroom-up.XXXXXX)
chmod 0755 "$dir"
ports=()
# Eleven distinct ports (free_port runs in a subshell and cannot remember what it gave).
while [ "${#ports[@]}" -lt 11 ]; do
  p=$(free_port)
  [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
read -r p_primary p_replica p_bouncer p_redis p_nginx p_query2 q c p q_moved q_taken <<<"${ports[*]}"
export PRESSROOM_UP_DIR=$dir PRESSROOM_UP_BIN=$bin PRESSROOM_UP_DURABILITY=throwaway
export PRESSROOM_UP_PORTS="$p_primary $p_replica $p_bouncer $p_redis $p_nginx $p_query2"
export PRESSROOM_QUERY_ADDR=127.0.0.1:$q PRESSROOM_COMMAND_ADDR=127.0.0.1:$c PRESSROOM_PROJECTOR_ADDR=127.0.0.1:$p
unset DATABASE_PRIMARY_URL DATABASE_PRIMARY_DIRECT_URL DATABASE_REPLICA_URLS DATABASE_ADMIN_URL REDIS_URL

squatter=
cleanup() {
  [ -n "$squatter" ] && kill "$squatter" 2>/dev/null
  ops/down --purge >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT

passed=0 failed=0
check() {
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   ops/up: $what"; return; fi
  failed=$((failed + 1))
  echo "FAIL ops/up: $what"
  # The first failure shows what the last ./ops/up printed: CI keeps nothing else of the temp folder.
  if [ "$failed" -eq 1 ] && [ -f "$dir/last.log" ]; then
    echo "---- the last ./ops/up printed (last 40 lines):"
    tail -n 40 "$dir/last.log"
    for log in "$dir"/log/*.log; do
      [ -f "$log" ] || continue
      echo "---- $(basename "$log") (last 15 lines):"
      tail -n 15 "$log"
    done
    echo "----"
  fi
}
up() { ./ops/up "$@" >"$dir/last.log" 2>&1; }
said() { grep -q -- "$1" "$dir/last.log"; }
quiet() { ! grep -q "curl:" "$dir/last.log"; }
answers() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$1/v1/posts"; }
refused() { ! answers "$1"; }
recorded() { grep -q "^export $1=" "$dir/env"; }

check "a first start answers on the configured address, quietly" up
check "  the query API serves the seeded posts" answers "$q"
check "  no curl noise" quiet
site_post() { curl -fs "http://127.0.0.1:$q/" | grep -o 'href="/posts/[^"]*"' | head -1 | cut -d'"' -f2; }
check "  the site's home page lists the demo posts" bash -c "curl -fs 'http://127.0.0.1:$q/' | grep -q 'href=\"/posts/'"
check "  and a post page's comment form posts to the command API" \
  bash -c "curl -fs 'http://127.0.0.1:$q$(site_post)' | grep -q 'action=\"http://127.0.0.1:$c/v1/posts/'"

check "a new PRESSROOM_ADMIN_PASSWORD on a running stack is set on the account" env PRESSROOM_ADMIN_PASSWORD=another-admin-pw bash -c "./ops/up >'$dir/last.log' 2>&1"
login() {
  curl -fs -o /dev/null "http://127.0.0.1:$c/v1/session" -H 'content-type: application/json' \
    -d "{\"email\":\"admin@pressroom.local\",\"password\":\"$1\"}"
}
check "  the admin logs in with it" login another-admin-pw
check "  and the password file says so" grep -qx another-admin-pw "$dir/admin-password"

check "an address change restarts on the new address" env PRESSROOM_QUERY_ADDR="127.0.0.1:$q_moved" bash -c "./ops/up >'$dir/last.log' 2>&1"
check "  saying which setting changed" said "settings changed: PRESSROOM_QUERY_ADDR"
check "  the query API answers there" answers "$q_moved"
check "  and prints that address" said "http://127.0.0.1:$q_moved/v1/posts"
check "a plain run keeps the moved address" env -u PRESSROOM_QUERY_ADDR bash -c "./ops/up >'$dir/last.log' 2>&1"
check "  without restarting anything" bash -c "! grep -q 'restarting' '$dir/last.log'"
check "  still there" answers "$q_moved"

check "a changed setting restarts the services" env PRESSROOM_CONSISTENCY_WAIT=700ms bash -c "./ops/up >'$dir/last.log' 2>&1"
check "  saying so" said "settings changed: PRESSROOM_CONSISTENCY_WAIT"
up
check "  a plain run keeps it" recorded PRESSROOM_CONSISTENCY_WAIT
check "an OTEL_ setting restarts the services too" env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 bash -c "./ops/up >'$dir/last.log' 2>&1"
check "  saying so" said "settings changed: OTEL_EXPORTER_OTLP_ENDPOINT"
check "--reset-settings goes back to the defaults" up --reset-settings
check "  the settings are gone" bash -c "! grep -qE 'PRESSROOM_CONSISTENCY_WAIT|OTEL_' '$dir/env'"
check "  and the query API answers on the caller's address again" answers "$q"

python3 -m http.server "$q_taken" --bind 127.0.0.1 >/dev/null 2>&1 &
squatter=$!
# Python can take seconds to start on a loaded machine: the port must really be taken before the run.
check "another program listens on a port" wait_for 300 bash -c "(exec 3<>/dev/tcp/127.0.0.1/$q_taken) 2>/dev/null"
env PRESSROOM_QUERY_ADDR="127.0.0.1:$q_taken" ./ops/up >"$dir/last.log" 2>&1
rc=$?
check "a taken port fails the run" test "$rc" -ne 0
check "  naming the holder" said "port $q_taken (query-api) is used by python"
check "  and the variable" said "stop it or set PRESSROOM_QUERY_ADDR"
check "  and leaves the running stack up" answers "$q"
kill "$squatter" 2>/dev/null; squatter=

check "--scale starts nginx in front of two query APIs" up --scale
check "  nginx answers" answers "$p_nginx"
check "  the second query API answers" answers "$p_query2"
check "a plain run after --scale stops them and says so" up
check "  it says so" said "scaled reads stopped"
check "  nginx is gone" refused "$p_nginx"
check "  the second query API is gone" refused "$p_query2"
check "  the stack still answers" answers "$q"

# A service told to stop while a client holds it (thousands of pipelined requests, none read): the next
# ./ops/up waits for it to drain (its grace) and starts it again.
export PRESSROOM_SHUTDOWN_GRACE=3s
up
python3 -c "
import socket, time
s = socket.create_connection(('127.0.0.1', $q))
s.settimeout(5)
try:
    s.sendall(b'GET /openapi.json HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n' * 3000)
except OSError:
    pass
time.sleep(30)
" &
squatter=$!
sleep 3
kill -TERM "$(cat "$dir/run/query-api.pid")"
check "a run while a service drains waits for it" up
check "  saying so" said "query-api is shutting down; waiting for it to exit"
check "  and starts it again" answers "$q"
kill "$squatter" 2>/dev/null; squatter=

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
