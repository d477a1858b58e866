"""Sealed session ids that were ended, so no replica continues them (`hub.cluster.sessions`).

A sealed id carries everything needed to continue its session, so without a record of its end a
DELETEd session was adopted again — even by the replica that had just ended it (outside review,
cluster round 7: after `DELETE` both replicas answered 200 for the id, which stayed usable for
`session_max_age_s`). Recorded here only ends that are the session's own, true on every replica: its
client DELETEd it, or the API key that opened it was revoked or expired. Never a replica's local view
of its copy — idle here, evicted here under this replica's caps, cut by this replica stopping — as
the client may be using the session on another replica right now (outside review, cluster round 18
#1: an idle copy on A, shared as an end, killed the session the client was using on B).

Where the record lives:
- in this replica's memory, always (until the id is too old to open anyway);
- in Redis too when `hub.cluster.redis_url` is set (`SET mcp-hub:ended:<sha256 of the id>` with the
  id's remaining lifetime), read only when a replica is about to adopt an id it does not hold — never
  per request. Redis unreachable then: the id is adopted (the owner check still applies) and a
  warning logged once per outage. An end Redis did not take is kept here and written again (`flush`,
  on every sweep of `hub.cluster.sessions`) once Redis answers (outside review, cluster round 18 #9:
  a DELETE during a Redis blip was never shared, and the other replicas served the session for 24 h).
- Redis restarted empty (no persistence, a failover to an empty replica): every replica writes back the
  ends it knows (made or learnt) before it takes notifications again (`restore_ends`, run by
  `hub.cluster.notify` on each reconnect; only when Redis's `run_id` changed). Outside review, cluster
  round 26 #7: a replica that never learnt an end (a console sign-out, a DELETE made on another one)
  accepted the session again after such a restart. Decided: restored from the replicas' memory rather
  than a new store; so an end survives unless Redis loses it *and* every replica that knew it restarted
  meanwhile — run Redis with persistence (docs/deploy.md) to close that too.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import OrderedDict
from typing import Any

import anyio

from hub.cluster.signing import id_digest

logger = logging.getLogger("hub.cluster")

KEY_PREFIX = "mcp-hub:ended:"
REDIS_TIMEOUT_S = 2.0
MAX_LOCAL = 100_000
"""Ended ids kept in memory (the oldest forgotten first; Redis, when set, keeps them all)."""
RESTORE_BATCH = 5_000
_SHARED: weakref.WeakSet[EndedSessions] = weakref.WeakSet()
"""Every `EndedSessions` of this process that shares ends through Redis (MCP sessions, console sessions)."""


async def restore_ends() -> None:
    """Write back the ends this process knows to a Redis that lost them (see the module's docstring)."""
    for ended in list(_SHARED):
        await ended.restore()


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
        self._unshared: OrderedDict[str, float] = OrderedDict()
        """Digest → expiry of ends Redis did not take yet (written again by `flush`)."""
        self._run_id: str | None = None
        """The `run_id` of the Redis server last seen by `restore` (another one: it restarted)."""
        if self._redis is not None:
            _SHARED.add(self)

    async def end(self, session_id: str, expires_at: float) -> None:
        """Record that `session_id` ended; it could be opened until `expires_at` (epoch seconds)."""
        self.remember(session_id, expires_at)
        await self.share(session_id, expires_at)

    def remember(self, session_id: str, expires_at: float) -> None:
        """The local half of `end`: at once, before anything awaits."""
        digest, now = id_digest(session_id), time.time()
        self._local[digest] = expires_at
        self._local.move_to_end(digest)
        while self._local and (len(self._local) > MAX_LOCAL or next(iter(self._local.values())) <= now):
            self._local.popitem(last=False)

    async def share(self, session_id: str, expires_at: float) -> None:
        """The shared half of `end` (Redis, when set); kept for `flush` if Redis does not take it."""
        if self._redis is None or expires_at <= time.time():
            return
        digest = id_digest(session_id)
        try:
            await self._write({digest: expires_at})
        except Exception as exc:  # noqa: BLE001 — the end holds here, and is written again once Redis answers
            self._keep_unshared(digest, expires_at)
            logger.warning("could not record an ended session in Redis (%s); other replicas may continue it "
                           "until Redis answers again, when it is recorded", type(exc).__name__)

    async def flush(self) -> None:
        """Write the ends Redis did not take (an outage) now that it may answer; kept if it still does not."""
        now = time.time()
        pending = {digest: expires_at for digest, expires_at in self._unshared.items() if expires_at > now}
        if self._redis is None or not pending:
            self._unshared.clear()
            return
        try:
            await self._write(pending)
        except Exception:  # noqa: BLE001 — tried again on the next sweep
            return
        for digest in pending:
            self._unshared.pop(digest, None)
        logger.info("recorded %d ended session(s) in Redis that an outage had kept from it", len(pending))

    async def restore(self) -> None:
        """When Redis is another server than last seen (restarted, failed over), write the ends this replica
        knows back to it; those it does not take are written by `flush`. Never raises."""
        if self._redis is None:
            return
        try:
            with anyio.fail_after(REDIS_TIMEOUT_S):
                run_id = (await self._redis.info("server")).get("run_id")
        except Exception:  # noqa: BLE001 — asked again on the next reconnect
            return
        if run_id == self._run_id:
            return
        self._run_id = run_id
        now = time.time()
        known = [(digest, expires_at) for digest, expires_at in self._local.items() if expires_at > now]
        for start in range(0, len(known), RESTORE_BATCH):
            batch = dict(known[start:start + RESTORE_BATCH])
            try:
                await self._write(batch)
            except Exception:  # noqa: BLE001 — kept for `flush`
                for digest, expires_at in batch.items():
                    self._keep_unshared(digest, expires_at)
        if known:
            logger.info("wrote %d ended session(s) this replica knows back to Redis (it restarted, or is "
                        "another server)", len(known))

    @property
    def unshared(self) -> int:
        """How many ends wait for Redis."""
        return len(self._unshared)

    async def _write(self, ends: dict[str, float]) -> None:
        now = time.time()
        with anyio.fail_after(REDIS_TIMEOUT_S):
            pipe = self._redis.pipeline(transaction=False)
            for digest, expires_at in ends.items():
                pipe.set(KEY_PREFIX + digest, b"1", ex=max(1, int(expires_at - now) + 1))
            await pipe.execute()

    def _keep_unshared(self, digest: str, expires_at: float) -> None:
        self._unshared[digest] = expires_at
        self._unshared.move_to_end(digest)
        while len(self._unshared) > MAX_LOCAL:
            self._unshared.popitem(last=False)

    async def ended(self, session_id: str) -> bool:
        """Whether `session_id` was ended here or (with Redis) on any replica."""
        digest = id_digest(session_id)
        expires_at = self._local.get(digest)
        if expires_at is not None and expires_at > time.time():
            return True
        if self._redis is None:
            return False
        try:
            with anyio.fail_after(REDIS_TIMEOUT_S):
                left = int(await self._redis.ttl(KEY_PREFIX + digest))  # -2: no such key, -1: no expiry
        except Exception as exc:  # noqa: BLE001 — fail open: the owner check still guards the id
            if not self._warned:
                logger.warning("could not read ended sessions from Redis (%s); continuing a session opened "
                               "elsewhere without that check until it is back", type(exc).__name__)
                self._warned = True
            return False
        self._warned = False
        if left == -2:
            return False
        # Learnt from Redis: kept here too, so a Redis restart without persistence does not revive it on
        # this replica (re-check 20 #2: a console sign-out read from Redis was accepted again after one).
        self.remember(session_id, time.time() + (left if left > 0 else 24 * 3600))
        return True

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
                    pipe.exists(KEY_PREFIX + id_digest(session_id))
                found = await pipe.execute()
        except Exception:  # noqa: BLE001 — looked at again on the next sweep
            return set()
        return {session_id for session_id, hit in zip(session_ids, found) if hit}

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
