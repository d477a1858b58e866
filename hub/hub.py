"""The hub: connects every configured server, keeps the catalog, and routes calls.

`async with Hub(config) as hub:` connects all enabled downstreams concurrently; one that fails to
start is reported (name + reason) and the others serve. Names two servers would both expose
are a config error at start. Calls: `route_call` resolves the name and the caller's access, then
the awaiting driver runs the call pipeline (`hub.calls`); `start_express` starts one on the express
driver. The read side (lists per principal, resources, prompts, completions) is `hub.reads`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT

from hub.announcer import ChangeAnnouncer, ChangeListener
from hub.policies.access import AccessControl
from hub.auth.principal import Principal
from hub.catalog.catalog import CatalogConflict, ToolCatalog, ToolRoute
from hub.config import ConfigError, ConfigProblem, HubConfig
from hub.datadir import audit_digest_key, resolve_data_dir
from hub.catalog.remembered import RememberedListings
from hub.calls.call import ToolCall
from hub.calls.drivers import Done, Drivers, Escalate, ExpressCall
from hub.calls.pipeline import Pipeline
from hub.downstream.connection import Downstream
from hub.downstream.listing import ListKind
from hub.downstream.forwarders import Forwarder
from hub.catalog.first_listing import FirstListing
from hub.reads import HubReads
from hub.server_control import ServerControl
from hub.audit.log import AuditLog
from hub.store import open_shared_store, store_url
from hub.health import server_status
from hub.errors import UrlElicitationRequired
from hub.own_names import own_tool_name
from hub.metrics import HubMetrics
from hub.policies.audit import AuditPolicy, new_request_id, with_request_id
from hub.policies.base import Policy
from hub.policies.deadline import DeadlinePolicy
from hub.policies.validation import ArgumentPolicy
from hub.policies.ratelimit import MemoryBuckets, RateLimitPolicy, RedisBuckets
from hub.relay import attach_relays
from hub.cluster.notify import cluster_notifier
from hub.policies import BreakerPolicy, BulkheadPolicy, RetryPolicy
from hub.wire import ToolResult, WireResult
from hub.unknown_tool import not_ready_refusal

logger = logging.getLogger("hub")


class UnknownTool(Exception):
    """No exposed tool has this name (or the caller may not see it)."""


class Hub(HubReads, ServerControl):
    """The gateway core, independent of how clients reach it."""

    def __init__(self, config: HubConfig, policies: Sequence[Policy] = (), wait_at_start: bool = True,
                 span_exporter: Any = None) -> None:
        """`policies`: two-phase policies of your own (`hub.policies.base`), each run after the built-in
        ones of its `phase`; they run on both drivers (one that must wait says `MUST_WAIT`), so they
        never turn the express driver off. `wait_at_start`: entering waits (up to `connect_timeout_s`) for every server's first attempt, as a
        library user or a one-shot CLI command wants; `mcp-hub serve` passes False and lets the first list
        answer wait instead (`hub.catalog.first_listing`), so one slow server never delays `initialize`."""
        self.config = config
        self._wait_at_start = wait_at_start
        self.first_listing = FirstListing(config.hub.list_wait_s)
        self.catalog = ToolCatalog(config.hub.name_budget)
        self.downstreams: dict[str, Downstream] = {
            s.name: Downstream(
                s,
                on_change=self._on_downstream_change,
                on_state=self._on_downstream_state,
                connect_timeout_s=config.hub.connect_timeout_s,
            )
            for s in config.enabled_servers()
        }
        self.breakers = BreakerPolicy(lambda server: self.downstreams[server].config.breaker)
        self.bulkheads = BulkheadPolicy(
            lambda server: (self.downstreams[server].config.max_concurrency, self.downstreams[server].config.max_queue,
                            self.downstreams[server].config.max_concurrency_per_caller),
            several_callers=config.hub.auth.enabled,
        )
        retry = RetryPolicy(lambda server: self.downstreams[server].config.retry)
        self.metrics = HubMetrics(self.status)
        self.shared_store = open_shared_store(config.hub.store)
        """PostgreSQL for keys and audit shared by replicas (`hub.store.url`); None: SQLite in the data dir."""
        for downstream in self.downstreams.values():  # in-process domains keep idempotency records there too
            downstream.shared_store_url = store_url(config.hub.store)
        if not config.hub.audit.enabled:
            self.audit_log: AuditLog | None = None
        elif self.shared_store is not None:
            self.audit_log = AuditLog(self.data_dir, table=self.shared_store)
        else:
            self.audit_log = AuditLog(self.data_dir, audit_digest_key(self.data_dir))
        self.auditor = AuditPolicy(self.audit_log, config.hub.audit, self.metrics)
        limits = config.hub.rate_limit
        # `hub.cluster.redis_url` is the Redis of a cluster; `rate_limit.redis_url`, when set, wins.
        redis_url = config.hub.cluster.redis_url if "redis_url" not in limits.model_fields_set else None
        buckets = RedisBuckets(redis_url or limits.redis_url) if limits.backend == "redis" else MemoryBuckets()
        self.rate_limits = RateLimitPolicy(limits, buckets)
        self.tracing: Any = None
        """`hub.telemetry.CallTracing` when `hub.telemetry` is on (`span_exporter`: tests' in-memory one), else None."""
        if config.hub.telemetry.active():
            from hub.telemetry import CallTracing  # imported only when on: off, no OpenTelemetry SDK is loaded

            self.tracing = CallTracing(config.hub.telemetry, self.breakers, self.bulkheads, span_exporter)
        self.access = AccessControl(config)
        self.arguments = ArgumentPolicy(self.catalog)
        # The order of the pipeline's policies is stated (and explained) in `hub.calls.pipeline`.
        call_policies: list[Policy] = [self.auditor, self.arguments]
        if self.rate_limits.configured:  # no limits configured: the step would only cost time
            call_policies.append(self.rate_limits)
        call_policies.append(DeadlinePolicy())
        attempt_policies: list[Policy] = [self.breakers, self.bulkheads]
        for policy in policies:
            (call_policies if policy.phase == "call" else attempt_policies).append(policy)
        forwarder = Forwarder(self.downstreams, self.access.local, config.hub.fast_calls, self.tracing)
        self.pipeline = Pipeline(call_policies, attempt_policies, retry, forwarder)
        self.drivers = Drivers(self.pipeline, self.tracing)
        self._express = config.hub.fast_calls and self.tracing is None
        """Whether calls may take the express driver (`hub.calls.drivers`): off with `fast_calls: false`,
        and while tracing is on (its spans follow the awaiting driver's coroutines)."""
        self._changes = ChangeAnnouncer()
        """List changes, announced to the listeners off the path that made them (`hub.announcer`)."""
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack = AsyncExitStack()
        self._started = False
        self.remembered = RememberedListings(config, lambda: self.data_dir, self.downstreams, self.catalog)
        """Listings remembered from the last start (`hub.catalog.remembered`)."""
        self._clashed: set[str] = set()
        """Ready servers whose listing a name clash keeps out of the catalog (`_retry_clashed`)."""
        self.log_relay, self.request_relay, self.subscriptions = attach_relays(self)
        """What servers send toward clients: log messages, sampling/elicitation/roots, resource updates (`hub.relay`)."""
        self.cluster_notify = cluster_notifier(self)
        """Redis pub/sub of client-bound messages between replicas (`hub.cluster.notify`), or None."""

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Hub:
        self._task_group = await self._exit_stack.enter_async_context(anyio.create_task_group())
        try:
            if self.cluster_notify is not None:
                self._exit_stack.push_async_callback(self.cluster_notify.aclose)
                await self._task_group.start(self.cluster_notify.run)
            await self._start_all()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for downstream in self.downstreams.values():
            downstream.stop()
            if downstream.session_pool is not None:
                downstream.session_pool.stop()
        self._task_group = None
        await self._exit_stack.aclose()
        if isinstance(self.rate_limits.buckets, RedisBuckets):
            await self.rate_limits.buckets.aclose()
        if self.audit_log is not None:
            await anyio.to_thread.run_sync(self.audit_log.close)
        if self.shared_store is not None:
            await anyio.to_thread.run_sync(self.shared_store.close)
        if self.tracing is not None:  # flush the spans not yet exported, last and bounded
            await self.tracing.aclose()

    async def _start_all(self) -> None:
        """Connect every server concurrently; wait (bounded) for each first attempt, then build the
        catalog. A server with a remembered listing (`listing_cache`) is not waited for."""
        assert self._task_group is not None
        self._task_group.start_soon(self.rate_limits.probe)  # a shared store it cannot reach shows at once
        for downstream in self.downstreams.values():
            if downstream.session_pool is not None:  # per-client sessions (`hub.downstream.sessions`)
                await self._task_group.start(downstream.session_pool.run)
            self._task_group.start_soon(downstream.run)
        self.remembered.load(self._wait_at_start)
        remembered = self.remembered.entries
        if self._wait_at_start:
            with anyio.move_on_after(self.config.hub.connect_timeout_s):
                for downstream in self.downstreams.values():
                    if downstream.name not in remembered:
                        await downstream.first_attempt.wait()
        for downstream in self.downstreams.values():
            if self._wait_at_start and not downstream.first_attempt.is_set() and downstream.name not in remembered:
                downstream.log.warning(
                    "still connecting after %gs; its tools will appear when it is up", self.config.hub.connect_timeout_s
                )

        problems: list[ConfigProblem] = []
        # Real listings first: a remembered one never takes a name from a server that is up.
        for downstream in sorted(self.downstreams.values(), key=lambda d: d.state != "ready"):
            if downstream.state == "ready":
                listing = downstream.listing
                self.remembered.remember(downstream)
            elif downstream.state == "starting" and downstream.name in remembered:
                listing = remembered[downstream.name].listing
            else:
                continue
            try:
                self.catalog.set_server(downstream.config, listing)
            except CatalogConflict as exc:
                if downstream.state == "ready":
                    problems.append(ConfigProblem(path=f"$.mcpServers.{downstream.name}", message=str(exc)))
                else:  # a remembered listing: not served; the server's own, when it is up, decides
                    downstream.log.warning("remembered listing not served: %s", exc)
                continue
            if downstream.state != "ready":
                self.remembered.from_memory.add(downstream.name)
        if problems:
            raise ConfigError(problems, "the hub config")
        self._started = True
        self.first_listing.settled = self._wait_at_start  # waited already: no list answer waits again
        ready = [d.name for d in self.downstreams.values() if d.state == "ready"]
        starting = [d.name for d in self.downstreams.values() if d.state == "starting"]
        down = {d.name: d.error for d in self.downstreams.values() if d.state not in ("ready", "starting")}
        logger.info("serving %d tools from %d server(s) (%d more starting); down: %s", len(self.catalog.tools()), len(ready),
                    len(starting), down or "none")

    @property
    def data_dir(self) -> Path:
        return resolve_data_dir(self.config.hub.data_dir)

    # -- change propagation ----------------------------------------------------------------

    def add_change_listener(self, listener: ChangeListener) -> None:
        self._changes.add(listener)

    def _announce_soon(self, kinds: Sequence[ListKind]) -> None:
        self._changes.soon(self._task_group, kinds)

    async def _resolve_after_first_attempts(self, name: str) -> ToolRoute | None:
        """Resolve `name` after the first-listing wait (`hub.list_wait_s`), then, if it is still
        unknown, once the servers it could belong to have made their first connection attempt
        (bounded by `hub.call_wait_s`): on a fresh start, a call to a domain that is still loading
        waits for it instead of being told the tool does not exist. Only servers whose namespace
        prefixes `name` (or that have none) are waited for; a name no server is still starting for
        is unknown at once."""
        if not self.first_listing.settled:
            await self.await_first_listing()
            route = self.catalog.resolve_tool(name)
            if route is not None:
                return route
        pending = [d for d in self.downstreams.values()
                   if not d.first_attempt.is_set() and (not d.config.namespace or name.startswith(d.config.namespace + "__"))]
        if not pending:
            return None
        with anyio.move_on_after(self.config.hub.call_wait_s):
            for downstream in pending:
                await downstream.first_attempt.wait()
        return self.catalog.resolve_tool(name)

    async def await_first_listing(self, wait_s: float | None = None) -> None:
        """Before the first list answer: wait (bounded by `hub.list_wait_s`) for servers still making
        their first connection attempt (`hub.catalog.first_listing`); at once afterwards."""
        if not self.first_listing.settled:
            remembered = self.remembered.entries
            await self.first_listing.wait((d for d in self.downstreams.values() if d.name not in remembered), wait_s)

    # -- health ----------------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Per server: connected / degraded / down, breaker, in-flight, restarts, last error, latency
        (`hub.health.server_status`)."""
        return server_status(self)

    def settings_for(self, route: ToolRoute) -> tuple[float, float]:
        """(idle timeout, hard timeout) for a tool: per tool, else per server, else the hub default."""
        timeout = route.timeout_s or self.config.hub.timeout_s
        return timeout, max(timeout, route.max_timeout_s or self.config.hub.max_timeout_s)

    def memory_servers_for(self, name: str, hub_wide: bool = True) -> list[Downstream]:
        """Servers listed from memory, still starting, that may own tool `name` (`RememberedListings.servers_for`)."""
        return self.remembered.servers_for(name, hub_wide)

    async def await_memory_servers(self, name: str, hub_wide: bool = True) -> None:
        """Before a call to `name` is resolved and checked: wait (up to `hub.call_wait_s`) for
        `memory_servers_for(name)`, so that it is judged by real listings, never remembered ones."""
        await self.remembered.wait_for(name, hub_wide)

    async def route_call(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None = None,
        attributes: dict[str, Any] | None = None,
        principal: Principal | None = None,
        wire: bool = False,
        memory_awaited: bool = False,
        url_required: bool = False,
    ) -> ToolResult:
        """Route one `tools/call`. Raises `UnknownTool` (also for a tool the principal may not use);
        with `url_required` (the client declared URL-mode elicitation), `UrlElicitationRequired` when
        the server answered -32042; every other failure is an `isError` result. Downstreams that can relay JSON (stdio, in-process)
        answer with the JSON object; with `wire` it is returned as a `WireResult` for the caller to
        send on, else parsed into the `CallToolResult` returned for every other downstream.
        `memory_awaited`: the caller has already waited `await_memory_servers` for this call."""
        principal = principal or self.access.local
        arguments = arguments or {}
        attributes = {**(attributes or {}), "principal": principal.name, "caller": principal, "request_id": new_request_id()}
        if not memory_awaited:
            await self.await_memory_servers(name)
        route = self.catalog.resolve_tool(name)
        if route is None and (own := own_tool_name(self, name, principal)) is not None:
            name, route = own, self.catalog.resolve_tool(own)  # an MCP App's call by its server's own name
        if route is None:  # a name from a server still making its first connection?
            route = await self._resolve_after_first_attempts(name)
        if route is not None and self.remembered.still_starting(route.server):
            route = None  # listed from memory, its server not up within its connect timeout: `not_ready_refusal`
        if route is None or not self.access.may_use_tool(principal, route):
            refused = await self.refuse_call(name, arguments, principal, attributes, route, not_ready=True)
            if refused is not None:
                return refused
            raise UnknownTool(name)
        timeout, hard = self.settings_for(route)
        call = ToolCall(route, arguments, timeout, hard, progress, attributes)
        result = await self.drivers.run(call)
        if url_required and call.outcome is not None and isinstance(call.outcome.error, UrlElicitationRequired):
            raise call.outcome.error
        if isinstance(result, WireResult) and not wire:
            return types.CallToolResult.model_validate(result.body, by_name=False)
        return result

    async def refuse_call(self, name: str, arguments: dict[str, Any] | None, principal: Principal,
                          attributes: dict[str, Any] | None = None, route: ToolRoute | None = None,
                          not_ready: bool = False) -> types.CallToolResult | None:
        """Refuse a call of `name` the caller cannot make (no tool to it, hidden by its scopes, outside the
        profile it called on) as every front refuses one (docs/security.md): charged to its rate limit,
        audited `denied` and counted. `route`: the tool it may not use, None for a name that is no tool to
        it (never looked up here: a name outside a profile must not be judged by the whole catalog).
        Returns the rate limit's answer (with `not_ready`, also a starting or down server's `unavailable`),
        or None: the caller answers `not_found` (`hub.unknown_tool`)."""
        if attributes is None:
            attributes = {"principal": principal.name, "caller": principal, "request_id": new_request_id()}
        refusal = await self.rate_limits.refused_call(attributes, name)  # probing names is rate limited too
        if refusal is None and route is None and not_ready:
            refusal = not_ready_refusal(self, name, principal)  # its server is starting or down
        self.auditor.denied(attributes, name, arguments or {}, route, refusal)  # audited as answered
        if refusal is None:
            return None
        return with_request_id(refusal.to_result(route.tool.output_schema if route is not None else None),  # type: ignore[return-value]
                               attributes["request_id"])

    def start_express(self, name: str, arguments: dict[str, Any], principal: Principal, done: Done,
                      escalate: Escalate, progress: ProgressFnT | None = None) -> ExpressCall | None:
        """Start a call on the express driver (`hub.calls.drivers`): admitted and sent now, answered
        through `done` — at once for a refusal (then `.finished` is already true) — or escalated to
        a task made by `escalate` when something must be awaited. None, nothing done, for a name
        the caller cannot use (and when the express driver is off): `route_call` then answers it."""
        if not self._express or self.memory_servers_for(name):
            return None
        route = self.catalog.resolve_tool(name)
        if route is None or not self.access.may_use_tool(principal, route):
            return None
        timeout, hard = self.settings_for(route)
        call = ToolCall(route, arguments, timeout, hard, progress,
                        {"principal": principal.name, "caller": principal, "request_id": new_request_id()})
        return self.drivers.try_start(call, done, escalate)
