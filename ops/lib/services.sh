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
    # The services close what is still open after PRESSROOM_SHUTDOWN_GRACE (10 s); then they are killed.
    wait_for "$(svc_stop_tenths)" pid_dead "$pidfile" || kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# nginx_stop DIR: stops the --scale nginx (graceful QUIT), if it runs.
nginx_stop() {
  local pidfile="$1/run/nginx.pid"
  if pid_alive "$pidfile"; then
    kill -QUIT "$(cat "$pidfile")" 2>/dev/null || true
    wait_for 100 pid_dead "$pidfile" || true
  fi
}

# Tenths of a second to wait for a stopping service: its shutdown grace plus 5 s.
svc_stop_tenths() {
  local grace=${PRESSROOM_SHUTDOWN_GRACE:-10s} secs
  case $grace in
    *ms) secs=$(( ${grace%ms} / 1000 )) ;;
    *s) secs=${grace%s} ;;
    *m) secs=$(( ${grace%m} * 60 )) ;;
    *) secs=$grace ;;
  esac
  [[ $secs =~ ^[0-9]+$ ]] || secs=10
  echo $(( (secs + 5) * 10 ))
}

# Quiet: a service that is not up yet is no error worth printing while polling.
http_ok() { curl -fs -o /dev/null --max-time 2 "$1"; }
