"""A "this and following" edit of a provider series (Google, Graph) as writes that never lose an occurrence.

Every read and check comes first (the series' etag against `expected_etag`, the rule, the occurrence,
the old series' edited and deleted occurrences), so a refusal changes nothing. Then: (1) create the
new series, (2) carry the old series' edited and deleted occurrences from the split point over to it,
(3) end the old series before the split point, with If-Match on the etag it was read at. A failure in
(2) or (3) deletes the new series again and answers that failure (the calendar is as before); an end
whose outcome is unknown (5xx, no answer) is settled by reading the old series back. Only when that
compensation fails too is the answer `upstream_error` (not retryable), naming what is left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from servers.calendar.series_edits import shifter
from servers.kit.errors import DomainError
from servers.kit.landed import undone

DEFINITE = frozenset({"conflict", "invalid_argument", "not_found", "forbidden", "unauthorized", "rate_limited"})
"""Failures the provider answered before acting: the write did not happen."""


@dataclass(frozen=True)
class SplitSteps:
    """The provider requests of one split; `create` answers the new series (its raw body and id)."""

    provider: str
    series_id: str
    split_at: datetime | date
    create: Callable[[], Awaitable[tuple[str, dict[str, Any]]]]
    carry: Callable[[str], Awaitable[None]]
    end: Callable[[], Awaitable[None]]
    ended: Callable[[], Awaitable[bool]]
    """Reads the old series back: True if it ends before the split point, False if it runs on as before."""
    remove: Callable[[str], Awaitable[None]]


def stale(series_id: str) -> DomainError:
    return DomainError("conflict", f"the series {series_id} changed since you read it (its etag no longer matches); nothing "
                       "was changed: read it again (get_event) and retry with its new etag")


def slot_shift(old: datetime | date, new: datetime | date) -> Callable[[datetime | date], datetime | date]:
    """Where an occurrence of the old series lands in the new one (same wall-clock delta as its first)."""
    return shifter(old, new)  # type: ignore[no-any-return]


async def split_series(steps: SplitSteps) -> dict[str, Any]:
    """Run `steps` (see the module); answers the new series' raw body."""
    try:
        new_id, created = await steps.create()
    except DomainError as exc:
        if exc.body.code != "timeout":
            raise
        raise DomainError("timeout", f"{steps.provider} did not answer while creating the series that continues {steps.series_id} "
                          f"from {steps.split_at}; the old series is unchanged, but the new one may exist: list the events "
                          "from then and delete a duplicate series before retrying") from exc
    try:
        await steps.carry(new_id)
        await steps.end()
    except Exception as exc:
        if isinstance(exc, DomainError) and exc.body.code in DEFINITE or not await _landed_anyway(steps):
            await _compensate(steps, new_id, exc)
            if isinstance(exc, DomainError) and exc.body.code == "conflict":
                raise stale(steps.series_id) from exc
            raise
    return created


async def _landed_anyway(steps: SplitSteps) -> bool:
    """After an end whose outcome is unknown: whether the old series was ended after all."""
    try:
        return await steps.ended()
    except Exception as exc:
        raise DomainError("upstream_error", f"a this_and_following edit of {steps.series_id} could not tell whether the old series "
                          f"was ended before {steps.split_at} ({exc}); a new series continuing it was created. Read both "
                          "(list_events from the split point): if the old one still runs on, delete the new one, then retry",
                          details={"partially_applied": True}) from exc


async def _compensate(steps: SplitSteps, new_id: str, cause: BaseException) -> None:
    """Delete the new series so the calendar is as before; if that fails, say exactly what is left."""
    try:
        await steps.remove(new_id)
    except DomainError as exc:
        if exc.body.code != "not_found":
            reason = cause.body.message if isinstance(cause, DomainError) else type(cause).__name__
            raise DomainError(
                "upstream_error", f"a this_and_following edit of {steps.series_id} failed ({reason}) and the new series {new_id} it "
                f"had created could not be removed ({exc.body.message}). The old series is unchanged, so occurrences from "
                f"{steps.split_at} now show twice: delete the new series (delete_event event_id={new_id!r}, scope='all'), "
                "then retry the edit", details={"partially_applied": True, "left_series": new_id}) from cause
    undone()
