"""A Streamable HTTP downstream that no longer knows the hub's session and says so otherwise than with the
spec's bare 404 (outside review interop16 #1): the TypeScript SDK example's 400 "No valid session ID
provided" (server-everything), the TypeScript transport's 404 -32001, a Go server's plain-text 400, rmcp's
401. The hub reads each as the session's end: a client's own session is replaced, the shared session
reconnects (also when only its GET stream hears it), and at most one retryable refusal is answered. A
400 about a call's arguments is the server's answer, and ends nothing.

The downstream is `tests/fixtures/forgetful_session_server.py`; the hub runs as `mcp-hub serve` over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from hub.downstream.session_lost import says_session_gone
from tests.conftest import PY, Proc, free_port, start_hub_http, wait_for_port, write_config

pytestmark = pytest.mark.anyio

FIXTURE = str(Path(__file__).resolve().parents[2] / "fixtures" / "forgetful_session_server.py")


def hub_with(tmp_path: Path, procs: list[Proc], shape: str, **server: Any) -> tuple[str, str]:
    """(hub URL, downstream base URL): the forgetful server as namespace `fs`, no health checks to help."""
    port = free_port()
    procs.append(Proc([PY, FIXTURE, str(port), shape]))
    wait_for_port(port)
    base = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, {"fs": {"url": f"{base}/mcp", "protocol": "legacy", "health_interval_s": 600, **server}},
                          {"data_dir": str(tmp_path / "data")})
    return start_hub_http(procs, config), base


def body(result: Any) -> Any:
    return json.loads(result.content[0].text)


async def forget(base: str) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{base}/forget")).raise_for_status()


async def handshakes(base: str) -> int:
    async with httpx.AsyncClient() as http:
        return int((await http.get(f"{base}/stats")).json()["initialized"])


async def after_forgetting(c: Client, x: str) -> Any:
    """Calls `fs__remember(x)` until it works: at most one retryable refusal first (the call the server
    refused), then the server is reached on a new session."""
    refusals = []
    with anyio.fail_after(30):
        while (result := await c.call_tool("fs__remember", {"x": x})).is_error:
            refusal = body(result)
            assert refusal["retryable"] is True and refusal["code"] == "unavailable", refusal
            refusals.append(refusal)
            await anyio.sleep(refusal.get("retry_after_s") or 0.1)
    assert len(refusals) <= 1, refusals
    return body(result)


@pytest.mark.parametrize("shape", ["ts400", "ts404", "go400", "rmcp401"])
async def test_a_clients_own_session_the_server_forgot_is_replaced_whatever_it_answers(
        tmp_path: Path, procs: list, shape: str) -> None:
    url, base = hub_with(tmp_path, procs, shape)
    async with Client(url, mode="legacy") as c:
        assert body(await c.call_tool("fs__remember", {"x": "before"})) == ["before"]
        await forget(base)
        assert await after_forgetting(c, "after") == ["after"]  # a new session: the old notes are gone
        assert body(await c.call_tool("fs__remember", {"x": "again"})) == ["after", "again"]


async def test_the_shared_session_reconnects_when_a_call_hears_the_400(tmp_path: Path, procs: list) -> None:
    url, base = hub_with(tmp_path, procs, "ts400", session="shared")
    async with Client(url, mode="legacy") as c:
        assert body(await c.call_tool("fs__remember", {"x": "before"})) == ["before"]
        await forget(base)
        assert await after_forgetting(c, "after") == ["after"]


async def test_the_shared_session_reconnects_when_only_its_event_stream_hears_the_400(tmp_path: Path, procs: list) -> None:
    """No call is made: the SDK's client opens its GET stream again, is answered 400, and the hub reconnects."""
    url, base = hub_with(tmp_path, procs, "ts400", session="shared")
    async with Client(url, mode="legacy") as c:
        assert body(await c.call_tool("fs__remember", {"x": "before"})) == ["before"]
        before = await handshakes(base)
        await forget(base)
        with anyio.fail_after(30):
            while await handshakes(base) == before:
                await anyio.sleep(0.1)
        assert body(await c.call_tool("fs__remember", {"x": "after"})) == ["after"]


async def test_a_bad_request_about_the_arguments_ends_no_session(tmp_path: Path, procs: list) -> None:
    url, base = hub_with(tmp_path, procs, "ts400")
    async with Client(url, mode="legacy") as c:
        assert body(await c.call_tool("fs__remember", {"x": "kept"})) == ["kept"]
        refused = await c.call_tool("fs__strict", {"n": "many"})
        assert refused.is_error and body(refused)["code"] == "upstream_error", refused
        assert "must be a number" in body(refused)["message"]
        assert body(await c.call_tool("fs__remember", {"x": "still"})) == ["kept", "still"]  # the same session


@pytest.mark.parametrize("said", [
    "Bad Request: No valid session ID provided", "Session not found", "Invalid session ID",
    "Unauthorized: Session not found", "Bad Request: Server not initialized", "session abc123 has expired",
    "Bad Request: Mcp-Session-Id header is required", "Session terminated", "unknown session", "Session ID is missing",
])
def test_words_that_say_the_session_is_gone(said: str) -> None:
    assert says_session_gone(said)


@pytest.mark.parametrize("said", [
    "Bad Request: argument 'n' must be a number", "Invalid params: session_id is required",
    "session_name must be a string", "Bad Request", "Invalid request: the sessions list is empty",
    "parameter 'session' is required", "Bad Request: session is required",  # an argument named session (recheck17 #3)
    "parameter 'sessionId' is required", "missing session parameter", "argument session: invalid choice 'x'",
    "invalid session name 'dev 1'", "unknown session type 'x'",  # re-check 18
])
def test_words_about_the_arguments_are_not(said: str) -> None:
    assert not says_session_gone(said)
