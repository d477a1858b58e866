"""Settings blocks used inside the hub config: resilience, auth, audit, rate limits, metrics."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class RestartSettings(BaseModel):
    """Reconnect (restart, for stdio) backoff after a server goes down."""

    model_config = ConfigDict(extra="forbid")
    initial_backoff_s: float = Field(default=0.5, gt=0)
    max_backoff_s: float = Field(default=30.0, gt=0)
    ping_timeout_s: float | None = Field(default=5.0, gt=0)
    """A stdio server that let a call time out is pinged; no answer within this long and it is taken for
    hung: stopped and started again (`hub.downstream.liveness`). Null: never pinged."""


class BreakerSettings(BaseModel):
    """Circuit breaker: open after `failure_threshold` consecutive failures, or when at least
    `min_calls` calls in the last `window_s` failed at `failure_rate` or more."""

    model_config = ConfigDict(extra="forbid")
    failure_threshold: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    min_calls: int = Field(default=10, ge=1)
    window_s: float = Field(default=30.0, gt=0)
    cooldown_s: float = Field(default=15.0, gt=0)


class RetrySettings(BaseModel):
    """Automatic retries of safe calls: exponential backoff with full jitter, inside the deadline."""

    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(default=3, ge=1, le=10)
    base_delay_s: float = Field(default=0.2, gt=0)
    max_delay_s: float = Field(default=5.0, gt=0)


class ToolOverride(BaseModel):
    """Per-tool settings, keyed by a glob over the server's original tool names."""

    model_config = ConfigDict(extra="forbid")
    timeout_s: float | None = Field(default=None, gt=0)
    max_timeout_s: float | None = Field(default=None, gt=0)
    read_only: bool | None = None
    idempotent: bool | None = None
    """Overrides the tool's own `idempotentHint` (hints from a server are not trusted blindly)."""
    examples: list[str] | None = None
    """Example requests tool search matches against (`hub.search.examples`); replaces the server's own.
    Cleaned and capped once, here (`clean_examples`: at most 32 of at most 200 characters)."""

    @field_validator("examples")
    @classmethod
    def _capped(cls, value: list[str] | None) -> list[str] | None:
        from hub.search.examples import clean_examples

        return None if value is None else list(clean_examples(value))


class JwtSettings(BaseModel):
    """JWT bearer tokens from an external OAuth 2.1 authorization server."""

    model_config = ConfigDict(extra="forbid")
    issuer: str
    audience: str | None = None
    """Defaults to `auth.resource_url`: a token must be issued for this hub."""
    jwks_url: str | None = None
    keys: list[dict[str, Any]] = Field(default_factory=list)
    """Static public keys (JWK dicts), instead of or besides `jwks_url`."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])
    leeway_s: float = Field(default=60.0, ge=0)


class AuthSettings(BaseModel):
    """Authentication over HTTP. stdio is local: its identity is `stdio_principal` / `stdio_scopes`."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    resource_url: str | None = None
    """This hub's resource identifier (token audience); default `http://<host>:<port>/mcp`."""
    api_keys: bool = True
    jwt: JwtSettings | None = None
    authorization_servers: list[str] = Field(default_factory=list)
    """Advertised in protected-resource metadata; defaults to the JWT issuer."""
    required_scopes: list[str] = Field(default_factory=list)
    """Scopes every HTTP request needs (403 insufficient_scope otherwise); none when empty. Written by the same
    rule as `stdio_scopes` (outside review recheck21h #6: `["w:read,w:write"]` was one scope no key can hold,
    so every caller got 403)."""

    @field_validator("required_scopes", mode="before")
    @classmethod
    def _required_as_keys_take_them(cls, value: Any) -> Any:
        """The one scope rule (`hub.auth.scope_syntax`); an empty list requires nothing, as before."""
        from hub.auth.scope_syntax import parse_scopes

        if value == []:
            return value
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return parse_scopes(value)
        return value
    admin_for_destructive: bool = False
    """Require `<namespace>:admin` (not just `:write`) for tools annotated destructive."""
    console_idle_s: float = Field(1800.0, gt=0, le=8 * 3600)
    """An admin console session with no operator request for this long ends (a live stream's polling
    does not count); 8 h is every session's limit anyway."""
    stdio_principal: str = "local"
    stdio_scopes: list[str] = Field(default_factory=lambda: ["*"])
    """What stdio (and HTTP with auth off) may use; `$MCP_HUB_SCOPES` overrides it. Written as `keys create
    --scopes` takes them: a list, or one string split at spaces and commas."""

    @field_validator("stdio_scopes", mode="before")
    @classmethod
    def _scopes_as_keys_take_them(cls, value: Any) -> Any:
        """The one scope rule (`hub.auth.scope_syntax`): `["a:read,b:read"]` granted nothing before."""
        from hub.auth.scope_syntax import parse_scopes

        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return parse_scopes(value)
        return value


