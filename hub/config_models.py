"""The hub's configuration as validated models: the whole config (`HubConfig`), the hub-wide
settings (`HubSettings`), one server's entry (`ServerConfig`), and the problems a config can have
(`ConfigProblem`, `ConfigError`). Reading a file into them is `hub.config`'s job."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hub.auth.scope_syntax import parse_scopes
from hub.profile_settings import ProfileSettings
from hub.settings import (
    AuditSettings,
    AuthSettings,
    BreakerSettings,
    ClusterSettings,
    HttpSettings,
    MetricsSettings,
    TelemetrySettings,
    RateLimitSettings,
    RestartSettings,
    RetrySettings,
    StoreSettings,
    ToolOverride,
)

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*$")
"""A namespace: tool-name characters, no `__` (the separator) and no leading/trailing `_`."""

RESERVED_NAMESPACES = {
    "hub": "the hub's own scopes (hub:admin opens the admin console and creates keys, hub:metrics reads /metrics)",
    "profile": "the profile pins (a key holding profile:<name> may use only /mcp/<name>)",
}
"""Namespaces a server may not have: a server's tool scopes are `<namespace>:read|write|admin` (and
`<namespace>:*` grants them all), so these would be the hub's own scopes, each with another meaning."""

TransportName = Literal["stdio", "streamable_http", "sse", "inprocess"]


class ConfigProblem(BaseModel):
    """One problem in a config file, located by its JSON path (e.g. `$.mcpServers.jira.env`)."""

    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"

    def masked(self) -> str:
        """As printed (`check`, `serve`'s refusal): the message masked as a log line is, not the path — masked whole,
        a path ending in a header name (`…headers.Authorization: …`) read as a credential and garbled the hint
        (outside review user34 #5)."""
        from hub.redact import mask

        return f"{self.severity}: {self.path}: {mask(self.message)}"


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every error (and warning) found."""

    def __init__(self, problems: list[ConfigProblem], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        errors = [p for p in problems if p.severity == "error"]
        lines = "\n".join(f"  {p}" for p in errors)
        super().__init__(f"{source} has {len(errors)} problem(s):\n{lines}")

    def masked(self) -> str:
        """The message as printed: each problem `ConfigProblem.masked`, the source masked as a log line is."""
        from hub.redact import mask

        errors = [p for p in self.problems if p.severity == "error"]
        return mask(f"{self.source} has {len(errors)} problem(s):") + "".join(f"\n  {p.masked()}" for p in errors)


class ToolFilter(BaseModel):
    """Glob patterns over a server's *original* tool names; deny wins over allow."""

    model_config = ConfigDict(extra="forbid")
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


