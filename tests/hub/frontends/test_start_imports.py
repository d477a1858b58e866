"""A stdio start of the hub loads only what stdio needs: the hub's HTTP front (`hub.frontends.http.transports`,
its guard, webhooks, the admin console's Jinja2, uvicorn's HTTP protocol h11), numpy and the
database drivers stay unimported, so `mcp-hub serve` over stdio reaches its first `tools/list`
sooner (docs/performance.md, start). The SDK itself imports Starlette and part of uvicorn
(`mcp.server.streamable_http`), for the direct server as much as for the hub."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ECHO

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("hub.frontends.http", "hub.frontends.http.transports", "hub.frontends.http.http_guard", "hub.webhooks", "hub.admin", "h11", "jinja2", "numpy", "redis", "psycopg",
         "authlib", "joserfc")

SERVE_AND_REPORT = """
import json, sys
import hub.cli
code = hub.cli.main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}), file=sys.__stderr__)
""" % (HEAVY,)


def test_stdio_serve_imports_no_http_stack(tmp_path: Path) -> None:
    """`mcp-hub serve --transport stdio` over a stdio child serves a client to its end of input
    without importing the HTTP stack or optional heavy packages."""
    config = tmp_path / "hub.json"
    config.write_text(json.dumps({"hub": {"data_dir": str(tmp_path / "data")},
                                  "mcpServers": {"echo": {"command": sys.executable, "args": [ECHO]}}}))
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    lines = [init, {"jsonrpc": "2.0", "method": "notifications/initialized"}, listing]
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_REPORT, "serve", "--transport", "stdio", "--config", str(config),
         "--log-level", "error"],
        input="".join(json.dumps(line) + "\n" for line in lines), capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MCP_HUB_CACHE_DIR": str(tmp_path / "cache"),
             "MCP_HUB_DATA_DIR": str(tmp_path / "data")},
    )
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [a.get("id") for a in answers if "id" in a][:1] == [1], done.stderr[-2000:]
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}, report
