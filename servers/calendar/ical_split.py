"""A "this and following" edit of an iCalendar series (embedded store, CalDAV) as writes that never
lose an occurrence — the guarantee `providers/splitting.py` gives Google and Graph.

The edit is computed first (`edits.change`: the old series cut short, and a new series that already
holds the old one's edited and deleted occurrences from the split point). Then: (1) store the new
series, (2) store the old one cut short, conditional on the version it was read at (the embedded
store compares its etag; CalDAV PUTs with If-Match). A failure of (1) removes whatever of the new
series may have been stored; a failure of (2) deletes the new series again (an outcome the store
could not tell is settled by reading the old series back). Either way the calendar is as before and
the error is the original one. Only when that clean-up fails is the answer `upstream_error` (not
retryable) naming what is left. The embedded store writes each object in its own transaction, so it
needs this order too: a failure between the two would otherwise leave the series cut short.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from icalendar import Calendar

from servers.calendar import ical
from servers.calendar.providers.splitting import SplitSteps, split_series
from servers.kit.errors import DomainError
from servers.kit.landed import undone

if TYPE_CHECKING:
    from servers.calendar.backend import IcalBackend


async def split(backend: IcalBackend, calendar_id: str, series_id: str, etag: str, cut: Calendar, follower: Calendar,
                split_at: datetime | date) -> str:
    """Store `follower` (the new series), then `cut` (the old series ended before `split_at`) if its
    etag is still `etag`; answers the new series' etag. `conflict` when the old series moved on."""
    new_uid = str(ical.master(follower)["UID"])
    cut_text, follower_text = cut.to_ical().decode(), follower.to_ical().decode()

    async def create() -> tuple[str, dict[str, str]]:
        try:
            return new_uid, {"etag": await backend._save(calendar_id, new_uid, follower_text, None)}
        except Exception as exc:
            await _unstore(backend, calendar_id, series_id, new_uid, split_at, exc)
            raise

    async def carry(_: str) -> None:  # the follower already holds the carried occurrences (`edits.change`)
        return None

    async def end() -> None:
        await backend._save(calendar_id, series_id, cut_text, etag)

    async def ended() -> bool:
        text, _ = await backend._load(calendar_id, series_id)
        return ical.same_events(cut_text, text)

    async def remove(uid: str) -> None:
        await backend._remove(calendar_id, uid)

    steps = SplitSteps(provider=backend.name, series_id=series_id, split_at=split_at, create=create, carry=carry, end=end,
                       ended=ended, remove=remove)
    return (await split_series(steps))["etag"]


async def _unstore(backend: IcalBackend, calendar_id: str, series_id: str, new_uid: str, split_at: datetime | date,
                   cause: BaseException) -> None:
    """After a failed store of the new series: remove it in case the store kept it anyway (a PUT whose
    answer was lost), so a retry cannot leave it twice; if that is not possible either, say so."""
    try:
        await backend._remove(calendar_id, new_uid)
    except DomainError as exc:
        if exc.body.code == "not_found":
            return
        reason = cause.body.message if isinstance(cause, DomainError) else type(cause).__name__
        raise DomainError(
            "upstream_error", f"a this_and_following edit of {series_id} failed while storing the new series {new_uid} that "
            f"continues it from {split_at} ({reason}), and whether that was stored could not be checked ({exc.body.message}). "
            f"The old series is unchanged. List the events from {split_at}: if they show twice, delete the new series "
            f"(delete_event event_id={new_uid!r}, scope='all'); then retry the edit",
            details={"partially_applied": True, "may_be_left": new_uid}) from cause
    undone()
