"""`hub.downstream.listing_repair` for HTTP downstreams: an httpx transport under the SDK's client.

It notes the listing requests the hub POSTs to a Streamable HTTP or SSE server, and rewrites the
answers to them — a JSON body (gzip or deflate too), or an event of an event stream (a POST's or the
legacy SSE stream) — as the stdio child's are rewritten: without the items the SDK cannot read. Everything else passes
through as it came: a JSON body untouched while no listing request waits, an event stream chunk by
chunk (events are only held together while a listing request waits, at connect and after a change).
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any
from collections.abc import AsyncIterator
import anyio
import httpx2

from hub.downstream.listing_repair import ListingAnswers
from hub.frontends.stdio.line_pipes import BIG_LINE_BYTES

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(rb"\r\n|\n|\r")
MAX_LISTING_REQUEST = 64 * 1024
"""A POST body longer than this is no listing request (those hold a method, an id, a cursor)."""
_MAX_HELD = 64 * 1024 * 1024
"""An event longer than this is passed on as it comes (the hub's line cap, as for a stdio child)."""


class ListingRepairTransport(httpx2.AsyncBaseTransport):
    """Wraps the transport the downstream's `httpx2.AsyncClient` would use (see the module)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, listings: ListingAnswers) -> None:
        self._inner = inner
        self.listings = listings

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        noted = self._note(request) if request.method == "POST" else None
        if noted is not None or request.method == "GET":
            # A listing's answer (on the POST, or on a legacy SSE GET stream) is asked for uncompressed,
            # so it can be read here; a server that compresses anyway gets its JSON body decoded below.
            request.headers["accept-encoding"] = "identity"
        response = await self._inner.handle_async_request(request)
        if noted is not None and response.status_code >= 300:
            self.listings.forget(noted)  # no answer will come for it
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "text/event-stream" and encoding == "identity":
            return _with_stream(response, _RepairedEvents(response.stream, self.listings))  # type: ignore[arg-type]
        if kind == "text/event-stream" and encoding in _WBITS:  # compressed although asked not to be
            inflated = _Inflated(response.stream, _WBITS[encoding])  # type: ignore[arg-type]
            headers = [(k, v) for k, v in response.headers.raw if k.lower() not in (b"content-length", b"content-encoding")]
            return httpx2.Response(response.status_code, headers=headers, stream=_RepairedEvents(inflated, self.listings),
                                   extensions=response.extensions)
        if kind != "application/json" or not self.listings.waiting or encoding not in _DECODERS:
            return response  # (an event stream compressed, or by a coding not known here, is left as it is)
        body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        await response.aclose()
        decoded = _DECODERS[encoding](body)
        repaired = await _repair(self.listings, decoded) if decoded is not None else None
        if repaired is None or repaired is decoded:
            return httpx2.Response(response.status_code, headers=response.headers.raw, content=body, extensions=response.extensions)
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in (b"content-length", b"content-encoding")]
        return httpx2.Response(response.status_code, headers=[*headers, (b"content-length", str(len(repaired)).encode())],
                               content=repaired, extensions=response.extensions)

    def _note(self, request: httpx2.Request) -> Any:
        """Note a listing request (or the handshake) the POST carries; its id, or None."""
        try:
            content = request.content
        except httpx2.RequestNotRead:
            return None
        if len(content) > MAX_LISTING_REQUEST or (b'/list"' not in content and b'"initialize"' not in content):
            return None  # not a listing request (nor the handshake): a call's arguments are never parsed here
        try:
            message = json.loads(content)
        except (ValueError, RecursionError):
            return None
        if not isinstance(message, dict):
            return None
        noted = self.listings.sent_raw(message.get("method"), message.get("id"), message.get("params"),
                                       request.headers.get("mcp-protocol-version"))
        return message.get("id") if noted else None

    async def aclose(self) -> None:
        await self._inner.aclose()


def _inflate(wbits: int) -> Any:
    def decode(body: bytes) -> bytes | None:
        """`body` decompressed, or None if it is not, or would pass the line cap (a bomb)."""
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, _MAX_HELD + 1)
        except zlib.error:
            return None
        return out if len(out) <= _MAX_HELD and inflater.eof else None
    return decode


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_DECODERS: dict[str, Any] = {"identity": lambda body: body, **{coding: _inflate(bits) for coding, bits in _WBITS.items()}}
"""Content codings a JSON body is read through (a repaired body goes on uncompressed)."""


class _Inflated(httpx2.AsyncByteStream):
    """A compressed event stream, decompressed as it arrives (then passed on uncompressed)."""

    def __init__(self, inner: httpx2.AsyncByteStream, wbits: int) -> None:
        self._inner = inner
        self._wbits = wbits

    async def __aiter__(self) -> AsyncIterator[bytes]:
        inflater = zlib.decompressobj(self._wbits)
        async for chunk in self._inner:
            while chunk:  # at most 1 MiB out per step: a small chunk may inflate to far more
                if out := inflater.decompress(chunk, 1 << 20):
                    yield out
                chunk = inflater.unconsumed_tail
        if rest := inflater.flush():
            yield rest

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _repair(listings: ListingAnswers, line: bytes) -> bytes:
    """`listings.repair(line)`, a big line's off the event loop."""
    if len(line) >= BIG_LINE_BYTES and listings.waiting:
        return await anyio.to_thread.run_sync(listings.repair, line)
    return listings.repair(line)


def _with_stream(response: httpx2.Response, stream: httpx2.AsyncByteStream) -> httpx2.Response:
    return httpx2.Response(response.status_code, headers=response.headers.raw, stream=stream, extensions=response.extensions)


class _RepairedEvents(httpx2.AsyncByteStream):
    """An event stream passed on chunk by chunk, its events held whole while a listing answer is due."""

    def __init__(self, inner: httpx2.AsyncByteStream, listings: ListingAnswers) -> None:
        self._inner = inner
        self._listings = listings

    async def __aiter__(self) -> AsyncIterator[bytes]:
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

    async def _event(self, event: bytes) -> bytes:
        lines = _LINE_END.split(event)
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return event
        payload = b"\n".join(data)
        repaired = await _repair(self._listings, payload)
        if repaired is payload:
            return event
        ending = found.group() if (found := _LINE_END.search(event)) else b"\n"  # the stream's own line ending
        return ending.join([*(line for line in lines if not line.startswith(b"data:")), b"data: " + repaired])

    async def aclose(self) -> None:
        await self._inner.aclose()
