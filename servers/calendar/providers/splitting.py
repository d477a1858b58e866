"""A "this and following" edit of a provider series (Google, Graph) as writes that never lose an occurrence.

Every read and check comes first (the series' etag against `expected_etag`, the rule, the occurrence,
the old series' edited and deleted occurrences), so a refusal changes nothing. Then: (1) create the
new series, (2) carry the old series' edited and deleted occurrences from the split point over to it,
(3) end the old series before the split point, with If-Match on the etag it was read at. The create
names the new series by a client-chosen handle, so an unclear answer to it is settled by looking it up
(`create_known`; every connector's plain `create` is settled the same way: `create_handle`,
`settle_create`). A failure in (2) (the old series was never asked to end) or in (3) deletes the new
series again and answers that failure (the calendar is as before); an end whose outcome is unknown
(5xx, no answer) is settled by reading the old series back. Only when that compensation or read-back
fails too is the answer `upstream_error` (not retryable), naming both series (`series`, `left_series`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from servers.calendar.series_edits import shifter
from servers.calendar.timeutil import as_utc
from servers.kit.errors import DomainError
from servers.kit.idempotency import provider_key
from servers.kit.landed import undone
from servers.kit.settle import reason as _reason, settle_create as settle, unclear

if TYPE_CHECKING:
    from servers.calendar.model import Event, NewEvent

T = TypeVar("T")

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


def _repeat(etag: str | None) -> str:
    return "repeat the same call to finish it" + (f" (with expected_etag {etag!r}: the series' etag changes with each "
                                                  "occurrence written)" if etag else "")


def occurrences_not_reached(series_id: str, reached: int, failed: int | None, cause: DomainError,
                            series_written: bool, etag: str | None = None) -> DomainError:
    """A whole-series change whose edited occurrences (`reach_exceptions`, `reach_occurrences`) could not all take it:
    `failed` of them refused it, or (None) they could not be listed. Before the series itself is written (a change
    of text or attendees writes its occurrences first) the call can simply be repeated: it finishes what is left.
    After it (a move or a new rule writes the series first) a repeat would read the series already changed and take
    those occurrences' old values for their own, so the answer says what to do instead."""
    what = f"{failed} of them could not take it" if failed is not None else "they could not be listed"
    if not series_written:
        return DomainError(
            "upstream_error", f"the change to the series {series_id} stopped before the series itself: {reached} of its "
            f"edited occurrences already show it, but {what} ({_reason(cause)}); {_repeat(etag)}",
            retryable=cause.body.retryable, retry_after_s=cause.body.retry_after_s,
            details={"partially_applied": reached > 0, "series": series_id, "series_changed": False,
                     **({"occurrences_not_changed": failed} if failed is not None else {}), **({"etag": etag} if etag else {})})
    return DomainError(
        "upstream_error", f"the series {series_id} was changed, and {reached} of its edited occurrences with it, but "
        f"{what} ({_reason(cause)}); list its occurrences (list_events) and change those still showing the old value "
        "one by one (scope='this')",
        details={"partially_applied": True, "series": series_id, "series_changed": True,
                 **({"occurrences_not_changed": failed} if failed is not None else {})})


REACH_ATTEMPTS = 3
"""How often one edited occurrence changed meanwhile is read again and judged afresh before it counts as refused."""


def gone(exc: DomainError) -> bool:
    """A provider's answer that the event or occurrence is deleted: Graph answers 404, Google 404 or 410 (Gone)."""
    return exc.body.code == "not_found" or (exc.body.details or {}).get("status") == 410


