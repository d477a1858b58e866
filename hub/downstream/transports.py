"""How one downstream's client sessions are built (a mixin of `hub.downstream.connection.Downstream`):
the SDK's transport to an HTTP or SSE server, the `Client` over a transport with the hub's
capabilities and callbacks, and the shared session's callbacks that turn a stdio server per-client
at its first request to a client."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.extension import advertise
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer

from hub.config import ServerConfig
from hub.downstream.direct_tools import DirectTools
from hub.downstream.http_client import downstream_http_client
from hub.downstream.inprocess import load_server_object, release_later
from hub.downstream.json_channel import JsonChannel, on_asyncio
from hub.downstream.listing_repair import ListingAnswers
from hub.downstream.owned import TaskStatusObserver
from hub.downstream.readiness import DownstreamUnavailable
from hub.downstream.session_lost import SessionWatch
from hub.downstream.sessions import SessionPool
from hub.downstream.stdio import stdio_child
from hub.downstream.watched import Refusals, watched
from hub.frontends.stdio.line_pipes import MAX_LINE_BYTES

if TYPE_CHECKING:
    from hub.downstream.era import Era


RELAYED_SAMPLING = types.SamplingCapability(tools=types.SamplingToolsCapability(), context=types.SamplingContextCapability())
"""What every downstream session advertises of sampling: all the hub can relay; each request is then
checked against what its client declared (`hub.relay.requests.lacks`). With the SDK's default (no
`tools`), a server refused to offer tools to a client that had declared them (outside review, relay
round 7)."""


MCP_APPS = advertise("io.modelcontextprotocol/ui", {"mimeTypes": ["text/html;profile=mcp-app"]})
"""The MCP Apps extension, declared to every server: the hub relays an app's `ui://` resources and its
tool calls, so a server that offers its UI only to hosts that declared it (ext-apps' documented
pattern) offers it through the hub (outside review, apps round 9). A host without apps shows such a
tool's text result, as the extension intends."""


