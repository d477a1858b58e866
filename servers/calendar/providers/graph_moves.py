"""Microsoft Graph: changes to a whole series (`update_event` scope "all") that must keep what the series
shows, as the embedded/CalDAV backend does (`edits.change`; outside review writes28 #3, #4, #10, #11):

- a new start (or a zone re-anchor) sends the moved `recurrence.range` too — its `startDate` (Graph's first
  day of the series; a PATCH of `start` alone leaves the series where it was) and an `endDate` moved by as
  many days, so the series keeps its number of occurrences — and then deletes again and re-edits its
  deleted and edited occurrences at their moved slots (Exchange drops a series' exceptions when its time
  changes); a slot found already deleted is skipped;
- `rrule=""` makes the event what the first occurrence still shown was (a deleted first one is skipped,
  an edited one keeps its edits);
- a change of text fields or attendees reaches the edited occurrences, except a field one changed itself
  (`reach_occurrences`)."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from servers.calendar import rrules
from servers.calendar.model import EventChanges
from servers.calendar.providers.graph_series import (CARRIED, addresses, carry_extras, if_match, moved_range, series_extras,
                                                     with_statuses)
from servers.calendar.providers.graph_times import iana
from servers.calendar.providers.graph_times import read as _read
from servers.calendar.providers.splitting import occurrences_not_reached, reach_each, slot_shift, stale, write_series
from servers.calendar.timeutil import as_utc, zone
from servers.kit.errors import DomainError

if TYPE_CHECKING:
    from servers.calendar.providers.graph import GraphCalendar

HORIZON = timedelta(days=3660)
"""How far an unbounded series is looked at for its first shown occurrence."""


def series_start(master: dict[str, Any], tz: str) -> datetime | date:
    """Where the series begins: its range's `startDate` at the master's time (a date for all-day)."""
    recurrence = master["recurrence"]
    series_zone = iana(recurrence["range"].get("recurrenceTimeZone"), tz)
    at = _read(master["start"], tz).astimezone(zone(series_zone))
    day = date.fromisoformat(recurrence["range"].get("startDate") or at.date().isoformat())
    return day if master.get("isAllDay") else datetime.combine(day, at.time(), zone(series_zone))


async def first_shown(cal: GraphCalendar, event_id: str, master: dict[str, Any], tz: str) -> dict[str, Any] | None:
    """The series' first occurrence still shown (not deleted), or None."""
    begin = as_utc(series_start(master, tz), tz)
    span = master["recurrence"]["range"]
    end = datetime.fromisoformat(span["endDate"]).replace(tzinfo=UTC) + timedelta(days=2) \
        if span.get("type") == "endDate" and span.get("endDate") else begin + HORIZON
    body = await cal.http.json("GET", cal._events(event_id) + "/instances", headers=cal._prefer(tz), params={
        "startDateTime": (begin - timedelta(days=1)).isoformat(), "endDateTime": end.isoformat()})
    items = [i for i in body.get("value", []) if not i.get("isCancelled")]
    # an edited occurrence may have been moved outside that window: the exceptions are read too, wherever they
    # are (outside review cal28 #1, #2)
    items += await edited_occurrences(cal, event_id, tz)
    return min(items, key=lambda i: _read(i["start"], tz).astimezone(UTC)) if items else None


async def edited_occurrences(cal: GraphCalendar, event_id: str, tz: str) -> list[dict[str, Any]]:
    """The series' edited occurrences (`exceptionOccurrences`), wherever they were moved."""
    extras = await cal.http.json("GET", cal._events(event_id), headers=cal._prefer(tz),
                                 params={"$select": "id", "$expand": "exceptionOccurrences"})
    return [e for e in extras.get("exceptionOccurrences") or [] if not e.get("isCancelled")]


REACHED = ("subject", "body", "location", "attendees")
"""The fields a whole-series change carries to the series' edited occurrences (`reach_occurrences`)."""


