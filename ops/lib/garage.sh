#!/usr/bin/env bash
# A single-node Garage (an S3-compatible object store, built from crates.io once and cached) for the S3
# media test: `ops/lib/garage.sh start DIR` starts it in DIR on free ports, creates a bucket and a key, and
# prints the environment the media store needs (`export …` lines); `ops/lib/garage.sh stop DIR` stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."

GARAGE_VERSION=2.5.0
CACHE=${PRESSROOM_CACHE_DIR:-$HOME/.cache/pressroom}
ROOT="$CACHE/garage-$GARAGE_VERSION"
BIN="$ROOT/bin/garage"
log() { echo "[garage] $*" >&2; }

install() {
  [ -x "$BIN" ] && return
  log "building garage $GARAGE_VERSION from crates.io into $ROOT (once; a few minutes)"
  # SQLite metadata only (bundled): no LMDB, K2V or metrics to build.
  cargo install --quiet --locked --root "$ROOT" --version "$GARAGE_VERSION" garage \
    --no-default-features --features bundled-libs,sqlite >&2
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() {
  local dir=$1
  install
  mkdir -p "$dir/meta" "$dir/data"
  local s3 rpc admin
  s3=$(free_port); rpc=$(free_port); admin=$(free_port)
  cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
  local g=("$BIN" -c "$dir/garage.toml")
  nohup "${g[@]}" server >"$dir/garage.log" 2>&1 &
  echo $! >"$dir/garage.pid"
  local node=""
  for _ in $(seq 1 100); do
    node=$("${g[@]}" node id -q 2>/dev/null | cut -d@ -f1) && [ -n "$node" ] && break
    sleep 0.1
  done
  [ -n "$node" ] || { log "garage did not start (see $dir/garage.log)"; exit 1; }
  "${g[@]}" layout assign -z local -c 1G "$node" >/dev/null
  "${g[@]}" layout apply --version 1 >/dev/null
  # A fixed-format key (GK + 24 hex, secret 64 hex) imported rather than generated: no output to parse.
  local key_id secret
  key_id="GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for _ in $(seq 1 50); do
    "${g[@]}" key import --yes -n pressroom "$key_id" "$secret" >/dev/null 2>&1 && break
    sleep 0.2
  done
  "${g[@]}" bucket create pressroom-media >/dev/null
  "${g[@]}" bucket allow --read --write --owner pressroom-media --key pressroom >/dev/null
  log "garage $GARAGE_VERSION on 127.0.0.1:$s3 (bucket pressroom-media)"
  cat <<ENV
export AWS_ENDPOINT=http://127.0.0.1:$s3
export AWS_ALLOW_HTTP=true
export AWS_REGION=garage
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export PRESSROOM_TEST_S3_BUCKET=pressroom-media
ENV
}

stop() {
  local dir=$1
  [ -f "$dir/garage.pid" ] && kill "$(cat "$dir/garage.pid")" 2>/dev/null || true
}

case ${1:-} in
  start) start "$2" ;;
  stop) stop "$2" ;;
  install) install ;;
  *) echo "usage: $0 start DIR | stop DIR | install" >&2; exit 2 ;;
esac
