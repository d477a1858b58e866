"""A stop over HTTP drains (`hub.http.drain_s`; outside review, cluster round 18 #2).

SIGTERM (a rolling deploy) cancelled calls in flight after 1 s and answered each 503 "the hub is
stopping; send the request again", a write its server had already done included: the client sent it
again and it was written twice. Now calls get `drain_s` to finish, open streams end at once (their
clients reconnect elsewhere instead of holding the drain), and a call still running when the drain
ends is told the truth: "send it again" only if nothing could have come of it (its body incomplete,
not a call, or a read-only tool), else its outcome is unknown and it must be checked first."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import FIXTURES, PY, Proc, hub_command, write_config
from tests.hub.auth.test_credential_watch import listen_body, open_until_closed

pytestmark = pytest.mark.anyio
MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
SSE_OR_JSON = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class DrainHub:
    """`mcp-hub serve -t http` with the drain fixture as server `w`; what `record` wrote is in `written`."""

    def __init__(self, tmp_path: Path, procs: list[Proc], drain_s: float | None) -> None:
        self.written = tmp_path / "written.txt"
        self.written.write_text("")
        server = {"command": PY, "args": [str(FIXTURES / "drain_server.py")], "env": {"DRAIN_FILE": str(self.written)}}
        hub: dict[str, Any] = {"http": {"drain_s": drain_s}} if drain_s is not None else {}
        self.proc = Proc(hub_command(write_config(tmp_path, {"w": server}, hub=hub), "--transport", "http", "--port", "0",
                                     "--log-level", "info"))
        procs.append(self.proc)
        self.url = self.proc.wait_for_line(r"mcp-hub listening on (\S+)").group(1)
        self.base = self.url.rsplit("/mcp", 1)[0]

    def lines(self) -> list[str]:
        return self.written.read_text().split()

    async def session(self, http: httpx.AsyncClient) -> dict[str, str]:
        """A 2025-11-25 session's headers, once `w`'s tools are listed."""
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        answer = await http.post(self.url, json=init, headers=SSE_OR_JSON)
        headers = {**SSE_OR_JSON, "Mcp-Session-Id": answer.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
        await http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        with anyio.fail_after(30):
            while True:
                listed = await http.post(self.url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers)
                if "w__record" in listed.text:
                    return headers
                await anyio.sleep(0.1)

    async def call(self, http: httpx.AsyncClient, era: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
        params: dict[str, Any] = {"name": tool, "arguments": arguments}
        if era == "modern":
            params["_meta"] = MODERN_META
            headers = {**SSE_OR_JSON, "Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool}
        else:
            headers = await self.session(http)
            if era == "handshake-stream":  # a progress token: the SDK's path answers, as an event stream
                params["_meta"] = {"progressToken": 1}
        return await http.post(self.url, json={"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params},
                               headers=headers)

    async def stop_while(self, http: httpx.AsyncClient, era: str, tool: str, arguments: dict[str, Any],
                         running: Any) -> httpx.Response:
        """Call `tool`; once `running()` says it is under way, SIGTERM the hub; its answer."""
        if era == "modern":  # the stateless era needs the tools listed once too
            await self.session(http)
        answers: list[httpx.Response] = []

        async def ask() -> None:
            answers.append(await self.call(http, era, tool, arguments))

        async with anyio.create_task_group() as group:
            group.start_soon(ask)
            with anyio.fail_after(30):
                while not running():
                    await anyio.sleep(0.02)
            self.proc.popen.send_signal(signal.SIGTERM)
        return answers[0]

    def exit_status(self, within: float = 40.0) -> int:
        return self.proc.popen.wait(within)


def message(answer: httpx.Response) -> dict[str, Any]:
    if answer.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in answer.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return answer.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("era", ["handshake", "modern"])
async def test_a_call_in_flight_at_sigterm_finishes_within_the_drain(tmp_path: Path, procs: list, era: str) -> None:
    hub = DrainHub(tmp_path, procs, drain_s=None)  # the default drain (15 s)
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await hub.stop_while(http, era, "w__record", {"text": "invoice-77", "seconds": 2},
                                      lambda: "invoice-77" in hub.lines())
    assert answer.status_code == 200, answer.text
    result = message(answer)["result"]
    assert not result.get("isError") and "recorded:invoice-77" in json.dumps(result), result
    assert hub.exit_status() == 128 + signal.SIGTERM
    assert hub.lines() == ["invoice-77"]


@pytest.mark.parametrize("era", ["handshake", "handshake-stream", "modern"])
async def test_a_write_cut_by_the_end_of_the_drain_says_its_outcome_is_unknown(tmp_path: Path, procs: list, era: str) -> None:
    hub = DrainHub(tmp_path, procs, drain_s=0.5)
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await hub.stop_while(http, era, "w__record", {"text": "invoice-78", "seconds": 60},
                                      lambda: "invoice-78" in hub.lines())
    assert answer.status_code == 200, (answer.status_code, answer.text)  # not a 503 "send it again"
    assert answer.headers["content-type"].startswith("text/event-stream") == (era == "handshake-stream")
    reply = message(answer)
    assert reply["id"] == 7
    # The tool declares an outputSchema the error does not fit: the body is the text alone (recheck26 N4).
    assert "structuredContent" not in reply["result"] and reply["result"]["isError"] is True, reply
    body = json.loads(reply["result"]["content"][0]["text"])
    assert body["code"] == "unavailable" and body["retryable"] is False and body["details"]["outcome"] == "unknown", body
    assert "w__record" in body["message"] and "Check first" in body["message"] and "send the request again" not in body["message"]
    assert hub.exit_status() == 128 + signal.SIGTERM


async def test_a_read_only_call_cut_by_the_end_of_the_drain_may_be_sent_again(tmp_path: Path, procs: list) -> None:
    hub = DrainHub(tmp_path, procs, drain_s=0.5)
    async with httpx.AsyncClient(timeout=60) as http:
        headers = await hub.session(http)
        started = time.monotonic()
        answers: list[httpx.Response] = []

        async def ask() -> None:
            answers.append(await http.post(hub.url, json={"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                                                          "params": {"name": "w__look", "arguments": {"seconds": 60}}},
                                           headers=headers))

        async with anyio.create_task_group() as group:
            group.start_soon(ask)
            looking = hub.written.with_name(hub.written.name + ".look")
            with anyio.fail_after(30):
                while not (looking.exists() and looking.read_text()):
                    await anyio.sleep(0.02)
            hub.proc.popen.send_signal(signal.SIGTERM)
    answer = answers[0]
    assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
    assert "send it again" in answer.json()["error"]
    assert time.monotonic() - started < 30


async def test_open_streams_end_at_once_and_do_not_hold_the_drain(tmp_path: Path, procs: list) -> None:
    """A GET stream, a legacy SSE stream and a 2026-07-28 listen stream end at the stop, while a call
    in flight goes on to its answer; the hub then exits long before its 60 s drain."""
    hub = DrainHub(tmp_path, procs, drain_s=60)
    async with httpx.AsyncClient(timeout=90) as http, anyio.create_task_group() as group:
        http._streams_group = group  # type: ignore[attr-defined]
        headers = await hub.session(http)
        get_stream = await open_until_closed(http, "GET", hub.url, headers={**headers, "Accept": "text/event-stream"})
        sse_stream = await open_until_closed(http, "GET", f"{hub.base}/sse", headers={"Accept": "text/event-stream"})
        listen = await open_until_closed(http, "POST", hub.url, content=json.dumps(listen_body()), headers={
            **SSE_OR_JSON, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"})
        answers: list[httpx.Response] = []

        async def ask() -> None:
            answers.append(await http.post(hub.url, json={"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
                "name": "w__record", "arguments": {"text": "invoice-79", "seconds": 3}}}, headers=headers))

        group.start_soon(ask)
        with anyio.fail_after(30):
            while "invoice-79" not in hub.lines():
                await anyio.sleep(0.02)
        stopped = time.monotonic()
        hub.proc.popen.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            await get_stream.wait()
            await sse_stream.wait()
            await listen.wait()
    assert answers[0].status_code == 200 and "recorded:invoice-79" in answers[0].text, answers[0].text
    assert hub.exit_status() == 128 + signal.SIGTERM
    assert time.monotonic() - stopped < 40, "the streams held the drain"
