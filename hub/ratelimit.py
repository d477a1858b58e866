"""Rate limits: token buckets per principal — overall, per tool pattern, per downstream server.

Buckets live in memory by default; with `rate_limit.backend = "redis"` they live in Redis (one
atomic Lua script per check, Redis's own clock) so several hub replicas share one limit. A call
over the limit fails with `rate_limited` and `retry_after_s` before anything is forwarded.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from typing import Protocol


from hub.wire import ToolResult
from hub.errors import HubToolError
from hub.policies.base import CallNext, ToolCall
from hub.settings import BucketSettings, RateLimitSettings

logger = logging.getLogger("hub.ratelimit")


class Buckets(Protocol):
    async def take(self, key: str, bucket: BucketSettings) -> float:
        """Take one token; return 0 if granted, else the seconds until one is available."""
        ...


class MemoryBuckets:
    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, bucket: BucketSettings) -> float:
        now = time.monotonic()
        tokens, updated = self._state.get(key, (float(bucket.burst), now))
        tokens = min(float(bucket.burst), tokens + (now - updated) * bucket.per_second)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1 - tokens) / bucket.per_second


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

        self._redis = redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_TAKE_SCRIPT)
        self._prefix = prefix

    async def take(self, key: str, bucket: BucketSettings) -> float:
        result = await self._script(keys=[self._prefix + key], args=[bucket.burst, bucket.per_second])
        return float(result)

    async def aclose(self) -> None:
        await self._redis.aclose()


class RateLimitPolicy:
    """Checks every bucket that applies to a call (principal overall, tool rules, server)."""

    def __init__(self, settings: RateLimitSettings, buckets: Buckets) -> None:
        self.settings = settings
        self.buckets = buckets
        self.rejections = 0

    @property
    def configured(self) -> bool:
        """Whether any limit applies to anything."""
        return self.settings.per_principal is not None or bool(self.settings.rules) or bool(self.settings.servers)

    def applicable(self, principal: str, call: ToolCall) -> list[tuple[str, BucketSettings]]:
        out: list[tuple[str, BucketSettings]] = []
        if self.settings.per_principal is not None:
            out.append((f"p:{principal}", self.settings.per_principal))
        for index, rule in enumerate(self.settings.rules):
            if fnmatch.fnmatchcase(call.route.exposed, rule.tools):
                out.append((f"r{index}:{principal}", rule))
        server_bucket = self.settings.servers.get(call.route.server)
        if server_bucket is not None:
            out.append((f"s:{call.route.server}:{principal}", server_bucket))
        return out

    async def __call__(self, call: ToolCall, call_next: CallNext) -> ToolResult:
        principal = call.attributes.get("principal", "local")
        for key, bucket in self.applicable(principal, call):
            try:
                wait = await self.buckets.take(key, bucket)
            except Exception as exc:  # boundary: a limiter outage must not take the hub down
                logger.error("rate limiter unavailable (%s); letting the call through", type(exc).__name__)
                continue
            if wait > 0:
                self.rejections += 1
                raise HubToolError(
                    "rate_limited",
                    f"rate limit reached for {call.route.exposed} ({bucket.burst} calls, refilling "
                    f"{bucket.per_second:g}/s); retry after {wait:.2f}s",
                    retry_after_s=round(wait + 0.005, 3),
                    details={"limit": key.split(":")[0]},
                )
        return await call_next(call)
