"""A provider create that is never made twice: settled by looking it up after an unclear answer.

A 5xx, a timeout or an unreadable answer to a create does not mean "not created": gateways answer 504
after the provider stored the record, and post-functions fail after it. A create made under something
the connector can find it by (a client-chosen id, a marker: the calendar's event handle, a ticket's
marker label, a time-off request's own days) is settled by `settle_create`: found → its answer, as the
first attempt would have given; absent → the original error (nothing was made; a retry is safe); the
look-up failing too → `upstream_error` (not retryable) naming what may be left. Outside reviews money19
#1 (a calendar booking twice) and domains26 #1 (a Jira issue twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from servers.kit.errors import DomainError
from servers.kit.http import SentUnsure

T = TypeVar("T")

DEFINITE = frozenset({"conflict", "invalid_argument", "not_found", "forbidden", "unauthorized", "rate_limited"})
"""Refusals that say the write did not happen."""


def unclear(exc: BaseException) -> bool:
    """Whether a failed write may have happened anyway (a 5xx, no answer, an unreadable answer)."""
    return not (isinstance(exc, DomainError) and exc.body.code in DEFINITE)


def duplicate(exc: BaseException) -> bool:
    """Whether a create was refused because its handle is taken (Google 409 "already exists", a CalDAV
    412 on If-None-Match: *, the embedded store's row): it may be this very create, landed earlier."""
    if not isinstance(exc, DomainError) or exc.body.code != "conflict":
        return False
    details = exc.body.details or {}
    return details.get("status") == 409 or bool(details.get("duplicate"))


def reason(exc: BaseException) -> str:
    """A failure's words for a message: a domain error's own message, else the exception's type."""
    return exc.body.message if isinstance(exc, DomainError) else type(exc).__name__


def nothing_made(provider: str, handle: str, exc: Exception) -> Exception:
    """The failure of a create the look-up found nothing of: as it came, unless the transport called its
    outcome unknown (`servers.kit.http`: a POST answered 5xx or not at all) — the look-up settled that,
    so it is the retryable `unavailable` it would have been."""
    if not isinstance(exc, SentUnsure):
        return exc
    details = {k: v for k, v in (exc.body.details or {}).items() if k != "outcome"}
    return DomainError("unavailable", f"{provider} failed to make it ({handle}) and holds nothing of it (looked up); try again "
                       "later", retry_after_s=exc.body.retry_after_s, details=details)


async def settle_create(provider: str, handle: str, post: Callable[[], Awaitable[T]], find: Callable[[], Awaitable[T | None]], *,
                        what: str, advice: str, details: dict[str, Any], check: Callable[[T], T] | None = None,
                        vanished: Callable[[], Exception] | None = None, post_may_repeat: bool = False) -> T:
    """`post` a create named by `handle`; after an unclear answer or a duplicate, `find` it (module
    docstring). `check`: what a found record must hold to be this create's answer (it raises otherwise:
    a handle can outlive the key it came from); `vanished`: the error for a duplicate whose record is
    gone (never the same refusal for ever); `post_may_repeat`: the POST itself may answer an earlier
    create's record (Graph's transactionId), so its answer is checked too."""
    try:
        made = await post()
    except Exception as exc:
        if not (unclear(exc) or duplicate(exc)):
            raise
        try:
            found = await find()
        except Exception as missed:
            raise DomainError(
                "upstream_error", f"{provider} gave no clear answer while creating {what} ({handle}) ({reason(exc)}), and "
                f"looking it up failed too ({reason(missed)}). {advice}",
                details={"partially_applied": True, **details, "may_be_left": handle}) from exc
        if found is None:
            if vanished is not None and duplicate(exc):
                raise vanished() from exc
            raise nothing_made(provider, handle, exc) from exc
        return check(found) if check is not None else found
    return check(made) if check is not None and post_may_repeat else made
