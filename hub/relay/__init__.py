"""What downstream servers send toward the hub's clients: log messages (`hub.relay.logs`),
server→client requests — sampling, elicitation, roots (`hub.relay.requests`) and the end of a
URL-mode elicitation — resource
updates (`hub.relay.subscriptions`) and task status notifications (`hub.relay.tasks`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.relay.logs import LogRelay
    from hub.relay.requests import RequestRelay
    from hub.relay.subscriptions import ResourceSubscriptions


def attach_relays(hub: Hub) -> tuple[LogRelay, RequestRelay, ResourceSubscriptions]:
    """Give every downstream of `hub` its relay callbacks (before it connects); returns the relays."""
    from hub.relay.logs import LogRelay
    from hub.relay.requests import RequestRelay
    from hub.relay.subscriptions import ResourceSubscriptions

    logs, requests, subscriptions = LogRelay(hub), RequestRelay(hub), ResourceSubscriptions(hub)
    for downstream in hub.downstreams.values():
        downstream.relay_callbacks = requests.callbacks(downstream.name)
        downstream.owner_callbacks = lambda owner, name=downstream.name: requests.callbacks(name, owner)
        downstream.on_log = logs.relay
        downstream.on_connected = logs.renew  # a new shared session gets the clients' log level (relay26 D2)
        downstream.on_log_line = lambda params, d=downstream: logs.stamp(d, params)
        downstream.on_resource_updated = subscriptions.relay
        downstream.on_task_status = requests.tasks.status
        downstream.on_progress = requests.tasks.progress  # a task's, after its CreateTaskResult
        downstream.on_elicitation_complete = requests.url_elicitations.completed
        if downstream.session_pool is not None:  # a client's own session gets its log level when it opens
            downstream.session_pool.prepare = lambda owner, client, d=downstream: logs.prepare(d, owner, client)
            downstream.session_pool.on_lost_pins = lambda d=downstream: _soon(hub, subscriptions.resubscribe_own, d)
    return logs, requests, subscriptions


def _soon(hub: Any, work: Any, *args: Any) -> None:
    """Run `work(*args)` in the hub's task group, if it runs."""
    group = getattr(hub, "_task_group", None)
    if group is not None:
        group.start_soon(work, *args)
