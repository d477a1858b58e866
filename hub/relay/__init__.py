"""What downstream servers send toward the hub's clients: log messages (`hub.relay.logs`) and
server→client requests — sampling, elicitation, roots (`hub.relay.requests`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.relay.logs import LogRelay
    from hub.relay.requests import RequestRelay


def attach_relays(hub: Hub) -> tuple[LogRelay, RequestRelay]:
    """Give every downstream of `hub` its relay callbacks (before it connects); returns the relays."""
    from hub.relay.logs import LogRelay
    from hub.relay.requests import RequestRelay

    logs, requests = LogRelay(hub), RequestRelay(hub)
    for downstream in hub.downstreams.values():
        downstream.relay_callbacks = requests.callbacks(downstream.name)
        downstream.on_log = logs.relay
    return logs, requests
