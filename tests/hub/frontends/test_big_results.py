"""Big results through a real hub, on both upstream fronts (issue 18 item 6): they arrive whole and
byte for byte as the server wrote them (the long strings are relayed as the downstream's bytes,
`hub.lifted`), a result over the line cap is an error naming the cap, and a big answer the client
is slow to read holds up nobody else."""

from __future__ import annotations

import fcntl
import json
import termios
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import FIXTURES, PY, Proc, hub_command, write_config
from tests.fixtures.big_server import UNIT, big_line
from tests.hub.test_hub_faults import RawHub, wait_for

BIG = {"command": PY, "args": [str(FIXTURES / "big_server.py")]}
SIZE = 3_000_000  # a ~6 MB line: text and structuredContent
HANDSHAKE = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}


class UnreadHub(RawHub):
    """A `RawHub` whose output is read only while the test waits for an answer: between answers,
    what the hub writes stays in the pipe."""

    def _read(self) -> None:
        return

    def answer(self, match: Any, timeout: float = 60.0) -> Any:
        for index, message in enumerate(self.seen):
            if match(message):
                return self.seen.pop(index)
        assert self.popen.stdout is not None
        while line := self.popen.stdout.readline():
            message = json.loads(line)
            if match(message):
                return message
            self.seen.append(message)
        raise AssertionError("the hub closed its output")


def waiting_bytes(hub: RawHub) -> int:
    """How many bytes the hub has written that nobody has read yet (only a big answer fills a pipe)."""
    assert hub.popen.stdout is not None
    count = bytearray(4)
    fcntl.ioctl(hub.popen.stdout.fileno(), termios.FIONREAD, count)
    return int.from_bytes(count, "little")


def expected_text(size: int) -> str:
    return json.loads(big_line(1, size))["result"]["content"][0]["text"]