class AuditSettings(BaseModel):
    """The audit trail of every call (SQLite in the data dir)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    on_failure: Literal["fail_closed_writes", "fail_closed", "fail_open"] = "fail_closed_writes"
    """When the audit store is unavailable: refuse non-read-only calls (default), refuse all, or log and go on."""
    keep_fields: dict[str, list[str]] = Field(default_factory=dict)
    """Argument fields kept (masked, not redacted) in audit rows, per exposed-tool glob."""


class BucketSettings(BaseModel):
    """A token bucket: `burst` calls at once, refilled at `per_second`."""

    model_config = ConfigDict(extra="forbid")
    burst: int = Field(ge=1)
    per_second: float = Field(gt=0)


class RateRule(BucketSettings):
    tools: str
    """Glob over exposed tool names; each principal gets its own bucket per rule."""


class RateLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    fail_mode: Literal["closed_for_writes", "closed", "open"] = "closed_for_writes"
    """While Redis is unreachable: refuse calls to tools not marked read-only and limit read-only
    ones with this replica's own buckets, started empty (default); refuse every limited call
    (`closed`); or let calls through unlimited (`open`)."""
    per_principal: BucketSettings | None = None
    """Every principal's overall bucket (None: no overall limit)."""
    rules: list[RateRule] = Field(default_factory=list)
    servers: dict[str, BucketSettings] = Field(default_factory=dict)
    """Per principal, per downstream server."""


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    access: Literal["off", "loopback", "scope"] = "loopback"
    """`loopback`: only callers on 127.0.0.1/::1; `scope`: authenticated callers with `hub:metrics`."""


class HttpSettings(BaseModel):
    """What one HTTP caller may hold of the hub: sessions per principal, request body size and time.

    Streamable HTTP and legacy SSE sessions count together. A principal at its cap that opens
    another session loses its least recently used idle one (a session with no request in flight
    and no open stream); if none is idle it is refused with 429. At the hub-wide cap the idle
    session least recently used of the principal holding the most is evicted; if none is idle, that principal's
    least recently used busy one, for a newcomer holding fewer sessions; 503 only for a newcomer holding as many as
    anyone (`hub.session_ledger`).
    """

    model_config = ConfigDict(extra="forbid")
    max_sessions_per_principal: int = Field(default=32, ge=1)
    max_sessions: int = Field(default=1000, ge=1)
    """All sessions of all principals together (bounds the hub's memory)."""
    session_idle_timeout_s: float = Field(default=600.0, gt=0)
    """A Streamable HTTP session with no request in flight for this long is closed (its id answers 404)."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body on any route (413 beyond it, declared or streamed)."""
    body_timeout_s: float = Field(default=10.0, gt=0)
    """The request head, and then its body, must each arrive within this long: a late head closes
    the connection, a late body is answered 408 and the connection closed."""
    idle_connection_s: float = Field(default=65.0, gt=0, le=3600)
    """An HTTP/1.1 connection kept alive with no request is closed after this long. Longer than clients keep
    theirs (httpx, the SDK's: 5 s; Node: 4-5 s; aiohttp: 15 s), so a client never sends on a connection the
    hub is just closing — that request gets no answer, and the SDK's client then ends its whole session
    (uvicorn's own 5 s equals httpx's 5 s: a race). A connection that never sends a head is closed after
    `body_timeout_s` still."""
    drain_s: float = Field(default=15.0, ge=0, le=3600)
    """On SIGTERM/SIGINT, how long calls in flight get to finish: the listener closes at once and open
    streams (GET, `/sse`, `subscriptions/listen`) end so their clients reconnect elsewhere; a call still
    running then is cancelled and told whether it may be sent again. Fits Kubernetes' default 30 s
    grace with a 5 s preStop: keep terminationGracePeriodSeconds ≥ preStop + drain_s + 10."""
    keepalive_s: float = Field(default=15.0, gt=0, le=300)
    """A 2026-07-28 `tools/call` still running after this long is answered as an event stream with a
    keep-alive comment every `keepalive_s` until its answer (the SDK's interval; lower it below a
    proxy's idle-read timeout)."""


