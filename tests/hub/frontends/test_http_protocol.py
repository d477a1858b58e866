"""The hub's HTTP/1.1 protocol (`hub.frontends.http.http_protocol`) under uvicorn, with an app of the
test's own: deadlines that depend on when the app reads, which the hub's routes do at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import uvicorn

from hub.frontends.http.http_protocol import hub_http_protocol

DEADLINE_S = 1.0
APP_WAITS_S = 0.8
"""The app reads the body this long after the head: uvicorn sends `100 Continue` only then."""


async def slow_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await anyio.sleep(APP_WAITS_S)  # e.g. a remote key lookup before the body is read
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(slow_reader, http=hub_http_protocol(DEADLINE_S), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def test_after_100_continue_the_body_gets_its_whole_deadline(port: int) -> None:
    """The client waits for `100 Continue` (the app takes 0.8 s to ask), then needs 0.5 s for its body:
    1.3 s after the head, but within the 1 s the body has once the 100 went out (review round 2, N2)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        received = sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 100"), received[:200]
        time.sleep(0.5)  # the client's own pace, not a wait for the hub
        sock.sendall(b"ping")
        while not received.endswith(b"ping"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    assert b"HTTP/1.1 200" in received and received.endswith(b"ping"), received[:300]


def test_without_the_body_after_100_continue_it_is_answered_408(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        started, received = time.monotonic(), b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 100") and b"HTTP/1.1 408" in received, received[:300]
    assert time.monotonic() - started < 10


class Recorder:
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.mark.anyio
async def test_a_responses_head_and_body_go_out_in_one_write() -> None:
    """uvicorn's h11 protocol writes a head and a body apart (two sends, two packets, a client woken
    twice); the hub's transport pairs a write with the next one made in the same turn of the loop."""
    import asyncio

    from hub.frontends.http.http_protocol import PAIRED_MAX, _PairedWrites

    loop, raw = asyncio.get_running_loop(), Recorder()
    paired = _PairedWrites(raw, loop)  # type: ignore[arg-type]
    paired.write(b"HTTP/1.1 200 OK\r\n\r\n")
    paired.write(b"")  # h11's end of a sized body: nothing
    paired.write(b"{}")
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    paired.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # alone: out at the end of this turn
    assert raw.writes[1:] == [] and paired.get_write_buffer_size() > 0
    await anyio.sleep(0)
    assert raw.writes[1:] == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    big = b"x" * (PAIRED_MAX + 1)
    paired.write(b"head")
    paired.write(big)  # not copied into one: the head first, then the big piece as it is
    assert raw.writes[2:] == [b"head", big]
    paired.write(b"last words")
    paired.close()  # what is held goes out before the close
    assert raw.writes[-1] == b"last words" and raw.closed
    await anyio.sleep(0)
    assert raw.writes[-1] == b"last words" and len(raw.writes) == 5, "nothing written twice"
