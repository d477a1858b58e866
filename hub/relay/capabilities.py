"""What a client declared it can answer, judged per request (docs/protocol.md, "Protocol relay"):
which clients' calls are tracked for server→client requests, and what a given request needs of its client."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.session import ServerSession


def relay_capable(session: ServerSession) -> bool:
    """Whether a client declared anything a server could ask of it (else its calls are not tracked)."""
    return declares_server_requests(session.client_capabilities)


def declares_url_elicitation(session: ServerSession) -> bool:
    """Whether a client declared URL-mode elicitation (so a server's -32042 may reach it whole)."""
    caps = session.client_capabilities
    return caps is not None and caps.elicitation is not None and caps.elicitation.url is not None


def declares_server_requests(caps: Any) -> bool:
    """Whether client capabilities offer sampling, elicitation or roots (anything a server asks of a client)."""
    return caps is not None and (caps.sampling is not None or caps.elicitation is not None or caps.roots is not None)


def lacks(caps: types.ClientCapabilities | None, request: Any) -> str | None:
    """What a client's declared capabilities lack for a server's request (None: nothing): sampling
    offering tools needs `sampling.tools`; URL-mode elicitation needs `elicitation.url`, form mode
    `elicitation.form` (an empty `elicitation` means form, as the spec keeps for older clients).
    `includeContext` needs nothing: a client may ignore it (interop26 #5: it was refused, where the same
    client answers it directly)."""
    params = getattr(request, "params", None)
    if isinstance(request, types.CreateMessageRequest):
        sampling = caps.sampling if caps is not None else None
        if sampling is None:
            return "the sampling capability"
        if params is not None and params.tools and sampling.tools is None:
            return "sampling.tools (the server's request offers tools to the model)"
        return None
    if isinstance(request, types.ElicitRequest):
        elicitation = caps.elicitation if caps is not None else None
        if elicitation is None:
            return "the elicitation capability"
        if getattr(params, "mode", None) == "url":
            return "elicitation.url (a URL-mode request)" if elicitation.url is None else None
        return "elicitation.form (a form-mode request)" if elicitation.form is None and elicitation.url is not None else None
    if isinstance(request, types.ListRootsRequest):
        return "the roots capability" if caps is None or caps.roots is None else None
    return None