async def reach_each(items: list[dict[str, Any]], patch_for: Callable[[dict[str, Any]], dict[str, Any]],
                     write: Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]],
                     reread: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> tuple[int, int, DomainError | None]:
    """Writes `patch_for(occurrence)` (what of a whole-series change it takes; {}: nothing) to each listed edited
    occurrence, Google's and Graph's alike: (written, refused, the last refusal).

    `write` sends the occurrence's etag as listed (If-Match), so one changed between the listing and its write (an
    invitee answering it, someone editing that occurrence alone) is not overwritten with what the listing showed: the
    provider refuses it (`conflict`), it is read again (`reread`) and judged afresh, a field it now sets itself
    staying its own, up to `REACH_ATTEMPTS` times; one deleted meanwhile (its write or re-read answered 404 or 410)
    needs nothing. A rate limit stops
    the loop: the rest would be refused too, and each refusal costs the caller's quota (they count as refused)."""
    written, refused, cause = 0, 0, None
    for index, item in enumerate(items):
        for attempt in range(REACH_ATTEMPTS):
            patch = patch_for(item)
            if not patch:
                break
            try:
                await write(item, patch)
                written += 1
                break
            except DomainError as exc:
                if gone(exc):  # deleted meanwhile (outside review r34 #1): nothing to change there
                    break
                if exc.body.code != "conflict" or attempt + 1 == REACH_ATTEMPTS:
                    refused, cause = refused + 1, exc
                    break
            try:
                item = await reread(item)
            except DomainError as exc:
                if not gone(exc):
                    refused, cause = refused + 1, exc
                break
        if cause is not None and cause.body.code == "rate_limited":
            return written, refused + sum(1 for rest in items[index + 1:] if patch_for(rest)), cause
    return written, refused, cause


def series_not_written(series_id: str, reached: int, cause: DomainError, etag: str | None = None) -> DomainError:
    """A whole-series change of text or attendees whose `reached` edited occurrences took it while the series itself,
    written last, did not (`cause`; outside review cal32 #3: the kit's "do not repeat" said the opposite of what
    finishes it). A repeat of the same call finishes it; a `conflict` means someone changed the series meanwhile."""
    if cause.body.code == "conflict":
        return DomainError(
            "conflict", f"someone changed the series {series_id} meanwhile, after {reached} of its edited occurrences had "
            "already taken this change (the series did not): read it (get_event) and repeat the same call with its "
            "current etag as expected_etag to finish it",
            details={"partially_applied": True, "series": series_id, "series_changed": False, **({"etag": etag} if etag else {})})
    return DomainError(
        "upstream_error", f"the series {series_id} itself could not take the change ({_reason(cause)}) after {reached} of "
        f"its edited occurrences did; {_repeat(etag)}", retryable=cause.body.retryable, retry_after_s=cause.body.retry_after_s,
        details={"partially_applied": True, "series": series_id, "series_changed": False, **({"etag": etag} if etag else {})})


UNSURE = frozenset({"timeout", "unavailable", "upstream_error"})
"""Failures of a series write that may have landed (no answer, a 5xx, an answer that could not be read)."""


async def write_series(series_id: str, extras: int, write: Awaitable[T]) -> T:
    """`write`, the PATCH of a series' new times or rule, after which `extras` edited or deleted occurrences are
    put back at their slots: an answer lost on the way is `moved_answer_lost` when there are any."""
    try:
        return await write
    except DomainError as exc:
        if extras and exc.body.code in UNSURE:
            raise moved_answer_lost(series_id, extras, exc) from exc
        raise


def moved_answer_lost(series_id: str, extras: int, cause: DomainError) -> DomainError:
    """A move or new rule of a series with `extras` edited or deleted occurrences whose write got no answer (`cause`,
    a timeout): it may have landed before they were put back at their slots, and a repeat would read the series
    already moved and leave them (outside review cal32 #1: occurrences moved on their own lost their time, the repeat
    answering success). So not retryable, and it says what to check."""
    return DomainError(
        "upstream_error", f"the series {series_id} was sent its new times or rule but got no clear answer ({_reason(cause)}), so "
        f"it may have changed before its {extras} edited or deleted occurrences were put back at their slots. Do not "
        "repeat this call: read the series (get_event); if it shows the change, list its occurrences (list_events) and "
        "move or delete again with scope='this' those that show wrongly; if not, repeat it",
        retryable=False, details={"outcome": "unknown", "series": series_id, "occurrences": extras})


