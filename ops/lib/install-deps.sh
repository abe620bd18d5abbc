#!/usr/bin/env bash
# Installs what the local topology needs on a Debian machine (as root): PostgreSQL 15, Redis, and a
# PgBouncer >= 1.21 (Debian 12 ships 1.18, which cannot carry sqlx's prepared statements in transaction
# mode; see NOTES-topology.md). PgBouncer is built once from Debian trixie's source package into a cache
# folder outside the clone, so later runs reuse it. Prints the path of the pgbouncer binary on stdout.
set -euo pipefail

PGB_VERSION=1.24.1
CACHE=${PRESSROOM_CACHE_DIR:-$HOME/.cache/pressroom}
PGB_BIN="$CACHE/pgbouncer-$PGB_VERSION/pgbouncer"

log() { echo "[install-deps] $*" >&2; }

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15 postgresql-contrib-15)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v psql >/dev/null || need_apt+=(postgresql-client-15)
# nginx only for `nginx -t` on ops/deploy/nginx.conf and the `--scale` topology.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)

pgb_ok() {
  local bin=$1 v
  [ -x "$bin" ] || return 1
  v=$("$bin" --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+' | head -1) || return 1
  [ -n "$v" ] || return 1
  local major=${v%%.*} minor=${v#*.}
  [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 21 ]; }
}

if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # Do not let the packages start their own daemons (nginx would take port 80).
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; trap 'rm -f "$policy"' EXIT; }
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
  # Debian's packages start their own default clusters/daemons; we do not use them and leave them alone.
fi

# A system pgbouncer that is new enough wins.
if command -v pgbouncer >/dev/null && pgb_ok "$(command -v pgbouncer)"; then
  command -v pgbouncer
  exit 0
fi
if pgb_ok "$PGB_BIN"; then
  echo "$PGB_BIN"
  exit 0
fi

log "building PgBouncer $PGB_VERSION from Debian trixie's source package (about 20 s)"
export DEBIAN_FRONTEND=noninteractive
build_deps=(libevent-dev libssl-dev pkg-config build-essential dpkg-dev)
missing=()
for p in "${build_deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
echo "deb-src http://deb.debian.org/debian trixie main" > "$work/sources.list"
aptopts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
         -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
         -o "APT::Get::List-Cleanup=0")
apt-get "${aptopts[@]}" update -qq >&2
(cd "$work" && apt-get "${aptopts[@]}" source --download-only -qq "pgbouncer=$PGB_VERSION*" >&2 \
  || apt-get "${aptopts[@]}" source --download-only -qq pgbouncer >&2)
orig=$(ls "$work"/pgbouncer_*.orig.tar.* | head -1)
mkdir -p "$work/src"
tar -xf "$orig" -C "$work/src" --strip-components=1
(cd "$work/src" && ./configure --without-cares --without-systemd --prefix="$work/inst" >&2 && make -j"$(nproc)" >&2)
mkdir -p "$(dirname "$PGB_BIN")"
install -m 0755 "$work/src/pgbouncer" "$PGB_BIN"
pgb_ok "$PGB_BIN" || { log "built pgbouncer is not >= 1.21"; exit 1; }
echo "$PGB_BIN"
