"""Provider webhooks in: verified (`verify`), logged durably and deduplicated (`log`), processed in
the background with retries and a dead-letter queue (`processor`), served over HTTP (`app`), and
visible to agents through a `list_changes` tool over the domain's change feed (`feed`) and as
subscribable resources (`resources`).

`attach_webhooks(server, domain, store, providers)` wires all of it onto a domain's `MCPServer` and
leaves the intake on `server.webhooks`, which `mcp-hub server <domain> -t http` mounts at
`/webhooks/<provider>` and the HTTP hub at `/webhooks/<namespace>/<provider>`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from pydantic import Field

from servers.kit.store import Store
from servers.kit.tools import domain_tool
from servers.kit.webhooks.app import Intake
from servers.kit.webhooks.feed import ChangeFeed, ChangePage, emit_change, feed_limits
from servers.kit.webhooks.log import EventLog, open_event_log
from servers.kit.webhooks.processor import Policy, Processor
from servers.kit.webhooks.resources import attach_change_resources
from servers.kit.webhooks.upkeep import FeedUpkeep, install_feed_upkeep

__all__ = ["ChangeFeed", "ChangePage", "EventLog", "Intake", "Policy", "Processor", "attach_webhooks", "emit_change"]


def kinds_argument(kinds: tuple[str, ...]) -> Any:
    """`list_changes`' `kinds`: the domain's own record kinds, listed in its schema. Free text answered a near miss
    (`tickets`) with an empty feed for ever, and the description named other domains' kinds (outside review user34 #9)."""
    return Annotated[list[Literal[kinds]] | None,  # type: ignore[valid-type]
                     Field(max_length=20, description=f"Only these record kinds: {', '.join(kinds)}.")]


def attach_webhooks(server: MCPServer, domain: str, store: Store, providers: tuple[str, ...], kinds: tuple[str, ...],
                    policy: Policy | None = None, tool: bool = True) -> Intake:
    """Give `server` a webhook intake for `providers` (its log beside `store`, as
    `<domain>-events.sqlite`, or in the shared PostgreSQL store when `$MCP_HUB_STORE_URL` is set)
    and the `list_changes` tool over the feed kept in `store` (trimmed in the server's lifespan over any
    transport, and by the processor: `upkeep`). `kinds`: every record kind the domain's feed holds."""
    feed = ChangeFeed(store, scope=domain, keep=feed_limits(domain))  # scope: the intake's namespace until the hub binds its own
    log = open_event_log(store.path.parent, domain)
    policy = policy or Policy.from_env(domain)
    intake = Intake(domain, providers, log, Processor(log, feed, policy))
    install_feed_upkeep(server, FeedUpkeep(feed, policy.purge_every_s))  # stdio too: no processor runs there
    server.webhooks = intake  # type: ignore[attr-defined] — read by the runner and the hub, duck-typed
    server.change_feed = feed  # type: ignore[attr-defined]
    server.change_resources = attach_change_resources(server, domain, feed)  # type: ignore[attr-defined]
    if not tool:
        return intake

    async def list_changes(
        since: Annotated[datetime | None, Field(description="Only changes at or after this instant (RFC 3339 with offset).")] = None,
        kinds: list[str] | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 100,
        cursor: str | None = None,
    ) -> ChangePage:
        """Records changed in this domain, oldest first: this server's own writes and provider
        webhooks. Page on with next_cursor; to poll for newer ones, call again with since set to the
        last changed_at you saw and skip seqs you already have. Old changes are deleted by retention:
        `gap` says when some you asked for are gone, and a cursor from before them is refused."""
        return await feed.page(since, kinds, limit, cursor)

    list_changes.__annotations__["kinds"] = kinds_argument(kinds)  # this domain's kinds: built here, not a module name
    domain_tool(server, read_only=True)(list_changes)
    return intake
