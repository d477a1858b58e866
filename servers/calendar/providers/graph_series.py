"""Microsoft Graph: ending a series and splitting it ("this and following", `splitting.split_series`).

The old series' deleted occurrences come from its master's `cancelledOccurrences` (`$select`; ids
`OID.{masterId}.{local date}` in the range's zone) and its edited ones from `exceptionOccurrences`
(`$expand`); those from the split point on are carried over: a deleted one is deleted again in the new
series, an edited one gets what it had changed (the fields that differ from its series, and its own
times if it was moved on its own).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from servers.calendar.model import EventChanges
from servers.calendar.providers.graph_recurrence import follow_start, to_graph
from servers.calendar.providers.graph_times import iana
from servers.calendar.providers.graph_times import local as _local
from servers.calendar.providers.graph_times import read as _read
from servers.calendar.providers.splitting import SplitSteps, create_handle, create_known, slot_shift, split_series, stale
from servers.calendar.timeutil import as_utc, zone
from servers.kit.errors import DomainError

if TYPE_CHECKING:
    from servers.calendar.providers.graph import GraphCalendar

CARRIED = ("subject", "body", "location", "attendees", "showAs", "isReminderOn", "reminderMinutesBeforeStart", "sensitivity",
           "importance", "categories")
"""An occurrence's own fields that an edit of it can change (its times are handled apart)."""


def transaction_id(handle: str) -> str:
    """A Graph `transactionId` (GUID-shaped, as Graph's own clients send) from a 32-hex-digit handle."""
    return str(uuid.UUID(hex=handle))


def if_match(raw: dict[str, Any]) -> dict[str, str]:
    return {"If-Match": raw["@odata.etag"]} if raw.get("@odata.etag") else {}


def ended_recurrence(master: dict[str, Any], event_id: str, instance_start: datetime | date, tz: str,
                     deleting: bool = False) -> dict[str, Any]:
    """The master's recurrence, its range ending (`endDate`) the local day before `instance_start`. A series
    limited by a number of occurrences is refused for a split, but a delete ("this and following") turns its
    range into that end date (outside review cal28 #6): the same occurrences stay."""

    recurrence = master.get("recurrence")
    if not recurrence:
        raise DomainError("invalid_argument", f"{event_id} is not a recurring series")
    if (recurrence.get("range") or {}).get("type") == "numbered" and not deleting:
        raise DomainError("invalid_argument", "Graph cannot split a series limited by a number of occurrences (COUNT) (a \"this "
                          "and following\" edit) here; change the whole series (scope='all'), or end it there with "
                          "delete_event(scope='this_and_following') and create the following part as a new series")
    series_zone = iana(recurrence["range"].get("recurrenceTimeZone"), tz)
    local_day = as_utc(instance_start, tz).astimezone(zone(series_zone)).date()
    if local_day.isoformat() <= recurrence["range"]["startDate"]:
        raise DomainError("invalid_argument", f"that is the first occurrence: {'delete' if deleting else 'change'} the whole series "
                          "(scope='all') instead")
    span = {k: v for k, v in recurrence["range"].items() if k != "numberOfOccurrences"}
    return {**recurrence, "range": {**span, "type": "endDate", "endDate": (local_day - timedelta(days=1)).isoformat()}}


def moved_range(recurrence: dict[str, Any], old: datetime | date, new: datetime | date, series_zone: str) -> dict[str, Any]:
    """The recurrence of a series moved from `old` to `new`: its first day (`range.startDate`, which Graph takes as
    the series' first day) is the new start's, and an `endDate` moves by as many days, so the series keeps its
    number of occurrences (outside review writes28 #3, #4). Graph reads both dates in `recurrenceTimeZone`, which
    becomes the new start's zone: the new dates are the new start's local date there, and the end moves by (that
    date - the old start's local date in the old zone) (outside review cal28 #3)."""
    new_zone = getattr(new.tzinfo, "key", None) if isinstance(new, datetime) else None

    def day(value: datetime | date, where: str) -> date:
        return value.astimezone(zone(where)).date() if isinstance(value, datetime) else value

    new_day, old_day = day(new, new_zone or series_zone), day(old, series_zone)
    pattern = follow_start(recurrence.get("pattern") or {}, old_day, new_day)  # a rule without BYDAY moves along
    span = {**recurrence["range"], "startDate": new_day.isoformat()}
    if span.get("type") == "endDate" and span.get("endDate"):
        span["endDate"] = (date.fromisoformat(span["endDate"]) + (new_day - old_day)).isoformat()
    if new_zone:
        span["recurrenceTimeZone"] = new_zone
    return {**recurrence, "pattern": pattern, "range": span}


