"""A local fake of the BambooHR API (the endpoints the connector uses), with auth, recorded
requests and injectable failures (429/503 with Retry-After, malformed JSON)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import injected, record

PEOPLE = [
    {"id": "40", "firstName": "Grace", "lastName": "Hopper", "displayName": "Grace Hopper", "employeeNumber": "1001",
     "workEmail": "grace@acme.test", "jobTitle": "CEO", "department": "Leadership", "location": "London",
     "supervisorEId": None, "status": "Active", "employmentHistoryStatus": "Full-Time", "hireDate": "2020-01-06",
     "terminationDate": "0000-00-00", "lastChanged": "2026-11-01T10:00:00+00:00", "dateOfBirth": "1906-12-09", "ssn": "078-05-1120"},
    {"id": "41", "firstName": "Ada", "lastName": "Lovelace", "displayName": "Ada Lovelace", "employeeNumber": "1002",
     "workEmail": "ada@acme.test", "jobTitle": "Engineer", "department": "Engineering", "location": "London",
     "supervisorEId": "40", "status": "Active", "employmentHistoryStatus": "Part-Time", "hireDate": "2021-03-01",
     "terminationDate": "0000-00-00", "lastChanged": "2026-11-20T09:00:00+00:00", "dateOfBirth": "1815-12-10", "ssn": "123-45-6789"},
    {"id": "42", "firstName": "Alan", "lastName": "Turing", "displayName": "Alan Turing", "employeeNumber": "1003",
     "workEmail": "alan@acme.test", "jobTitle": "Engineer", "department": "Engineering", "location": "Manchester",
     "supervisorEId": "41", "status": "Inactive", "employmentHistoryStatus": "Terminated", "hireDate": "2019-05-01",
     "terminationDate": "2026-06-30", "lastChanged": "2026-07-01T00:00:00+00:00"},
]


@dataclass
class FakeBamboo:
    company: str = "acme"
    key: str = "bamboo-key-123"
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    fail_after_write: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    """Answers for the next time-off requests *after* they were stored (BambooHR's 503, its throttling answer)."""
    time_off: list[dict[str, Any]] = field(default_factory=list)
    # Company holidays as Who's Out lists them: a start and an end, possibly days apart (a shutdown).
    holidays: list[dict[str, Any]] = field(default_factory=lambda: [
        {"id": 1, "type": "holiday", "name": "Christmas Day", "start": "2026-12-25", "end": "2026-12-25"}])

    def app(self) -> Starlette:
        base = f"/api/gateway.php/{self.company}/v1"
        return Starlette(routes=[
            Route(f"{base}/reports/custom", self.report, methods=["POST"]),
            Route(f"{base}/employees/changed", self.changed, methods=["GET"]),
            Route(f"{base}/employees/{{id}}", self.employee, methods=["GET"]),
            Route(f"{base}/employees/{{id}}/time_off/calculator", self.calculator, methods=["GET"]),
            Route(f"{base}/employees/{{id}}/time_off/request", self.new_request, methods=["PUT"]),
            Route(f"{base}/time_off/whos_out", self.whos_out, methods=["GET"]),
            Route(f"{base}/time_off/requests", self.requests_list, methods=["GET"]),
            Route(f"{base}/time_off/requests/{{id}}/status", self.status, methods=["PUT"]),
            Route(f"{base}/meta/time_off/types", self.types, methods=["GET"]),
        ])

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        if request.headers.get("authorization") != "Basic " + base64.b64encode(f"{self.key}:x".encode()).decode():
            return Response("", 401)
        if request.headers.get("accept") != "application/json":
            return Response("<xml/>", 200, media_type="application/xml")
        return injected(self.fail_next)

    async def report(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        fields = (await request.json())["fields"]
        rows = [{"id": p["id"], **{f: p.get(f) for f in fields}} for p in PEOPLE]
        return JSONResponse({"fields": [{"id": f} for f in fields], "employees": rows})

    async def employee(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        person = next((p for p in PEOPLE if p["id"] == request.path_params["id"]), None)
        if person is None:
            return Response("", 404)
        fields = request.query_params.get("fields", "").split(",")
        return JSONResponse({"id": person["id"], **{f: person.get(f) for f in fields if f != "id"}})

    async def changed(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        since = request.query_params["since"]
        return JSONResponse({"latest": "2026-11-20T09:00:00+00:00", "employees": {
            p["id"]: {"id": p["id"], "action": "Updated", "lastChanged": p["lastChanged"]} for p in PEOPLE if p["lastChanged"] >= since}})

    async def calculator(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        if not any(p["id"] == request.path_params["id"] for p in PEOPLE):
            return Response("", 404)  # paths take the numeric id; an email or employee number is no employee
        used = sum(float(r["amount"]["amount"]) for r in self.time_off
                   if r["employeeId"] == request.path_params["id"] and r["status"]["status"] == "approved")
        return JSONResponse([{"timeOffType": "78", "name": "Vacation", "units": "hours", "balance": str(120 - used), "usedYearToDate": str(used)},
                             {"timeOffType": "79", "name": "Sick", "units": "days", "balance": "5", "usedYearToDate": "1"}])

    async def types(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse({"timeOffTypes": [{"id": "78", "name": "Vacation", "units": "hours"}, {"id": "79", "name": "Sick", "units": "days"}]})

    async def whos_out(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        start, end = request.query_params["start"], request.query_params["end"]
        out = list(self.holidays)  # time-off rows carry no leave type: their id is the request's
        out += [{"id": int(r["id"]), "type": "timeOff", "employeeId": int(r["employeeId"]), "name": r["name"], "start": r["start"], "end": r["end"]}
                for r in self.time_off if r["status"]["status"] == "approved"]
        return JSONResponse([o for o in out if o["start"] <= end and o["end"] >= start])

    async def requests_list(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        q = request.query_params
        rows = [r for r in self.time_off if r["start"] <= q["end"] and r["end"] >= q["start"]]
        if "employeeId" in q:
            rows = [r for r in rows if r["employeeId"] == q["employeeId"]]
        if "id" in q:
            rows = [r for r in rows if r["id"] == q["id"]]
        if "status" in q:
            rows = [r for r in rows if r["status"]["status"] == q["status"]]
        return JSONResponse(rows)

    async def new_request(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        body = await request.json()
        person = next((p for p in PEOPLE if p["id"] == request.path_params["id"]), None)
        if person is None:
            return Response("", 404)
        row = {"id": str(900 + len(self.time_off)), "employeeId": person["id"], "name": person["displayName"],
               "status": {"status": body["status"]}, "start": body["start"], "end": body["end"], "created": "2026-11-23",
               "type": {"id": body["timeOffTypeId"], "name": "Vacation" if body["timeOffTypeId"] == "78" else "Sick"},
               "amount": {"unit": "hours" if body["timeOffTypeId"] == "78" else "days", "amount": str(body["amount"])},
               "notes": {"employee": body["notes"][0]["note"]} if body["notes"] else {}}
        self.time_off.append(row)
        return injected(self.fail_after_write) or JSONResponse(row, 201)

    async def status(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        row = next((r for r in self.time_off if r["id"] == request.path_params["id"]), None)
        if row is None:
            return Response("", 404)
        row["status"] = {"status": (await request.json())["status"]}
        return Response("", 200)