class RawHttp:
    """A handshake-era Streamable HTTP session on the hub, in raw bytes."""

    def __init__(self, url: str) -> None:
        self.url, self.client, self.ids = url, httpx.Client(timeout=120, trust_env=False), iter(range(1, 1000))
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        answer = self.client.post(url, headers=self.headers, json=self._request("initialize", HANDSHAKE))
        self.headers.update({"Mcp-Session-Id": answer.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"})
        self.client.post(url, headers=self.headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}

    def raw(self, method: str, params: dict[str, Any]) -> bytes:
        """The JSON-RPC answer as the bytes on the wire (an SSE event's data, or the JSON body)."""
        answer = self.client.post(self.url, headers=self.headers, json=self._request(method, params))
        answer.raise_for_status()
        if answer.headers["content-type"].startswith("text/event-stream"):
            return b"".join(line[5:].strip() for line in answer.content.splitlines() if line.startswith(b"data:"))
        return answer.content

    def tools(self) -> set[str]:
        return {tool["name"] for tool in json.loads(self.raw("tools/list", {}))["result"]["tools"]}

    def close(self) -> None:
        self.client.close()


def http_hub(procs: list[Proc], tmp_path: Path, env: dict[str, str] | None = None) -> RawHttp:
    proc = Proc(hub_command(write_config(tmp_path, {"b": BIG, "c": BIG}), "--transport", "http", "--port", "0"), env)
    procs.append(proc)
    session = RawHttp(proc.wait_for_line(r"mcp-hub listening on (\S+)").group(1))
    wait_for(lambda: {"b__big", "c__echo"} <= session.tools(), what="the big server's tools")
    return session


def assert_relayed_as_written(raw: bytes, size: int) -> None:
    """The answer holds the server's own spelling of the text (escapes as written) and parses to it."""
    written = UNIT * (size // len(UNIT))
    assert raw.count(written) == 2, "text and structuredContent go out as the bytes the server wrote"
    result = json.loads(raw)["result"]
    assert result["content"] == [{"type": "text", "text": expected_text(size)}]
    assert result["structuredContent"] == {"result": expected_text(size)} and result["isError"] is False


def test_a_big_result_over_stdio_is_relayed_byte_for_byte(tmp_path: Path) -> None:
    hub = RawHub(write_config(tmp_path, {"b": BIG}))
    try:
        hub.start({"b__big"})
        hub.request(1, "tools/call", {"name": "b__big", "arguments": {"size": SIZE}})
        raw = hub.lines.get(timeout=120)
        assert json.loads(raw)["id"] == 1
        assert_relayed_as_written(raw, SIZE)
        hub.request(2, "tools/call", {"name": "b__echo", "arguments": {"text": "after"}})
        assert hub.by_id(2)["result"]["structuredContent"] == {"result": "after"}
    finally:
        hub.close()


def test_a_big_result_through_the_sdk_path_of_the_stdio_front_is_relayed_byte_for_byte(tmp_path: Path) -> None:
    """A client that can answer sampling has its calls served by the SDK's server (`hub.relay`), not
    the fast path: its big result is spliced too, by the front's writer."""
    hub = RawHub(write_config(tmp_path, {"b": BIG}))
    try:
        hub.request(0, "initialize", {**HANDSHAKE, "capabilities": {"sampling": {}}})
        assert hub.by_id(0)["result"]["protocolVersion"] == "2025-11-25"
        hub.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        hub.request(1, "tools/call", {"name": "b__big", "arguments": {"size": SIZE}})
        while (raw := hub.lines.get(timeout=120)) and b'"id":1' not in raw[:200]:
            pass
        assert_relayed_as_written(raw, SIZE)
    finally:
        hub.close()


def test_a_big_result_over_http_is_relayed_byte_for_byte(procs: list[Proc], tmp_path: Path) -> None:
    session = http_hub(procs, tmp_path)
    try:
        assert_relayed_as_written(session.raw("tools/call", {"name": "b__big", "arguments": {"size": SIZE}}), SIZE)
        after = json.loads(session.raw("tools/call", {"name": "b__echo", "arguments": {"text": "after"}}))
        assert after["result"]["structuredContent"] == {"result": "after"}
    finally:
        session.close()


def test_a_result_over_the_line_cap_over_http_names_the_cap(procs: list[Proc], tmp_path: Path) -> None:
    session = http_hub(procs, tmp_path, {"MCP_HUB_MAX_LINE_BYTES": "2000000"})
    try:
        result = json.loads(session.raw("tools/call", {"name": "b__big", "arguments": {"size": SIZE}}))["result"]
        assert result["isError"] is True
        message = result["structuredContent"]["message"]
        assert "2000000 bytes" in message and "MCP_HUB_MAX_LINE_BYTES" in message
        fine = json.loads(session.raw("tools/call", {"name": "b__echo", "arguments": {"text": "fine"}}))
        assert fine["result"]["structuredContent"] == {"result": "fine"}
    finally:
        session.close()


def test_a_big_answer_the_client_has_not_read_yet_holds_up_no_other_call(tmp_path: Path) -> None:
    """While the hub is still writing a big answer the client is not reading (its pipe is full),
    the client's next call is relayed and done: the server it goes to creates a file."""
    hub = UnreadHub(write_config(tmp_path, {"b": BIG, "c": BIG}))
    try:
        hub.start({"b__big", "c__touch"})
        hub.request(1, "tools/call", {"name": "b__big", "arguments": {"size": 10_000_000}})
        assert hub.popen.stdout is not None
        wait_for(lambda: waiting_bytes(hub) >= 60_000, timeout=120, what="the big answer to fill the pipe")
        marker = tmp_path / "touched"
        hub.request(2, "tools/call", {"name": "c__touch", "arguments": {"path": str(marker)}})
        wait_for(marker.exists, timeout=30, what="the second call to reach its server while the big answer waits")
        first = hub.by_id(1)
        assert first["result"]["content"][0]["text"] == expected_text(10_000_000)
        assert hub.by_id(2)["result"]["structuredContent"] == {"result": "touched"}
    finally:
        hub.close()
