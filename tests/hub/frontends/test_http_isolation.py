"""The HTTP front end keeps callers apart (issue #17 items 1, 4, 9, 10), against a real hub process:
sessions capped per principal with idle ones evicted, every route behind the Host/Origin check,
completions only for what a caller can see, RFC 6750 challenges, and bodies bounded in size and time."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference

from tests.conftest import PY, ROOT, Proc, hub_command, write_config

pytestmark = pytest.mark.anyio
COMPLETING = {"module": "tests.fixtures.completing_server:server"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"Accept": "application/json, text/event-stream"}


def create_key(data_dir: Path, name: str, scopes: str) -> str:
    done = subprocess.run(
        [PY, "-m", "hub.cli", "keys", "create", "--data-dir", str(data_dir), "--name", name, "--scopes", scopes],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    return done.stdout.strip()


def start_hub(procs: list[Proc], tmp_path: Path, servers: dict[str, Any], **hub: Any) -> dict[str, Any]:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, servers, hub={"data_dir": str(data_dir), **hub})
    proc = Proc(hub_command(config, "--transport", "http", "--port", "0"))
    procs.append(proc)
    url = proc.wait_for_line(r"mcp-hub listening on (\S+)").group(1)
    base = url.removesuffix("/mcp")
    return {"url": url, "base": base, "data_dir": data_dir, "port": int(base.rsplit(":", 1)[1])}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mcp_client(url: str, token: str, mode: str = "legacy") -> Client:
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=bearer(token))), mode=mode)


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One hub with auth on for the checks that leave no state behind: a downstream with completions
    (`c`), a second one (`m`), a required scope, a small body limit and a short body deadline."""
    tmp_path = tmp_path_factory.mktemp("shared-hub")
    procs: list[Proc] = []
    try:
        hub = start_hub(
            procs, tmp_path, {"c": COMPLETING, "m": {"module": "tests.fixtures.inproc_server:server"}},
            auth={"enabled": True, "required_scopes": ["mcp:use"]},
            http={"max_body_bytes": 65536, "body_timeout_s": 1.0},
        )
        keys = {name: create_key(hub["data_dir"], name, scopes) for name, scopes in
                {"alice": "mcp:use c:read", "bob": "mcp:use m:read", "admin": "*", "outsider": "c:read"}.items()}
        yield {**hub, "keys": keys, "proc": procs[-1]}
    finally:
        for proc in procs:
            proc.stop()


# -- item 9: completions -------------------------------------------------------------------------

async def test_completions_reach_the_downstream_for_callers_who_can_see_the_target(shared_hub: dict[str, Any]) -> None:
    url, keys = shared_hub["url"], shared_hub["keys"]
    prompt = PromptReference(type="ref/prompt", name="c__greet")
    template = ResourceTemplateReference(type="ref/resource", uri="mcphub://c/greeting://{language}/{name}")
    for mode in ("legacy", "auto"):
        async with mcp_client(url, keys["alice"], mode) as c:
            done = await c.complete(prompt, {"name": "language", "value": "e"})
            assert done.completion.values == ["english", "esperanto", "prompt:greet"], mode
            done = await c.complete(template, {"name": "name", "value": "A"}, context_arguments={"language": "french"})
            assert done.completion.values == ["Amélie", "Antoine", "template:greeting://{language}/{name}"], mode


