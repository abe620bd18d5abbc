#!/usr/bin/env bash
# Starting and stopping the three Pressroom services as background processes with pid files.
# shellcheck disable=SC2034

SERVICES=(projector command-api query-api)

svc_pidfile() { echo "$1/run/$2.pid"; }

svc_running() { pid_alive "$(svc_pidfile "$1" "$2")"; }

# svc_start DIR NAME BINARY — env comes from the caller.
svc_start() {
  local dir=$1 name=$2 bin=$3
  if svc_running "$dir" "$name"; then return 0; fi
  setsid "$bin" >>"$dir/log/$name.log" 2>&1 < /dev/null &
  echo $! >"$(svc_pidfile "$dir" "$name")"
}

svc_stop() {
  local dir=$1 name=$2 pidfile
  pidfile=$(svc_pidfile "$dir" "$name")
  if pid_alive "$pidfile"; then
    kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    wait_for 100 pid_dead "$pidfile" || kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }
