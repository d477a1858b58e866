"""Long-lived HTTP streams end when the credential that opened them stops being valid.

A request is authenticated when it arrives, but a Streamable HTTP session's GET stream, a legacy SSE
stream and a 2026-07-28 `subscriptions/listen` stream stay open for as long as the client keeps them:
after `mcp-hub keys revoke`, or once a key or a JWT expired, they went on carrying resource updates,
list changes and log lines, and the session they kept alive held its slots and its downstream sessions
(outside review admin17 #1). Each such stream is held here with the token that opened it
(`hold`); every `interval_s` (`hub.store.key_cache_s`, at least 1 s: how long a revocation already takes
to reach `/mcp` on another replica) the watch ends those whose token expired or whose API key is no
longer active. A key store that does not answer ends nothing (the next request of that client is
refused 503 anyway); JWTs have no revocation to look up, only their expiry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import count
from typing import Any

import anyio
from mcp.server.auth.provider import AccessToken

from hub.auth.keys import KeyStore
from hub.store import StoreUnavailable

logger = logging.getLogger("hub.auth")


@dataclass(frozen=True)
class _Held:
    key_id: str | None
    expires_at: float | None
    end: Callable[[], None]
    what: str
    holder: tuple[str, ...]
    """Who the credential speaks for: a later token of theirs (a refreshed JWT) extends `expires_at`."""


def _holder(token: AccessToken) -> tuple[str, ...]:
    claims = token.claims or {}
    return (str(claims.get("mcp_hub_kind", "")), str(claims.get("key_id") or claims.get("iss") or ""),
            token.subject or token.client_id)


class CredentialWatch:
    """Streams held with the token that opened them; `run` ends those whose token is no longer valid."""

    def __init__(self, keys: KeyStore | None, interval_s: float) -> None:
        self._keys = keys
        self.interval_s = max(1.0, interval_s)
        self._held: dict[int, _Held] = {}
        self._serial = count()
        self._latest: dict[tuple[str, ...], float] = {}
        """Per holder with streams held: the latest expiry of a token of theirs seen on any request."""

    def seen(self, token: AccessToken) -> None:
        """A request authenticated with `token` (every one, `HubTokenVerifier.on_verified`): a client that
        refreshed its JWT keeps the streams its earlier token opened (re-check 17: its session was ended
        at the first token's expiry, refreshed or not)."""
        if token.expires_at and (holder := _holder(token)) in self._latest:
            self._latest[holder] = max(self._latest[holder], float(token.expires_at))

    def hold(self, token: AccessToken | None, end: Callable[[], None], what: str) -> Callable[[], None]:
        """Watch a stream opened with `token` (None: auth off, nothing to watch); `end()` ends it. Returns
        the release to call when the stream ends by itself."""
        claims = (token.claims or {}) if token is not None else {}
        key_id = claims.get("key_id") if claims.get("mcp_hub_kind") == "api_key" else None
        expires_at = float(token.expires_at) if token is not None and token.expires_at else None
        if key_id is None and expires_at is None:
            return _nothing
        serial = next(self._serial)
        holder = _holder(token) if token is not None else ()
        self._held[serial] = _Held(str(key_id) if key_id is not None else None, expires_at, end, what, holder)
        if expires_at is not None:
            self._latest[holder] = max(self._latest.get(holder, 0.0), expires_at)
        return lambda: self._held.pop(serial, None) and None

    async def run(self) -> None:
        """Check every held stream each `interval_s`, for as long as the hub serves HTTP."""
        while True:
            await anyio.sleep(self.interval_s)
            await self.sweep()

    async def sweep(self) -> None:
        """End now every held stream whose token expired or whose key was revoked (or expired)."""
        now = time.time()
        verdicts: dict[str, bool] = {}
        for serial, held in list(self._held.items()):
            if held.expires_at is not None and self._latest.get(held.holder, held.expires_at) <= now:
                self._end(serial, held, "its credential expired (and no later one of its holder was seen)")
                continue
            if held.key_id is None or self._keys is None:
                continue
            if held.key_id not in verdicts:
                try:
                    verdicts[held.key_id] = await self._keys.active(held.key_id)
                except StoreUnavailable:
                    continue  # not known now: checked again next time
            if not verdicts[held.key_id]:
                self._end(serial, held, "its API key was revoked")
        holders = {held.holder for held in self._held.values()}
        for gone in [holder for holder in self._latest if holder not in holders]:
            del self._latest[gone]  # no stream of theirs left: forgotten

    def _end(self, serial: int, held: _Held, why: str) -> None:
        if self._held.pop(serial, None) is None:
            return
        logger.info("ending a %s: %s", held.what, why)
        try:
            held.end()
        except Exception as exc:  # noqa: BLE001 — one stream failing to end must not stop the watch
            logger.warning("could not end a %s (%s)", held.what, type(exc).__name__)

    def __len__(self) -> int:
        return len(self._held)

    def lifespan(self, inner: Any) -> Any:
        """A Starlette lifespan running `inner` (may be None) with this watch's `run` beside it."""

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            async with anyio.create_task_group() as group:
                group.start_soon(self.run)
                if inner is None:
                    yield
                else:
                    async with inner(app):
                        yield
                group.cancel_scope.cancel()

        return lifespan


def _nothing() -> None:
    """The release of a stream nothing watches."""
