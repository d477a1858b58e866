"""OpenTelemetry traces of tool calls (`hub.telemetry`): the span tree of a call that retries once,
its attributes, the trace context a downstream receives, logs carrying trace ids, export over OTLP
from a real `mcp-hub serve`, and — telemetry off — no tracing and no OpenTelemetry SDK import."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import PY, ROOT, echo_stdio, write_config

pytestmark = pytest.mark.anyio
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
CLIENT_TRACESTATE = "vendor=opaque-1,other=2"


def traced_hub(exporter: InMemorySpanExporter, **server: Any) -> Hub:
    config = {"hub": {"telemetry": {"enabled": True}},
              "mcpServers": {"e": echo_stdio("--seen-meta", retry={"base_delay_s": 0.01, "max_delay_s": 0.05}, **server)}}
    return Hub(parse_config(config), span_exporter=exporter)


def by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {span.name: span for span in exporter.get_finished_spans()}


async def test_span_tree_of_a_call_that_retries_once() -> None:
    exporter = InMemorySpanExporter()
    async with traced_hub(exporter) as hub:
        result = await hub.route_call("e__flaky_read", {"key": "k", "failures": 1})
    assert result.is_error is not True and result.structured_content == {"attempts": 2}
    spans = by_name(exporter)
    assert set(spans) == {"tools/call e__flaky_read", "attempt 1", "retry backoff", "attempt 2"}
    root, first, wait, second = (spans[n] for n in ("tools/call e__flaky_read", "attempt 1", "retry backoff", "attempt 2"))
    assert root.parent is None
    for child in (first, wait, second):
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    assert first.end_time <= wait.start_time <= wait.end_time <= second.start_time <= second.end_time <= root.end_time
    assert dict(root.attributes) == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "e__flaky_read", "mcp.method.name": "tools/call",
        "mcp_hub.server": "e", "mcp_hub.tool.original": "flaky_read", "mcp_hub.principal": "local",
        "mcp_hub.request_id": result.meta["mcp-hub/request_id"], "mcp_hub.outcome": "ok", "mcp_hub.retries": 1,
        "mcp_hub.breaker_state": "closed"}
    assert first.attributes["mcp_hub.outcome"] == "tool_error" and first.attributes["mcp_hub.error_code"] == "rate_limited"
    assert first.status.status_code.name == "ERROR"
    assert second.attributes["mcp_hub.outcome"] == "ok" and second.attributes["mcp_hub.attempt"] == 2
    assert wait.attributes["mcp_hub.wait"] == "retry_backoff"


async def test_failed_call_carries_outcome_and_code() -> None:
    exporter = InMemorySpanExporter()
    async with traced_hub(exporter) as hub:
        result = await hub.route_call("e__flaky_read", {"key": "x", "failures": 9})
    assert result.is_error
    spans = by_name(exporter)
    root = spans["tools/call e__flaky_read"]
    assert root.attributes["mcp_hub.outcome"] == "tool_error" and root.attributes["mcp_hub.error_code"] == "rate_limited"
    assert root.attributes["mcp_hub.retries"] == 2 and root.status.status_code.name == "ERROR"
    assert {"attempt 1", "attempt 2", "attempt 3"} <= set(spans)


async def test_bulkhead_wait_gets_a_span() -> None:
    exporter = InMemorySpanExporter()
    async with traced_hub(exporter, max_concurrency=1, max_queue=4) as hub:
        import anyio

        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.route_call, "e__slow", {"seconds": 0.3, "steps": 1})
            while hub.bulkheads.bulkhead("e").busy == 0:  # wait for the slow call to hold the only slot
                await anyio.sleep(0.005)
            queued = await hub.route_call("e__echo", {"text": "after"})
    assert queued.is_error is not True
    spans = exporter.get_finished_spans()
    wait = next(s for s in spans if s.name == "bulkhead queue")
    attempt = next(s for s in spans if s.name == "attempt 1" and s.context.trace_id == wait.context.trace_id)
    root = next(s for s in spans if s.name == "tools/call e__echo")
    assert wait.parent.span_id == attempt.context.span_id and attempt.parent.span_id == root.context.span_id
    assert wait.attributes["mcp_hub.slot_acquired"] is True and wait.end_time - wait.start_time > 0


async def test_downstream_receives_the_traceparent_of_the_callers_trace() -> None:
    exporter = InMemorySpanExporter()
    async with traced_hub(exporter) as hub:
        result = await hub.route_call("e__seen_traceparent", {}, attributes={"traceparent": CLIENT_TRACEPARENT})
    seen = json.loads(result.content[0].text)["traceparent"]
    version, trace_id, parent_id, flags = seen.split("-")
    spans = by_name(exporter)
    root, attempt = spans["tools/call e__seen_traceparent"], spans["attempt 1"]
    assert f"{root.context.trace_id:032x}" == CLIENT_TRACE == trace_id, "the call joins the caller's trace"
    assert f"{root.parent.span_id:016x}" == CLIENT_SPAN and root.parent.is_remote
    assert parent_id == f"{attempt.context.span_id:016x}", "the downstream's parent is the hub's attempt span"
    assert (version, flags) == ("00", "01")


async def test_the_callers_tracestate_goes_on_with_its_traceparent() -> None:
    """W3C Trace Context: `tracestate` travels with `traceparent` through every participant (outside
    review console26 #8: given as call attributes — the stdio front's, HTTP headers' — it was dropped)."""
    exporter = InMemorySpanExporter()
    async with traced_hub(exporter) as hub:
        result = await hub.route_call("e__seen_traceparent", {}, attributes={"traceparent": CLIENT_TRACEPARENT,
                                                                               "tracestate": CLIENT_TRACESTATE})
    seen = json.loads(result.content[0].text)
    assert seen["traceparent"].split("-")[1] == CLIENT_TRACE and seen["tracestate"] == CLIENT_TRACESTATE, seen


@pytest.mark.parametrize("mode", ["all", "search"])
async def test_http_trace_headers_parent_a_call_in_every_tools_mode(tmp_path: Path, mode: str) -> None:
    """The HTTP `traceparent` and `tracestate` headers are the fallback when `_meta` carries none, for a
    plain call and for search mode's `call_tool` alike (outside review console26 #7: search mode lost them)."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    from tests.conftest import Proc, hub_command

    config = write_config(tmp_path, {"e": echo_stdio("--seen-meta")},
                          {"data_dir": str(tmp_path / "data"), "tools_mode": mode,
                           "telemetry": {"enabled": True, "endpoint": "http://127.0.0.1:9"}})
    proc = Proc(hub_command(config, "--transport", "http", "--port", "0"))
    try:
        url = proc.wait_for_line(r"mcp-hub listening on (\S+)").group(1)
        headers = {"traceparent": CLIENT_TRACEPARENT, "tracestate": CLIENT_TRACESTATE}
        async with Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)),
                          mode="legacy") as client:
            if mode == "search":
                result = await client.call_tool("call_tool", {"name": "e__seen_traceparent", "arguments": {}})
            else:
                result = await client.call_tool("e__seen_traceparent", {})
        seen = json.loads(result.content[0].text)
        assert seen["traceparent"].split("-")[1] == CLIENT_TRACE, (mode, seen)
        assert seen["tracestate"] == CLIENT_TRACESTATE, (mode, seen)
    finally:
        proc.stop()


async def test_logs_carry_trace_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hub.calls")  # a call that succeeds is logged at DEBUG
    exporter = InMemorySpanExporter()
    async with traced_hub(exporter) as hub:
        await hub.route_call("e__echo", {"text": "hi"}, attributes={"traceparent": CLIENT_TRACEPARENT})
    lines = [r for r in caplog.records if r.name == "hub.calls" and r.getMessage().startswith("call tool=e__echo")]
    assert lines and lines[0].trace_id == CLIENT_TRACE
    assert f"trace_id={CLIENT_TRACE}" in lines[0].getMessage()
    assert lines[0].span_id == f"{by_name(exporter)['tools/call e__echo'].context.span_id:016x}"


async def test_telemetry_off_adds_nothing_to_the_call_path() -> None:
    hub = Hub(parse_config({"mcpServers": {"e": echo_stdio()}}))
    assert hub.tracing is None and hub._express
    assert hub.drivers.tracing is None and hub.pipeline.forwarder.tracing is None
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    assert parse_config({"hub": {}, "mcpServers": {}}).hub.telemetry.active(env) is True
    assert parse_config({"hub": {"telemetry": {"enabled": False}}, "mcpServers": {}}).hub.telemetry.active(env) is False


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 — http.server's name
        self.bodies.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def exported_spans(bodies: list[bytes]) -> list[Any]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        spans += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return spans


@pytest.mark.parametrize("telemetry", ["off", "on"])
async def test_fresh_serve_over_stdio(tmp_path: Path, telemetry: str) -> None:
    """A real `mcp-hub serve`: off, not one OpenTelemetry SDK module (nor hub.telemetry) is imported
    (`-X importtime` lists every import); on, the caller's `_meta.traceparent` reaches the downstream
    and the spans reach an OTLP/HTTP receiver when the hub exits."""
    _Receiver.bodies = []
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hub_settings = {"telemetry": {"enabled": True, "endpoint": f"http://127.0.0.1:{receiver.server_port}"}} \
        if telemetry == "on" else {}
    config = write_config(tmp_path, {"e": echo_stdio("--seen-meta")}, hub_settings)
    params = StdioServerParameters(command=PY, args=["-X", "importtime", "-m", "hub.cli", "serve", "--config", str(config),
                                                     "--log-level", "warning"],
                                   env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    errlog = tmp_path / "stderr.txt"
    try:
        with errlog.open("w") as err:
            async with Client(stdio_client(params, errlog=err)) as client:
                result = await client.call_tool("e__seen_traceparent", {}, meta={"traceparent": CLIENT_TRACEPARENT,
                                                                                  "tracestate": CLIENT_TRACESTATE})
        imported = errlog.read_text()
        seen = json.loads(result.content[0].text)["traceparent"]
        assert telemetry == "off" or json.loads(result.content[0].text)["tracestate"] == CLIENT_TRACESTATE, result
        if telemetry == "off":
            assert "opentelemetry.sdk" not in imported and "hub.telemetry" not in imported
            assert " hub.hub\n" in imported and " hub.frontends.stdio.stdio_calls\n" in imported, "importtime listed the hub's imports"
            return
        assert "opentelemetry.sdk" in imported and seen.split("-")[1] == CLIENT_TRACE
        spans = exported_spans(_Receiver.bodies)
        root = next(s for s in spans if s.name == "tools/call e__seen_traceparent")
        assert root.trace_id.hex() == CLIENT_TRACE and root.parent_span_id.hex() == CLIENT_SPAN
        attempt = next(s for s in spans if s.name == "attempt 1")
        assert seen.split("-")[2] == attempt.span_id.hex()
    finally:
        receiver.shutdown()
        receiver.server_close()


async def test_a_collector_that_is_down_does_not_hold_the_stop(tmp_path: Path) -> None:
    """Outside review console15: with the OTLP collector unreachable, the stop waited for the SDK's export
    retries (8 s, or the 10 s watchdog); the last spans now get `STOP_FLUSH_S`, then they are dropped."""
    import socket
    import time

    from hub.telemetry import STOP_FLUSH_S

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    config = parse_config({"hub": {"data_dir": str(tmp_path), "telemetry": {"enabled": True, "endpoint": dead}},
                           "mcpServers": {"m": {"module": "tests.fixtures.inproc_server:server"}}})
    hub = Hub(config)
    await hub.__aenter__()
    try:
        assert (await hub.route_call("m__multiply", {"a": 2, "b": 3})).structured_content == {"result": 6.0}
    finally:
        started = time.monotonic()
        await hub.__aexit__(None, None, None)
        took = time.monotonic() - started
    assert took < 2 * STOP_FLUSH_S + 1.5, f"the stop took {took:.1f}s"