async def test_completions_refuse_what_the_caller_cannot_see_exactly_like_unknown_names(shared_hub: dict[str, Any]) -> None:
    url, keys = shared_hub["url"], shared_hub["keys"]
    hidden_prompt = PromptReference(type="ref/prompt", name="c__greet")
    hidden_template = ResourceTemplateReference(type="ref/resource", uri="mcphub://c/greeting://{language}/{name}")
    refusals: dict[str, tuple[int, str]] = {}
    async with mcp_client(url, keys["bob"]) as c:  # bob holds m:read, not c:read
        for label, ref in (("prompt", hidden_prompt), ("template", hidden_template)):
            with pytest.raises(MCPError) as caught:
                await c.complete(ref, {"name": "language", "value": "e"})
            refusals[label] = (caught.value.code, caught.value.message)
    assert refusals["prompt"] == (-32602, "Unknown prompt: c__greet")
    assert refusals["template"][0] == -32602 and "Unknown resource template" in refusals["template"][1]
    async with mcp_client(url, keys["alice"]) as c:  # what does not exist answers the same way
        with pytest.raises(MCPError) as caught:
            await c.complete(PromptReference(type="ref/prompt", name="c__nothing"), {"name": "language", "value": ""})
        assert (caught.value.code, caught.value.message) == (-32602, "Unknown prompt: c__nothing")
        with pytest.raises(MCPError) as caught:
            await c.complete(ResourceTemplateReference(type="ref/resource", uri="mcphub://c/nothing://{x}"),
                             {"name": "x", "value": ""})
        assert caught.value.code == -32602 and "Unknown resource template" in caught.value.message


# -- item 10: RFC 6750 challenges -----------------------------------------------------------------

def test_401_names_an_error_only_when_a_token_was_sent_and_403_names_the_scope(shared_hub: dict[str, Any]) -> None:
    url, base, keys = shared_hub["url"], shared_hub["base"], shared_hub["keys"]
    metadata = f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):  # no bearer credentials at all
        response = httpx.post(url, json=INITIALIZE, headers={**ACCEPT, **headers})
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and metadata in challenge and "error=" not in challenge, challenge
    for token in ("not-a-token", "mcphub_abc_def"):
        response = httpx.post(url, json=INITIALIZE, headers={**ACCEPT, **bearer(token)})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"] and metadata in response.headers["www-authenticate"]
    lacking = httpx.post(url, json=INITIALIZE, headers={**ACCEPT, **bearer(keys["outsider"])})
    assert lacking.status_code == 403
    challenge = lacking.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="mcp:use"' in challenge and metadata in challenge
    # The legacy SSE endpoint answers the same way.
    assert "error=" not in httpx.get(f"{base}/sse").headers["www-authenticate"]
    assert 'scope="mcp:use"' in httpx.get(f"{base}/sse", headers=bearer(keys["outsider"])).headers["www-authenticate"]


# -- item 4: DNS rebinding on every route ------------------------------------------------------------

def test_every_route_checks_host_and_origin(shared_hub: dict[str, Any]) -> None:
    base, admin = shared_hub["base"], bearer(shared_hub["keys"]["admin"])
    routes = ["/healthz", "/metrics", "/.well-known/oauth-protected-resource/mcp", "/sse", "/mcp", "/no-such-route"]
    for route in routes:
        assert httpx.get(base + route, headers={**admin, "Host": "evil.example"}).status_code == 421, route
        assert httpx.get(base + route, headers={**admin, "Host": "evil.example:80"}).status_code == 421, route
        assert httpx.get(base + route, headers={**admin, "Origin": "http://evil.example"}).status_code == 403, route
    assert httpx.post(f"{base}/messages/?session_id=00", headers={"Host": "evil.example"}, content=b"{}").status_code == 421
    healthy = httpx.get(f"{base}/healthz", headers={**admin, "Origin": base})
    assert healthy.status_code == 200 and "servers" in healthy.json()
    assert httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp").status_code == 200


# -- item 10: request bodies bounded in size and time ----------------------------------------------

