"""CORS on the HTTP front (outside review interop16 #3): a browser client on an origin the hub's Origin
check allows (`http://localhost:*` by default) gets its preflight answered and reads the session id and
the auth challenge; a foreign origin gets the same 403 as before and no CORS header; the console stays
same-origin. Raw httpx against a real hub, and a real page in headless Chromium."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import echo_stdio, start_hub_http, write_config
from tests.hub.auth.test_security import create_key

ORIGIN = "http://localhost:5173"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "web", "version": "1"}}}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def preflight(base: str, path: str, origin: str = ORIGIN, asked: str = "content-type") -> httpx.Response:
    return httpx.options(base + path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": asked})


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture
def hub(tmp_path: Path, procs: list) -> str:
    """An HTTP hub (no auth) over the echo fixture, with a profile `p`; its base URL."""
    config = write_config(tmp_path, {"e": echo_stdio()})
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "profiles": {"p": {"namespaces": ["e"]}}}))
    return start_hub_http(procs, config).removesuffix("/mcp")


def test_preflight_allows_an_allowed_origin_on_every_mcp_endpoint(hub: str) -> None:
    asked = "content-type, mcp-protocol-version, mcp-session-id, authorization, mcp-param-region, x-other"
    for path in ("/mcp", "/mcp/p", "/sse", "/messages/"):
        response = preflight(hub, path, asked=asked)
        assert response.status_code == 204, (path, response.text)
        headers = cors_headers(response)
        assert headers["access-control-allow-origin"] == ORIGIN
        assert set(headers["access-control-allow-methods"].split(", ")) == {"GET", "POST", "DELETE", "OPTIONS"}
        allowed = set(headers["access-control-allow-headers"].split(", "))
        assert {"content-type", "accept", "authorization", "mcp-session-id", "mcp-protocol-version",
                "last-event-id", "mcp-method", "mcp-name", "mcp-param-region"} <= allowed
        assert "x-other" not in allowed
        assert "access-control-allow-credentials" not in headers
        assert "Origin" in response.headers["vary"]


def test_a_refused_origin_and_a_request_without_origin_are_answered_as_before(hub: str) -> None:
    for origin in ("http://evil.example", "https://localhost:5173"):
        response = preflight(hub, "/mcp", origin=origin)
        assert response.status_code == 403 and cors_headers(response) == {}
        posted = httpx.post(hub + "/mcp", json=INIT, headers={**ACCEPT, "Origin": origin})
        assert posted.status_code == 403 and cors_headers(posted) == {}
    plain = httpx.options(hub + "/mcp")
    assert plain.status_code == 405 and cors_headers(plain) == {}
    posted = httpx.post(hub + "/mcp", json=INIT, headers=ACCEPT)
    assert posted.status_code == 200 and cors_headers(posted) == {} and "vary" not in posted.headers
    # the console is same-origin only: an allowed origin gets no CORS header there
    console = preflight(hub, "/admin/login")
    assert "access-control-allow-origin" not in console.headers
    assert "access-control-allow-origin" not in httpx.get(hub + "/admin/login", headers={"Origin": ORIGIN}).headers


@pytest.mark.anyio
async def test_answers_to_an_allowed_origin_carry_cors_on_the_sdk_path_and_the_fast_path(hub: str) -> None:
    async with httpx.AsyncClient(timeout=30, headers={"Origin": ORIGIN}) as client:
        init = await client.post(hub + "/mcp", json=INIT, headers=ACCEPT)
        assert init.status_code == 200
        assert init.headers["access-control-allow-origin"] == ORIGIN
        exposed = init.headers["access-control-expose-headers"]
        assert {"mcp-session-id", "mcp-protocol-version", "www-authenticate"} <= set(exposed.split(", "))
        assert init.headers["vary"] == "Origin"
        session = {**ACCEPT, "Mcp-Session-Id": init.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
        await client.post(hub + "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "e__add", "arguments": {"a": 2, "b": 3}}}
        with anyio.fail_after(60):
            while True:
                answer = await client.post(hub + "/mcp", json=call, headers=session)
                if answer.headers["content-type"].startswith("application/json"):  # the fast path (`http_calls`)
                    reply = answer.json()
                    if not reply["result"].get("isError"):  # `e` is up
                        break
                await anyio.sleep(0.1)
        assert reply["result"]["structuredContent"] == {"total": 5}
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        assert "mcp-session-id" in answer.headers["access-control-expose-headers"]
        async with client.stream("GET", hub + "/sse", headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["access-control-allow-origin"] == ORIGIN


def test_auth_challenge_and_protected_resource_metadata_are_readable_cross_origin(tmp_path: Path, procs: list) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, {}, hub={"data_dir": str(data_dir), "auth": {"enabled": True}})
    key = create_key(data_dir, "web", "e:read")
    base = start_hub_http(procs, config).removesuffix("/mcp")
    refused = httpx.post(base + "/mcp", json=INIT, headers={**ACCEPT, "Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert "www-authenticate" in refused.headers["access-control-expose-headers"]
    assert "resource_metadata=" in refused.headers["www-authenticate"]
    asked = preflight(base, "/mcp", asked="authorization, content-type")  # answered before authentication
    assert asked.status_code == 204 and "authorization" in asked.headers["access-control-allow-headers"]
    admitted = httpx.post(base + "/mcp", json=INIT, headers={**ACCEPT, "Origin": ORIGIN, "Authorization": f"Bearer {key}"})
    assert admitted.status_code == 200 and admitted.headers["access-control-allow-origin"] == ORIGIN
    metadata_path = "/.well-known/oauth-protected-resource/mcp"
    metadata = httpx.get(base + metadata_path, headers={"Origin": ORIGIN})
    assert metadata.status_code == 200 and metadata.json()["resource"] == base + "/mcp"
    assert metadata.headers.get_list("access-control-allow-origin") in ([ORIGIN], ["*"])  # one value, not two
    metadata_preflight = httpx.options(base + metadata_path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
                                                                      "Access-Control-Request-Headers": "mcp-protocol-version"})
    assert metadata_preflight.status_code == 200
    assert metadata_preflight.headers.get_list("access-control-allow-origin") in ([ORIGIN], ["*"])


@contextmanager
def page_server(directory: Path) -> Iterator[int]:
    """Serves `directory` on 127.0.0.1 (loaded as http://localhost:<port>); yields the port."""

    class Files(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


PAGE = """<html><body><pre id=out>pending</pre><script>
const url = %s, json = {'Content-Type': 'application/json', 'Accept': 'application/json, text/event-stream'};
async function post(body, headers) { return fetch(url, {method: 'POST', headers: {...json, ...headers}, body: JSON.stringify(body)}); }
(async () => { const out = document.getElementById('out');
  try {
    const init = await post(%s, {'MCP-Protocol-Version': '2025-11-25'});
    const sid = init.headers.get('mcp-session-id'); await init.text();
    const session = {'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25'};
    await post({jsonrpc: '2.0', method: 'notifications/initialized'}, session);
    const listed = await (await post({jsonrpc: '2.0', id: 2, method: 'tools/list'}, session)).text();
    const gone = await fetch(url, {method: 'DELETE', headers: session});
    out.textContent = JSON.stringify({sid, listed: listed.includes('e__add'), deleted: gone.status});
  } catch (e) { out.textContent = 'ERROR ' + e; } })();
</script></body></html>"""


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (tools/setup.sh --test)")
def test_a_page_on_localhost_uses_the_hub_from_chromium(hub: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE % (json.dumps(hub + "/mcp"), json.dumps(INIT)))
    with page_server(site) as port, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"http://localhost:{port}/index.html")
            page.wait_for_function("document.getElementById('out').textContent !== 'pending'", timeout=60_000)
            seen = page.inner_text("#out")
        finally:
            browser.close()
    assert not seen.startswith("ERROR"), seen
    result = json.loads(seen)
    assert result["sid"] and result["listed"] and result["deleted"] == 200, result
