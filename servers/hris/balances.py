"""One available figure per time-off type, shared by `get_time_off_balances` and `request_time_off`.

The rule: available = entitlement − booked (approved, taken or upcoming) − pending (requested,
not yet decided). Pending requests count because approving one must never overdraw the balance;
cancelling or denying one gives its hours back. A backend computes a `Balance` once, and both
tools read `available_hours` from it, so the balance an agent sees is the one a request is
checked against, and a refusal carries the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from servers.hris.model import Balance, TimeOffRequest
from servers.kit.errors import DomainError


def balance_of(
    type: str, *, booked: float, taken: float, pending: float, entitlement: float | None = None,
    provider_balance: float | None = None,
) -> Balance:
    """A `Balance` from an entitlement (embedded) or from a provider's own balance, which counts
    approved leave but not pending requests (BambooHR, Workday)."""
    if entitlement is not None:
        available = entitlement - booked - pending
    else:
        available = (provider_balance or 0.0) - pending
    return Balance(type=type, entitlement_hours=entitlement, booked_hours=booked, taken_hours=taken,
                   pending_hours=pending, available_hours=available)


def requested_hours(requests: Iterable[TimeOffRequest], as_of: date) -> tuple[dict[str, float], dict[str, float]]:
    """Per lower-cased type: hours pending, and hours approved starting after `as_of` (upcoming)."""
    pending: dict[str, float] = {}
    upcoming: dict[str, float] = {}
    for r in requests:
        kind = (r.type or "").lower()
        if r.status == "requested":
            pending[kind] = pending.get(kind, 0.0) + r.hours
        elif r.status == "approved" and r.start > as_of:
            upcoming[kind] = upcoming.get(kind, 0.0) + r.hours
    return pending, upcoming


def not_enough(balance: Balance, hours: float) -> DomainError:
    """The refusal of a request over the balance, with the figures `get_time_off_balances` shows."""
    parts = f"{balance.booked_hours:g}h booked − {balance.pending_hours:g}h pending"
    if balance.entitlement_hours is not None:
        parts = f"{balance.entitlement_hours:g}h entitlement − {parts}"
    return DomainError(
        "conflict",
        f"not enough {balance.type}: {balance.available_hours:g}h available ({parts}), {hours:g}h requested; "
        "cancel a pending request or ask for fewer days",
        details={"type": balance.type, "requested_hours": hours, "available_hours": balance.available_hours,
                 "entitlement_hours": balance.entitlement_hours, "booked_hours": balance.booked_hours,
                 "pending_hours": balance.pending_hours},
    )