def stale(series_id: str) -> DomainError:
    return DomainError("conflict", f"the series {series_id} changed since you read it (its etag no longer matches); nothing "
                       "was changed: read it again (get_event) and retry with its new etag")


def slot_shift(old: datetime | date, new: datetime | date) -> Callable[[datetime | date], datetime | date]:
    """Where an occurrence of the old series lands in the new one (same wall-clock delta as its first)."""
    return shifter(old, new)  # type: ignore[no-any-return]


def create_handle(scope: str, key: str | None) -> str:
    """The handle a create is made under (32 lowercase hex characters: a valid Google event id — base32hex,
    5-1024 long —, Graph transactionId and iCalendar UID). With the caller's `idempotency_key` it is derived
    from (`scope`, the key as `provider_key` scopes it: caller, tool, the call's arguments), so the hub's
    retry of the same keyed call asks for the same event again instead of booking it twice (outside review
    money19 #1); without a key, a fresh one per call."""
    sent = provider_key("create_event", key)
    if sent is None:
        return uuid.uuid4().hex
    return hashlib.sha256(json.dumps([scope, sent], separators=(",", ":")).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Asked:
    """What a keyed create asks (`new`) and how to read a provider's answer as an event (`read`): a handle
    found taken is answered only when its event still holds what is asked (`asked_for`)."""

    new: NewEvent
    read: Callable[[Any], Event]
    rule: list[str] | None = None
    """The asked rule as the provider states it back, when it restates it (Graph: its pattern's RRULE)."""


def _rule_shape(lines: list[str] | str | None) -> tuple[str, str] | None:
    """A rule's FREQ and INTERVAL: what a provider keeps as written (BYDAY, WKST, UNTIL's form it may restate)."""
    candidates = [lines] if isinstance(lines, str) else lines or []
    text = next((line.strip().upper() for line in candidates if line.strip().upper().startswith(("RRULE:", "FREQ="))), None)
    if text is None:
        return None
    parts = dict(p.split("=", 1) for p in text.removeprefix("RRULE:").split(";") if "=" in p)
    return parts.get("FREQ", ""), parts.get("INTERVAL", "1")


def _same_time(shown: Any, asked: datetime | date) -> bool:
    if isinstance(asked, datetime):
        return shown.utc is not None and shown.utc == as_utc(asked, "UTC")
    return shown.date == asked  # type: ignore[no-any-return]


def asked_for(event: Event, new: NewEvent, rule: list[str] | None = None) -> bool:
    """Whether `event` (found under a create's handle) is what `new` asks: calendar, title, start, end,
    all-day and recurrence (its FREQ and INTERVAL, of `rule` when the provider restates the asked one)."""
    return (event.calendar_id == new.calendar_id and event.title.strip() == new.title.strip() and event.all_day == new.all_day
            and _same_time(event.start, new.start) and _same_time(event.end, new.end)
            and _rule_shape(event.recurrence) == _rule_shape(rule if rule is not None else new.rrule))


def made_earlier(handle: str, event_id: str | None) -> DomainError:
    """A create whose handle names an event made by an earlier create with the same key (whose record expired)
    that has since changed or been deleted: answering it would claim a booking that does not exist."""
    which = f"event {event_id}" if event_id else "its event"
    state = "has since been changed or moved" if event_id else "has since been deleted"
    return DomainError(
        "conflict", f"a create with this idempotency_key was made earlier ({which}, {handle}) and {state}, so it is not "
        "answered as this create. To create another event, send a new idempotency_key; to change that one, use update_event",
        details={"reason": "idempotency_key_used", "handle": handle, **({"event_id": event_id} if event_id else {})})


def _answer(found: T, handle: str, asked: Asked | None) -> T:
    if asked is not None:
        event = asked.read(found)
        if not asked_for(event, asked.new, asked.rule):
            raise made_earlier(handle, event.id)
    return found


async def settle_create(provider: str, handle: str, post: Callable[[], Awaitable[T]], find: Callable[[], Awaitable[T | None]], *,
                        what: str, advice: str, details: dict[str, Any], asked: Asked | None = None,
                        post_may_repeat: bool = False) -> T:
    """`servers.kit.settle.settle_create` for an event: with `asked`, an event found under the handle is
    answered only if it still holds what is asked (handles outlive idempotency keys: recheck21d #3), and a
    duplicate whose event is gone (Google keeps a deleted id) is `conflict`, never a success."""
    return await settle(provider, handle, post, find, what=what, advice=advice, details=details,
                        check=(lambda found: _answer(found, handle, asked)) if asked is not None else None,
                        vanished=(lambda: made_earlier(handle, None)) if asked is not None else None,
                        post_may_repeat=post_may_repeat)


async def create_known(provider: str, series_id: str, split_at: datetime | date, handle: str,
                       post: Callable[[], Awaitable[tuple[str, dict[str, Any]]]],
                       find: Callable[[], Awaitable[tuple[str, dict[str, Any]] | None]]) -> tuple[str, dict[str, Any]]:
    """The new series of a split, created under `handle` (Google's event id, Graph's transactionId) and
    settled like any create (`settle_create`; re-check 17w #1: a 503 after the POST landed was retried by
    the hub, and the series was split twice)."""
    return await settle_create(
        provider, handle, post, find, what=f"the series that continues {series_id} from {split_at}",
        advice=f"The old series is unchanged. List the events from {split_at}: if they show twice, delete the new series "
               "(the one starting then), then retry the edit", details={"series": series_id})


async def split_series(steps: SplitSteps) -> dict[str, Any]:
    """Run `steps` (see the module); answers the new series' raw body. A create that can answer unclearly
    settles that itself (`create_known`; the iCalendar stores remove what may be stored)."""
    new_id, created = await steps.create()
    try:
        await steps.carry(new_id)
    except Exception as exc:  # the old series was not asked to end: only the new one is to undo
        await _compensate(steps, new_id, exc)
        _reraise(steps, exc)
    try:
        await steps.end()
    except Exception as exc:
        if not unclear(exc) or not await _landed_anyway(steps, new_id, exc):
            await _compensate(steps, new_id, exc)
            _reraise(steps, exc)
    return created


def _reraise(steps: SplitSteps, exc: Exception) -> NoReturn:
    if isinstance(exc, DomainError) and exc.body.code == "conflict":
        raise stale(steps.series_id) from exc
    raise exc


async def _landed_anyway(steps: SplitSteps, new_id: str, cause: BaseException) -> bool:
    """After an end whose outcome is unknown: whether the old series was ended after all."""
    try:
        return await steps.ended()
    except Exception as exc:
        raise DomainError(
            "upstream_error", f"a this_and_following edit of {steps.series_id} could not tell whether the old series was ended "
            f"before {steps.split_at} (ending it: {_reason(cause)}; reading it back: {_reason(exc)}); the new series {new_id} "
            f"continuing it exists. Read {steps.series_id} (get_event): if it still runs on from {steps.split_at}, delete the new "
            f"series (delete_event event_id={new_id!r}, scope='all') and retry; if it ends before, the edit is done",
            details={"partially_applied": True, "series": steps.series_id, "left_series": new_id}) from exc


async def _compensate(steps: SplitSteps, new_id: str, cause: BaseException) -> None:
    """Delete the new series so the calendar is as before (a delete whose answer was unclear is asked
    again: `not_found` then means it went); if that fails, say exactly what is left."""
    for attempt in (1, 2):
        try:
            await steps.remove(new_id)
            break
        except DomainError as exc:
            if exc.body.code == "not_found":
                break
            if attempt == 1 and unclear(exc):
                continue
            raise DomainError(
                "upstream_error", f"a this_and_following edit of {steps.series_id} failed ({_reason(cause)}) and the new series "
                f"{new_id} it had created could not be removed ({exc.body.message}). The old series {steps.series_id} is "
                f"unchanged, so occurrences from {steps.split_at} now show twice: delete the new series (delete_event "
                f"event_id={new_id!r}, scope='all'), then retry the edit",
                details={"partially_applied": True, "series": steps.series_id, "left_series": new_id}) from cause
    undone()
