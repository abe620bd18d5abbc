#!/usr/bin/env bash
# Installs the tools the test suite drives the services with, once, into a cache folder outside the clone:
# schemathesis (the OpenAPI contract fuzzer) in a Python virtualenv. Prints the schemathesis path on stdout.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
CACHE=${PRESSROOM_CACHE_DIR:-$HOME/.cache/pressroom}
VENV="$CACHE/venv-schemathesis-$SCHEMATHESIS_VERSION"

log() { echo "[install-test-tools] $*" >&2; }

if [ ! -x "$VENV/bin/schemathesis" ]; then
  command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >&2; }
  python3 -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >&2; }
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
echo "$VENV/bin/schemathesis"
