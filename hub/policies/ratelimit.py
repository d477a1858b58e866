"""Rate limits: token buckets per principal — overall, per tool pattern, per downstream server.

Buckets live in memory by default; with `rate_limit.backend = "redis"` they live in Redis (one
atomic Lua script per check, Redis's own clock) so several hub replicas share one limit. A call
over the limit fails with `rate_limited` and `retry_after_s` before anything is forwarded.

A bucket belongs to one identity: the auth kind is part of its key (`api_key:alice` and a JWT
whose `sub` is `alice` never share one; a JWT's issuer is part of it too). Calls the hub refuses
before routing (unknown or hidden tool) still take a token from the caller's overall bucket and
from any tool rule their name matches, so probing names costs the same as calling. A forwarded
`resources/read`, `prompts/get` or `completion/complete` takes a token from the caller's overall
bucket and the server's bucket, never from a tool rule: it names no tool (`check_request`).

When Redis cannot be reached, `rate_limit.fail_mode` decides (`hub.policies.limiter_store`): `closed`
refuses every limited call, `closed_for_writes` (the default) refuses calls to tools not marked
read-only and limits read-only ones with this replica's own buckets, started empty, and `open`
lets calls through unlimited. The outage is logged once when it starts and once when it ends,
and shows in `/healthz`.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from typing import Any, Protocol
from urllib.parse import quote

from hub.auth.principal import Principal
from hub.errors import HubToolError
from hub.policies.limiter_store import StoreHealth
from hub.policies.base import GRANTED, MUST_WAIT, Admission, Outcome, Permit, Phase, ToolCall
from hub.settings import BucketSettings, RateLimitSettings

logger = logging.getLogger("hub.ratelimit")


class Buckets(Protocol):
    async def take(self, key: str, bucket: BucketSettings) -> float:
        """Take one token; return 0 if granted, else the seconds until one is available."""
        ...


class MemoryBuckets:
    """Buckets in this process. `start_empty`: a new bucket holds no tokens (only the refill rate
    applies), for standing in when the shared store is down."""

    def __init__(self, start_empty: bool = False) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._start_empty = start_empty

    async def take(self, key: str, bucket: BucketSettings) -> float:
        return self.take_now(key, bucket)

    def take_now(self, key: str, bucket: BucketSettings) -> float:
        """`take`, synchronously: in-memory buckets never wait."""
        now = time.monotonic()
        tokens, updated = self._state.get(key, (0.0 if self._start_empty else float(bucket.burst), now))
        tokens = min(float(bucket.burst), tokens + (now - updated) * bucket.per_second)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1 - tokens) / bucket.per_second

    def clear(self) -> None:
        self._state.clear()


_TAKE_SCRIPT = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisBuckets:
    """Buckets shared through Redis; the key prefix keeps several hubs' limits apart if wanted."""

    def __init__(self, url: str, prefix: str = "mcp-hub:rl:") -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # One immediate retry (a pooled connection may be stale after Redis restarted); no backoff:
        # while Redis is down, `fail_mode` answers instead of callers waiting on retries.
        self._redis = redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1))
        self._script = self._redis.register_script(_TAKE_SCRIPT)
        self._prefix = prefix

    async def take(self, key: str, bucket: BucketSettings) -> float:
        result = await self._script(keys=[self._prefix + key], args=[bucket.burst, bucket.per_second])
        return float(result)

    async def ping(self) -> None:
        await self._redis.ping()

    async def aclose(self) -> None:
        await self._redis.aclose()


def bucket_identity(principal: Principal) -> str:
    """Whose bucket: `<kind>:<name>`, and for a JWT `jwt:<issuer>:<sub>` (parts %-quoted, so no
    name can spell another identity)."""
    if principal.kind == "jwt":
        return f"jwt:{quote(principal.credential, safe='')}:{quote(principal.name, safe='')}"
    return f"{quote(principal.kind, safe='')}:{quote(principal.name, safe='')}"


def call_identity(attributes: dict[str, Any]) -> str:
    """The bucket identity of a call's caller (`attributes["caller"]`, else its principal name)."""
    caller = attributes.get("caller")
    if isinstance(caller, Principal):
        return bucket_identity(caller)
    return bucket_identity(Principal(str(attributes.get("principal", "local")), ()))


