"""`tasks/list` through the hub: each of a connection's tasks asked of its server now (rules in `hub.relay.tasks`)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from hub.auth.principal import Principal
from hub.downstream.request_deadline import request_deadline
from hub.forwarded import admitted, limits_of
from hub.relay.task_model import RelayedTask
from hub.relay.task_requests import ask_about_task

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.hub import Hub

LIST_CONCURRENCY = 16
"""`tasks/get` requests one `tasks/list` has in flight at once."""


async def listed_tasks(hub: Hub, owned: OrderedDict[str, RelayedTask] | None, principal: Principal,
                       forget: Callable[[RelayedTask], None], keep: Callable[[RelayedTask], bool]) -> list[dict[str, Any]]:
    """The tasks of `owned` (a connection's) that `keep` keeps, each as its server reports it now (each ask
    holding a slot of its server's bulkhead: one refused a slot in time is left out, as a server too slow is);
    one its server no longer knows is dropped from `owned` and `forget`-ten."""
    visible = [(key, relayed) for key, relayed in (owned or {}).items() if keep(relayed)]
    found: dict[str, dict[str, Any]] = {}
    limiter = anyio.CapacityLimiter(LIST_CONCURRENCY)

    async def get(key: str, relayed: RelayedTask) -> None:
        downstream = hub.downstreams[relayed.server]
        seconds, _ = request_deadline(hub.config.hub, downstream.config, "tasks/get")
        started = anyio.current_time()
        async with limiter:
            try:
                async with admitted(limits_of(hub), relayed.server, principal, "tasks/get", seconds, charge=False):
                    body = await ask_about_task(hub.config, downstream, "tasks/get", relayed, started=started)
            except MCPError as exc:
                if exc.code == types.INVALID_PARAMS and owned is not None:  # expired there: forget it here
                    owned.pop(key, None)
                    forget(relayed)
                return  # down or too slow: left out of this listing, kept for the next
        found[key] = {k: v for k, v in body.items() if k != "_meta"} | {"taskId": relayed.exposed}

    # Asked at once, so a hung server costs one deadline, not one per task (was N x `timeout_s`).
    async with anyio.create_task_group() as group:
        for key, relayed in visible:
            group.start_soon(get, key, relayed)
    return [found[key] for key, _ in visible if key in found]
