"""Google Calendar: changes to a whole series (`update_event` scope "all") that must keep what the series
shows, as the embedded/CalDAV backend does (`edits.change`; outside review writes28 #3, #10, #11, #14):

- a new start (or a zone re-anchor) moves the UNTIL and the EXDATEs with the series (it keeps its number of
  occurrences) and re-applies its cancelled and edited occurrences to their moved slots (Google keys an
  instance to its original start, so a moved series no longer has them); a re-application that finds
  its slot already cancelled or edited (a service that moved them itself) is skipped or repeated harmlessly;
- a new rule without a new start moves the start onto the rule's first time on or after it (RFC 5545
  makes DTSTART an occurrence whatever the rule says: a Tuesday rule from a Monday would add a Monday);
- `rrule=""` makes the event what the first occurrence still shown was (a deleted first one is skipped,
  an edited one keeps its edits)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from servers.calendar import rrules
from servers.calendar.providers.google_series import (CARRIED, HORIZON, NOTIFY, _exceptions, _moment, _own_changes, _part, _rule,
                                                      carry_exceptions, if_match)
from servers.calendar.providers.splitting import slot_shift, stale, write_series
from servers.calendar.timeutil import as_utc, zone
from servers.kit.errors import DomainError

if TYPE_CHECKING:
    from servers.calendar.providers.google import GoogleCalendar


def _exdate_values(line: str, tz: str) -> list[datetime | date]:
    """The times of one `EXDATE[;TZID=…|;VALUE=DATE]:v1,v2` line."""
    head, _, values = line.partition(":")
    found = re.search(r"TZID=([^;:]+)", head)
    out: list[datetime | date] = []
    for value in filter(None, values.split(",")):
        value = value.strip()
        if len(value) == 8:
            out.append(date(int(value[:4]), int(value[4:6]), int(value[6:8])))
            continue
        naive = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
        out.append(naive.replace(tzinfo=UTC) if value.endswith("Z") else naive.replace(tzinfo=zone(found.group(1) if found else tz)))
    return out


def _exdate_line(values: list[datetime | date]) -> str:
    if all(not isinstance(v, datetime) for v in values):
        return "EXDATE;VALUE=DATE:" + ",".join(v.strftime("%Y%m%d") for v in values)
    return "EXDATE:" + ",".join(as_utc(v, "UTC").strftime("%Y%m%dT%H%M%SZ") for v in values)


def moved_recurrence(lines: list[str], old: datetime | date, new: datetime | date, tz: str) -> list[str]:
    """A series' recurrence lines for its start moved from `old` to `new`: the UNTIL and each EXDATE move
    with it (`rrules.shift_rule_until`, `series_edits.shifter`)."""
    shift = slot_shift(old, new)
    out = []
    for line in lines:
        if line.startswith("RRULE:"):
            out.append(rrules.shift_rule_until(line, old, new))
        elif line.startswith("EXDATE"):
            out.append(_exdate_line([shift(v) for v in _exdate_values(line, tz)]))
        else:
            out.append(line)
    return out


async def _instances(cal: GoogleCalendar, calendar_id: str, master: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of the series' instances for `params`."""
    params, found = {"maxResults": 2500, **params}, []
    while True:
        body = await cal.http.json("GET", cal._path(calendar_id, master["id"]) + "/instances", params=params)
        found += body.get("items", [])
        if not body.get("nextPageToken"):
            return found
        params["pageToken"] = body["nextPageToken"]


def _finite(master: dict[str, Any]) -> bool:
    return any(r.startswith("RRULE:") and ("COUNT=" in r or "UNTIL=" in r) for r in master.get("recurrence") or [])


