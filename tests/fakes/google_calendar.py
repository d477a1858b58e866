"""A local fake of Google Calendar v3: calendarList, events (singleEvents expansion, orderBy,
pageToken), instances (`showDeleted` shows cancelled ones with status "cancelled"; `maxResults`/
`pageToken` paging), If-Match etags (412), freeBusy, and per-instance overrides/cancellations (an
instance is stored only once written, as Google keeps only changed instances, keyed to its original start even
when its series moves; a cancelled one is restored by a PATCH of `status: confirmed`).
The fake expands RRULEs with dateutil, but as Google (RFC 5545) does, a start the rule does not repeat on is
an extra first instance (counted by COUNT); the connector under test never expands. All-day events have `date`
parts (the end exclusive) and read as days of the calendar's zone; an all-day series' instances are
`<id>_YYYYMMDD`, their `originalStartTime` a `date`, as Google gives them."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import injected, record

CAL = "me@acme.test"
ZONE = "Europe/Paris"
"""The calendar's zone, in which an all-day event's days begin."""


def _parse(part: dict[str, Any]) -> datetime:
    if "date" in part:  # an all-day event: the day begins at midnight in the calendar's zone
        return datetime.combine(date.fromisoformat(part["date"]), datetime.min.time(), ZoneInfo(ZONE))
    moment = datetime.fromisoformat(part["dateTime"].replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(part.get("timeZone", "UTC")))


class _days:
    """A rule over naive days (dateutil refuses a DATE UNTIL with an aware start) answering aware midnights."""

    def __init__(self, rule: Any) -> None:
        self.rule, self.zone = rule, ZoneInfo(ZONE)

    def _aware(self, moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.replace(tzinfo=self.zone)

    def _naive(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def between(self, start: datetime, end: datetime, inc: bool) -> list[datetime]:
        return [m.replace(tzinfo=self.zone) for m in self.rule.between(self._naive(start), self._naive(end), inc=inc)]

    def after(self, moment: datetime, inc: bool) -> datetime | None:
        return self._aware(self.rule.after(self._naive(moment), inc=inc))

    def __iter__(self) -> Any:
        return (m.replace(tzinfo=self.zone) for m in self.rule)


def _part(moment: datetime, all_day: bool, tz: str | None) -> dict[str, str]:
    """An instance's start, end or original start as Google writes it."""
    return {"date": moment.date().isoformat()} if all_day else {"dateTime": moment.isoformat(), "timeZone": tz or "UTC"}


