#!/usr/bin/env bash
# Run the hub with every built-in domain server on its embedded defaults (Streamable HTTP on
# 127.0.0.1:8765/mcp). Extra arguments go to `mcp-hub serve`, e.g. `--config my.json` or `-t stdio`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >&2
exec .venv/bin/mcp-hub serve --transport http "$@"
