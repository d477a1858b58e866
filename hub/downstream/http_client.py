"""The HTTP client the hub reaches Streamable HTTP and SSE downstreams with.

The SDK's `create_mcp_http_client` (30 s timeouts, 300 s to read a stream), except that an idle
connection is let go after `IDLE_CONNECTION_S`. httpx keeps one for 5 s, the very keep-alive timeout
of uvicorn and Node servers: a call made after about five quiet seconds could go out on a
connection the server was closing at that moment, and fail with "Server disconnected without
sending a response" although nothing was wrong with the server. With a shorter expiry the hub opens
a fresh connection instead (one TCP, or TLS, handshake after a pause).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx2
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

from hub.downstream.http_listing_repair import ListingRepairTransport
from hub.downstream.listing_repair import ListingAnswers

IDLE_CONNECTION_S = 4.0
"""Below the 5 s keep-alive timeout of uvicorn and Node, with a second to spare for timer skew."""
SDK_CLIENT_LOG = "mcp.client.streamable_http"
UNPARSED_ANSWER_LOGS = frozenset({"Error parsing JSON response", "Error parsing SSE message"})
"""What the SDK's client logs, at ERROR with its traceback, when a server's answer is not JSON-RPC."""


def _no_traceback_for_an_unparsed_answer(record: logging.LogRecord) -> bool:
    """Drops the SDK's traceback for a server's unreadable answer: the call it answered fails with a
    one-line reason, which `hub.calls.errors` also logs as a warning naming the server (the traceback
    held the hub's internals, and parts of the server's answer)."""
    return record.msg not in UNPARSED_ANSWER_LOGS


def downstream_http_client(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
    listings: ListingAnswers | None = None,
    legacy_sse: bool = False,
    on_refused: Callable[[bytes], None] | None = None,
) -> httpx2.AsyncClient:
    """An `httpx2.AsyncClient` as `create_mcp_http_client` makes it (and httpx's default pool of
    100 connections, 20 kept), idle connections kept 4 s; usable as the SDK's `McpHttpClientFactory`.
    With `listings` (the connection's), listing answers the SDK cannot read whole are repaired
    (`hub.downstream.http_listing_repair`); `legacy_sse`: for the legacy SSE client, whose event
    size the transport then holds to what that client reads, and `on_refused` takes the answer to a
    request whose POST the server refused (`hub.downstream.watched.Refusals`)."""
    logging.getLogger(SDK_CLIENT_LOG).addFilter(_no_traceback_for_an_unparsed_answer)  # once: a filter is added once
    limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=IDLE_CONNECTION_S)
    transport = ListingRepairTransport(httpx2.AsyncHTTPTransport(limits=limits), listings, legacy_sse, on_refused) if listings is not None else None
    return httpx2.AsyncClient(
        headers=headers,
        timeout=timeout or httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
        auth=auth,
        limits=limits,
        transport=transport,
    )