async def _first_shown(cal: GoogleCalendar, calendar_id: str, master: dict[str, Any]) -> dict[str, Any] | None:
    """The series' first occurrence still shown (not cancelled) by its actual start, or None. Google's
    `timeMin`/`timeMax` filter on an instance's actual end/start, so no `timeMin` is sent (an occurrence moved
    before the series' start is a candidate) and a finite series is read whole; an unbounded one up to a
    month, then `HORIZON`, past its start: every instance starting before the first one found is then in the
    answer (outside review cal28 #2)."""
    start = as_utc(_moment(master["start"]), "UTC")
    bounds: list[datetime | None] = [None] if _finite(master) else [start + timedelta(days=32), start + HORIZON]
    for bound in bounds:
        params: dict[str, Any] = {"showDeleted": "false"} | ({"timeMax": bound.isoformat()} if bound else {})
        items = [i for i in await _instances(cal, calendar_id, master, params) if i.get("status") != "cancelled"]
        if items:
            return min(items, key=lambda i: as_utc(_moment(i["start"]), "UTC"))
    return None


async def _reset_stale(cal: GoogleCalendar, calendar_id: str, moved: dict[str, Any], exceptions: list[dict[str, Any]]) -> None:
    """Google keys a cancelled or edited instance to its original start: after a move by a multiple of the
    period, an old exception sits on a slot of the moved series and would hide or re-title it. Each one still
    found there is put back to the series as it now is (un-cancelled, its fields and times the series'), before
    the exceptions are carried to their moved slots (outside review cal28 #4). One not found, or already plain
    (a service that drops or moves them itself), is left alone."""
    line = next((r for r in moved.get("recurrence") or [] if r.startswith("RRULE:")), None)
    start = _moment(moved["start"])
    rule = rrules.anchored(line, start) if line else None
    if rule is None:
        return
    length = _moment(moved["end"]) - start  # type: ignore[operator]
    for item in exceptions:
        original = _moment(item["originalStartTime"])
        found = rrules.first_at_or_after(rule, original)
        if found is None or as_utc(found if isinstance(original, datetime) else original, "UTC") != as_utc(original, "UTC"):
            continue  # not a slot of the moved series
        try:
            now = await cal.http.json("GET", cal._path(calendar_id, item["id"]))
        except DomainError as exc:
            if exc.body.code != "not_found":
                raise
            continue
        if now.get("status") != "cancelled" and not _own_changes(now, moved, original):
            continue
        plain = {k: moved.get(k) for k in CARRIED} | {"status": "confirmed", "start": _part(original, moved["start"]),
                                                      "end": _part(original + length, moved["end"])}  # type: ignore[operator]
        await cal.http.json("PATCH", cal._path(calendar_id, item["id"]), json=plain, idempotent=True, params=NOTIFY)