class StoreSettings(BaseModel):
    """Where API keys and the audit log live (`hub.store`): SQLite in the data dir by default, or one
    PostgreSQL database shared by every replica (`url = "postgresql://user:pw@host:5432/db"`, or the
    `$MCP_HUB_STORE_URL` environment variable, which keeps the password out of the file)."""

    model_config = ConfigDict(extra="forbid")
    url: SecretStr | None = None
    pool_size: int = Field(default=8, ge=1, le=100)
    """Connections per replica (key lookups and audit batches share them)."""
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    """Longest wait for a connection; statements are cut after 5x this."""
    key_cache_s: float = Field(default=1.0, ge=0, le=60)
    """How long a replica reuses a key lookup: a revocation is effective everywhere within this long."""

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL; leave it out for SQLite in the data dir")
        return value


class ClusterSettings(BaseModel):
    """Several replicas behind one load balancer (`hub.cluster`, docs/deploy.md)."""

    model_config = ConfigDict(extra="forbid")
    redis_url: str | None = None
    """Redis shared by the replicas: rate-limit buckets (when `rate_limit.redis_url` is not set)."""
    session_secrets: list[SecretStr] = Field(default_factory=list)
    """Keys sealing 2025-11-25 session ids so any replica can continue a session: the first seals new
    ids, every one opens them (rotate by putting a new one first). At least 32 characters each."""
    session_max_age_s: float = Field(default=86_400.0, gt=0)
    """A sealed session id older than this is not continued by another replica (404: initialize again)."""

    @field_validator("session_secrets")
    @classmethod
    def _long_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(s.get_secret_value()) < 32 for s in value):
            raise ValueError("each secret must be at least 32 characters; make one with "
                             "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        return value


class TelemetrySettings(BaseModel):
    """OpenTelemetry traces of tool calls (`hub.telemetry`, docs/telemetry.md); needs the `otel` extra.

    `enabled` unset (None) means: on exactly when `$OTEL_EXPORTER_OTLP_ENDPOINT` (or
    `$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, as OpenTelemetry's own tools behave; `false` wins
    over the environment. Off, the hub imports nothing of the OpenTelemetry SDK."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    endpoint: str | None = None
    """OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is appended unless the URL ends with it);
    default `$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `$OTEL_EXPORTER_OTLP_ENDPOINT`, then localhost:4318."""
    service_name: str = Field(default="mcp-hub", min_length=1, max_length=200)
    """`service.name` of the hub's spans (`$OTEL_SERVICE_NAME` is used when this is left at its default)."""

    def active(self, environ: Any = None) -> bool:
        """Whether tracing is on, given the environment (`os.environ` unless another mapping is passed)."""
        if self.enabled is not None:
            return self.enabled
        import os

        env = os.environ if environ is None else environ
        return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
