"""Google Calendar: ending a series and splitting it ("this and following", `splitting.split_series`).

The old series' edited and cancelled occurrences from the split point on are read from
`/events/{id}/instances?showDeleted=true` (a finite series whole, as Google filters on actual times; an unbounded one up to `HORIZON` past the split point)
and carried over: a cancelled one is deleted again in the new series, an edited one gets what it had
changed (the fields that differ from its series, and its own times if it was moved on its own). A whole-series
change of text fields or attendees reaches the edited occurrences the same way (`reach_exceptions`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from servers.calendar.rrules import shift_rule_until
from servers.calendar.providers.splitting import (SplitSteps, create_handle, create_known, occurrences_not_reached, reach_each, slot_shift,
                                                  split_series, stale)
from servers.calendar.providers.series_text import SeriesSide
from servers.calendar.timeutil import as_utc, zone
from servers.kit.errors import DomainError

if TYPE_CHECKING:
    from servers.calendar.providers.google import GoogleCalendar

HORIZON = timedelta(days=3660)
"""How far past the split point an unbounded series' edited and deleted occurrences are looked for."""
NOTIFY = {"sendUpdates": "all"}
"""Sent with every write of an event: Google notifies attendees only when asked (the default is none)."""
CARRIED = ("summary", "description", "location", "attendees", "transparency", "visibility", "colorId", "reminders")
"""An occurrence's own fields that an edit of it can change (its times are handled apart)."""


def if_match(raw: dict[str, Any]) -> dict[str, str] | None:
    return {"If-Match": raw["etag"]} if raw.get("etag") else None


def _rule(master: dict[str, Any], event_id: str) -> str:
    rule = next((r for r in master.get("recurrence") or [] if r.startswith("RRULE:")), None)
    if rule is None:
        raise DomainError("invalid_argument", f"{event_id} is not a recurring series")
    return rule