def test_bodies_over_the_limit_get_413_declared_or_streamed(shared_hub: dict[str, Any]) -> None:
    base, url, alice = shared_hub["base"], shared_hub["url"], bearer(shared_hub["keys"]["alice"])
    big = json.dumps({**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "x" * 70_000}}).encode()
    headers = {**ACCEPT, **alice, "Content-Type": "application/json"}
    assert httpx.post(url, content=big, headers=headers).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    assert httpx.post(url, content=chunks(), headers=headers).status_code == 413
    assert httpx.post(f"{base}/messages/?session_id=00", content=big, headers=headers).status_code == 413
    assert httpx.post(url, json=INITIALIZE, headers={**ACCEPT, **alice}).status_code == 200


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_request_over_the_limit_is_an_error_naming_the_limit_and_the_session_carries_on(
        shared_hub: dict[str, Any], mode: str) -> None:
    """Outside review memory26 D7: the 413 went out while the client was still sending and the connection
    was closed, so the SDK's client read a reset, not the answer, and its session broke. A body up to
    `DRAIN_FACTOR` times the limit is read and dropped first; the 413 is a JSON-RPC error on `/mcp`."""
    url, alice = shared_hub["url"], shared_hub["keys"]["alice"]
    prompt = PromptReference(type="ref/prompt", name="c__greet")
    async with mcp_client(url, alice, mode) as c:
        for big in ("x" * 100_000, "é" * 120_000):  # over the 64 KiB limit, declared and as UTF-8
            with pytest.raises(MCPError) as caught:
                await c.complete(prompt, {"name": "language", "value": big})
            assert "hub.http.max_body_bytes" in caught.value.message and "65536" in caught.value.message, caught.value.error
        done = await c.complete(prompt, {"name": "language", "value": "e"})  # the same session, still usable
        assert done.completion.values[:2] == ["english", "esperanto"], mode