class RateLimitPolicy:
    """Per call: checks every bucket that applies (principal overall, tool rules, server). In-memory
    buckets admit synchronously, so a rate limit keeps calls on the express driver."""

    phase: Phase = "call"

    def __init__(self, settings: RateLimitSettings, buckets: Buckets) -> None:
        self.settings = settings
        self.buckets = buckets
        self.rejections = 0
        shared = isinstance(buckets, RedisBuckets)
        self.store = StoreHealth(settings.fail_mode) if shared else None
        """The shared store's health (None: buckets are in memory and cannot be unreachable)."""
        self._stand_in = MemoryBuckets(start_empty=True)

    @property
    def configured(self) -> bool:
        """Whether any limit applies to anything."""
        return self.settings.per_principal is not None or bool(self.settings.rules) or bool(self.settings.servers)

    def applicable(self, identity: str, tool: str, server: str | None) -> list[tuple[str, BucketSettings]]:
        out: list[tuple[str, BucketSettings]] = []
        if self.settings.per_principal is not None:
            out.append((f"p:{identity}", self.settings.per_principal))
        for index, rule in enumerate(self.settings.rules):
            if fnmatch.fnmatchcase(tool, rule.tools):
                out.append((f"r{index}:{identity}", rule))
        server_bucket = self.settings.servers.get(server) if server is not None else None
        if server_bucket is not None:
            out.append((f"s:{quote(server, safe='')}:{identity}", server_bucket))
        return out

    def health(self) -> dict[str, Any] | None:
        """For `/healthz`: the shared store's state, or None with in-memory buckets."""
        return self.store.report() if self.store is not None else None

    async def probe(self) -> None:
        """Ask the shared store once (at start): one it cannot reach — down, a wrong password — shows in
        `/healthz` and the log at once, not on the first call (outside review, cluster rounds 12 and 14)."""
        if self.store is None or not isinstance(self.buckets, RedisBuckets):
            return
        try:
            await self.buckets.ping()
        except Exception as exc:  # noqa: BLE001 — recorded; calls apply `fail_mode` meanwhile
            self.store.failed(exc)
        else:
            self.store.succeeded()

    def admit(self, call: ToolCall) -> Admission:
        """In-memory buckets decide at once; shared (Redis) buckets must be asked: `MUST_WAIT`."""
        buckets = self.buckets
        if self.store is not None or not isinstance(buckets, MemoryBuckets):
            return MUST_WAIT
        identity, route = call_identity(call.attributes), call.route
        for key, bucket in self.applicable(identity, route.exposed, route.server):
            wait = buckets.take_now(key, bucket)
            if wait > 0:
                return self._limited(key, bucket, wait, route.exposed)
        return GRANTED

    async def wait(self, call: ToolCall) -> Permit | HubToolError:
        """Ask the shared buckets (and fall back per `fail_mode` when they cannot be reached)."""
        refusal = await self.check(call_identity(call.attributes), call.route.exposed, call.route.server,
                                   call.route.read_only)
        return GRANTED if refusal is None else refusal

    def settle(self, call: ToolCall, permit: Permit, outcome: Outcome) -> None:
        return None  # a token taken stays taken

    async def refused_call(self, attributes: dict[str, Any], name: str) -> HubToolError | None:
        """Charge a call refused before routing (unknown or hidden tool) to its caller: the overall
        bucket and the rules its name matches. Returns the `rate_limited` error once they are
        exhausted (the same answer for a hidden tool and a made-up name), else None."""
        if not self.configured:
            return None
        return await self.check(call_identity(attributes), name, None, read_only=True, shown="calls to unknown tools")

    async def check_request(self, principal: Principal, server: str | None, method: str) -> HubToolError | None:
        """Charge a forwarded `resources/read`, `prompts/get`, `completion/complete`, `resources/subscribe`
        or `tasks/*` to `server` to its caller (`hub.forwarded`): the caller's overall bucket and the
        server's bucket (None: a request of no one server, `tasks/list`: the overall bucket only), never a
        tool rule (the request names no tool). Treated as read-only under `fail_mode` (it changes nothing
        there that a tool call would). The same `rate_limited` a tool call gets, or None. Outside review
        isolation21 #2: reads were never limited, so a read-only key could flood a shared server."""
        if self.settings.per_principal is None and server not in self.settings.servers:
            return None
        identity = bucket_identity(principal)
        shown = f"{method} on server {server!r}" if server is not None else method
        buckets: list[tuple[str, BucketSettings]] = []
        if self.settings.per_principal is not None:
            buckets.append((f"p:{identity}", self.settings.per_principal))
        if server is not None and (server_bucket := self.settings.servers.get(server)) is not None:
            buckets.append((f"s:{quote(server, safe='')}:{identity}", server_bucket))
        for key, bucket in buckets:
            wait = await self._take(key, bucket, True, shown)
            if isinstance(wait, HubToolError):
                return wait
            if wait > 0:
                return self._limited(key, bucket, wait, shown)
        return None

    async def check(self, identity: str, tool: str, server: str | None, read_only: bool,
                    shown: str | None = None) -> HubToolError | None:
        """The error refusing this call, or None when every bucket that applies grants a token."""
        for key, bucket in self.applicable(identity, tool, server):
            wait = await self._take(key, bucket, read_only, shown or tool)
            if isinstance(wait, HubToolError):
                return wait
            if wait > 0:
                return self._limited(key, bucket, wait, shown or tool)
        return None

    def _limited(self, key: str, bucket: BucketSettings, wait: float, shown: str) -> HubToolError:
        self.rejections += 1
        return HubToolError(
            "rate_limited",
            f"rate limit reached for {shown} ({bucket.burst} calls, refilling {bucket.per_second:g}/s); "
            f"retry after {wait:.2f}s",
            retry_after_s=round(wait + 0.005, 3),
            details={"limit": key.split(":")[0]},
        )

    async def _take(self, key: str, bucket: BucketSettings, read_only: bool, tool: str) -> float | HubToolError:
        store = self.store
        if store is None:
            return await self.buckets.take(key, bucket)
        if store.should_try():
            try:
                wait = await self.buckets.take(key, bucket)
            except Exception as exc:  # boundary: any client error means the store cannot be trusted now
                store.failed(exc)
            else:
                if store.succeeded():
                    self._stand_in.clear()
                return wait
        return await self._without_store(key, bucket, read_only, tool)

    async def _without_store(self, key: str, bucket: BucketSettings, read_only: bool, tool: str) -> float | HubToolError:
        """What `fail_mode` says while the shared store is unreachable."""
        mode = self.settings.fail_mode
        assert self.store is not None
        if mode == "open":
            self.store.passed += 1
            return 0.0
        if mode == "closed_for_writes" and read_only:
            return await self._stand_in.take(key, bucket)
        self.store.refused += 1
        which = "calls to tools not marked read-only are" if mode == "closed_for_writes" else "every limited call is"
        return HubToolError(
            "unavailable",
            f"the shared rate limiter is unreachable, so {which} refused (rate_limit.fail_mode = {mode}); "
            f"{tool} was not run. Retry shortly; the hub's operator sees the outage in /healthz.",
            retry_after_s=self.store.retry_after_s,
            details={"limit": "store", "fail_mode": mode},
        )
