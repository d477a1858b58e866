#!/usr/bin/env bash
# One command for the hub benchmark: sets up the project venv and FastMCP's own venv
# (.cache/bench-venv: FastMCP 4.1.2 brings its own MCP SDK), then runs tools/bench/hub_overhead.py.
#   bash tools/bench/run.sh [--calls 500] [--concurrency 16] [--rounds 2]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/setup.sh
if [ ! -x .cache/bench-venv/bin/python ] || ! .cache/bench-venv/bin/python -c "import fastmcp" 2>/dev/null; then
  python3 -m venv .cache/bench-venv
  .cache/bench-venv/bin/pip install -q "fastmcp==4.1.2"
fi
exec .venv/bin/python tools/bench/hub_overhead.py "$@"
