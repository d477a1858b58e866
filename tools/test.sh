#!/usr/bin/env bash
# Set everything up (first run only) and run the whole test suite, interop tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --test
export MCP_HUB_REQUIRE_INTEROP=1
exec .venv/bin/python -m pytest -q "$@"