class ServerConfig(BaseModel):
    """One downstream server: how to reach it and how the hub exposes it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    transport: TransportName
    # stdio
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    # remote
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    caller_secret: SecretStr | None = None
    """HTTP/SSE: the secret the hub signs each call's caller token with (`hub.auth.caller_channel`);
    the server holds the same one in `$MCP_HUB_CALLER_SECRET`. stdio children get a random one."""
    # in-process: "package.module:attribute" or a built-in domain name
    module: str | None = None
    builtin: str | None = None
    data_dir: str | None = None
    """In-process: where this server keeps its data (default: the hub's data dir). Two servers of one
    built-in domain share their databases unless one has its own."""
    # hub settings
    namespace: str
    enabled: bool = True
    tools: ToolFilter = Field(default_factory=ToolFilter)
    read_only: bool = False
    timeout_s: float | None = Field(default=None, gt=0)
    scopes: dict[str, list[str]] = Field(default_factory=dict)
    """Scopes required per tool glob (original names), replacing the `<namespace>:read|write` default."""
    tool_overrides: dict[str, ToolOverride] = Field(default_factory=dict)
    max_timeout_s: float | None = Field(default=None, gt=0)
    """Hard cap for a call even while the server keeps reporting progress."""
    max_concurrency: int = Field(default=16, ge=1)
    """Calls in flight to this server at once (bulkhead)."""
    max_queue: int = Field(default=64, ge=0)
    """Calls waiting for a slot; beyond this a call fails at once with `unavailable`."""
    max_concurrency_per_caller: int | None = Field(default=None, ge=1)
    """Slots one caller identity may hold once several use this server (None: all but a quarter of
    `max_concurrency`, at least one kept back); see `hub.policies.bulkhead`."""
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    restart: RestartSettings = Field(default_factory=RestartSettings)
    health_interval_s: float = Field(default=30.0, gt=0)
    """How often an HTTP/SSE server is health-checked (a tools/list)."""
    hide_when_down: bool = False
    """Hide the server's tools while it is down (default: keep them listed; calls fail fast)."""
    protocol: Literal["auto", "legacy", "2026-07-28"] = "auto"
    """Protocol era to speak to this server: `auto` probes `server/discover` and falls back
    to the 2025-11-25 initialize handshake."""
    session: Literal["shared", "per_client"] | None = None
    """`per_client`: each upstream client connection gets a downstream session of its own (calls,
    resources, prompts, completions, server→client requests); `shared`: one session for every client.
    Default (`session_mode`): `per_client` for HTTP/SSE servers, `shared` for in-process ones, and for
    stdio ones `shared` until the server sends its first server→client request (`adaptive_sessions`;
    behind the stdio front, with its one client, they stay `shared`)."""
    max_sessions: int = Field(default=100, ge=1)
    """Per-client sessions open at once; one more client is refused `unavailable` (retryable)."""
    session_idle_s: float = Field(default=300.0, gt=0)
    """A per-client session unused this long is closed (a later request opens a new one)."""

    @property
    def adaptive_sessions(self) -> bool:
        """A stdio server left to its `session` default: shared until it sends a server→client
        request (sampling, elicitation, roots), then per client (`hub.downstream.connection`)."""
        return self.session is None and self.transport == "stdio"

    @property
    def session_mode(self) -> Literal["shared", "per_client"]:
        """`session`, or its default: remote servers keep state per session (and see one user per
        session), a stdio child or in-process domain is one process the hub owns for every client."""
        if self.session is not None:
            return self.session
        return "per_client" if self.transport in ("streamable_http", "sse") else "shared"

    @field_validator("scopes")
    @classmethod
    def _scopes_by_the_one_rule(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        """Each glob's scopes as every scope list is read (`hub.auth.scope_syntax`: commas as spaces,
        a malformed scope refused); `["x:read,x:write"]` was one scope no key holds. An empty list stays
        empty (no scope required)."""
        return {glob: parse_scopes(listed) if listed else [] for glob, listed in value.items()}

    @field_validator("caller_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters; make one with "
                             "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        return value


class HubSettings(BaseModel):
    """Hub-wide settings (the `hub` block)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "mcp-hub"
    name_budget: int = Field(default=64, ge=16, le=128)
    """Longest exposed tool/prompt name; longer names are shortened deterministically."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Default deadline for a forwarded call when neither the tool nor the server sets one. Progress
    notifications from the server restart this idle timer, up to `max_timeout_s`."""
    max_timeout_s: float = Field(default=300.0, gt=0)
    """Hard cap on any call, progress or not (per server/tool settings may lower or raise it)."""
    connect_timeout_s: float = Field(default=20.0, gt=0)
    list_wait_s: float = Field(default=2.0, ge=0, le=60)
    """How long the first `tools/list` of `mcp-hub serve` waits for servers still connecting
    (`hub.catalog.first_listing`); `initialize` never waits. Later arrivals are announced with `list_changed`."""
    call_wait_s: float = Field(default=10.0, ge=0, le=300)
    """How long a call to a name no server has listed yet waits for servers (whose namespace
    prefixes the name) still making their first connection: a domain loading on a fresh start."""
    remember_listings: bool = True
    """Serve the listing a built-in domain or stdio server had at the last start while it is still
    starting (`hub.catalog.listing_cache`); its real listing replaces it, announced if it differs."""
    page_size: int = Field(default=200, ge=1, le=10_000)
    """Items per page in the hub's own list answers."""
    instructions_budget: int = Field(default=4096, ge=256, le=65_536)
    """Most characters of the hub's `instructions`: its own line plus each server's, per namespace
    (`hub.relay.instructions`)."""
    tools_mode: Literal["all", "search", "auto"] = "all"
    """`all`: tools/list answers every tool the caller may call; `search`: the `search_tools` and
    `call_tool` meta-tools plus the tools the session found (`hub.search.meta`); `auto`: search once
    the caller's visible catalog passes 40 tools or 10k tokens."""
    fast_calls: bool = True
    """Relay `tools/call` as JSON instead of through the SDK's per-message models: answered on the
    hub's stdio by `hub.frontends.stdio.stdio_calls`, and sent to stdio and in-process servers as JSON (their result
    is parsed only for an HTTP client). Same policies, same answers; off for comparison."""
    cpu_placement: Literal["auto", "separate", "off"] = "auto"
    """`mcp-hub serve` keeps its stdio servers off one CPU, left to the hub and its caller (`hub.placement`):
    `auto` (any front) with two or three usable CPUs and one enabled stdio server per other CPU, where
    the caller, the hub and a server cannot each have one; `separate` with any number of servers and at
    least two CPUs; `off` leaves placement to the OS. `$MCP_HUB_CPU_PLACEMENT` overrides this."""
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    )
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"])
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    data_dir: str | None = None
    """Where keys and the audit log live; default `$MCP_HUB_DATA_DIR` or `~/.local/share/mcp-hub`."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    """Sessions per principal, request body size and read deadline (`hub.frontends.http.http_guard`, `hub.frontends.http.http_sessions`)."""
    store: StoreSettings = Field(default_factory=StoreSettings)
    """Keys and audit: SQLite in the data dir, or PostgreSQL shared by replicas (`hub.store`)."""
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    """Several replicas behind a load balancer: Redis, session sealing secrets (docs/deploy.md)."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """OpenTelemetry traces of tool calls over OTLP (`hub.telemetry`, docs/telemetry.md)."""


class HubConfig(BaseModel):
    """A validated hub configuration."""

    hub: HubSettings = Field(default_factory=HubSettings)
    servers: list[ServerConfig] = Field(default_factory=list)
    profiles: dict[str, ProfileSettings] = Field(default_factory=dict)
    warnings: list[ConfigProblem] = Field(default_factory=list)

    def enabled_servers(self) -> list[ServerConfig]:
        return [s for s in self.servers if s.enabled]

    def single_client(self) -> HubConfig:
        """This config for a hub with one client (the stdio front): a stdio server left to its `session`
        default stays shared (`ServerConfig.adaptive_sessions`: a second child would only split its state)."""
        servers = [s.model_copy(update={"session": "shared"}) if s.adaptive_sessions else s for s in self.servers]
        return self.model_copy(update={"servers": servers})
