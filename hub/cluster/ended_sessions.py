"""Sealed session ids that were ended, so no replica continues them (`hub.cluster.sessions`).

A sealed id carries everything needed to continue its session, so without a record of its end a
DELETEd or expired session was adopted again — even by the replica that had just ended it (outside
review, cluster round 7: after `DELETE` both replicas answered 200 for the id, which stayed usable
for `session_max_age_s`). Ended here: a session its client DELETEd, and one closed for idleness (its
idle expiry, or the session limits closing an idle one). Not ended: sessions cut by this replica
stopping — continuing those elsewhere is what portable ids are for.

Where the record lives:
- in this replica's memory, always (until the id is too old to open anyway);
- in Redis too when `hub.cluster.redis_url` is set (`SET mcp-hub:ended:<sha256 of the id>` with the
  id's remaining lifetime), read only when a replica is about to adopt an id it does not hold — never
  per request. Redis unreachable then: the id is adopted (the owner check still applies) and a
  warning logged once per outage; an end not written to Redis is kept locally and logged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any

import anyio

logger = logging.getLogger("hub.cluster")

KEY_PREFIX = "mcp-hub:ended:"
REDIS_TIMEOUT_S = 2.0
MAX_LOCAL = 100_000
"""Ended ids kept in memory (the oldest forgotten first; Redis, when set, keeps them all)."""


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class EndedSessions:
    """Which sealed ids were ended, here and (with Redis) on every replica."""

    def __init__(self, redis_url: str | None) -> None:
        self._local: OrderedDict[str, float] = OrderedDict()
        """Digest of an ended id → when the record may go (the id can no longer be opened then)."""
        self._redis: Any = None
        if redis_url:
            import redis.asyncio as redis

            self._redis = redis.from_url(redis_url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S)
        self._warned = False

    async def end(self, session_id: str, expires_at: float) -> None:
        """Record that `session_id` ended; it could be opened until `expires_at` (epoch seconds)."""
        self.remember(session_id, expires_at)
        await self.share(session_id, expires_at)

    def remember(self, session_id: str, expires_at: float) -> None:
        """The local half of `end`: at once, before anything awaits."""
        digest, now = _digest(session_id), time.time()
        self._local[digest] = expires_at
        self._local.move_to_end(digest)
        while self._local and (len(self._local) > MAX_LOCAL or next(iter(self._local.values())) <= now):
            self._local.popitem(last=False)

    async def share(self, session_id: str, expires_at: float) -> None:
        """The shared half of `end` (Redis, when set)."""
        digest, now = _digest(session_id), time.time()
        if self._redis is None or expires_at <= now:
            return
        try:
            with anyio.fail_after(REDIS_TIMEOUT_S):
                await self._redis.set(KEY_PREFIX + digest, b"1", ex=max(1, int(expires_at - now) + 1))
        except Exception as exc:  # noqa: BLE001 — the end holds here; another replica may still continue it
            logger.warning("could not record an ended session in Redis (%s); other replicas may continue it "
                           "until it expires", type(exc).__name__)

    async def ended(self, session_id: str) -> bool:
        """Whether `session_id` was ended here or (with Redis) on any replica."""
        digest = _digest(session_id)
        expires_at = self._local.get(digest)
        if expires_at is not None and expires_at > time.time():
            return True
        if self._redis is None:
            return False
        try:
            with anyio.fail_after(REDIS_TIMEOUT_S):
                found = bool(await self._redis.exists(KEY_PREFIX + digest))
        except Exception as exc:  # noqa: BLE001 — fail open: the owner check still guards the id
            if not self._warned:
                logger.warning("could not read ended sessions from Redis (%s); continuing a session opened "
                               "elsewhere without that check until it is back", type(exc).__name__)
                self._warned = True
            return False
        self._warned = False
        return found

    @property
    def shared(self) -> bool:
        """Whether ends are shared with the other replicas (Redis)."""
        return self._redis is not None

    async def ended_among(self, session_ids: list[str]) -> set[str]:
        """Those of `session_ids` another replica ended (one Redis round trip; nothing if unreachable)."""
        if self._redis is None or not session_ids:
            return set()
        try:
            with anyio.fail_after(REDIS_TIMEOUT_S):
                pipe = self._redis.pipeline(transaction=False)
                for session_id in session_ids:
                    pipe.exists(KEY_PREFIX + _digest(session_id))
                found = await pipe.execute()
        except Exception:  # noqa: BLE001 — looked at again on the next sweep
            return set()
        return {session_id for session_id, hit in zip(session_ids, found) if hit}

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