def raw_request(port: int, head: str, body: bytes, wait_s: float = 20.0) -> tuple[bytes, float]:
    """Send a request head and part of a body, then stall; what the hub answers and after how long."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(head.encode() + body)
        started = time.monotonic()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the hub held a stalled request open for {wait_s}s; got {received[:200]!r}")
        return received, time.monotonic() - started


def initialize_head(port: int, token: str, length: int) -> str:
    """The head of an authenticated `initialize` POST whose body is `length` bytes."""
    return (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Length: {length}\r\n\r\n")


def test_a_stalled_body_is_answered_408_and_the_connection_closed(shared_hub: dict[str, Any]) -> None:
    port, alice = shared_hub["port"], shared_hub["keys"]["alice"]
    body = json.dumps(INITIALIZE).encode()
    head = initialize_head(port, alice, len(body))
    answer, _ = raw_request(port, head, body[: len(body) // 2])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in answer.lower()


def test_a_request_pipelined_behind_another_gets_its_deadline_too(shared_hub: dict[str, Any]) -> None:
    """h11 parses it only once the one before is answered, outside the reads that arm deadlines
    (outside review, round 2: it stayed open for good, no credential needed)."""
    port, alice = shared_hub["port"], shared_hub["keys"]["alice"]
    body = json.dumps(INITIALIZE).encode()
    first = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    answer, waited = raw_request(port, first + initialize_head(port, alice, len(body)), body[: len(body) // 2])
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"HTTP/1.1 408" in answer, answer[-300:]
    assert waited < 15


def test_requests_offering_h2c_are_served_and_a_second_host_header_is_refused(shared_hub: dict[str, Any]) -> None:
    """What the HTTP parser decides (outside review, round 2, against httptools): Java's RestClient and
    Ktor offer `Upgrade: h2c` on every request; two Host headers are a 400 (RFC 9112 3.2)."""
    url, port, alice = shared_hub["url"], shared_hub["port"], shared_hub["keys"]["alice"]
    offered = httpx.post(url, json=INITIALIZE, headers={**ACCEPT, **bearer(alice), "Upgrade": "h2c",
                                                         "Connection": "Upgrade, HTTP2-Settings",
                                                         "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"})
    assert offered.status_code == 200 and "serverInfo" in offered.text, offered.text[:200]
    head = (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n"
            f"Authorization: Bearer {alice}\r\n\r\n")
    answer, _ = raw_request(port, head, b"")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_a_body_trickling_past_the_deadline_is_answered_408_however_steady(shared_hub: dict[str, Any]) -> None:
    """The deadline (1 s here) covers the whole body, not each piece of it."""
    port, alice = shared_hub["port"], shared_hub["keys"]["alice"]
    body = json.dumps(INITIALIZE).encode()
    head = initialize_head(port, alice, len(body))
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode())
        started, received = time.monotonic(), b""
        sock.settimeout(0.3)
        for byte in body:  # one byte every 0.3 s: each in time, the whole ~40 s
            try:
                sock.sendall(bytes([byte]))
                received += sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if received:
                break
        assert time.monotonic() - started < 15, "the body was read long past its deadline"
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"body_timeout_s" in received


def test_a_later_request_head_on_a_kept_alive_connection_has_a_deadline_too(shared_hub: dict[str, Any]) -> None:
    port = shared_hub["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            received += sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 200"), received[:200]
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Unfinished".encode())
        started = time.monotonic()
        try:
            rest = sock.recv(65536)
        except TimeoutError:
            pytest.fail("the hub held a stalled second request head open for 20 s")
    assert rest == b"" or rest.startswith(b"HTTP/1.1 408"), rest[:200]
    assert time.monotonic() - started < 15


def test_a_refused_origin_stays_refused_after_an_allowed_one_from_the_same_host(shared_hub: dict[str, Any]) -> None:
    """The guard remembers pairs the check let through, never a refusal."""
    base, admin = shared_hub["base"], bearer(shared_hub["keys"]["admin"])
    for _ in range(2):
        assert httpx.get(f"{base}/healthz", headers={**admin, "Origin": base}).status_code == 200
        assert httpx.get(f"{base}/healthz", headers={**admin}).status_code == 200
        assert httpx.get(f"{base}/healthz", headers={**admin, "Origin": "http://evil.example"}).status_code == 403
        assert httpx.get(f"{base}/healthz", headers={**admin, "Origin": f"{base}.evil.example"}).status_code == 403
    assert httpx.get(f"{base}/healthz", headers={**admin, "Origin": ""}).status_code == 200  # empty: absent, as the SDK reads it
    port = shared_hub["port"]
    superscript = f"127.0.0.1:{port}\u00b2".encode("latin-1")  # `str.isdigit` calls it a digit
    assert httpx.get(f"{base}/healthz", headers={**admin, "Host": superscript}).status_code in (400, 421)
    assert httpx.get(f"{base}/healthz", headers={**admin, "Origin": b"http://" + superscript}).status_code == 403


def test_a_host_with_a_non_numeric_port_is_refused(shared_hub: dict[str, Any]) -> None:
    """`127.0.0.1:<port>.evil.example` must not pass an allow-list entry `127.0.0.1:*`."""
    base, port, admin = shared_hub["base"], shared_hub["port"], bearer(shared_hub["keys"]["admin"])
    for route in ("/healthz", "/metrics", "/mcp", "/admin/login"):
        for host in (f"127.0.0.1:{port}.evil.example", f"127.0.0.1:{port}:80", "127.0.0.1:"):
            assert httpx.get(base + route, headers={**admin, "Host": host}).status_code == 421, (route, host)
    assert httpx.get(f"{base}/healthz", headers={**admin, "Host": f"127.0.0.1:{port}"}).status_code == 200


def test_refused_stalled_bodies_leave_no_error_tracebacks(shared_hub: dict[str, Any]) -> None:
    """An anonymous caller stalling bodies gets 408s; the hub's log gets no ERROR line per request."""
    port = shared_hub["port"]
    for path in ("/admin/login", "/mcp"):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
        for _ in range(3):
            answer, _ = raw_request(port, head, b"csrf=")
            assert answer.startswith(b"HTTP/1.1 408") or answer.startswith(b"HTTP/1.1 401"), answer[:120]
    httpx.get(f"http://127.0.0.1:{port}/healthz")  # a line after ours, so the log has caught up
    logged = "".join(shared_hub["proc"].stderr_lines)
    assert "ClientDisconnect" not in logged and "Exception in ASGI application" not in logged


