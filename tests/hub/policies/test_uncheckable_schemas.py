"""Tools whose input schemas the hub cannot check as their server does (outside review interop26):
#2 an ECMA-262 `pattern` Python's `re` lacks or a `$ref` to nowhere made every call fail with a bare
JSON-RPC error (code 0; an HTTP 500 on the 2026-07-28 path) where a direct call worked — such a tool's
arguments are now left to its server, logged once; #4 the hub asserted `format`, refusing UUIDs and
times the server accepts — `format` is an annotation now. What the hub can check, it still checks."""

from __future__ import annotations

import logging

import pytest

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import FIXTURES, PY, error_body

pytestmark = pytest.mark.anyio


async def test_uncheckable_schemas_leave_the_arguments_to_the_server_and_formats_are_not_asserted(
        caplog: pytest.LogCaptureFixture) -> None:
    config = parse_config({"mcpServers": {"s": {"command": PY, "args": [str(FIXTURES / "schema_tools_server.py")]}}})
    calls = [("s__greet", {"name": "Ångström"}), ("s__greet", {"name": "Émile"}), ("s__named", {"phone": "555-0100"}),
             ("s__dangling", {"when": "2026-12-05"}),
             ("s__formats", {"id": "{0f8fad5b-d9cb-469f-a165-70867728950e}", "at": "2026-12-05T00:00:00"})]
    with caplog.at_level(logging.WARNING, logger="hub"):
        async with Hub(config) as hub:
            for name, arguments in calls:
                result = await hub.route_call(name, arguments)
                assert not result.is_error and result.content[0].text.startswith("ok:"), (name, result)
            refused = await hub.route_call("s__strict", {"n": "one"})  # a schema the hub can check: still checked
            assert refused.is_error and error_body(refused)["code"] == "invalid_argument", refused
    warned = [r.getMessage() for r in caplog.records if "cannot check" in r.getMessage()]
    assert sorted(w.split(" ")[0] for w in warned) == ["s__dangling", "s__greet", "s__named"], warned  # once each


async def test_a_ref_to_a_url_is_never_fetched(caplog: pytest.LogCaptureFixture) -> None:
    """Outside review recheck26 N1: jsonschema's default registry fetched a `$ref` URL — any address, the
    cloud metadata one included — on the event loop, on every call, the whole hub stalled meanwhile. No
    schema is fetched now: such a tool's arguments are left to its server, and an error checked against
    such an output schema is not structured."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from hub.errors import HubToolError

    fetched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 — the stdlib's name
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"type": "string"}')

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = f"http://127.0.0.1:{server.server_port}/schema.json"
        config = parse_config({"mcpServers": {"s": {"command": PY, "args": [str(FIXTURES / "schema_tools_server.py"), remote]}}})
        async with Hub(config) as hub:
            result = await hub.route_call("s__remote", {"when": "2026-12-05"})
            assert not result.is_error and result.content[0].text.startswith("ok:"), result
        error = HubToolError("timeout", "late").to_result({"$ref": remote})
        assert error.structured_content is None and error.is_error
        assert fetched == [], f"the hub fetched {fetched}"
    finally:
        server.shutdown()
        server.server_close()