def _original(raw: dict[str, Any], series_zone: str, all_day: bool) -> datetime | date:
    moment = datetime.fromisoformat(raw["originalStart"].replace("Z", "+00:00")).astimezone(zone(series_zone))
    return moment.date() if all_day else moment


def _own_changes(item: dict[str, Any], master: dict[str, Any], slot: datetime | date, series_zone: str, tz: str) -> dict[str, Any]:
    """What an edited occurrence changed, to re-apply to its counterpart at `slot` in the new series."""

    out = {k: item[k] for k in CARRIED if k in item and item[k] != master.get(k)}
    start, end = _read(item["start"], tz), _read(item["end"], tz)
    if start.astimezone(UTC) != datetime.fromisoformat(item["originalStart"].replace("Z", "+00:00")).astimezone(UTC):
        out.update(start=item["start"], end=item["end"])  # moved on its own: stays where it was put
    elif end - start != _read(master["end"], tz) - _read(master["start"], tz):
        out["end"] = _local(slot + (end - start), series_zone)
    return out


def address(attendee: dict[str, Any]) -> str:
    """An attendee's address as compared: without case."""
    return ((attendee.get("emailAddress") or {}).get("address") or "").lower()


def addresses(attendees: list[dict[str, Any]] | None) -> set[str]:
    """Attendees' addresses, compared without case."""
    return {address(a) for a in attendees or []}


