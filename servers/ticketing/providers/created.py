"""A provider create that is never made twice: the ticket carries a marker, so an unclear answer is settled.

A 5xx or a timeout on `POST /issue` (Jira), `POST …/issues` (GitHub), `POST /tickets.json` (Zendesk) or
`POST /table/incident` (ServiceNow) does not mean "not created": gateways answer 504 after the provider
stored the record, and post-functions fail after it (outside review domains26 #1: the hub retried a keyed
`create_ticket` and Jira held two issues). So every create writes a marker where its provider lets a
client find it again (a Jira label, an HTML comment in a GitHub body, a Zendesk `external_id`, a ServiceNow
`correlation_id`), and after an unclear answer the connector looks the marker up
(`servers.kit.settle.settle_create`, as the calendar settles its create handle): found → the ticket,
as the first answer would have been; absent → the original error (nothing was made, a retry is safe);
the look-up failing too → `upstream_error`, not retryable. With an `idempotency_key` the marker is derived
from it (`provider_key`: caller, tool, key, the call's arguments), and the create looks it up *before*
posting, so the hub's retry of a keyed call whose first answer was lost answers the ticket made then.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from servers.kit.settle import settle_create
from servers.kit.errors import DomainError
from servers.kit.idempotency import provider_key

T = TypeVar("T")

MARKER_PREFIX = "mcph-"
"""How a create marker starts (a Jira label, a Zendesk external_id, a ServiceNow correlation_id)."""


def create_marker(idempotency_key: str | None) -> str:
    """The marker of this create: derived from the caller's key (a retry of the same keyed call gets the
    same one), else fresh; 29 characters of `[a-z0-9-]`, valid as a label, external id or correlation id."""
    sent = provider_key("create_ticket", idempotency_key)
    digest = hashlib.sha256(sent.encode()).hexdigest() if sent else uuid.uuid4().hex
    return MARKER_PREFIX + digest[:24]


def is_marker(value: str) -> bool:
    return value.startswith(MARKER_PREFIX) and len(value) == len(MARKER_PREFIX) + 24


async def create_once(provider: str, marker: str, post: Callable[[], Awaitable[T]], find: Callable[[], Awaitable[T | None]],
                      *, keyed: bool) -> T:
    """`post` the create carrying `marker`; a keyed one first looks for an earlier attempt's ticket."""
    if keyed and (earlier := await find()) is not None:
        return earlier
    return await settle_create(
        provider, f"marker {marker}", post, find, what="the ticket", details={},
        advice="Search for the ticket (search_tickets by its title) before creating it again: it may exist")


def sent_unclear(exc: BaseException) -> bool:
    """Whether a write that failed may have landed: a 5xx, no answer after sending, an unreadable answer —
    not a refusal, and not a connection that never reached the provider (`unavailable` without a status)."""
    if not isinstance(exc, DomainError):
        return True
    code, status = exc.body.code, (exc.body.details or {}).get("status")
    return code in ("timeout", "upstream_error") or (code == "unavailable" and isinstance(status, int) and status >= 500)


async def unsure_once(provider: str, what: str, check: str, post: Callable[[], Awaitable[T]]) -> T:
    """`post` a write that carries nothing to find it by; an answer that leaves unclear whether it landed is
    `upstream_error`, not retryable, saying to `check` first: the hub's retry of a keyed call (or the agent's)
    would write it twice (outside review domains26 #1's sibling)."""
    try:
        return await post()
    except Exception as exc:
        if not sent_unclear(exc):
            raise
        reason = exc.body.message if isinstance(exc, DomainError) else type(exc).__name__
        raise DomainError(
            "upstream_error", f"{provider} gave no clear answer to {what} ({reason}), so it may have been made. Do not repeat "
            f"this call before checking: {check}", details={"outcome": "unknown"}) from exc


async def comment_once(provider: str, ticket_id: str, post: Callable[[], Awaitable[T]]) -> T:
    """A comment, by `unsure_once`: no provider lets a comment carry a marker we can search for."""
    return await unsure_once(provider, f"the comment on {ticket_id}", f"list_comments on {ticket_id} shows whether it is there",
                             post)