async def reach_occurrences(cal: GraphCalendar, event_id: str, before: dict[str, Any], after: dict[str, Any],
                            body: dict[str, Any], tz: str, series_written: bool) -> int:
    """A `scope="all"` change of text fields or attendees reaches the series' edited occurrences, as a split's does
    (embedded `edits._reach_edited`; Google `reach_exceptions`): each field `body` sets, unless the occurrence
    changed that field itself (differs from the series as it was, `before`); an invitee's own answer (`status`)
    there stays. Outside review cal29b #5: a moved occurrence kept the old subject while the call answered success.
    `after`: the series as the change left it (or as it is: a change of text or attendees writes the occurrences
    first, `series_written` False). The number written (each changes the series' change key, as Exchange does)."""
    named = {key: body[key] for key in REACHED if key in body}
    if not named or not after.get("recurrence"):
        return 0
    try:
        items = await edited_occurrences(cal, event_id, tz)
    except DomainError as exc:
        if not series_written:
            raise
        raise occurrences_not_reached(event_id, 0, None, exc, series_written) from exc

    def patch_for(item: dict[str, Any]) -> dict[str, Any]:
        if item.get("isCancelled"):
            return {}
        own = {key for key in REACHED if key in item and item[key] != before.get(key)}
        patch = {key: value for key, value in named.items() if key not in own}
        if "attendees" in named and "attendees" in own and addresses(item.get("attendees")) == addresses(before.get("attendees")):
            patch["attendees"] = with_statuses(named["attendees"], item.get("attendees"))
        return {key: value for key, value in patch.items() if item.get(key) != value}

    async def write(item: dict[str, Any], patch: dict[str, Any]) -> None:
        await cal.http.json("PATCH", cal._events(item["id"]), json=patch, headers={**cal._prefer(tz), **if_match(item)},
                            idempotent=True)

    async def reread(item: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await cal.http.json("GET", cal._events(item["id"]), headers=cal._prefer(tz))
        return found

    reached, failed, cause = await reach_each(items, patch_for, write, reread)
    if cause is not None:
        etag = None
        if reached and not series_written:  # the series' change key moved with each occurrence written: a repeat needs it
            with suppress(DomainError):
                etag = (await cal.http.json("GET", cal._events(event_id), headers=cal._prefer(tz))).get("@odata.etag")
        raise occurrences_not_reached(event_id, reached, failed, cause, series_written, etag)
    return reached


async def _series_master(cal: GraphCalendar, event_id: str, expected_etag: str | None,
                         prefer: dict[str, str]) -> dict[str, Any] | None:
    """The series' master as read now (`conflict` when `expected_etag` is stale), or None: not a series."""
    master: dict[str, Any] = await cal.http.json("GET", cal._events(event_id), headers=prefer)
    if expected_etag and master.get("@odata.etag") != expected_etag:
        raise stale(event_id)
    return master if master.get("recurrence") else None


async def change_series(cal: GraphCalendar, event_id: str, body: dict[str, Any], changes: EventChanges,
                        expected_etag: str | None, tz: str) -> dict[str, Any] | None:
    """Applies `body` (a PATCH of the whole series) keeping what the series shows (see the module); the
    master's raw body after it, or None when `body` needs nothing of this (the caller PATCHes it as is)."""
    if (changes.start is None and changes.rrule != "") or changes.rrule:  # a new rule: `GraphCalendar.update` sends it whole
        return None
    prefer = cal._prefer(tz)
    master = await _series_master(cal, event_id, expected_etag, prefer)
    if master is None:
        return None
    body = dict(body)
    cancelled: list[datetime | date] = []
    edited: list[tuple[dict[str, Any], datetime | date]] = []
    shift = None
    if changes.rrule == "":  # no longer a series: it becomes its first occurrence as shown
        first = await first_shown(cal, event_id, master, tz)
        if first is not None:
            own = {k: first[k] for k in CARRIED if k in first and first[k] != master.get(k)}
            body = {"start": first["start"], "end": first["end"], **own} | body
        body["recurrence"] = None
    elif changes.rrule is None and changes.start is not None:
        old, new = series_start(master, tz), changes.start
        series_zone = iana(master["recurrence"]["range"].get("recurrenceTimeZone"), tz)
        if as_utc(new, series_zone) != as_utc(old, series_zone) or isinstance(new, datetime) != isinstance(old, datetime):
            cancelled, edited = await series_extras(cal, event_id, master, tz, old)
            if (cancelled or edited) and isinstance(new, datetime) != isinstance(old, datetime):
                raise _switch_refused(event_id, len(cancelled) + len(edited))
            body["recurrence"] = moved_range(master["recurrence"], old, new, series_zone)
            shift = slot_shift(old, new)
    raw: dict[str, Any] = await write_series(event_id, len(cancelled) + len(edited) if shift is not None else 0, cal.http.json(
        "PATCH", cal._events(event_id), json=body, headers=prefer | if_match(master), idempotent=True))
    if shift is not None and (cancelled or edited):
        raw = await _put_back(cal, event_id, master, (cancelled, edited), shift, tz, "moved")
    return raw


async def patch_keeping(cal: GraphCalendar, event_id: str, body: dict[str, Any], new_start: datetime | date | None,
                        expected_etag: str | None, tz: str) -> dict[str, Any] | None:
    """PATCHes a series' new rule or new times (`body`: what `change_series` leaves to the caller) and then
    deletes again and re-edits its deleted and edited occurrences that the new series still has (at their
    slots moved like its start to `new_start`, or where they were): Exchange drops a series' exceptions when
    its pattern or times change (outside review cal28 #7). The master's raw body after it; None when it is
    not a series or the PATCH touches none of that (the caller PATCHes it as is)."""
    if not {"start", "end", "recurrence", "isAllDay"} & body.keys():
        return None
    prefer = cal._prefer(tz)
    master = await _series_master(cal, event_id, expected_etag, prefer)
    if master is None:
        return None
    old = series_start(master, tz)
    cancelled, edited = await series_extras(cal, event_id, master, tz, old)
    if (cancelled or edited) and new_start is not None and isinstance(new_start, datetime) != isinstance(old, datetime):
        raise _switch_refused(event_id, len(cancelled) + len(edited))
    raw: dict[str, Any] = await write_series(event_id, len(cancelled) + len(edited), cal.http.json(
        "PATCH", cal._events(event_id), json=body, headers=prefer | if_match(master), idempotent=True))
    if cancelled or edited:
        shift = slot_shift(old, new_start) if new_start is not None else (lambda value: value)
        raw = await _put_back(cal, event_id, master, (cancelled, edited), shift, tz, "changed")
    return raw


def _switch_refused(event_id: str, extras: int) -> DomainError:
    """A timed <-> all-day switch of a series with `extras` edited or deleted occurrences (they cannot follow it)."""
    return DomainError("invalid_argument", f"changing the series {event_id} between timed and all-day would lose its "
                       f"{extras} edited or deleted occurrences; delete the series and create a new one instead",
                       details={"field": "start"})


async def _put_back(cal: GraphCalendar, event_id: str, master: dict[str, Any], extras: tuple[list[Any], list[Any]],
                    shift: Any, tz: str, done: str) -> dict[str, Any]:
    """After the series was PATCHed (`done`: "moved" or "changed"), its deleted and edited occurrences put back at
    their `shift`-ed slots (`carry_extras`); the master as it then is."""
    cancelled, edited = extras
    try:
        await carry_extras(cal, event_id, master, cancelled, edited, shift, tz)
    except DomainError as exc:
        raise DomainError("upstream_error", f"the series {event_id} was {done}, but putting back its "
                          f"{len(cancelled) + len(edited)} edited or deleted occurrences failed ({exc.body.message}); "
                          "list its occurrences and delete or edit those that show wrongly", details={"series": event_id}) from exc
    result: dict[str, Any] = await cal.http.json("GET", cal._events(event_id), headers=cal._prefer(tz))
    return result


async def cancelled_at(cal: GraphCalendar, event_id: str, instance_start: datetime | date, tz: str) -> bool:
    """Whether the series' occurrence at `instance_start` is among its deleted ones (a retried "this" delete:
    outside review writes28 #13); Graph names them `OID.{masterId}.{local date}` in the range's zone."""
    master = await cal.http.json("GET", cal._events(event_id), headers=cal._prefer(tz),
                                 params={"$select": "recurrence,cancelledOccurrences,start,isAllDay"})
    if not master.get("recurrence") or bool(master.get("isAllDay")) == isinstance(instance_start, datetime):
        return False  # (a date for a timed series, or a time for an all-day one, is no slot of it)
    series_zone = iana(master["recurrence"]["range"].get("recurrenceTimeZone"), tz)
    day = as_utc(instance_start, tz).astimezone(zone(series_zone)).date() if isinstance(instance_start, datetime) else instance_start
    if isinstance(instance_start, datetime):
        at = _read(master["start"], tz).astimezone(zone(series_zone))
        if datetime.combine(day, at.time(), zone(series_zone)).astimezone(UTC) != as_utc(instance_start, tz):
            return False  # not a slot of the series
    return any(oid.rsplit(".", 1)[-1] == day.isoformat() for oid in master.get("cancelledOccurrences") or [])


async def delete_if_emptied(cal: GraphCalendar, event_id: str, tz: str) -> bool:
    """After deleting occurrences: when none of a finite series is left, the series itself is deleted (so it
    no longer reads as an event, nor answers its create key: outside review writes28 #12); True then."""
    master = await cal.http.json("GET", cal._events(event_id), headers=cal._prefer(tz))
    span = (master.get("recurrence") or {}).get("range") or {}
    if span.get("type") not in ("endDate", "numbered") or await first_shown(cal, event_id, master, tz) is not None:
        return False
    await cal.http.request("DELETE", cal._events(event_id))
    return True


def on_rule(rule: str, master: dict[str, Any], tz: str) -> datetime:
    """The master's start moved onto `rule`'s first time at or after it (a new rule without a new start: the
    answer and the stored start name the series' real first occurrence, as `edits.change` does; outside
    review writes28 #14). The start as it is when the rule has it, or cannot be read here."""
    start = _read(master["start"], tz)
    anchored = rrules.anchored(rule, start)
    found = rrules.first_at_or_after(anchored, start) if anchored is not None else None
    return found if isinstance(found, datetime) else start