def ended_recurrence(master: dict[str, Any], instance_start: datetime | date, deleting: bool = False) -> list[str]:
    """The master's recurrence lines, its RRULE ending (UNTIL) just before `instance_start`. A COUNT-limited
    rule is refused for a split (the new part would need the remaining count), but a delete ("this and
    following") turns its COUNT into that UNTIL (outside review cal28 #6): the same occurrences stay."""
    rule = _rule(master, master.get("id", "the event"))
    if "COUNT=" in rule and not deleting:
        raise DomainError("invalid_argument", "Google cannot split a COUNT-limited series (a \"this and following\" edit) here; "
                          "change the whole series (scope='all'), or end it there with delete_event(scope='this_and_following') "
                          "and create the following part as a new series")
    until = (instance_start - timedelta(days=1)).strftime("%Y%m%d") if not isinstance(instance_start, datetime) else \
        (as_utc(instance_start, "UTC") - timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")  # UNTIL of DTSTART's type
    ended = re.sub(r";(UNTIL|COUNT)=[^;]+", "", rule) + f";UNTIL={until}"
    return [ended if r == rule else r for r in master["recurrence"]]


def _moment(part: dict[str, Any]) -> datetime | date:
    if "date" in part:
        return date.fromisoformat(part["date"])
    moment = datetime.fromisoformat(part["dateTime"].replace("Z", "+00:00"))
    return moment.astimezone(zone(part["timeZone"])) if part.get("timeZone") else moment


def _part(value: datetime | date, like: dict[str, Any]) -> dict[str, str]:
    if isinstance(value, datetime):
        return {"dateTime": value.isoformat(), **({"timeZone": like["timeZone"]} if like.get("timeZone") else {})}
    return {"date": value.isoformat()}


def _own_changes(item: dict[str, Any], master: dict[str, Any], slot: datetime | date) -> dict[str, Any]:
    """What an edited occurrence changed, to re-apply to its counterpart at `slot` in the new series."""
    out = {k: _field(item, k) for k in CARRIED if _field(item, k) != _field(master, k)}
    start, end = _moment(item["start"]), _moment(item["end"])
    length = _moment(master["end"]) - _moment(master["start"])  # type: ignore[operator]
    if as_utc(start, "UTC") != as_utc(_moment(item["originalStartTime"]), "UTC"):  # moved on its own: stays where it was put
        out.update(start=item["start"], end=item["end"])
    elif end - start != length:  # type: ignore[operator]
        out["end"] = _part(slot + (end - start), item["end"])  # type: ignore[operator]
    return out


def _field(raw: dict[str, Any], key: str) -> Any:
    """An event's field as compared: Google leaves an empty attendee list out (outside review cal30 #2)."""
    value = raw.get(key)
    return [] if key == "attendees" and value is None else value


def shows(raw: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether an event already shows every field of a PATCH `body`."""
    return all(_field(raw, key) == value for key, value in body.items())


def keep_answers(attendees: list[dict[str, Any]], had: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A new attendee list (`{"email"}` entries) where each invitee already on the event (`had`, compared without
    case) keeps its entry — its answer, optional flag and name: a PATCH of bare addresses reset every answer to
    needsAction and re-invited everyone (outside review cal30 #5). Only new invitees start unanswered."""
    known = {a.get("email", "").lower(): a for a in had or []}
    return [known.get(a["email"].lower(), {}) | a for a in attendees]


def _emails(attendees: list[dict[str, Any]] | None) -> set[str]:
    return {a.get("email", "").lower() for a in attendees or []}


def _with_answers(attendees: list[dict[str, Any]], own: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`attendees` (a split's new list), each invitee keeping the answer it gave on one occurrence (`own`)."""
    answers = {a.get("email", "").lower(): a["responseStatus"] for a in own or [] if a.get("responseStatus")}
    return [a | {"responseStatus": answers[a["email"].lower()]} if a.get("email", "").lower() in answers else a for a in attendees]


async def _exceptions(cal: GoogleCalendar, calendar_id: str, master: dict[str, Any], rule: str,
                      split_at: datetime, horizon_from: datetime | None = None) -> list[dict[str, Any]]:
    """The old series' cancelled and edited occurrences whose own slot is at or after `split_at`."""
    # Google filters instances on their actual times: none is sent for a finite series (an occurrence moved
    # anywhere is listed, outside review cal28 #9); an unbounded one is read up to HORIZON past `split_at`
    # (or past `horizon_from`: a whole-series change of a series begun years ago reaches today's occurrences).
    finite = "COUNT=" in rule or "UNTIL=" in rule
    params: dict[str, Any] = {"showDeleted": "true", "maxResults": 2500} | \
        ({} if finite else {"timeMax": (max(split_at, horizon_from or split_at) + HORIZON).isoformat()})
    found: list[dict[str, Any]] = []
    while True:
        body = await cal.http.json("GET", cal._path(calendar_id, master["id"]) + "/instances", params=params)
        for item in body.get("items", []):
            original = item.get("originalStartTime")
            if original is None or as_utc(_moment(original), "UTC") < split_at:
                continue
            if item.get("status") == "cancelled" or _own_changes(item, master, _moment(original)):
                found.append(item)
        if not body.get("nextPageToken"):
            return found
        params["pageToken"] = body["nextPageToken"]


REACHED = ("summary", "description", "location", "attendees")
"""The fields a whole-series change carries to the series' edited occurrences (`reach_exceptions`)."""


async def reach_exceptions(cal: GoogleCalendar, calendar_id: str, before: dict[str, Any], after: dict[str, Any],
                           body: dict[str, Any], series_written: bool) -> int:
    """A `scope="all"` change of text fields or attendees reaches the series' edited occurrences, as a split's does
    (`carry_exceptions`; embedded `edits._reach_edited`): each field `body` sets, unless the occurrence changed that
    field itself (differs from the series as it was, `before`); an invitee's own answer there stays. Google keeps
    an edited occurrence as an event of its own, so a master PATCH left a moved occurrence with the old title
    while the call answered success (outside review cal29b #5). `after`: the series as the change left it (or as it
    is: a change of text or attendees writes the occurrences first, `series_written` False). The occurrences are
    written without mail (`sendUpdates=none`: the series' own write tells the invitees, once), and one already
    showing the value is not written. The number written."""
    named = {key: body[key] for key in REACHED if key in body}
    if not named or not any(line.startswith("RRULE") for line in after.get("recurrence") or []):
        return 0
    start = min(as_utc(_moment(before["start"]), "UTC"), as_utc(_moment(after["start"]), "UTC"))
    try:
        items = await _exceptions(cal, calendar_id, after, _rule(after, after["id"]), start, datetime.now(UTC))
    except DomainError as exc:
        if not series_written:
            raise
        raise occurrences_not_reached(after["id"], 0, None, exc, series_written) from exc

    def patch_for(item: dict[str, Any]) -> dict[str, Any]:
        if item.get("status") == "cancelled":
            return {}
        own = {key for key in REACHED if _field(item, key) != _field(before, key)}
        patch = {key: value for key, value in named.items() if key not in own}
        if "attendees" in named and "attendees" in own and _emails(item.get("attendees")) == _emails(before.get("attendees")):
            patch["attendees"] = _with_answers(named["attendees"], item.get("attendees"))  # only its answers were its own
        return {key: value for key, value in patch.items() if not shows(item, {key: value})}

    async def write(item: dict[str, Any], patch: dict[str, Any]) -> None:
        await cal.http.json("PATCH", cal._path(calendar_id, item["id"]), json=patch, idempotent=True,
                            params={"sendUpdates": "none"}, headers=if_match(item))

    async def reread(item: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await cal.http.json("GET", cal._path(calendar_id, item["id"]))
        return found

    reached, failed, cause = await reach_each(items, patch_for, write, reread)
    if cause is not None:
        raise occurrences_not_reached(after["id"], reached, failed, cause, series_written)
    return reached


SERIES_FIELDS = ("summary", "description", "location", "attendees", "start", "end", "recurrence")
"""What `expected_etag` protects in a whole-series change of text or attendees (an invitee's answer is not among it)."""


def _people(attendees: list[dict[str, Any]] | None) -> list[tuple[str, bool]]:
    """Attendees as compared for someone else's change: address (without case) and optional flag, not answers."""
    return sorted((a.get("email", "").lower(), bool(a.get("optional"))) for a in attendees or [])


def text_side(cal: GoogleCalendar, calendar_id: str, event_id: str, before: dict[str, Any], body: dict[str, Any],
              asked: list[dict[str, Any]] | None, expected_etag: str | None) -> SeriesSide:
    """Google's part in `series_text.change_text`; `asked`: the attendee list as the caller gave it (each invitee kept
    on the series keeps the answer it shows when the series is written, outside review r34 #2)."""
    path = cal._path(calendar_id, event_id)

    async def read() -> dict[str, Any]:
        found: dict[str, Any] = await cal.http.json("GET", path)
        return found

    async def write(sent: dict[str, Any], etag: str | None) -> dict[str, Any]:
        raw: dict[str, Any] = await cal.http.json("PATCH", path, json=sent, headers={"If-Match": etag} if etag else None,
                                                  idempotent=True, params=NOTIFY)
        return raw

    async def reach() -> int:
        return await reach_exceptions(cal, calendar_id, before, before, body, series_written=False)

    def moved(first: dict[str, Any], now: dict[str, Any]) -> bool:
        def same(key: str) -> bool:
            if key == "attendees":
                return _people(_field(now, key)) == _people(_field(first, key))
            return bool(_field(now, key) == _field(first, key))
        return not all(same(key) for key in (SERIES_FIELDS if expected_etag else tuple(body)))

    def over(sent: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
        return sent if asked is None else {**sent, "attendees": keep_answers(asked, now.get("attendees"))}

    return SeriesSide(read=read, write=write, reach=reach, shows=shows, moved=moved, over=over,
                      etag=lambda raw: raw.get("etag"), occurrences_move_etag=False)


async def carry_exceptions(cal: GoogleCalendar, calendar_id: str, series_id: str, master: dict[str, Any],
                           exceptions: list[dict[str, Any]], shift: Any,
                           addressed: tuple[datetime | date, dict[str, Any]] | None = None) -> None:
    """Re-applies `exceptions` (cancelled and edited occurrences of `master`) to their counterparts in the
    series `series_id`, each at `shift(its original start)`; one the series does not have (a new rule,
    or one already re-applied: a cancelled occurrence is not listed) is skipped. `addressed`: (the slot a
    split was asked at, its body) — that occurrence keeps none of its own values for the fields the body sets
    (outside review cal29b #4: the occurrence the caller named kept its old title)."""
    for item in exceptions:
        target = shift(_moment(item["originalStartTime"]))
        try:
            counterpart = await cal._instance(calendar_id, series_id, target)
        except DomainError as exc:
            if exc.body.code != "not_found":
                raise
            continue
        where = cal._path(calendar_id, counterpart["id"])
        if item.get("status") == "cancelled":
            await cal.http.request("DELETE", where, idempotent=True, params=NOTIFY)
        else:
            own = _own_changes(item, master, target)
            body = addressed[1] if addressed is not None else {}
            named = addressed is not None and as_utc(_moment(item["originalStartTime"]), "UTC") == as_utc(addressed[0], "UTC")
            answers_only = "attendees" in own and _emails(own["attendees"]) == _emails(master.get("attendees"))
            if "attendees" in own and "attendees" in body and (named or answers_only):
                # the split's new invitees reach it, each invitee keeping its own answer here (outside review cal29b #3)
                own["attendees"] = _with_answers(body["attendees"], own["attendees"])
            if named:
                own = {key: value for key, value in own.items() if key not in body or key == "attendees"}
            if own:
                await cal.http.json("PATCH", where, json=own, idempotent=True, params=NOTIFY)


async def split(cal: GoogleCalendar, calendar_id: str, event_id: str, instance_start: datetime | date, body: dict[str, Any],
                expected_etag: str | None) -> dict[str, Any]:
    """A "this and following" edit: the new series' raw body (see `splitting`)."""
    path = cal._path(calendar_id, event_id)
    master = await cal.http.json("GET", path)
    if expected_etag and master.get("etag") != expected_etag:
        raise stale(event_id)
    rule = _rule(master, event_id)
    if "attendees" in body:
        body = body | {"attendees": keep_answers(body["attendees"], master.get("attendees"))}
    if any(r.startswith("RDATE") for r in master["recurrence"]):
        raise DomainError("invalid_argument", f"{event_id} has extra dates (RDATE) that a split cannot divide; change the whole "
                          "series (scope='all') or the occurrences one by one")
    occurrence = await cal._instance(calendar_id, event_id, instance_start)  # a time that is no slot: not_found first
    ended = ended_recurrence(master, instance_start)
    slot = _moment(occurrence.get("originalStartTime") or occurrence["start"])
    first = _moment(body["start"]) if "start" in body else slot
    exceptions = await _exceptions(cal, calendar_id, master, rule, as_utc(slot, "UTC"))
    exdates = [r for r in master["recurrence"] if r.startswith("EXDATE")]
    if (exceptions or exdates) and (isinstance(first, datetime) != isinstance(slot, datetime) or exdates and first != slot):
        raise DomainError("invalid_argument", f"moving the following occurrences of {event_id} here would lose its edited or "
                          "deleted occurrences; change them without a new start, or change the whole series (scope='all')",
                          details={"field": "start"})
    length = _moment(master["end"]) - _moment(master["start"])  # type: ignore[operator]
    follow = {"summary": master.get("summary"), "description": master.get("description", ""), "location": master.get("location"),
              "start": _part(slot, master["start"]), "end": _part(slot + length, master["end"]),  # type: ignore[operator]
              "attendees": master.get("attendees", []), "reminders": master.get("reminders"),
              "transparency": master.get("transparency"),
              # a tail moved later keeps its last occurrence (outside review writes28 #3)
              "recurrence": [shift_rule_until(rule, slot, first), *exdates]} | body
    shift = slot_shift(slot, first)

    new_id = create_handle(f"google:{calendar_id}", None)  # a client-chosen id (base32hex): an unclear answer is looked up

    async def post() -> tuple[str, dict[str, Any]]:
        raw = await cal.http.json("POST", cal._path(calendar_id), params=NOTIFY,
                                  json={k: v for k, v in follow.items() if v is not None} | {"id": new_id})
        return raw["id"], raw

    async def find() -> tuple[str, dict[str, Any]] | None:
        raw = await cal.find(calendar_id, new_id)
        return None if raw is None else (new_id, raw)

    async def create() -> tuple[str, dict[str, Any]]:
        return await create_known("Google Calendar", event_id, instance_start, f"event id {new_id}", post, find)

    async def carry(new_id: str) -> None:
        await carry_exceptions(cal, calendar_id, new_id, master, exceptions, shift, (slot, body))

    async def end() -> None:
        await cal.http.json("PATCH", path, json={"recurrence": ended}, headers=if_match(master), idempotent=True, params=NOTIFY)

    async def is_ended() -> bool:
        now = (await cal.http.json("GET", path)).get("recurrence")
        if now not in (ended, master["recurrence"]):
            raise DomainError("conflict", f"the series {event_id} was changed by someone else meanwhile")
        return bool(now == ended)

    async def remove(new_id: str) -> None:
        try:
            await cal.http.request("DELETE", cal._path(calendar_id, new_id), params=NOTIFY)
        except DomainError as exc:
            if (exc.body.details or {}).get("status") == 410:  # Google: "deleted" — already gone
                raise DomainError("not_found", f"the series {new_id} is already deleted") from exc
            raise

    return await split_series(SplitSteps("Google Calendar", event_id, instance_start, create, carry, end, is_ended, remove))
