"""Arguments nested deeper than MCP peers read are refused on every path, before anything is sent
(`hub.policies.validation.MAX_ARGUMENT_DEPTH`; outside review engines16). The hub's own reader goes to
1,024 levels, the SDKs' to about 200: a deep call reached a stdio child that dropped it (a timeout,
retryable, counted by the breaker: five paused the server for everyone), broke a legacy SSE session,
and on the stdio front's SDK path was never answered at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from hub.config import parse_config
from hub.frontends.plain_calls import plain_call
from hub.frontends.stdio.json_lines import json_object
from hub.frontends.stdio.line_errors import invalid_line
from hub.hub import Hub
from hub.policies.validation import MAX_ARGUMENT_DEPTH, SDK_READ_DEPTH, too_deep
from tests.conftest import FIXTURES, PY, error_body

pytestmark = pytest.mark.anyio


def nest(levels: int) -> Any:
    value: Any = "bottom"
    for n in range(levels):
        value = [value] if n % 2 else {"k": value}
    return value


def test_depth_is_counted_in_levels_of_objects_and_arrays() -> None:
    assert not too_deep(nest(MAX_ARGUMENT_DEPTH)) and too_deep(nest(MAX_ARGUMENT_DEPTH + 1))
    assert not too_deep({"a": "b" * 10_000, "n": [1, 2, {"x": None}]}) and not too_deep("text")


async def test_deep_arguments_are_refused_at_once_and_never_reach_the_server(tmp_path: Path) -> None:
    config = parse_config({"hub": {"data_dir": str(tmp_path), "timeout_s": 3},
                           "mcpServers": {"e": {"command": PY, "args": [str(FIXTURES / "echo_server.py")]}}})
    async with Hub(config) as hub:
        for _ in range(6):  # more than the breaker's threshold: none of them counts
            started = anyio.current_time()
            refused = await hub.route_call("e__echo", {"text": "x", "deep": nest(MAX_ARGUMENT_DEPTH)})
            body = error_body(refused)
            assert refused.is_error and body["code"] == "invalid_argument" and body["retryable"] is False, body
            assert f"more than {MAX_ARGUMENT_DEPTH} levels" in body["message"], body
            assert anyio.current_time() - started < 2.5, "answered by the hub, not by the server's deadline"
        fine = await hub.route_call("e__echo", {"text": "still served", "deep": nest(MAX_ARGUMENT_DEPTH - 1)})
        assert not fine.is_error and "still served" in json.dumps(fine.model_dump(mode="json")), fine


def call_line(depth: int, *, request_id: int | None = 7) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": "tools/call",
                               "params": {"name": "e__echo", "arguments": {"deep": nest(depth)}}}
    if request_id is not None:
        message["id"] = request_id
    return json.dumps(message).encode()


def test_the_stdio_front_answers_a_line_deeper_than_the_sdk_reads_by_its_id() -> None:
    """The SDK's stdio reader drops such a line without an answer: the client waited for ever."""
    deep = call_line(SDK_READ_DEPTH)
    answer = invalid_line(deep, json_object(deep))
    assert answer is not None and answer
    error = json.loads(answer)
    assert error["id"] == 7 and error["error"]["code"] == -32700 and str(SDK_READ_DEPTH) in error["error"]["message"]
    assert invalid_line(call_line(SDK_READ_DEPTH, request_id=None), json_object(call_line(SDK_READ_DEPTH, request_id=None))) == b""
    shallow = call_line(SDK_READ_DEPTH - 10)
    assert invalid_line(shallow, json_object(shallow)) is None, "left to the hub's argument check"


def test_the_fast_paths_leave_what_the_sdk_refuses_to_the_sdk() -> None:
    """A null progress token, or a message deeper than the SDK reads: the SDK's answer on every path."""
    base = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "e__echo", "arguments": {"text": "x"}}}
    assert plain_call(base) is not None
    assert plain_call({**base, "params": {**base["params"], "_meta": {"progressToken": None}}}) is None
    assert plain_call(json.loads(call_line(SDK_READ_DEPTH))) is None
