"""One downstream MCP server as the hub sees it: connect, discover, call, follow list changes.

The transport (stdio child, Streamable HTTP, legacy SSE, in-process) is picked from the config;
the protocol era follows `protocol` (`hub.downstream.era`): for `auto`, an out-of-process server
is met with the 2025-11-25 initialize handshake first, and with the SDK's 2026-07-28 probe only
when it refuses the handshake; an in-process domain with the probe. List changes arrive as legacy
`notifications/*/list_changed` or, on 2026-07-28 connections, over a `subscriptions/listen`
stream; either way the server's part of the catalog is refetched and `on_change` is called.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.caller_channel import CallerChannel
from hub.config import ServerConfig
from hub.downstream.direct_tools import DirectTools
from hub.downstream.era import Era, HandshakeRefused
from hub.downstream.sse_fallback import answers_as_legacy_sse, not_there, refused_initialize
from hub.downstream.listing_repair import ListingAnswers
from hub.downstream.session_lost import is_lost_answer, lost_why
from hub.downstream.json_channel import JsonChannel
from hub.downstream.changes import ChangeFollowing
from hub.downstream.listing import ListKind, Listing
from hub.downstream.liveness import Liveness
from hub.downstream.owned import OwnedSessions
from hub.downstream.readiness import DownstreamUnavailable, Readiness, operator_must_fix  # noqa: F401 — imported from here
from hub.downstream.sessions import SessionPool
from hub.downstream.stats import CallStats
from hub.downstream.transports import Transports
from hub.errors import describe_failure  # noqa: F401 — also imported from here by the hub

logger = logging.getLogger("hub.downstream")

State = Literal["starting", "ready", "down", "stopped"]
STABLE_AFTER_S = 10.0
"""A connection that served this long resets the reconnect backoff (`Downstream._stable_after_s`)."""




class Downstream(ChangeFollowing, OwnedSessions, Transports, Readiness, Liveness):
    """A live connection to one configured server."""

    def __init__(
        self,
        config: ServerConfig,
        on_change: Callable[[Downstream, ListKind], Awaitable[None]] | None = None,
        on_state: Callable[[Downstream], None] | None = None,
        connect_timeout_s: float = 20.0,
    ) -> None:
        self.config = config
        self.name = config.name
        self.era = Era(config)
        """The client `mode` each connection (and per-client session) of this server uses."""
        self.state: State = "starting"
        self.error: str | None = None
        """Why the server is down or its last connection ended, as callers are told it (never the child's stderr)."""
        self.losses = 0
        """Connections of this server lost while calls could be on them (`_lose`): which loss a call's is."""
        self.last_loss: tuple[int, frozenset[tuple[str, str]]] | None = None
        """(`losses` at the latest loss, the callers with calls on the connection then)."""
        self._stderr_tail: tuple[str, str] | None = None
        """(the `error` it belongs to, the child's last stderr lines) when a child's exit ended the connection."""
        self.listing = Listing()
        self._client: Client | None = None
        self.remembered_instructions: str | None = None
        """Set by the hub from its listing cache: `instructions` until the first connection."""
        self._json: JsonChannel | None = None
        self.listings: ListingAnswers | None = None
        self._direct: DirectTools | None = None
        self.server_object: Any = None
        """An in-process server once loaded (the HTTP hub serves its `webhooks`, see hub/webhooks.py)."""
        self._on_change = on_change
        self._on_state = on_state
        self.restarts = 0
        self.ended_by_hub: tuple[float, str] | None = None
        """When (`time.monotonic()`) and why the hub itself last ended the connection (a Restart, a stop):
        calls it cut off are not the server's failure (`hub.downstream.forwarders.Forwarder.error`)."""
        self.reconnect_at = 0.0
        self.needs_operator = False
        """Whether the last connection attempt failed for a reason only the hub's operator can fix (the
        server refused the configured credentials, the command or working directory does not exist): calls
        are then refused as not retryable (`hub.calls.errors`), though the supervisor keeps trying."""
        """When the supervisor next tries to (re)connect after a loss (`anyio.current_time()`)."""
        self.connect_timeout_s = connect_timeout_s
        self._attempt_scope: anyio.CancelScope | None = None
        self._connected_at: float | None = None
        self.first_attempt = anyio.Event()
        """Set once the first connection attempt has succeeded or failed."""
        self.reopened: anyio.Event | None = None
        """Set once the shared session a server forgot is open again (`reopen`); None when none is awaited."""
        self.stats = CallStats(on_timeout=self.call_timed_out)
        self._stop = anyio.Event()
        self._ended = anyio.Event()
        """Set once `run()` has returned (stopped, or an in-process server that cannot be imported)."""
        self._backoff_scope: anyio.CancelScope | None = None
        self._lost = anyio.Event()
        self._pending_refresh: set[ListKind] = set()
        self._listed_twice: set[tuple[str, str]] = set()
        """(list, name) a server listed more than once, already warned of (`_one_of_each`)."""
        self._refresh_send, self._refresh_recv = anyio.create_memory_object_stream[ListKind](8)
        self.log = logging.getLogger(f"hub.downstream.{self.name}")
        self.caller = CallerChannel.for_server(config)
        """How this server learns each call's caller (`hub.auth.caller_channel`)."""
        self.shared_store_url: str | None = None
        """The hub's PostgreSQL store (`hub.store.url`), handed to an in-process server as it is built."""
        self.relay_callbacks: dict[str, Any] = {}
        """Sampling / elicitation / roots callbacks for the shared session (`hub.relay.requests`)."""
        self.owner_callbacks: Callable[[Any], dict[str, Any]] = lambda owner: self.relay_callbacks
        """The same callbacks for a per-client session, bound to its owner (`hub.relay.requests`)."""
        self.session_pool = (SessionPool(self.name, self._open_owned, max_sessions=config.max_sessions,
                                         idle_s=config.session_idle_s)
                             if config.session_mode == "per_client" or config.adaptive_sessions else None)
        """Per-client sessions (`hub.downstream.sessions`), run by the hub beside `run()`."""
        self.pool = self.session_pool if config.session_mode == "per_client" else None
        """`session_pool` once in use (at once for `per_client`; for a stdio server left to its default,
        from the first server→client request it sends: `_adapt`); None while every client shares."""
        self.on_log: Callable[..., Awaitable[None]] | None = None
        """Where this server's `notifications/message` go (`hub.relay.logs`): `(downstream, params)`, and
        the owner as a third argument for a per-client session's."""
        self.on_log_line: Callable[[Any], None] | None = None
        """Told of each log message's params on the shared stdio session as it is read (`hub.relay.logs`)."""
        self.on_resource_updated: Callable[..., Awaitable[None]] | None = None
        """Where this server's `notifications/resources/updated` go (`hub.relay.subscriptions`); for a
        per-client session's, with its owner (`(downstream, params, owner)`), as for `on_log`."""
        self.on_elicitation_complete: Callable[[Downstream, Any], Awaitable[None]] | None = None
        """Where this server's `notifications/elicitation/complete` go (`hub.relay.requests`: to the client
        its URL-mode elicitation went to), from any of its sessions."""
        self.on_connected: Callable[[Downstream, Client], Awaitable[None]] | None = None
        """Told of each new shared session before it is marked ready (`hub.relay.log_levels.renew`: the
        clients' log level, which a new session lacks); bounded by its own timeouts, never raises."""
        self.on_progress: Callable[..., Awaitable[None]] | None = None
        """Told of progress no request of the hub's waits on (a task's, after its `CreateTaskResult`), with
        the owner of the session it came on for a per-client session's (`hub.relay.tasks`)."""
        self.on_task_status: Callable[[Downstream, Any, Any], Awaitable[None]] | None = None
        """Where this server's `notifications/tasks/status` go, with the owner of the session it came on
        (None: the shared session) (`hub.relay.tasks`)."""

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep this server connected until `stop()`: connect, serve, and on loss reconnect with
        exponential backoff. Sets `first_attempt` after the first attempt, whether it worked or not."""
        backoff = self.config.restart.initial_backoff_s
        while not self._stop.is_set():
            self._lost = anyio.Event()
            try:
                with anyio.CancelScope() as self._attempt_scope:
                    if self._stop.is_set():
                        break
                    await self._connect_and_serve()
            except TimeoutError:
                self.error = f"did not complete the MCP handshake within {self.connect_timeout_s:g}s"
            except HandshakeRefused as exc:
                self.log.info("%s; connecting again with the 2026-07-28 probe", exc)
                continue  # at once: not a failure of the server
            except Exception as exc:  # boundary: any connection failure is reported, never raised to the hub
                if self.speaks_streamable_http and self._connected_at is None and refused_initialize(exc):
                    assert self.config.url is not None
                    if await answers_as_legacy_sse(self.config.url, self.config.headers):
                        self.legacy_sse = True
                        if self.era.handshake_first:
                            self.era.mode = "legacy"  # an HTTP+SSE server speaks the handshake era only
                        self.log.warning("%s answers as a legacy HTTP+SSE server, not Streamable HTTP: spoken to over SSE "
                                         "(set \"transport\": \"sse\" to skip this probe)", self.config.url)
                        continue  # at once, over SSE
                    self.error, self.needs_operator = not_there(self.config.url), True
                elif not (self._lost.is_set() and self.error):
                    self.error = describe_failure(exc)
                    self.needs_operator = operator_must_fix(exc)
            finally:
                self._client = None
                self._attempt_scope = None
                connected_at = self._connected_at
                self._connected_at = None

            if connected_at is None and self.reopened is not None:  # reopening failed: requests held for it go on
                self.reopened.set()
                self.reopened = None
            if self._stop.is_set():
                break
            if self.config.transport == "inprocess" and connected_at is None:
                self._set_state("down")
                self.log.error("unavailable: %s", self.error)
                break  # an import error will not fix itself
            self._set_state("down")
            if connected_at is not None and anyio.current_time() - connected_at >= self._stable_after_s:
                backoff = self.config.restart.initial_backoff_s  # it served for a while: start over
            self.log.error("unavailable: %s; reconnecting in %.1fs", self.error, backoff)
            self.first_attempt.set()
            self.reconnect_at = anyio.current_time() + backoff
            with anyio.move_on_after(backoff) as self._backoff_scope:  # cancelled by `restart()`: at once
                await self._stop.wait()
            self._backoff_scope = None
            backoff = min(backoff * 2, self.config.restart.max_backoff_s)
            self.restarts += 1
        self._set_state("stopped" if self._stop.is_set() else self.state)
        self.first_attempt.set()
        self._ended.set()

    @property
    def _stable_after_s(self) -> float:
        """How long a connection must have served for its loss to start the backoff over.

        Decision (outside review faults19 #3): `STABLE_AFTER_S` (10 s), or less when `restart.max_backoff_s`
        is shorter. The backoff is for a server that flaps — exits at start or right after its handshake —
        and keeps doubling then; a reconnect that served for 10 s was a success, and one more loss after it
        waits `restart.initial_backoff_s` again (it took 2 × `max_backoff_s`, 60 s: a few losses a minute
        apart, each reconnecting at once, had the server refused for up to 30 s)."""
        return min(STABLE_AFTER_S, 2 * self.config.restart.max_backoff_s)

    async def _connect_and_serve(self) -> None:
        # The handshake and discovery get `connect_timeout_s`; once connected, no deadline.
        with anyio.CancelScope(deadline=anyio.current_time() + self.connect_timeout_s) as handshake:
            async with self.era.handshake(await self._make_client()) as client, anyio.create_task_group() as tg:
                if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    # Subscribe before listing, so no change between the two can be missed.
                    await tg.start(self._listen_for_changes, client)
                await self._discover(client)
                handshake.deadline = math.inf
                self._client = client
                self._connected_at = anyio.current_time()
                self.needs_operator = False
                await self._renew_session(client)
                self._set_state("ready")
                if self.reopened is not None:
                    self.reopened.set()
                    self.reopened = None
                self.first_attempt.set()
                await self._serve(client, tg)
        if handshake.cancelled_caught:
            raise TimeoutError

    async def _renew_session(self, client: Client) -> None:
        """State the hub holds for its clients, replayed on a new session before its first use (`on_connected`)."""
        if self.on_connected is None:
            return
        try:
            await self.on_connected(self, client)
        except Exception as exc:  # boundary: the session serves without it; logged
            self.log.warning("could not renew the clients' state on the new session: %s", describe_failure(exc))

    async def _serve(self, client: Client, tg: anyio.abc.TaskGroup) -> None:
        """Apply list changes (and, for HTTP, health-check; for stdio, ping after a timeout:
        `hub.downstream.liveness`) until the connection is lost or stopped."""
        tg.start_soon(self._refresh_worker)
        if self.config.transport in ("streamable_http", "sse"):
            tg.start_soon(self._health_check, client)
        elif self.watches_liveness:
            tg.start_soon(self._watch_liveness, client)
        with anyio.CancelScope() as scope:
            tg.start_soon(_set_when, self._stop, scope)
            tg.start_soon(_set_when, self._lost, scope)
            await anyio.sleep_forever()
        tg.cancel_scope.cancel()
        if self._lost.is_set() and not self._stop.is_set():
            raise ConnectionError(self.error or "connection lost")

    async def _health_check(self, client: Client) -> None:
        """HTTP servers have no process to watch: list tools periodically; two failures in a row is a loss."""
        failures = 0
        while True:
            await anyio.sleep(self.config.health_interval_s)
            try:
                with anyio.fail_after(10):
                    await client.list_tools(cache_mode="refresh")
                failures = 0
            except Exception as exc:  # boundary: any failure counts against health
                if isinstance(exc, MCPError) and is_lost_answer(exc.error.data):
                    self.reopen(lost_why(exc.error.data))  # the server is up, but forgot the session: reconnect now
                    return
                failures += 1
                if failures >= 2:
                    self._lose(f"health check failed: {describe_failure(exc)}")
                    return

    def _set_state(self, state: State) -> None:
        if state == self.state:
            return
        self.state = state
        if self._on_state is not None:
            self._on_state(self)

    @property
    def protocol_version(self) -> str | None:
        """The protocol version negotiated with this server, while connected."""
        return self._client.protocol_version if self._client is not None else None

    @property
    def instructions(self) -> str | None:
        """The server's `instructions` from its handshake while connected; before its first
        connection, those remembered from the last start (`hub.catalog.listing_cache`)."""
        if self._client is not None:
            return getattr(self._client, "instructions", None)
        return self.remembered_instructions if self.state == "starting" else None

    def stop(self) -> None:
        self.ended_by_hub = (time.monotonic(), "it was stopped")
        self._stop.set()
        if self._attempt_scope is not None:
            self._attempt_scope.cancel()
        if self.session_pool is not None:  # its per-client sessions too (children, parked or in use)
            self.session_pool.close_all()

    @property
    def stopping(self) -> bool:
        """`stop()` was called (and no `resume()` since): its `run()` ends, or has ended."""
        return self._stop.is_set()

    async def ended(self, wait_s: float) -> bool:
        """Whether `run()` has returned, waiting up to `wait_s` for it."""
        with anyio.move_on_after(wait_s):
            await self._ended.wait()
        return self._ended.is_set()

    def restart(self, reason: str) -> bool:
        """End the current connection (a child process exits), or cut a wait between attempts short: the
        supervisor connects again now. False, nothing done, when no `run()` is under way (or it is stopping)."""
        scope = self._attempt_scope or self._backoff_scope
        if scope is None or self._stop.is_set() or self._ended.is_set():
            return False
        self.error = reason
        self.ended_by_hub = (time.monotonic(), reason)
        scope.cancel()
        if self.session_pool is not None:  # its per-client sessions too: none keeps the old process
            self.session_pool.close_all()
        return True

    def resume(self) -> None:
        """Allow `run()` again once the last one has ended (the admin console's Enable)."""
        self._stop = anyio.Event()
        self._ended = anyio.Event()
        self.first_attempt = anyio.Event()
        self._set_state("starting")

    def _mark_lost(self, returncode: int | None, last_stderr: list[str]) -> None:
        if returncode is None:  # still running a second after its stdout ended: the hub stops it and starts anew
            reason = "the process closed its stdout but did not exit; it is stopped and started again"
        else:
            reason = f"process exited with code {returncode}"
        # A shared child's stderr may quote any caller's arguments (a crash message, a request log): it goes to the
        # operators (log, status, console, /healthz for hub:admin), never into a caller's error (outside review r38a #1)
        self._stderr_tail = (reason, " | ".join(last_stderr)[-300:]) if last_stderr else None  # each line is logged too
        self._lose(reason)

    @property
    def operator_error(self) -> str | None:
        """`error`, with the child's last stderr lines when its exit is why: for operators only."""
        if self._stderr_tail is not None and self.error == self._stderr_tail[0]:
            return f"{self.error}; last stderr: {self._stderr_tail[1]}"
        return self.error

    def _lose(self, reason: str) -> None:
        """The connection is gone: calls fail fast from now on; the supervisor reconnects. Who had calls on it at this
        moment (or had just cancelled one) is kept as `last_loss`, for the breaker to judge the loss once."""
        if self._stop.is_set():
            self._lost.set()
            return
        self.losses += 1
        self.last_loss = (self.losses, frozenset(self.stats.callers) | self.stats.recently_cancelled())
        self.error = reason
        self._lost.set()
        if self.state == "ready":
            self._set_state("down")

    async def loss_reason(self, wait_s: float) -> str | None:
        """Why the connection ended, waiting briefly for a child's exit status to be known; None when it
        has not ended (a request failed alone, `hub.downstream.http_status.lost_answer`, or a per-client
        session's): `error` is then the reason of an earlier loss, which is not this call's."""
        with anyio.move_on_after(wait_s):
            await self._lost.wait()
        return self.error if self._lost.is_set() or self._client is None else None

    async def _on_status(self, params: Any) -> None:
        if self.on_task_status is not None:
            await self.on_task_status(self, params, None)

    # -- discovery -------------------------------------------------------------------------

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, Exception):
            self.log.warning("transport error: %s", describe_failure(message))
            return
        kind: ListKind | None = None
        if isinstance(message, types.ToolListChangedNotification):
            kind = "tools"
        elif isinstance(message, types.ResourceListChangedNotification):
            kind = "resources"
        elif isinstance(message, types.PromptListChangedNotification):
            kind = "prompts"
        elif isinstance(message, types.LoggingMessageNotification) and self.on_log is not None:
            await self.on_log(self, message.params)
        elif isinstance(message, types.ResourceUpdatedNotification) and self.on_resource_updated is not None:
            await self.on_resource_updated(self, message.params)
        elif isinstance(message, types.ElicitCompleteNotification) and self.on_elicitation_complete is not None:
            await self.on_elicitation_complete(self, message.params)
        elif isinstance(message, types.ProgressNotification) and self.on_progress is not None:
            await self.on_progress(self, message.params)
        if kind is not None:
            # Refetching inside the message handler would deadlock the session's reader.
            self._refresh_soon(kind)


async def _set_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