async def change_series(cal: GoogleCalendar, calendar_id: str, event_id: str, body: dict[str, Any],
                        expected_etag: str | None, tz: str) -> dict[str, Any] | None:
    """Applies `body` (a PATCH of the whole series) keeping what the series shows (see the module); the
    new master's raw body, or None when `body` needs nothing of this (the caller PATCHes it as is)."""
    if "start" not in body and "recurrence" not in body:
        return None
    master = await cal.http.json("GET", cal._path(calendar_id, event_id))
    if expected_etag and master.get("etag") != expected_etag:
        raise stale(event_id)
    lines = master.get("recurrence") or []
    if not any(line.startswith("RRULE:") for line in lines):
        return None
    old = _moment(master["start"])
    body = dict(body)
    exceptions: list[dict[str, Any]] = []
    shift = None
    if body.get("recurrence") == []:  # no longer a series: it becomes its first occurrence as shown
        first = await _first_shown(cal, calendar_id, master)
        if first is not None:
            original = _moment(first.get("originalStartTime") or first["start"])
            own = _own_changes(first, master, original)
            body = {"start": first["start"], "end": first["end"],
                    **{k: v for k, v in own.items() if k in CARRIED and v is not None}} | body
    elif "recurrence" in body and "start" not in body:  # a new rule: the start goes onto it
        rule = rrules.anchored(body["recurrence"][0], old)
        found = rrules.first_at_or_after(rule, old) if rule is not None else None
        if found is not None and found != old:
            first_at = found.replace(tzinfo=old.tzinfo) if isinstance(found, datetime) and isinstance(old, datetime) and \
                found.tzinfo is None else found
            length = _moment(master["end"]) - old  # type: ignore[operator]
            body["start"], body["end"] = _part(first_at, master["start"]), _part(first_at + length, master["end"])
        body["recurrence"] = [*body["recurrence"], *(line for line in lines if line.startswith("EXDATE"))]
    elif "start" in body:
        new = _moment(body["start"])
        if as_utc(new, "UTC") != as_utc(old, "UTC") or isinstance(new, datetime) != isinstance(old, datetime):
            exceptions = await _exceptions(cal, calendar_id, master, _rule(master, event_id), as_utc(old, "UTC"), datetime.now(UTC))
            exdates = [line for line in lines if line.startswith("EXDATE")]
            if (exceptions or exdates) and isinstance(new, datetime) != isinstance(old, datetime):
                raise DomainError("invalid_argument", f"changing the series {event_id} between timed and all-day would lose its "
                                  f"{len(exceptions) + len(exdates)} edited or deleted occurrences; delete the series and "
                                  "create a new one instead", details={"field": "start"})
            if "recurrence" not in body:
                body["recurrence"] = moved_recurrence(lines, old, new, tz)
            shift = slot_shift(old, new)
    raw: dict[str, Any] = await write_series(event_id, len(exceptions) if shift is not None else 0, cal.http.json(
        "PATCH", cal._path(calendar_id, event_id), json=body, headers=if_match(master), idempotent=True, params=NOTIFY))
    if shift is not None and exceptions:
        try:
            await _reset_stale(cal, calendar_id, raw, exceptions)
            await carry_exceptions(cal, calendar_id, event_id, master, exceptions, shift)
        except DomainError as exc:
            raise DomainError("upstream_error", f"the series {event_id} was moved, but putting back its {len(exceptions)} edited or "
                              f"deleted occurrences failed ({exc.body.message}); list its occurrences and delete or edit "
                              "those that show wrongly", details={"series": event_id}) from exc
        raw = await cal.http.json("GET", cal._path(calendar_id, event_id))
    return raw


async def cancelled_at(cal: GoogleCalendar, calendar_id: str, event_id: str, instance_start: datetime | date) -> bool:
    """Whether the series' occurrence at `instance_start` is there, cancelled (a retried "this" delete:
    outside review writes28 #13)."""
    begin = as_utc(instance_start, "UTC")
    body = await cal.http.json("GET", cal._path(calendar_id, event_id) + "/instances", params={
        "timeMin": (begin - timedelta(days=1)).isoformat(), "timeMax": (begin + timedelta(days=1)).isoformat(), "showDeleted": "true"})
    return any(as_utc(_moment(i.get("originalStartTime") or i["start"]), "UTC") == begin and i.get("status") == "cancelled"
               for i in body.get("items", []))


async def delete_if_emptied(cal: GoogleCalendar, calendar_id: str, event_id: str) -> bool:
    """After deleting occurrences: when none of a finite series is left, the series itself is deleted (so it
    no longer reads as an event, nor answers its create key: outside review writes28 #12); True then."""
    master = await cal.http.json("GET", cal._path(calendar_id, event_id))
    line = next((r for r in master.get("recurrence") or [] if r.startswith("RRULE:")), None)
    if line is None or ("COUNT=" not in line and "UNTIL=" not in line):
        return False
    # any instance not cancelled, wherever it was moved: no time window (outside review cal28 #1)
    if any(i.get("status") != "cancelled" for i in await _instances(cal, calendar_id, master, {"showDeleted": "false"})):
        return False
    await cal.http.request("DELETE", cal._path(calendar_id, event_id), params=NOTIFY)
    return True