def test_a_stalled_request_head_is_disconnected(shared_hub: dict[str, Any]) -> None:
    port = shared_hub["port"]
    answer, _ = raw_request(port, f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Ty", b"")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_request_head_over_16_kib_is_refused_and_a_long_body_is_not_mistaken_for_one(
        shared_hub: dict[str, Any]) -> None:
    """A head that never ends must not grow the hub's memory (h11 refuses one over 16 KiB)."""
    port, alice = shared_hub["port"], shared_hub["keys"]["alice"]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        received = b""
        try:
            for number in range(400):  # 400 x 100 bytes of headers, unless the hub stops reading first
                sock.sendall(f"X-Filler-{number}: {'a' * 86}\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    assert received.startswith(b"HTTP/1.1 4"), received[:200]
    # A head just under the cap, then a 60 KB body in the same packets: served (401 only for no token).
    padding = "".join(f"X-Filler-{number}: {'a' * 86}\r\n" for number in range(140))
    body = json.dumps({**INITIALIZE, "params": {**INITIALIZE["params"], "clientInfo": {"name": "x" * 60_000, "version": "1"}}})
    answer = httpx.post(f"http://127.0.0.1:{port}/mcp", content=body,
                        headers={**ACCEPT, **bearer(alice), "Content-Type": "application/json",
                                 **dict(line.split(": ", 1) for line in padding.strip().split("\r\n"))})
    assert answer.status_code == 200, answer.text[:200]


# -- item 1: sessions per principal --------------------------------------------------------------------

async def open_session(client: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    return await client.post(url, json=INITIALIZE, headers={**ACCEPT, **bearer(token)})


async def ping(client: httpx.AsyncClient, url: str, token: str, session_id: str) -> int:
    response = await client.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                                 headers={**ACCEPT, **bearer(token), "Mcp-Session-Id": session_id,
                                          "Mcp-Protocol-Version": "2025-11-25"})
    return response.status_code


def sessions_open(base: str, admin: str) -> dict[str, Any]:
    return httpx.get(f"{base}/healthz", headers=bearer(admin)).json()["sessions"]


@pytest.fixture(scope="module")
def capped_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The capped hubs' API keys, made once for the file (each `mcp-hub keys create` is a process
    start); every test's hub starts on its own copy of this data dir, so no session state is shared."""
    data_dir = tmp_path_factory.mktemp("capped") / "data"
    data_dir.mkdir()
    keys = {name: create_key(data_dir, name, scopes) for name, scopes in
            {"mallory": "unrelated:read", "eve": "unrelated:read", "alice": "m:read", "admin": "hub:admin"}.items()}
    return data_dir, keys


