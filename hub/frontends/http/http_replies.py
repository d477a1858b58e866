"""How the HTTP front's `tools/call` fast path (`hub.frontends.http.http_calls`) writes its answers,
and keeps a session busy while one is being worked out."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import anyio
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from starlette.types import Send

from hub.frontends.stdio.json_lines import encode_off_loop, is_big, json_line

JSON = b"application/json"
SSE = b"text/event-stream"


class Busy:
    """While a call runs, its session is not idle: the transport's own accounting for the requests it serves."""

    __slots__ = ("_transport",)

    def __init__(self, transport: StreamableHTTPServerTransport) -> None:
        self._transport = transport

    def __enter__(self) -> None:
        transport = self._transport
        if transport.idle_scope is not None and transport._idle_timeout is not None:  # noqa: SLF001
            transport._requests_in_flight += 1  # noqa: SLF001
            transport.idle_scope.deadline = math.inf

    def __exit__(self, *_: object) -> None:
        transport = self._transport
        timeout = transport._idle_timeout  # noqa: SLF001
        if transport.idle_scope is not None and timeout is not None:
            transport._requests_in_flight -= 1  # noqa: SLF001
            if not transport._requests_in_flight:  # noqa: SLF001
                transport.idle_scope.deadline = anyio.current_time() + timeout


async def encoded(reply: dict[str, Any]) -> bytes | list[bytes | memoryview]:
    result = reply.get("result")
    return await encode_off_loop(reply) if isinstance(result, dict) and is_big(result) else json_line(reply)


def status_of(reply: dict[str, Any]) -> int:
    error = reply.get("error")
    return ERROR_CODE_HTTP_STATUS.get(error["code"], 200) if isinstance(error, dict) else 200


async def send_json(send: Send, data: bytes | list[bytes | memoryview], headers: list[tuple[bytes, bytes]],
                     status: int = 200) -> None:
    pieces = [data] if isinstance(data, bytes) else data
    length = sum(len(piece) for piece in pieces)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", JSON), (b"content-length", str(length).encode()), *headers]})
    for number, piece in enumerate(pieces):
        await send({"type": "http.response.body", "body": bytes(piece), "more_body": number < len(pieces) - 1})


async def keep_alive_until(answer: asyncio.Future[Any], send: Send, every_s: float) -> bool:
    """Wait for `answer`. If it takes longer than `every_s` (`hub.http.keepalive_s`), start an event
    stream and send a keep-alive comment every `every_s` until it comes (so a proxy's idle timeout
    does not cut the request); True when the stream was started (finish it with `send_last_event`)."""
    if await settled_within(answer, every_s):
        return False
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", SSE), (b"cache-control", b"no-cache, no-transform"), (b"connection", b"keep-alive"),
                            (b"x-accel-buffering", b"no")]})
    while True:  # a comment at once, then one every `every_s`
        await send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
        if await settled_within(answer, every_s):
            return True


async def settled_within(answer: asyncio.Future[Any], seconds: float) -> bool:
    """Whether `answer` is settled within `seconds`; waiting never cancels it. (`asyncio.wait` does
    the same with a set, a second future per waiter and a callback each: twice the cost per call.)"""
    if answer.done():
        return True
    gate = asyncio.get_running_loop().create_future()

    def wake(_: object = None) -> None:
        if not gate.done():
            gate.set_result(None)

    answer.add_done_callback(wake)
    timer = gate.get_loop().call_later(seconds, wake)
    try:
        await gate
    finally:
        timer.cancel()
        answer.remove_done_callback(wake)
    return answer.done()


async def send_last_event(send: Send, data: bytes | list[bytes | memoryview] | None) -> None:
    """End an event stream with the answer `data` (`encoded`: one JSON line, as pieces for a big
    result whose long strings are the downstream's bytes) as its one `message` event; nothing for a
    cancelled call."""
    if data is None:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    pieces = [data] if isinstance(data, bytes) else list(data)
    pieces[-1] = bytes(pieces[-1]).rstrip(b"\n")  # a JSON line holds no other newline (they are escaped)
    pieces = [b"event: message\r\ndata: ", *pieces, b"\r\n\r\n"]
    for number, piece in enumerate(pieces):
        await send({"type": "http.response.body", "body": bytes(piece), "more_body": number < len(pieces) - 1})