def keep_entries(attendees: list[dict[str, Any]], had: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A new attendee list where each invitee already on the event (`had`, compared without case) keeps its entry —
    its type (optional or not), name and answer: the list was sent as required, nameless entries (outside review
    cal31 #2). Only new invitees start as sent."""
    known = {address(a): a for a in had or []}
    out = []
    for entry in attendees:
        old = known.get(address(entry))
        out.append(entry if old is None else old | {"emailAddress": (old.get("emailAddress") or {}) | entry["emailAddress"]})
    return out


def with_statuses(attendees: list[dict[str, Any]], own: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A new attendee list for an occurrence whose list differed from its series' only by answers: each invitee
    keeps the `status` it gave there (outside review cal30 #3: a split's new invitee never reached it)."""
    answers = {address(a): a["status"] for a in own or [] if a.get("status")}
    return [a | ({"status": answers[address(a)]} if address(a) in answers else {}) for a in attendees]


async def series_extras(cal: GraphCalendar, event_id: str, master: dict[str, Any], tz: str, since: datetime | date
                        ) -> tuple[list[datetime | date], list[tuple[dict[str, Any], datetime | date]]]:
    """The series' deleted occurrences (their original starts) and edited ones (each with its original
    start) from `since` on."""
    recurrence, all_day = master["recurrence"], bool(master.get("isAllDay"))
    series_zone = iana(recurrence["range"].get("recurrenceTimeZone"), tz)
    extras = await cal.http.json("GET", cal._events(event_id), headers=cal._prefer(tz),
                                 params={"$select": "cancelledOccurrences", "$expand": "exceptionOccurrences"})
    at = _read(master["start"], tz).astimezone(zone(series_zone))
    days = [date.fromisoformat(oid.rsplit(".", 1)[-1]) for oid in extras.get("cancelledOccurrences") or []]
    cancelled: list[datetime | date] = [d if all_day else datetime.combine(d, at.time(), zone(series_zone)) for d in days]
    cancelled = [c for c in cancelled if as_utc(c, series_zone) >= as_utc(since, series_zone)]
    edited = [(e, _original(e, series_zone, all_day)) for e in extras.get("exceptionOccurrences") or []]
    edited = [(e, o) for e, o in edited
              if as_utc(o, series_zone) >= as_utc(since, series_zone) and _own_changes(e, master, o, series_zone, tz)]
    return cancelled, edited


async def carry_extras(cal: GraphCalendar, series_id: str, master: dict[str, Any], cancelled: list[datetime | date],
                       edited: list[tuple[dict[str, Any], datetime | date]], shift: Any, tz: str,
                       addressed: tuple[datetime | date, dict[str, Any]] | None = None) -> None:
    """Deletes again (`cancelled`) and re-applies the edits of (`edited`) `master`'s occurrences in the series
    `series_id`, each at `shift(its original start)`; one that series does not have is skipped. `addressed`:
    (the slot a split was asked at, its body) — that occurrence keeps none of its own values for the fields
    the body sets (outside review cal29b #4)."""
    series_zone = iana(master["recurrence"]["range"].get("recurrenceTimeZone"), tz)

    async def counterpart(original: datetime | date) -> dict[str, Any] | None:
        try:
            return await cal._instance(series_id, shift(original), series_zone)
        except DomainError as exc:
            if exc.body.code != "not_found":
                raise
            return None  # a new rule (rrule) without this occurrence, or deleted already

    for original in cancelled:
        if (found := await counterpart(original)) is not None:
            await cal.http.request("DELETE", cal._events(found["id"]), idempotent=True)
    for item, original in edited:
        if (found := await counterpart(original)) is not None:
            own = _own_changes(item, master, shift(original), series_zone, tz)
            body = addressed[1] if addressed is not None else {}
            named = addressed is not None and as_utc(original, tz) == as_utc(addressed[0], tz)
            if "attendees" in own and "attendees" in body and (named or addresses(own["attendees"]) == addresses(master.get("attendees"))):
                own["attendees"] = with_statuses(body["attendees"], own["attendees"])
            if named:
                own = {key: value for key, value in own.items() if key not in body or key == "attendees"}
            if own:
                await cal.http.json("PATCH", cal._events(found["id"]), headers=cal._prefer(tz), idempotent=True, json=own)


async def split(cal: GraphCalendar, calendar_id: str, event_id: str, instance_start: datetime | date, body: dict[str, Any],
                changes: EventChanges, tz: str, expected_etag: str | None) -> dict[str, Any]:
    """A "this and following" edit: the new series' raw body (see `splitting`)."""

    prefer = cal._prefer(tz)
    master = await cal.http.json("GET", cal._events(event_id), headers=prefer)
    if expected_etag and master.get("@odata.etag") != expected_etag:
        raise stale(event_id)
    if not master.get("recurrence"):
        raise DomainError("invalid_argument", f"{event_id} is not a recurring series")
    occurrence = await cal._instance(event_id, instance_start, tz)  # a time that is no slot: not_found first
    if "attendees" in body:
        body = body | {"attendees": keep_entries(body["attendees"], master.get("attendees"))}
    ended = ended_recurrence(master, event_id, instance_start, tz)
    recurrence, all_day = master["recurrence"], bool(master.get("isAllDay"))
    series_zone = iana(recurrence["range"].get("recurrenceTimeZone"), tz)
    slot = _original(occurrence, series_zone, all_day) if occurrence.get("originalStart") else _read(occurrence["start"], tz)
    first = changes.start or slot
    cancelled, edited = await series_extras(cal, event_id, master, tz, slot)
    if (cancelled or edited) and isinstance(first, datetime) != isinstance(slot, datetime):
        raise DomainError("invalid_argument", f"changing the following occurrences of {event_id} between timed and all-day would "
                          "lose its edited or deleted occurrences; delete them and create a new series instead", details={"field": "start"})
    length = _read(master["end"], tz) - _read(master["start"], tz)
    follow: dict[str, Any] = {
        "subject": master.get("subject"), "body": master.get("body"), "location": master.get("location"),
        "start": _local(slot, series_zone), "end": _local(slot + length, series_zone), "isAllDay": all_day,
        "attendees": master.get("attendees", []), "showAs": master.get("showAs"), "isReminderOn": master.get("isReminderOn"),
        "reminderMinutesBeforeStart": master.get("reminderMinutesBeforeStart"),
        "recurrence": to_graph(changes.rrule, first, tz) if changes.rrule else moved_range(recurrence, slot, first, series_zone),
    } | body
    shift = slot_shift(slot, first)

    transaction = transaction_id(create_handle(f"graph:{cal.user}:{calendar_id}", None))  # Graph de-duplicates by transactionId

    async def post() -> tuple[str, dict[str, Any]]:
        raw = await cal.http.json("POST", f"{cal._calendar_path(calendar_id)}/events", headers=prefer,
                                  json={k: v for k, v in follow.items() if v is not None} | {"transactionId": transaction})
        return raw["id"], raw

    async def create() -> tuple[str, dict[str, Any]]:
        # After an unclear answer the same POST is the look-up: Graph answers the event it already made
        # for this transactionId, or makes it now, never a second one.
        return await create_known("Microsoft Graph", event_id, instance_start, f"transactionId {transaction}", post, post)

    async def carry(new_id: str) -> None:
        await carry_extras(cal, new_id, master, cancelled, edited, shift, tz, (slot, body))

    async def end() -> None:
        await cal.http.json("PATCH", cal._events(event_id), json={"recurrence": ended}, headers=prefer | if_match(master),
                            idempotent=True)

    async def is_ended() -> bool:
        now = (await cal.http.json("GET", cal._events(event_id), headers=prefer)).get("recurrence")
        if now not in (ended, recurrence):
            raise DomainError("conflict", f"the series {event_id} was changed by someone else meanwhile")
        return bool(now == ended)

    async def remove(new_id: str) -> None:
        await cal.http.request("DELETE", cal._events(new_id))

    return await split_series(SplitSteps("Microsoft Graph", event_id, instance_start, create, carry, end, is_ended, remove))
