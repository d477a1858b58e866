"""An HTTP downstream's event stream with its listing answers repaired (`hub.downstream.http_listing_repair`).

Events pass chunk by chunk, held whole only while a listing answer is due; under the legacy SSE client's
event limit every event is held whole and one past it is replaced by an error answer to its request.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio
import httpx2

from hub.downstream.listing_repair import ListingAnswers
from hub.frontends.stdio.line_errors import error_answer_at_ends
from hub.frontends.stdio.line_pipes import BIG_LINE_BYTES, MAX_LINE_BYTES

_EVENT_END = re.compile(rb"\r\n\r\n|\r\n\n|\n\n|\r\r|\n\r\n|\n\r|\r\n\r")
"""A line's end and an empty line: any two of CRLF, LF and CR (an end cut between two chunks may
leave a lone LF at the start of the next event: an empty line, which SSE readers skip)."""
_LINE_END = re.compile(rb"\r\n|\n|\r")
_MAX_HELD = MAX_LINE_BYTES
"""An event longer than this is passed on as it comes (the SDK's client reads events up to the line
cap, `hub.downstream.connection`, and then fails that call)."""
_DATA_FIELD = re.compile(rb"(?:^|\r\n|\n|\r)data: ?")
"""An event's first data field, where its message starts."""
_REQUEST_AT_END = re.compile(rb'[,{]\s*"method"\s*:\s*"(?:[^"\\]|\\.){0,256}"\s*'
                             rb'(?:,\s*"(?:id|jsonrpc)"\s*:\s*(?:"(?:[^"\\]|\\.){0,256}"|-?[0-9]{1,19}|null)\s*)*}\s*$')
"""A message that ends with its `method` (then perhaps its id): a request or notification, not an answer."""
_ID_WINDOW = 4096
"""How much of each end of an over-long answer is kept to read its id from."""


async def repair_line(listings: ListingAnswers, line: bytes) -> bytes:
    """`listings.repair(line)`, a big line's off the event loop."""
    if len(line) >= BIG_LINE_BYTES and listings.waiting:
        return await anyio.to_thread.run_sync(listings.repair, line)
    return listings.repair(line)


class RepairedEvents(httpx2.AsyncByteStream):
    """An event stream passed on chunk by chunk, its events held whole while a listing answer is due.
    With a `limit` (the legacy SSE client's), every event is held whole, and one past the limit is
    dropped, an error answer failing its request in its place (`_too_long`)."""

    def __init__(self, inner: httpx2.AsyncByteStream, listings: ListingAnswers, limit: int | None = None) -> None:
        self._inner = inner
        self._listings = listings
        self._limit = limit

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._bounded() if self._limit is not None else self._repaired()

    async def _repaired(self) -> AsyncIterator[bytes]:
        held = bytearray()
        scanned = 0  # bytes at the start of `held` known to hold no event's end
        async for chunk in self._inner:
            if not held and not self._listings.waiting:
                yield chunk
                continue
            held += chunk
            start = 0
            while (end := _EVENT_END.search(held, max(start, scanned))) is not None:
                yield await self._event(bytes(held[start:end.start()])) + end.group()
                start = end.end()
            del held[:start]
            scanned = max(0, len(held) - 3)  # an end (up to 4 bytes) may straddle two chunks
            if len(held) > _MAX_HELD or (held and not self._listings.waiting):
                yield bytes(held)  # a partial event with nothing left to repair (or too long to hold)
                held.clear()
                scanned = 0
        if held:
            yield bytes(held)

    async def _bounded(self) -> AsyncIterator[bytes]:
        """Every event held whole; one past the limit is dropped as it comes (its first and last
        bytes kept, to read its id from), and an error answer goes in its place once it has ended."""
        limit = self._limit
        assert limit is not None
        held = bytearray()
        scanned = 0
        head: bytes | None = None  # the start of an event past the limit, while its rest is dropped
        tail = b""  # the last bytes dropped of it
        async for chunk in self._inner:
            held += chunk
            start = 0
            while (end := _EVENT_END.search(held, max(start, scanned))) is not None:
                event = bytes(held[start:end.start()])
                if head is not None:
                    yield self._too_long(head, (tail + event)[-_ID_WINDOW:])
                    head, tail = None, b""
                elif len(event) > limit:
                    yield self._too_long(event[:2 * _ID_WINDOW], event[-_ID_WINDOW:])
                else:
                    yield (await self._event(event) if self._listings.waiting else event) + end.group()
                start = end.end()
            del held[:start]
            scanned = max(0, len(held) - 3)  # an end (up to 4 bytes) may straddle two chunks
            if head is None and len(held) > limit:
                head = bytes(held[:2 * _ID_WINDOW])
            if head is not None and len(held) > 3:  # drop what came, but the bytes an end may start in
                tail = (tail + bytes(held[:-3]))[-_ID_WINDOW:]
                del held[:-3]
                scanned = 0
        if held and head is None:
            yield bytes(held)

    def _too_long(self, head: bytes, tail: bytes) -> bytes:
        """An event in place of one past the limit: the error answer failing the request it answers
        (its id read from the start of its data, or as the last member of its message), or nothing
        when it answers none (a server's request or notification)."""
        found = _DATA_FIELD.search(head)
        why = (f"its answer is one event of its legacy SSE stream longer than the {self._limit} bytes the SDK's SSE "
               "client reads; ask for less (a page, a range), or serve it over Streamable HTTP, where answers "
               "up to the hub's line cap pass")
        lines = _LINE_END.split(tail)
        while len(lines) > 1 and not lines[-1].startswith(b"data:"):
            lines.pop()  # fields after the data (`id:`, `retry:`): the message ends with its last data line
        last = lines[-1].removeprefix(b"data:")
        if found is None or _REQUEST_AT_END.search(last):
            return b""  # no message, or a server's request written with its method last: nothing to fail
        answer = error_answer_at_ends(head[found.end():], last, why)
        return b"event: message\r\ndata: " + answer + b"\r\n\r\n" if answer is not None else b""

    async def _event(self, whole: bytes) -> bytes:
        event = whole.lstrip(b"\r\n")  # the rest of an end cut between two chunks (`_EVENT_END`)
        lead = whole[:len(whole) - len(event)]
        lines = _LINE_END.split(event)
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return whole
        payload = b"\n".join(data)
        repaired = await repair_line(self._listings, payload)
        if repaired is payload:
            return whole
        ending = found.group() if (found := _LINE_END.search(event)) else b"\n"  # the stream's own line ending
        return lead + ending.join([*(line for line in lines if not line.startswith(b"data:")), b"data: " + repaired])

    async def aclose(self) -> None:
        await self._inner.aclose()
