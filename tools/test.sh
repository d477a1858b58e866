#!/usr/bin/env bash
# Set everything up (first run only) and run the whole test suite, interop tests included.
# Runs on 2 pytest-xdist workers, one test file per worker at a time (docs/testing.md, "Speed");
#   MCP_HUB_TEST_WORKERS=0 bash tools/test.sh   the same suite in one process
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --test
export MCP_HUB_REQUIRE_INTEROP=1
workers=()
MCP_HUB_TEST_WORKERS="${MCP_HUB_TEST_WORKERS:-2}"
if [ "${MCP_HUB_TEST_WORKERS}" != "0" ]; then
  workers=(-n "${MCP_HUB_TEST_WORKERS}" --dist loadfile)
fi
exec .venv/bin/python -m pytest -q "${workers[@]}" "$@"
