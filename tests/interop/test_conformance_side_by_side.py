"""Issue #19: the official conformance suite (`@modelcontextprotocol/conformance`, pinned in
tools/setup.sh) run against `@modelcontextprotocol/server-everything` directly and through the hub,
side by side. Counts are recorded in docs/protocol.md.

The hub must pass every scenario the server passes directly, with no exception: an unknown tool
is answered as server-everything answers it, an `isError` result (`hub.unknown_tool`), so
`tools-call-simple-text` and `tools-call-error` (which call tools server-everything lacks) pass
through the hub as they pass directly.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Proc, free_port, start_hub_http, wait_for_port
from tests.interop.test_interop import NODE_MODULES, need, node_env

pytestmark = [pytest.mark.interop, pytest.mark.slow]

HUB_PASSES = {
    "dns-rebinding-protection", "logging-set-level", "ping", "prompts-list", "resources-list", "resources-subscribe",
    "resources-unsubscribe", "server-initialize", "server-sse-multiple-streams", "tools-call-error",
    "tools-call-simple-text", "tools-list",
}
"""What the hub passed through server-everything on 2026-12 (docs/protocol.md): it must not regress."""


def run_suite(url: str, out: Path) -> set[str]:
    suite = need(NODE_MODULES / ".bin" / "conformance")
    done = subprocess.run([str(suite), "server", "--url", url, "-o", str(out)],
                          capture_output=True, text=True, env=node_env(), timeout=900)
    results = {name: mark for mark, name in re.findall(r"^([✓✗]) ([\w-]+):", done.stdout, re.M)}
    assert results, done.stdout[-3000:] + done.stderr[-2000:]
    return {name for name, mark in results.items() if mark == "✓"}


def test_the_hub_passes_what_server_everything_passes_directly(tmp_path: Path, procs: list) -> None:
    everything = str(need(NODE_MODULES / ".bin" / "mcp-server-everything"))
    env = node_env()
    port = free_port()
    direct = Proc([everything, "streamableHttp"], env={**env, "PORT": str(port)})
    procs.append(direct)
    wait_for_port(port, timeout=60)
    passed_direct = run_suite(f"http://127.0.0.1:{port}/mcp", tmp_path / "direct")

    config = tmp_path / "hub.json"
    config.write_text(json.dumps({
        "hub": {"list_wait_s": 60, "data_dir": str(tmp_path / "data")},
        "mcpServers": {"ev": {"command": everything, "args": ["stdio"], "namespace": "",
                              "env": {"PATH": env["PATH"]}}},
    }))
    passed_hub = run_suite(start_hub_http(procs, config), tmp_path / "hub")

    print(f"conformance: direct {len(passed_direct)} passed {sorted(passed_direct)}; hub {len(passed_hub)} passed {sorted(passed_hub)}")
    missing = passed_direct - passed_hub
    assert not missing, f"the hub fails what the server passes directly: {sorted(missing)}"
    assert HUB_PASSES <= passed_hub, f"regressed: {sorted(HUB_PASSES - passed_hub)}"
