"""A local fake of Workday's OAuth token endpoint and the REST resources the connector uses,
with rotating refresh tokens, expirable access tokens, limit/offset paging and recorded requests."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import injected, record

WORKERS = [
    {"id": f"w{i:03d}", "descriptor": f"Person{i:03d} Example", "workerId": f"2{i:03d}", "primaryWorkEmail": f"p{i}@acme.test",
     "businessTitle": "Engineer" if i else "CTO", "primarySupervisoryOrganization": {"id": "org1", "descriptor": "Engineering"},
     "location": {"descriptor": "Berlin"}, "manager": {"id": "w000"} if i else {}, "hireDate": "2022-02-01",
     "workerType": "Employee"} for i in range(130)
]


@dataclass
class FakeWorkday:
    tenant: str = "acme"
    client_id: str = "wd-client"
    client_secret: str = "wd-secret"
    refresh_token: str = "refresh-0"
    access_token: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    fail_refresh: bool = False
    fail_after_write: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    """Answers for the next time-off requests *after* they were stored (a gateway 504 after the business process began)."""
    string_totals: bool = True
    details: list[dict[str, Any]] = field(default_factory=list)
    # Workday may send dates as date-times: midnight in the tenant's zone, in UTC. None: plain dates.
    date_zone: str | None = None

    def _date(self, value: str) -> str:
        if self.date_zone is None:
            return value
        midnight = datetime.combine(date.fromisoformat(value), time(), ZoneInfo(self.date_zone))
        return midnight.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def _dated(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: self._date(v) if k in ("hireDate", "date", "endDate") and v else v for k, v in row.items()}

    def app(self) -> Starlette:
        staffing, absence = f"/ccx/api/staffing/v6/{self.tenant}", f"/ccx/api/absenceManagement/v1/{self.tenant}"
        return Starlette(routes=[
            Route(f"/ccx/oauth2/{self.tenant}/token", self.token, methods=["POST"]),
            Route(f"{staffing}/workers", self.workers, methods=["GET"]),
            Route(f"{staffing}/workers/{{id}}", self.worker, methods=["GET"]),
            Route(f"{staffing}/workers/{{id}}/directReports", self.reports, methods=["GET"]),
            Route(f"{staffing}/supervisoryOrganizations", self.orgs, methods=["GET"]),
            Route(f"{absence}/balances", self.balances, methods=["GET"]),
            Route(f"{absence}/workers/{{id}}/timeOffDetails", self.time_off, methods=["GET"]),
            Route(f"{absence}/workers/{{id}}/requestTimeOff", self.request_time_off, methods=["POST"]),
        ])

    def expire(self) -> None:
        self.access_token = "revoked-" + secrets.token_hex(4)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        self.token_requests.append(form)
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, 401)
        if self.fail_refresh or form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400)
        self.access_token = "access-" + secrets.token_hex(8)
        self.refresh_token = "refresh-" + secrets.token_hex(8)  # rotation: the old one is now invalid
        return JSONResponse({"access_token": self.access_token, "token_type": "Bearer", "expires_in": 3600,
                             "refresh_token": self.refresh_token})

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        if self.access_token is None or request.headers.get("authorization") != f"Bearer {self.access_token}":
            return JSONResponse({"error": "invalid_token"}, 401)
        return None

    def _page(self, request: Request, rows: list[dict[str, Any]]) -> JSONResponse:
        limit, offset = int(request.query_params.get("limit", 20)), int(request.query_params.get("offset", 0))
        if limit > 100:
            return JSONResponse({"error": "limit must be 100 or less"}, 400)
        total: Any = str(len(rows)) if self.string_totals else len(rows)
        return JSONResponse({"total": total, "data": [self._dated(r) for r in rows[offset : offset + limit]]})

    async def workers(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        search = request.query_params.get("search", "").lower()
        rows = [w for w in WORKERS if not search or search in json.dumps(w).lower()]
        return self._page(request, rows)

    async def worker(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = next((w for w in WORKERS if w["id"] == request.path_params["id"]), None)
        return JSONResponse(self._dated(found)) if found else JSONResponse({"error": "not found"}, 404)

    async def reports(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return self._page(request, [w for w in WORKERS if (w["manager"] or {}).get("id") == request.path_params["id"]])

    async def orgs(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return self._page(request, [{"id": "org1", "descriptor": "Engineering", "workerCount": "130"}])

    async def balances(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse({"total": 2, "data": [{"absencePlan": {"descriptor": "Vacation"}, "unit": {"descriptor": "Hours"},
                                                   "quantity": "96", "used": "24"},
                                                  {"absencePlan": {"descriptor": "Sick"}, "unit": {"descriptor": "Days"},
                                                   "quantity": "10", "used": "1"}]})

    async def time_off(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        # Entries with a day in [fromDate, toDate] (ISO dates compare as text), as Workday filters them.
        since, until = request.query_params.get("fromDate", ""), request.query_params.get("toDate", "9999-12-31")
        return self._page(request, [d for d in self.details if d["worker"] == request.path_params["id"]
                                    and d["endDate"] >= since and d["date"] <= until])

    async def request_time_off(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        body = await request.json()
        kind = body["days"][0]["timeOffType"]["descriptor"]
        entry = {"id": f"tor{len(self.details)}", "worker": request.path_params["id"], "date": body["days"][0]["date"],
                 "endDate": body["days"][-1]["date"], "quantity": str(sum(d["dailyQuantity"] for d in body["days"])),
                 "unit": {"descriptor": "Days" if kind.lower() == "sick" else "Hours"}, "timeOffType": {"descriptor": kind}, "status": {"descriptor": "Submitted"}, "comment": body.get("comment"),
                 "createdOn": "2026-11-23T10:00:00Z"}
        self.details.append(entry)
        return injected(self.fail_after_write) or JSONResponse({"id": entry["id"], "status": {"descriptor": "Submitted"}}, 201)
