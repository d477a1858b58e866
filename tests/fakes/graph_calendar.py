"""A local fake of Microsoft Graph v1.0 calendars: mailboxSettings (a Windows zone name), calendars,
calendarView (series expanded: daily, weekly, absolute/relative monthly and yearly patterns; `$top` paging
through absolute `@odata.nextLink`s, `$filter=contains`,
answers in the `Prefer: outlook.timezone` zone with seven fractional digits), events with
`@odata.etag` and If-Match (412), instances and exceptions (an occurrence is stored only once written;
a deleted one leaves the instances list), a series master's `cancelledOccurrences`
(`OID.{masterId}.{local date}`, on `$select`) and `exceptionOccurrences` (on `$expand`),
accept/decline/tentativelyAccept, getSchedule, and `transactionId` on create (a repeated create with one
answers the event already made for it). A series begins on its `recurrence.range.startDate` at the
master's time of day, as Graph documents (a PATCH of `start` alone does not move it), and a PATCH of a
master's start, end, pattern, first day or zone drops its exceptions (edited and deleted occurrences), as
Exchange does (`_retimed`); a new end of its range alone keeps those still in it. A PATCH of `start` in another
zone makes that the event's `originalStartTimeZone`. Writing an occurrence gives it
and its master a new change key (`_touch_series`).
The fake expands patterns with dateutil on its own;
the connector under test never does."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from dateutil import rrule as du
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import injected, record

ME = "ada@contoso.test"
CAL_ID = "AAMkADcal=="
BASE = "http://graph.test/v1.0"
WEEKDAYS = {"monday": du.MO, "tuesday": du.TU, "wednesday": du.WE, "thursday": du.TH, "friday": du.FR, "saturday": du.SA,
            "sunday": du.SU}
WINDOWS = {"W. Europe Standard Time": "Europe/Berlin", "Eastern Standard Time": "America/New_York", "UTC": "UTC"}


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(WINDOWS.get(name, name))


def _at(part: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(part["dateTime"][:19]).replace(tzinfo=_zone(part["timeZone"]))


def _show(moment: datetime, tz: str) -> dict[str, str]:
    return {"dateTime": moment.astimezone(_zone(tz)).replace(tzinfo=None).isoformat() + ".0000000", "timeZone": tz}


def _etag() -> str:
    return f'W/"{secrets.token_hex(5)}"'


def _not_found() -> JSONResponse:
    return JSONResponse({"error": {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}}, 404)


@dataclass
class FakeGraph:
    token: str = "eyJ0eXAi.fake-graph-token"
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1.0/me/mailboxSettings", self.mailbox, methods=["GET"]),
            Route("/v1.0/me/calendars", self.calendars, methods=["GET"]),
            Route("/v1.0/me/calendars/{cal}/calendarView", self.calendar_view, methods=["GET"]),
            Route("/v1.0/me/calendars/{cal}/events", self.create, methods=["POST"]),
            Route("/v1.0/me/calendar/getSchedule", self.schedule, methods=["POST"]),
            Route("/v1.0/me/events/{id}", self.event, methods=["GET", "PATCH", "DELETE"]),
            Route("/v1.0/me/events/{id}/instances", self.instances, methods=["GET"]),
            Route("/v1.0/me/events/{id}/{action:str}", self.respond, methods=["POST"]),
        ])

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}}, 401)
        return injected(self.fail_next)

    # -- expansion (the fake's own, from the pattern objects) ------------------------------

    def _occurrences(self, master: dict[str, Any], start: datetime, end: datetime, every: bool = False) -> list[dict[str, Any]]:
        """The master's occurrences in [start, end) (`every`: the pattern's slots there, cancelled and moved ones too)."""
        first, last = _at(master["start"]), _at(master["end"])
        recurrence = master.get("recurrence")
        if not recurrence:
            return [master] if first < end and last > start else []
        pattern, span = recurrence["pattern"], recurrence["range"]
        kind = pattern["type"]
        freq = {"daily": du.DAILY, "weekly": du.WEEKLY, "absoluteMonthly": du.MONTHLY, "relativeMonthly": du.MONTHLY,
                "absoluteYearly": du.YEARLY, "relativeYearly": du.YEARLY}[kind]
        if span.get("startDate"):  # Graph's series begins on its range's startDate (at the master's time), not at `start`
            first = datetime.combine(datetime.fromisoformat(span["startDate"]).date(), first.timetz())
        options: dict[str, Any] = {"interval": pattern.get("interval", 1), "dtstart": first}
        if pattern["type"] == "weekly":
            options["byweekday"] = [WEEKDAYS[d] for d in pattern["daysOfWeek"]]
        if kind in ("absoluteMonthly", "absoluteYearly"):
            options["bymonthday"] = pattern["dayOfMonth"]
        if kind.endswith("Yearly"):
            options["bymonth"] = pattern["month"]
        if kind.startswith("relative"):  # the index-th day (in the month) that is any of daysOfWeek, as Graph documents
            options["byweekday"] = [WEEKDAYS[d] for d in pattern["daysOfWeek"]]
            options["bysetpos"] = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}[pattern.get("index", "first")]
        if span["type"] == "endDate":
            end_day = datetime.fromisoformat(span["endDate"])
            options["until"] = end_day.replace(hour=23, minute=59, second=59, tzinfo=first.tzinfo)
        elif span["type"] == "numbered":
            options["count"] = span["numberOfOccurrences"]
        out = []
        for moment in du.rrule(freq, **options).between(start - (last - first), end, inc=True):
            instance_id = f"{master['id']}_{moment.astimezone(UTC):%Y%m%dT%H%M}"
            real = moment.astimezone(UTC).astimezone(moment.tzinfo)  # a wall time in a DST gap: the hour after
            ends = (real.astimezone(UTC) + (last - first)).astimezone(moment.tzinfo)  # its exact length, not wall-clock
            instance = self.events.get(instance_id) or {
                **{k: v for k, v in master.items() if k not in ("recurrence", "id", "type")}, "id": instance_id,
                "type": "occurrence", "seriesMasterId": master["id"],
                "originalStart": moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "start": {"dateTime": real.replace(tzinfo=None).isoformat(), "timeZone": master["start"]["timeZone"]},
                "end": {"dateTime": ends.replace(tzinfo=None).isoformat(), "timeZone": master["start"]["timeZone"]}}
            if every or not instance.get("isCancelled") and _at(instance["start"]) < end and _at(instance["end"]) > start:
                out.append(instance)
        return out

    def _shown(self, raw: dict[str, Any], request: Request) -> dict[str, Any]:
        prefer = re.search(r'outlook\.timezone="([^"]+)"', request.headers.get("prefer", ""))
        if prefer is None:
            return raw
        tz = prefer.group(1)
        return raw | {k: _show(_at(raw[k]), tz) for k in ("start", "end") if k in raw}

    def _masters(self) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e.get("type") in ("singleInstance", "seriesMaster")]

    def _materialize(self, event_id: str, keep: bool) -> dict[str, Any] | None:
        """The event or occurrence `event_id`; an occurrence is stored (`keep`, as an exception) only when written."""
        if event_id in self.events:
            return self.events[event_id]
        master_id, _, stamp = event_id.rpartition("_")
        master = self.events.get(master_id)
        if master is None:
            return None
        moment = datetime.strptime(stamp, "%Y%m%dT%H%M").replace(tzinfo=UTC)
        for instance in self._occurrences(master, moment, moment + timedelta(seconds=1)):
            if instance["id"] == event_id:
                if keep:
                    self.events[event_id] = {**instance, "type": "exception"}
                return self.events.get(event_id, instance)
        return None

    def _stored_occurrences(self, master: dict[str, Any]) -> list[dict[str, Any]]:
        """The master's written occurrences that its pattern still has (a shortened range drops the rest)."""
        out = []
        for stored in self.events.values():
            if stored.get("seriesMasterId") != master["id"]:
                continue
            moment = datetime.fromisoformat(stored["originalStart"].replace("Z", "+00:00"))
            if any(i["id"] == stored["id"] for i in self._occurrences(master, moment, moment + timedelta(seconds=1), True)):
                out.append(stored)
        return out

    def _master_view(self, master: dict[str, Any], q: Any) -> dict[str, Any]:
        """A series master as GET answers it: `$select` narrows the fields (`cancelledOccurrences` only on
        `$select`), `$expand=exceptionOccurrences` adds the edited occurrences."""
        view = dict(master)
        stored = self._stored_occurrences(master)
        if "$select" in q:
            fields = set(q["$select"].split(","))
            view = {k: v for k, v in master.items() if k in fields | {"id", "@odata.etag"}}
            if "cancelledOccurrences" in fields:
                local = _zone(master["recurrence"]["range"].get("recurrenceTimeZone") or master["start"]["timeZone"])
                view["cancelledOccurrences"] = [
                    f"OID.{master['id']}.{datetime.fromisoformat(s['originalStart'].replace('Z', '+00:00')).astimezone(local).date()}"
                    for s in stored if s.get("isCancelled")]
        if "exceptionOccurrences" in q.get("$expand", ""):
            view["exceptionOccurrences"] = [s for s in stored if not s.get("isCancelled")]
        return view

    # -- routes ----------------------------------------------------------------------------

    async def mailbox(self, request: Request) -> Response:
        return failure if (failure := await self._begin(request)) else JSONResponse({"timeZone": "W. Europe Standard Time"})

    async def calendars(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse({"value": [{"id": CAL_ID, "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
                                        "owner": {"name": "Ada", "address": ME}}]})

    async def calendar_view(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        q = request.query_params
        start = datetime.fromisoformat(q["startDateTime"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(q["endDateTime"].replace("Z", "+00:00"))
        rows = sorted((i for m in self._masters() for i in self._occurrences(m, start, end)), key=lambda e: _at(e["start"]))
        if match := re.fullmatch(r"contains\(subject,'(.*)'\)", q.get("$filter", "")):
            needle = match.group(1).replace("''", "'").lower()
            rows = [r for r in rows if needle in r.get("subject", "").lower()]
        top, skip = int(q.get("$top", 10)), int(q.get("$skip", 0))
        body: dict[str, Any] = {"value": [self._shown(r, request) for r in rows[skip : skip + top]]}
        if skip + top < len(rows):
            rest = {k: v for k, v in q.items() if k != "$skip"} | {"$skip": skip + top}
            body["@odata.nextLink"] = f"{BASE}/me/calendars/{request.path_params['cal']}/calendarView?{urlencode(rest)}"
        return JSONResponse(body)

    async def create(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        body = await request.json()
        if (transaction := body.get("transactionId")) is not None:  # a repeated create answers the event made for it
            if made := next((e for e in self.events.values() if e.get("transactionId") == transaction), None):
                return JSONResponse(self._shown(made, request), 201)
        event_id = "AAMkAGI" + secrets.token_hex(6)
        event = {**body, "id": event_id, "@odata.etag": _etag(), "type": "seriesMaster" if body.get("recurrence") else "singleInstance",
                 "organizer": {"emailAddress": {"address": ME, "name": "Ada"}}, "responseStatus": {"response": "organizer"},
                 "originalStartTimeZone": body["start"]["timeZone"], "showAs": "busy", "isCancelled": False}
        event["attendees"] = [{**a, "status": {"response": "none"}} for a in body.get("attendees", [])]
        self.events[event_id] = event
        return JSONResponse(self._shown(event, request), 201)

    async def event(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = self._materialize(request.path_params["id"], keep=request.method != "GET")
        if found is None or found.get("isCancelled"):
            return _not_found()
        if request.method == "GET" and found.get("type") == "seriesMaster":
            return JSONResponse(self._shown(self._master_view(found, request.query_params), request))
        if request.method == "DELETE":
            if found["type"] in ("occurrence", "exception"):
                found["isCancelled"] = True
                self._touch_series(found)
            else:
                self.events = {k: v for k, v in self.events.items() if k != found["id"] and v.get("seriesMasterId") != found["id"]}
            return Response(status_code=204)
        if request.method == "PATCH":
            if (match := request.headers.get("if-match")) and match != found["@odata.etag"]:
                return JSONResponse({"error": {"code": "ErrorIrresolvableConflict", "message": "The change key does not match."}}, 412)
            patch = await request.json()
            if found.get("type") == "seriesMaster" and self._retimed(found, patch):  # Exchange drops the exceptions
                self.events = {k: v for k, v in self.events.items() if v.get("seriesMasterId") != found["id"]}
            found.update(patch)
            if zone := (patch.get("start") or {}).get("timeZone"):
                # the item's start time zone is the one its times were last given in: Exchange saves it at creation and a
                # write of the times in another zone changes it (EWS "Update the time zone for an appointment");
                # Graph reads it as `originalStartTimeZone`, which `start.timeZone` does not show under `Prefer`
                found["originalStartTimeZone"] = zone
            found["@odata.etag"] = _etag()
            self._touch_series(found)
        return JSONResponse(self._shown(found, request))

    def _touch_series(self, occurrence: dict[str, Any]) -> None:
        """An occurrence written (edited, deleted, answered) changes its series master too: Exchange keeps a series'
        exceptions on the master item, and an occurrence carries its master's change key (EWS
        `RecurringMasterItemId`: "it and the single occurrence will contain the same change key")."""
        master = self.events.get(occurrence.get("seriesMasterId") or "")
        if master is not None:
            master["@odata.etag"] = occurrence["@odata.etag"] = _etag()

    @staticmethod
    def _retimed(master: dict[str, Any], patch: dict[str, Any]) -> bool:
        """Whether a PATCH changes the series' time (start, end) or its pattern, first day or zone: Exchange then
        rebuilds the series without its exceptions (Outlook: "Any exceptions associated with this recurring
        appointment will be cancelled"). A new end of the range alone keeps those still in it."""
        if any(k in patch and patch[k] != master.get(k) for k in ("start", "end", "isAllDay")):
            return True
        if "recurrence" not in patch:
            return False
        new, old = patch["recurrence"] or {}, master.get("recurrence") or {}
        span, was = new.get("range") or {}, old.get("range") or {}
        return bool(new.get("pattern") != old.get("pattern") or
                    any(span.get(k) != was.get(k) for k in ("startDate", "recurrenceTimeZone")))

    async def instances(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        master = self.events.get(request.path_params["id"])
        if master is None:
            return _not_found()
        q = request.query_params
        start = datetime.fromisoformat(q["startDateTime"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(q["endDateTime"].replace("Z", "+00:00"))
        return JSONResponse({"value": [self._shown(i, request) for i in self._occurrences(master, start, end)]})

    async def respond(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        answers = {"accept": "accepted", "decline": "declined", "tentativelyAccept": "tentativelyAccepted"}
        found = self._materialize(request.path_params["id"], keep=True)
        if found is None or request.path_params["action"] not in answers:
            return _not_found()
        found["responseStatus"] = {"response": answers[request.path_params["action"]]}
        self._touch_series(found)
        return Response(status_code=202)

    async def schedule(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        body = await request.json()
        start, end = _at(body["startTime"]), _at(body["endTime"])
        value = []
        for address in body["schedules"]:
            if address.lower() != ME:
                value.append({"scheduleId": address, "error": {"message": "mailbox not found", "responseCode": "ErrorMailboxNotFound"}})
                continue
            items = [{"status": "free" if e.get("showAs") == "free" else "busy", "subject": e.get("subject"),
                      "start": _show(_at(e["start"]), "UTC"), "end": _show(_at(e["end"]), "UTC")}
                     for m in self._masters() for e in self._occurrences(m, start, end)]
            value.append({"scheduleId": address, "availabilityView": "", "scheduleItems": items})
        return JSONResponse({"value": value})