class Transports:
    """`_make_client`, `_session_transport`, `_remote_transport`, `_client_over` and `_adapt` (state lives on `Downstream`)."""

    legacy_sse = False
    """A `streamable_http` server found to be a legacy HTTP+SSE one (`hub.downstream.sse_fallback`)."""

    @property
    def speaks_streamable_http(self) -> bool:
        """Whether this server is spoken to over Streamable HTTP (configured so, and not found to be SSE)."""
        return self.config.transport == "streamable_http" and not self.legacy_sse

    config: ServerConfig
    era: Era
    log: Any
    pool: SessionPool | None
    session_pool: SessionPool | None

    def _adapt(self, callbacks: dict[str, Any]) -> dict[str, Any]:
        """The shared session's sampling / elicitation / roots callbacks for a stdio server left to its
        `session` default: its first such request shows it works per client (it asks its client for
        something), so from then on each upstream client gets a session of its own (`session_pool`)."""

        def adapting(kind: str, relay: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def first_asks(*args: Any, **kwargs: Any) -> Any:
                if self.pool is None and self.session_pool is not None:
                    self.pool = self.session_pool
                    self.log.info("it sent a %s request: each upstream client now gets its own session of it "
                                  "(`session: shared` keeps one for all)", kind.replace("_callback", ""))
                return await relay(*args, **kwargs)
            return first_asks

        return {kind: adapting(kind, relay) for kind, relay in callbacks.items()}

    def _remote_transport(self, listings: ListingAnswers | None = None, on_end: Callable[[str], None] | None = None) -> Any:
        """The SDK's client transport to this HTTP or SSE server, over `downstream_http_client` (a
        per-client session's gets listings of its own: its answers are bounded as the shared one's).
        An SSE session is over when its event stream ends: `on_end(why)` then (`hub.downstream.watched`)."""
        cfg = self.config
        assert cfg.url is not None
        listings = listings if listings is not None else ListingAnswers(self.log)
        if self.speaks_streamable_http:
            # An answer may be as long as a stdio line (the SDK's client refuses events past 1 MiB:
            # any result over that from a server answering with an event stream failed).
            return streamable_http_client(cfg.url, http_client=downstream_http_client(headers=cfg.headers, listings=listings),
                                          max_sse_event_size=MAX_LINE_BYTES)
        refusals = Refusals()  # a refused POST's answer, delivered on the session's read side
        client = functools.partial(downstream_http_client, listings=listings, legacy_sse=True, on_refused=refusals.put)
        transport = sse_client(cfg.url, headers=cfg.headers, httpx_client_factory=client)
        return watched(transport, on_end or _unwatched, refusals)

    def _client_over(self, transport: Any, on_message: Any, callbacks: dict[str, Any],
                     on_status: Callable[[Any], Awaitable[None]]) -> Client:
        return Client(transport, mode=self.era.mode, message_handler=on_message, cache=None,
                      client_info=types.Implementation(name="mcp-hub", version="0.1.0"),
                      extensions=[TaskStatusObserver(on_status), MCP_APPS], sampling_capabilities=RELAYED_SAMPLING, **callbacks)

    async def _make_client(self) -> Client:
        cfg = self.config
        lost = self._lost

        def forgotten(why: str) -> None:  # the server no longer knows this connection's session: reconnect
            if self._lost is lost:
                self.reopen(why)

        # This connection's listing answers (`hub.downstream.listing_repair`); an HTTP server's "session
        # not found" in any shape reported (`hub.downstream.session_lost`).
        self.listings = SessionWatch(self.log, forgotten if self.speaks_streamable_http else None)
        transport: Any
        if cfg.transport == "stdio":
            assert cfg.command is not None
            self._json = JsonChannel() if on_asyncio() else None
            env = cfg.env | self.caller.child_env()
            transport = stdio_child(cfg.name, cfg.command, cfg.args, env, cfg.cwd, on_exit=self._mark_lost, channel=self._json,
                                    listings=self.listings, on_log_line=self.on_log_line)
        elif cfg.transport in ("streamable_http", "sse"):
            def ended(why: str) -> None:  # an SSE session's stream ended: this attempt's connection is lost
                if self._lost is lost:
                    self._lose(f"the connection to it ended: {why}")

            transport = self._remote_transport(self.listings, on_end=ended)
        else:
            # Importing a domain and registering its tools is a few hundred ms of blocking work: in a
            # worker thread it does not hold up the hub's answers (e.g. a tools/list from the listing
            # cache) while it runs.
            transport = await anyio.to_thread.run_sync(load_server_object, cfg, self.shared_store_url)
            self._direct = DirectTools(transport) if isinstance(transport, MCPServer) else None
            replaced, self.server_object = self.server_object, transport
            if replaced is not None and replaced is not transport:
                release_later(replaced)
        callbacks = self._adapt(self.relay_callbacks) if self.pool is None and self.session_pool is not None else self.relay_callbacks
        return self._client_over(transport, self._on_message, callbacks, self._on_status)

    def _session_transport(self, on_end: Callable[[str], None] | None = None,
                           on_lost: Callable[[str], None] | None = None) -> Any:
        """A fresh transport to this server, for one more session of it (a per-client one); `on_end(why)`
        when it is over: an SSE session's event stream ended (`_remote_transport`), a child exited;
        `on_lost(why)` when a Streamable HTTP server no longer knows it (`hub.downstream.session_lost`)."""
        cfg = self.config
        if cfg.transport == "stdio":
            assert cfg.command is not None
            exited = (lambda code, _stderr: on_end(f"its process exited with code {code}")) if on_end is not None else None
            return stdio_child(cfg.name, cfg.command, cfg.args, cfg.env | self.caller.child_env(), cfg.cwd, on_exit=exited)
        if cfg.transport == "inprocess":
            if self.server_object is None:
                raise DownstreamUnavailable(f"server {self.name!r} is not loaded yet")
            return self.server_object
        listings = SessionWatch(self.log, on_lost) if self.speaks_streamable_http else None
        return self._remote_transport(listings, on_end=on_end)


def _unwatched(why: str) -> None:
    """A session whose end its owner learns otherwise (a per-client session: its next request fails)."""
