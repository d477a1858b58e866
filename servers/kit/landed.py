"""Provider writes that landed during one tool call, and what a later failure of that call becomes.

A connector's write is often several provider requests: create an issue then read it back, post a
payment then re-read the invoice, end a series then create its follower. When a request after a
write that succeeded fails (a 503 on the read-back), the provider holds the change but the call used
to fail as that request's error: retryable `unavailable`, the idempotency key released, so the hub's
retry policy (or the agent) ran the write again — a second issue, a second payment (outside review
writes16 #1, #3).

So every tool call watches its provider writes (`watching`; `ProviderHTTP.request` reports each
successful POST/PUT/PATCH/DELETE that is not marked a read, `note`), and a failure after one
(`after_landing`) is answered as what it is: `upstream_error`, **not retryable**, saying which change
reached the provider (and the id it answered, when it named one), what failed after it, and to read
the record before doing anything else. A keyed write records that answer for its key, so a retry with
the key gets it again instead of writing twice (`servers.kit.tools`).

A provider's replayed answer (Xero `Idempotency-Key`, QuickBooks `requestid`) is noted like any write,
on purpose (writes17 #1): connectors send keys derived from (caller, tool, key, the call's argument
fingerprint) (`servers.kit.idempotency.provider_key`), so a provider replays only to a retry of the
same call by its caller, whose earlier attempt did reach it. The change it names is held by the provider, so
"the change reached the provider" stays true. Before, a key shared across callers or tools replayed
someone else's answer, and a failure after it was reported as a landed write that never happened.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from hub.argument_errors import preview
from hub.errors import HubToolError
from servers.kit.errors import DomainError

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ID_FIELDS = ("key", "id", "Id", "number", "sys_id", "InvoiceID", "PaymentID", "ContactID")
"""Where a provider's answer to a write names what it made (Jira, Google, QuickBooks, ServiceNow, Xero…)."""


@dataclass(frozen=True)
class Landed:
    """One provider write that succeeded."""

    provider: str
    method: str
    path: str
    answer: Callable[[], Any]
    """The provider's answer as JSON, read only if the call fails after it (`made`)."""

    @functools.cached_property
    def made(self) -> str | None:
        """The id the provider's answer named, if any."""
        return made_id(self.answer())

    def describe(self) -> str:
        made = f" (it answered id {preview(self.made)})" if self.made else ""
        return f"{self.provider} {self.method} {self.path}{made}"


_LANDED: ContextVar[list[Landed] | None] = ContextVar("mcp_hub_landed_writes", default=None)


@contextmanager
def watching() -> Iterator[list[Landed]]:
    """Collect the provider writes that land in this context (tasks it starts included)."""
    landed: list[Landed] = []
    token = _LANDED.set(landed)
    try:
        yield landed
    finally:
        _LANDED.reset(token)


def note(provider: str, method: str, path: str, answer: Callable[[], Any], *, writes: bool | None = None) -> None:
    """A provider request succeeded: remember it if it wrote (`writes` None: by its method). Its answer
    (`answer()`, its JSON) is read only to name what it made, if a later step fails: a call that
    succeeds never parses it twice."""
    landed = _LANDED.get()
    if landed is None or not (method in WRITE_METHODS if writes is None else writes):
        return
    landed.append(Landed(provider, method, path, answer))


def undone() -> None:
    """The writes so far in this call were undone (a connector compensated for a failed later step):
    a failure now is the plain failure again, not a partly applied change."""
    landed = _LANDED.get()
    if landed is not None:
        landed.clear()


def made_id(body: Any) -> str | None:
    """The id a write's JSON answer names, looking one level into a wrapper (`{"ticket": {...}}`)."""
    for value in (body, *(body.values() if isinstance(body, dict) else ())):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, dict):
            for field in ID_FIELDS:
                if isinstance(value.get(field), (str, int)) and not isinstance(value.get(field), bool):
                    return str(value[field])
    return None


def landed_rows(landed: list[Landed]) -> list[dict[str, str]]:
    """`landed` as the `details.landed` rows of a partly applied answer."""
    return [{"method": i.method, "path": i.path, **({"id": i.made} if i.made else {})} for i in landed]


def after_landing(tool: str, landed: list[Landed], error: BaseException) -> DomainError:
    """The answer for a call that failed after `landed` reached the provider (see the module)."""
    what = error.body.message if isinstance(error, HubToolError) else f"an unexpected {type(error).__name__}"
    failed = error.body.code if isinstance(error, HubToolError) else "internal"
    changes = "; ".join(item.describe() for item in landed)
    return DomainError(
        "upstream_error",
        f"{tool} only partly completed: the change reached the provider ({changes}), then a later step "
        f"failed ({what}). Do not repeat this call, it would make the change again: read the record "
        "to see its state first.",
        details={"partially_applied": True, "failed": failed,
                 "landed": landed_rows(landed)},
    )
