"""Open streams end when the credential that opened them is revoked (`hub.auth.credential_watch`;
outside review admin17 #1): after `mcp-hub keys revoke` the key's next request got 401, but its open
Streamable HTTP GET stream, its legacy SSE stream and its 2026-07-28 listen stream went on carrying
notifications, and the session they kept alive held its slots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import echo_stdio, start_hub_http, write_config
from tests.hub.auth.test_security import create_key, hub_cli, post_initialize

pytestmark = pytest.mark.anyio
MODERN = "2026-07-28"


async def open_until_closed(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> anyio.Event:
    """Start reading a stream in the background; the event is set when the server closes it."""
    opened, closed = anyio.Event(), anyio.Event()

    async def read() -> None:
        async with http.stream(method, url, **kwargs) as answer:
            assert answer.status_code == 200, answer.status_code
            opened.set()
            async for _ in answer.aiter_bytes():  # an orderly end: an abrupt one raises here
                pass
        closed.set()

    http._streams_group.start_soon(read)  # type: ignore[attr-defined]
    with anyio.fail_after(20):
        await opened.wait()
    return closed


def listen_body() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": True},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}}}


async def test_a_revoked_keys_streams_and_session_end(tmp_path: Path, procs: list) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, {"e": echo_stdio()},
                          hub={"data_dir": str(data_dir), "auth": {"enabled": True}, "store": {"key_cache_s": 0.5}})
    key = create_key(data_dir, "alice", "e:read")
    other = create_key(data_dir, "bob", "e:read")
    url = start_hub_http(procs, config)
    base = url.rsplit("/mcp", 1)[0]
    auth = {"Authorization": f"Bearer {key}"}
    session = post_initialize(url, auth).headers["mcp-session-id"]
    bobs = post_initialize(url, {"Authorization": f"Bearer {other}"}).headers["mcp-session-id"]
    stream_headers = {**auth, "Accept": "text/event-stream"}
    async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as group:
        http._streams_group = group  # type: ignore[attr-defined]
        notified = {**auth, "Mcp-Session-Id": session, "Accept": "application/json, text/event-stream"}
        await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=notified)
        get_stream = await open_until_closed(http, "GET", url, headers={**stream_headers, "Mcp-Session-Id": session})
        sse_stream = await open_until_closed(http, "GET", f"{base}/sse", headers=stream_headers)
        listen = await open_until_closed(http, "POST", url, content=json.dumps(listen_body()), headers={
            **auth, "Accept": "application/json, text/event-stream", "Content-Type": "application/json",
            "MCP-Protocol-Version": MODERN, "Mcp-Method": "subscriptions/listen"})
        listed = hub_cli(data_dir, "keys", "list")
        key_id = next(line.split()[0] for line in listed.stdout.splitlines() if "alice" in line)
        assert hub_cli(data_dir, "keys", "revoke", key_id).returncode == 0
        with anyio.fail_after(20):  # the watch checks every key_cache_s (at least 1 s)
            await get_stream.wait()
            await sse_stream.wait()
            await listen.wait()
        bob = {"Authorization": f"Bearer {other}", "Mcp-Session-Id": bobs, "Accept": "application/json, text/event-stream"}
        ping = await http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=bob)
        assert ping.status_code == 200, "another key's session goes on"
        group.cancel_scope.cancel()


async def test_an_expired_token_ends_its_streams_and_a_released_one_is_forgotten() -> None:
    """A JWT has no revocation to look up, but it expires: its streams end then."""
    import time

    from mcp.server.auth.provider import AccessToken

    from hub.auth.credential_watch import CredentialWatch

    watch, ended = CredentialWatch(None, 1.0), []
    soon = AccessToken(token="jwt", client_id="u", scopes=[], expires_at=int(time.time()) + 1, claims={"mcp_hub_kind": "jwt"})
    watch.hold(soon, lambda: ended.append("expiring"), "listen stream")
    release = watch.hold(soon, lambda: ended.append("released"), "listen stream")
    release()
    assert watch.hold(None, lambda: ended.append("auth off"), "listen stream")() is None and len(watch) == 1
    await watch.sweep()
    assert ended == []
    with anyio.fail_after(10):
        while not ended:
            await anyio.sleep(0.1)  # waiting for the state "expired"
            await watch.sweep()
    assert ended == ["expiring"] and len(watch) == 0


async def test_a_refreshed_jwt_keeps_its_holders_streams() -> None:
    """A session was ended at the expiry of the token that opened it, though its client had since sent
    refreshed tokens (every OAuth client does; re-check 17 #1). Another holder's token extends nothing."""
    import time

    from mcp.server.auth.provider import AccessToken

    from hub.auth.credential_watch import CredentialWatch

    def token(subject: str, seconds: float) -> AccessToken:
        return AccessToken(token="jwt", client_id=subject, subject=subject, scopes=[], expires_at=int(time.time() + seconds),
                           claims={"mcp_hub_kind": "jwt", "iss": "https://issuer.test"})

    watch, ended = CredentialWatch(None, 1.0), []
    watch.hold(token("alice", 1), lambda: ended.append("alice"), "Streamable HTTP session")
    watch.hold(token("bob", 1), lambda: ended.append("bob"), "Streamable HTTP session")
    watch.seen(token("alice", 300))  # alice's client refreshed; bob's did not
    watch.seen(token("carol", 300))  # holds nothing: not remembered
    with anyio.fail_after(10):
        while not ended:
            await anyio.sleep(0.1)  # waiting for the state "the first tokens expired"
            await watch.sweep()
    assert ended == ["bob"] and len(watch) == 1