@dataclass
class FakeGoogle:
    token: str = "ya29.fake-google-token"
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    used_ids: set[str] = field(default_factory=set)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/users/me/calendarList", self.calendar_list, methods=["GET"]),
            Route("/freeBusy", self.free_busy, methods=["POST"]),
            Route("/calendars/{cal}/events", self.events_route, methods=["GET", "POST"]),
            Route("/calendars/{cal}/events/{id}", self.event, methods=["GET", "PATCH", "DELETE"]),
            Route("/calendars/{cal}/events/{id}/instances", self.instances, methods=["GET"]),
        ])

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": {"code": 401, "message": "Invalid Credentials"}}, 401)
        return injected(self.fail_next)

    def _expand(self, master: dict[str, Any], start: datetime, end: datetime, deleted: bool = False,
                by_slot: bool = False) -> list[dict[str, Any]]:
        """The series' instances starting in [start, end) — by their actual times, or (`by_slot`) by their slots."""
        first, last = _parse(master["start"]), _parse(master["end"])
        if not master.get("recurrence"):
            return [master] if first < end and last > start else []
        text = master["recurrence"][0].removeprefix("RRULE:")
        # days, whose UNTIL is a DATE: expanded as wall-clock days of the calendar's zone
        rule: Any = _days(rrulestr(text, dtstart=first.replace(tzinfo=None))) if "date" in master["start"] else \
            rrulestr(text, dtstart=first)
        moments = list(rule.between(start - (last - first), end, inc=True))
        if rule.after(first, inc=True) != first:  # RFC 5545, as Google: DTSTART is the first instance, rule or not
            text = master["recurrence"][0].upper()
            if "COUNT=" in text:  # ...and counts as one
                kept = int(re.search(r"COUNT=(\d+)", text).group(1)) - 1  # type: ignore[union-attr]
                allowed = set(list(rule)[:kept])
                moments = [m for m in moments if m in allowed]
            if start - (last - first) <= first <= end:
                moments.insert(0, first)
        out = []
        all_day, tz = "date" in master["start"], master["start"].get("timeZone")
        for occurrence in moments:
            stamp = occurrence.strftime("%Y%m%d") if all_day else occurrence.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            instance_id = f"{master['id']}_{stamp}"
            real = occurrence.astimezone(UTC).astimezone(occurrence.tzinfo)  # a wall time in a DST gap: the hour after
            ends = (real.astimezone(UTC) + (last - first)).astimezone(occurrence.tzinfo)  # its exact length, not wall-clock
            if all_day:  # whole days, whatever a DST change does to their hours
                ends = occurrence + timedelta(days=(last.date() - first.date()).days)
            instance = self.events.get(instance_id) or {
                **{k: v for k, v in master.items() if k != "recurrence"}, "id": instance_id, "recurringEventId": master["id"],
                "originalStartTime": _part(real, all_day, tz), "start": _part(real, all_day, tz), "end": _part(ends, all_day, tz)}
            if (deleted or instance.get("status") != "cancelled") and (by_slot or _parse(instance["start"]) < end
                                                                       and _parse(instance["end"]) > start):
                out.append(instance)
        return out

    def _window(self, request: Request) -> tuple[datetime, datetime]:
        q = request.query_params
        low, high = q.get("timeMin", "1970-01-01T00:00:00Z"), q.get("timeMax", "2100-01-01T00:00:00Z")  # both optional
        return (datetime.fromisoformat(low.replace("Z", "+00:00")), datetime.fromisoformat(high.replace("Z", "+00:00")))

    def _masters(self) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if "recurringEventId" not in e]

    async def calendar_list(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse({"items": [{"id": CAL, "summary": "Me", "timeZone": ZONE, "primary": True, "accessRole": "owner"}]})

    async def events_route(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        if request.method == "POST":
            body = await request.json()
            chosen = body.get("id")  # Google takes a client-chosen id: base32hex, 5-1024 characters, unique per calendar
            if chosen is not None and not re.fullmatch(r"[a-v0-9]{5,1024}", str(chosen)):
                return JSONResponse({"error": {"code": 400, "message": "Invalid resource id value."}}, 400)
            if chosen is not None and chosen in self.used_ids:
                return JSONResponse({"error": {"code": 409, "message": "The requested identifier already exists."}}, 409)
            event = {**body, "id": chosen or secrets.token_hex(6), "etag": f'"{secrets.token_hex(4)}"', "status": "confirmed",
                     "organizer": {"email": CAL}}
            event["attendees"] = [{"responseStatus": "needsAction", **a} for a in body.get("attendees", [])]
            self.events[event["id"]] = event
            self.used_ids.add(event["id"])  # a deleted event's id stays taken, as at Google
            return JSONResponse(event)
        start, end = self._window(request)
        rows = [i for m in self._masters() for i in self._expand(m, start, end)]
        rows.sort(key=lambda e: _parse(e["start"]))
        size, offset = int(request.query_params.get("maxResults", 250)), int(request.query_params.get("pageToken", "0"))
        body: dict[str, Any] = {"items": rows[offset : offset + size]}
        if offset + size < len(rows):
            body["nextPageToken"] = str(offset + size)
        return JSONResponse(body)

    async def instances(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        master = self.events.get(request.path_params["id"])
        if master is None:
            return JSONResponse({"error": {"code": 404, "message": "Not Found"}}, 404)
        deleted = request.query_params.get("showDeleted") == "true"
        if original := request.query_params.get("originalStart"):  # the one instance of that slot, wherever it moved
            at = datetime.fromisoformat(original.replace("Z", "+00:00"))
            if len(original) == 10 and "date" in master["start"]:  # an all-day series' slot is named by its day
                at = _parse({"date": original})
            elif at.tzinfo is None or "date" in master["start"]:  # a date for a timed series, a time for an all-day one
                return JSONResponse({"error": {"code": 400, "message": "Invalid value for: originalStart"}}, 400)
            rows = [r for r in self._expand(master, at, at + timedelta(seconds=1), deleted, by_slot=True)
                    if _parse(r["originalStartTime"]) == at]
        else:
            rows = self._expand(master, *self._window(request), deleted=deleted)
        size, offset = int(request.query_params.get("maxResults", 250)), int(request.query_params.get("pageToken", "0"))
        body: dict[str, Any] = {"items": rows[offset : offset + size]}
        if offset + size < len(rows):
            body["nextPageToken"] = str(offset + size)
        return JSONResponse(body)

    def _materialize(self, event_id: str, keep: bool) -> dict[str, Any] | None:
        """The event or instance `event_id`; an instance is stored (`keep`) only when it is written."""
        if event_id in self.events:
            return self.events[event_id]
        master_id, _, stamp = event_id.rpartition("_")
        master = self.events.get(master_id)
        if master is None:
            return None
        moment = _parse({"date": f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"}) if len(stamp) == 8 else \
            datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        for instance in self._expand(master, moment, moment + timedelta(seconds=1)):
            if instance["id"] == event_id:
                if keep:
                    self.events[event_id] = dict(instance)
                return self.events.get(event_id, instance)
        return None

    async def event(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = self._materialize(request.path_params["id"], keep=request.method != "GET")
        restoring = request.method == "PATCH" and found is not None and "recurringEventId" in found and \
            (await request.json()).get("status") == "confirmed"  # a cancelled instance is restored by its status
        if found is None or found.get("status") == "cancelled" and request.method != "GET" and not restoring:
            return JSONResponse({"error": {"code": 404, "message": "Not Found"}}, 404)
        if request.method == "DELETE":
            if "recurringEventId" in found:
                found["status"] = "cancelled"
            else:
                del self.events[found["id"]]
            return Response(status_code=204)
        if request.method == "PATCH":
            if (match := request.headers.get("if-match")) and match != found["etag"]:
                return JSONResponse({"error": {"code": 412, "message": "Precondition Failed"}}, 412)
            found.update(await request.json())
            found["etag"] = f'"{secrets.token_hex(4)}"'
        return JSONResponse(found)

    async def free_busy(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        body = await request.json()
        start = datetime.fromisoformat(body["timeMin"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(body["timeMax"].replace("Z", "+00:00"))
        calendars: dict[str, Any] = {}
        for item in body["items"]:
            if item["id"] != CAL:
                calendars[item["id"]] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            busy = [{"start": _parse(e["start"]).astimezone(UTC).isoformat().replace("+00:00", "Z"),
                     "end": _parse(e["end"]).astimezone(UTC).isoformat().replace("+00:00", "Z")}
                    for m in self._masters() for e in self._expand(m, start, end) if e.get("transparency") != "transparent"]
            calendars[item["id"]] = {"busy": sorted(busy, key=lambda b: b["start"])}
        return JSONResponse({"kind": "calendar#freeBusy", "calendars": calendars})
