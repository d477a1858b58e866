"""`JsonChannel` on its own: what it sends, which lines it takes, and how each way a call can end
reaches the caller — with the child played by the test."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from hub.downstream.json_channel import JsonChannel

pytestmark = pytest.mark.anyio


def stamp(data: dict[str, Any], opts: dict[str, Any]) -> None:
    data["params"].setdefault("_meta", {})["era"] = "test"


class Child:
    """Collects what the channel writes; answers are fed back through `accept`."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.written = anyio.Event()

    async def send(self, data: bytes) -> None:
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        self.lines.append(json.loads(data))
        self.written.set()

    async def next_request(self) -> dict[str, Any]:
        with anyio.fail_after(2):
            while not self.lines or "id" not in self.lines[-1]:
                self.written = anyio.Event()
                await self.written.wait()
        return self.lines[-1]


async def call_noting_failure(channel: JsonChannel, failures: list[MCPError]) -> None:
    try:
        await channel.request("tools/call", {"name": "t"}, stamp)
    except MCPError as exc:
        failures.append(exc)


async def test_answer_progress_and_foreign_lines() -> None:
    child, channel = Child(), JsonChannel()
    channel.bind(child.send)
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    async with anyio.create_task_group() as tg:
        outcome: dict[str, Any] = {}

        async def call() -> None:
            outcome["result"] = await channel.request("tools/call", {"name": "t", "arguments": {}}, stamp, progress)

        tg.start_soon(call)
        request = await child.next_request()
        ident = request["id"]
        assert ident.startswith("hub-") and request["method"] == "tools/call"
        assert request["params"]["_meta"] == {"progressToken": ident, "era": "test"}
        # Lines that are not ours are left for the SDK, even when they mention our id.
        assert not await channel.accept(b'{"jsonrpc":"2.0","id":3,"result":{"text":"\\"hub-1"}}')
        assert not await channel.accept(b"not json \"hub-")
        assert not await channel.accept(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress",
                                                    "params": {"progressToken": [ident], "progress": 1}}).encode())
        assert await channel.accept(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress",
                                                "params": {"progressToken": ident, "progress": 1, "total": 2, "message": "half"}}).encode())
        assert await channel.accept(json.dumps({"jsonrpc": "2.0", "id": ident, "result": {"content": []}}).encode())
    assert outcome["result"] == {"content": []}
    assert seen == [(1.0, 2.0, "half")]
    # A late answer to a call nobody waits for any more is swallowed, not handed to the SDK.
    assert await channel.accept(json.dumps({"jsonrpc": "2.0", "id": ident, "result": {}}).encode())


async def test_error_answer_close_and_cancel() -> None:
    child, channel = Child(), JsonChannel()
    channel.bind(child.send)
    failures: list[MCPError] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(call_noting_failure, channel, failures)
        ident = (await child.next_request())["id"]
        await channel.accept(json.dumps({"jsonrpc": "2.0", "id": ident, "error": {"code": -32602, "message": "Unknown tool: t"}}).encode())
    assert failures[0].code == -32602 and failures[0].error.message == "Unknown tool: t"

    # Abandoning a call (a deadline here) tells the child, stamped like any message.
    with anyio.move_on_after(0.2):
        await channel.request("tools/call", {"name": "slow"}, stamp)
    cancel = child.lines[-1]
    assert cancel["method"] == "notifications/cancelled" and cancel["params"]["requestId"] == child.lines[-2]["id"]
    assert cancel["params"]["_meta"] == {"era": "test"}

    # The child going away fails the calls waiting, and later ones at once.
    closed: list[MCPError] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(call_noting_failure, channel, closed)
        await child.next_request()
        channel.close()
    assert closed[0].code == CONNECTION_CLOSED
    with pytest.raises(MCPError) as caught:
        await channel.request("tools/call", {"name": "t"}, stamp)
    assert caught.value.code == CONNECTION_CLOSED


async def test_send_now_answers_in_the_callback_or_hands_over_to_a_waiter() -> None:
    written: list[dict[str, Any]] = []
    backed_up = False

    def write_now(data: bytes) -> bool:
        if backed_up:
            return False
        written.append(json.loads(data))
        return True

    async def progress(value: float, total: float | None, message: str | None) -> None:
        pass

    child, channel = Child(), JsonChannel()
    channel.bind(child.send, write_now)
    heard: list[dict[str, Any] | None] = []
    pending = channel.send_now("tools/call", {"name": "t"}, stamp, progress, heard.append)
    assert pending is not None and written[-1]["id"] == pending.ident
    assert written[-1]["params"]["_meta"] == {"progressToken": pending.ident, "era": "test"}
    # The answer reaches `on_answer` in the very call that reads it, with no task in between.
    assert channel.take_answer(json.dumps({"jsonrpc": "2.0", "id": pending.ident, "result": {"content": []}}).encode())
    assert heard == [{"jsonrpc": "2.0", "id": pending.ident, "result": {"content": []}}]
    channel.forget(pending)
    assert not channel._waiting  # noqa: SLF001

    # Handed over instead: `result` waits for the answer as `request` would, and abandoning it tells the child.
    second = channel.send_now("tools/call", {"name": "t"}, stamp, progress, heard.append)
    assert second is not None
    with anyio.move_on_after(0.1):
        await channel.result(second)
    assert child.lines[-1]["method"] == "notifications/cancelled" and child.lines[-1]["params"]["requestId"] == second.ident
    assert not channel._waiting  # noqa: SLF001

    # A backed-up pipe: nothing is sent and nothing is tracked, so the caller takes the waiting path.
    backed_up = True
    assert channel.send_now("tools/call", {"name": "t"}, stamp, progress, heard.append) is None
    assert not channel._waiting  # noqa: SLF001

    # Closing the connection tells each `on_answer` with None.
    backed_up = False
    third = channel.send_now("tools/call", {"name": "t"}, stamp, progress, heard.append)
    assert third is not None
    channel.close()
    assert heard[-1] is None
    assert channel.send_now("tools/call", {"name": "t"}, stamp, progress, heard.append) is None
