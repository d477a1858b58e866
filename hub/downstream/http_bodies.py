"""Bounded bodies of an HTTP downstream's answers (`hub.downstream.http_listing_repair` uses them): a
compressed body inflated as it arrives, at most 1 MiB a step, and any body failing its read once past
the line cap, as a stdio line over the cap does (httpx would inflate a small gzip bomb whole)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from hub.frontends.stdio.line_errors import overlong_message
from hub.frontends.stdio.line_pipes import MAX_LINE_BYTES

WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
"""Content codings decompressed here (`deflate` also raw, without its zlib header, as httpx reads it)."""


class Refused(httpx2.DecodingError):
    """A compressed body the hub will not pass on; `why` says so to the caller."""

    def __init__(self, why: str, *, request: httpx2.Request) -> None:
        super().__init__(why, request=request)
        self.why = why


class Inflated(httpx2.AsyncByteStream):
    """A compressed body, decompressed as it arrives, at most 1 MiB out per step; past `cap` bytes
    in all (None: no cap, an event stream) the read fails, as a body over the line cap should."""

    def __init__(self, inner: httpx2.AsyncByteStream, encoding: str, cap: int | None, request: httpx2.Request) -> None:
        self._inner = inner
        self._encoding = encoding
        self._cap = cap
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        inflater: Any = None
        total = 0
        async for chunk in self._inner:
            if inflater is None:
                inflater = self._inflater(chunk)
            while chunk:
                try:
                    out = inflater.decompress(chunk, 1 << 20)
                except zlib.error as exc:
                    raise Refused(f"the server's answer could not be read: its {self._encoding} body is corrupt ({exc})",
                                   request=self._request) from exc
                total += len(out)
                if self._cap is not None and total > self._cap:
                    raise Refused(overlong_message(f"its answer ({self._encoding}, inflated)", self._cap), request=self._request)
                if out:
                    yield out
                chunk = inflater.unconsumed_tail
        if inflater is not None and (rest := inflater.flush()):
            yield rest

    def _inflater(self, first: bytes) -> Any:
        """A decompressor for this body; a `deflate` one without the zlib header is raw deflate."""
        inflater = zlib.decompressobj(WBITS[self._encoding])
        if self._encoding == "deflate":
            try:
                zlib.decompressobj(WBITS["deflate"]).decompress(first[:64])
            except zlib.error:
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        return inflater

    async def aclose(self) -> None:
        await self._inner.aclose()


class Capped(httpx2.AsyncByteStream):
    """An uncompressed body passed on as it arrives; past the line cap in all, the read fails."""

    def __init__(self, inner: httpx2.AsyncByteStream, request: httpx2.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self._inner:
            total += len(chunk)
            if total > MAX_LINE_BYTES:
                raise Refused(overlong_message("its answer", MAX_LINE_BYTES), request=self._request)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