@pytest.fixture
def capped_hub(tmp_path: Path, procs: list[Proc], capped_keys: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    template, keys = capped_keys
    shutil.copytree(template, tmp_path / "data")
    hub = start_hub(procs, tmp_path, {"m": {"module": "tests.fixtures.inproc_server:server"}}, auth={"enabled": True},
                    http={"max_sessions_per_principal": 3, "max_sessions": 6})
    return {**hub, "keys": keys}


async def test_a_principal_over_its_cap_loses_its_least_recently_used_idle_session(capped_hub: dict[str, Any]) -> None:
    url, base, keys = capped_hub["url"], capped_hub["base"], capped_hub["keys"]
    mallory = keys["mallory"]
    async with httpx.AsyncClient() as http:
        ids = []
        for _ in range(3):
            opened = await open_session(http, url, mallory)
            assert opened.status_code == 200
            ids.append(opened.headers["mcp-session-id"])
        assert await ping(http, url, mallory, ids[0]) == 200  # ids[1] is now the least recently used
        for _ in range(20):
            opened = await open_session(http, url, mallory)
            assert opened.status_code == 200
            ids.append(opened.headers["mcp-session-id"])
        assert await ping(http, url, mallory, ids[1]) == 404
        assert [await ping(http, url, mallory, sid) for sid in ids[-3:]] == [200, 200, 200]
        assert sessions_open(base, keys["admin"])["streamable_http"] == 3
        async with mcp_client(url, keys["alice"]) as c:
            assert (await c.call_tool("m__multiply", {"a": 6, "b": 7})).structured_content == {"result": 42.0}
        # Another principal's session id is not one of mallory's: using it is "not found", not a takeover.
        assert await ping(http, url, keys["eve"], ids[-1]) == 404


async def test_a_principal_whose_sessions_are_all_busy_is_refused_429_and_others_still_connect(
    capped_hub: dict[str, Any],
) -> None:
    url, keys = capped_hub["url"], capped_hub["keys"]
    mallory = keys["mallory"]
    async with httpx.AsyncClient(timeout=30) as http, AsyncExitStack() as streams:
        for _ in range(3):  # each session holds a GET stream open: none is idle
            sid = (await open_session(http, url, mallory)).headers["mcp-session-id"]
            stream = await streams.enter_async_context(http.stream(
                "GET", url, headers={"Accept": "text/event-stream", **bearer(mallory), "Mcp-Session-Id": sid,
                                     "Mcp-Protocol-Version": "2025-11-25"}))
            assert stream.status_code == 200
        refused = await open_session(http, url, mallory)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert "max_sessions_per_principal" in error["message"] and error["data"]["limit"] == 3
        assert (await open_session(http, url, keys["alice"])).status_code == 200


async def test_when_the_hub_is_full_a_new_principal_evicts_an_idle_session_of_the_biggest_holder(
    capped_hub: dict[str, Any],
) -> None:
    url, keys = capped_hub["url"], capped_hub["keys"]
    async with httpx.AsyncClient() as http:
        held: dict[str, list[str]] = {"mallory": [], "eve": []}
        for name in ("mallory", "eve", "mallory", "eve", "mallory", "eve"):
            held[name].append((await open_session(http, url, keys[name])).headers["mcp-session-id"])
        assert (await open_session(http, url, keys["alice"])).status_code == 200  # 7th session, cap 6
        alive = {name: [await ping(http, url, keys[name], sid) for sid in sids] for name, sids in held.items()}
        assert alive == {"mallory": [404, 200, 200], "eve": [200, 200, 200]}, alive


async def test_idle_sessions_expire_after_the_configured_time(tmp_path: Path, procs: list[Proc]) -> None:
    hub = start_hub(procs, tmp_path, {"m": {"module": "tests.fixtures.inproc_server:server"}},
                    http={"session_idle_timeout_s": 1.0})
    async with httpx.AsyncClient() as http:
        opened = await http.post(hub["url"], json=INITIALIZE, headers=ACCEPT)
        sid = opened.headers["mcp-session-id"]
        assert httpx.get(f"{hub['base']}/healthz").json()["sessions"]["streamable_http"] == 1
        deadline = time.monotonic() + 30
        while httpx.get(f"{hub['base']}/healthz").json()["sessions"]["streamable_http"]:
            assert time.monotonic() < deadline, "the idle session was never closed"
            time.sleep(0.1)
        response = await http.post(hub["url"], json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                                   headers={**ACCEPT, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"})
        assert response.status_code == 404


@pytest.fixture
async def sse_streams() -> AsyncIterator[tuple[httpx.AsyncClient, AsyncExitStack]]:
    async with httpx.AsyncClient(timeout=30) as http, AsyncExitStack() as stack:
        yield http, stack


async def test_legacy_sse_sessions_are_capped_per_principal(
    capped_hub: dict[str, Any], sse_streams: tuple[httpx.AsyncClient, AsyncExitStack]
) -> None:
    base, keys = capped_hub["base"], capped_hub["keys"]
    http, stack = sse_streams
    for _ in range(3):
        stream = await stack.enter_async_context(http.stream("GET", f"{base}/sse", headers=bearer(keys["mallory"])))
        assert stream.status_code == 200
    refused = await stack.enter_async_context(http.stream("GET", f"{base}/sse", headers=bearer(keys["mallory"])))
    assert refused.status_code == 429
    assert "max_sessions_per_principal" in json.loads(await refused.aread())["error"]["message"]
    alice = await stack.enter_async_context(http.stream("GET", f"{base}/sse", headers=bearer(keys["alice"])))
    assert alice.status_code == 200
