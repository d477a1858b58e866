"""Wording of a JSON-RPC error a server answers a call with (`hub.calls.errors.answered_error`): each code
says what happened, what to do and then the server's own words — never "rejected the call" for what is no
rejection (an internal error, a timeout the server reported, a method it lacks…). The code and `details`
stay as they were: clients and tests read them."""

from __future__ import annotations

import pytest

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import FIXTURES, PY, error_body
from tests import express_calls
from tests.express_calls import Route

pytestmark = pytest.mark.anyio

route = express_calls.route  # the fixture: each test runs on both call drivers
BIG = str(FIXTURES / "big_server.py")

# code → (the caller's code, words the message must hold: what happened, and what to do)
EXPECTED: dict[int, tuple[str, tuple[str, ...]]] = {
    -32700: ("upstream_error", ("could not parse the call", "parse error, JSON-RPC -32700", "report it to its authors")),
    -32600: ("upstream_error", ("invalid JSON-RPC request", "JSON-RPC -32600", "not in your arguments")),
    -32601: ("upstream_error", ("does not implement the method", "method not found", "use another tool")),
    -32602: ("invalid_argument", ("refused the call's arguments", "invalid params", "inputSchema", "call again")),
    -32603: ("upstream_error", ("failed while handling the call", "internal error", "server's operator")),
    -32001: ("upstream_error", ("timed out on its side", "request timeout", "check before repeating a write")),
    -32002: ("upstream_error", ("was not found", "resource not found", "check the identifiers")),
    -32000: ("upstream_error", ("answered the call with a server error (JSON-RPC -32000)", "its message says why")),
    -32099: ("upstream_error", ("a server error (JSON-RPC -32099)",)),
    7: ("upstream_error", ("an error of its own (JSON-RPC 7)", "its message says why")),
}


async def test_each_json_rpc_error_a_server_answers_says_what_happened_and_what_to_do(route: Route) -> None:
    async with Hub(parse_config({"hub": {}, "mcpServers": {"b": {"command": PY, "args": [BIG],
                                                                 "breaker": {"failure_threshold": 100}}}})) as hub:
        for jsonrpc_code, (code, words) in EXPECTED.items():
            said = f"bad thing {jsonrpc_code} password=hunter2"
            body = error_body(await route(hub, "b__fail", {"code": jsonrpc_code, "message": said}))
            message = body["message"]
            assert body["code"] == code and body["details"] == {"server": "b", "jsonrpc_code": jsonrpc_code}, body
            assert "rejected" not in message, message
            assert message.startswith("server 'b' "), message
            for word in words:
                assert word in message, (word, message)
            assert f"The server said: bad thing {jsonrpc_code}" in message, message  # its words, last
            assert "hunter2" not in message, message  # masked, as before


async def test_an_invalid_result_says_the_server_has_a_bug_and_what_to_do(route: Route) -> None:
    async with Hub(parse_config({"hub": {}, "mcpServers": {"b": {"command": PY, "args": [BIG]}}})) as hub:
        body = error_body(await route(hub, "b__invalid", {}))
        assert body["code"] == "upstream_error" and body["details"] == {"server": "b"}, body
        assert "returned an invalid result" in body["message"] and "report it to its authors" in body["message"], body
