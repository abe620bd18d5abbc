#!/usr/bin/env bash
# Installs the tools the test suite drives the services with, once: schemathesis (the OpenAPI contract
# fuzzer) and the official MCP Python SDK (the client the MCP tests drive) in Python virtualenvs, Lighthouse
# (npm) in a cache folder outside the clone, and Debian's chromium (the browser the site tests drive). Prints the schemathesis path on stdout.
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
MCP_VERSION=2.3.0
MCP_VENV="$CACHE/venv-mcp-$MCP_VERSION"
if [ ! -x "$MCP_VENV/bin/python" ] || ! "$MCP_VENV/bin/python" -c 'import mcp' 2>/dev/null; then
  log "installing the MCP Python SDK (mcp $MCP_VERSION) into $MCP_VENV"
  rm -rf "$MCP_VENV"
  python3 -m venv "$MCP_VENV" >&2
  "$MCP_VENV/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_VERSION" >&2
fi
if ! command -v chromium >/dev/null; then
  log "installing chromium (apt)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2
fi
LIGHTHOUSE_VERSION=12.2.3
LIGHTHOUSE="$CACHE/lighthouse-$LIGHTHOUSE_VERSION"
if [ ! -x "$LIGHTHOUSE/node_modules/.bin/lighthouse" ]; then
  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >&2; }
  log "installing lighthouse $LIGHTHOUSE_VERSION into $LIGHTHOUSE"
  mkdir -p "$LIGHTHOUSE"
  npm install --silent --no-audit --no-fund --prefix "$LIGHTHOUSE" "lighthouse@$LIGHTHOUSE_VERSION" >&2
fi
echo "$VENV/bin/schemathesis"
