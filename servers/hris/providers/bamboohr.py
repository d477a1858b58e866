"""BambooHR as an HRIS backend.

Configuration: `BAMBOOHR_COMPANY` (the subdomain) and `BAMBOOHR_API_KEY` (sent as the Basic user,
password `x`); `BAMBOOHR_BASE_URL` overrides the API host. People come from one custom report
(`POST /reports/custom`), which BambooHR does not page, so filtering and paging happen here;
sensitive fields are only put in the report when the privacy policy let them through. Time off
uses `whos_out`, `time_off/requests`, the balance calculator, `PUT …/time_off/request` and
`PUT /time_off/requests/{id}/status` (an unclear answer to the request is settled by reading it back;
lists page by keyset; the `X-BambooHR-Error-Message` reason reaches the agent, `ErrorHeader`). Changes reach `list_changes` through BambooHR webhooks
(`/webhooks/bamboohr`, docs/events.md), not by polling.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from servers.kit.settle import settle_create
from servers.hris.backend import EmployeeFilter
from servers.hris.balances import balance_of, check_employed, provider_day, requested_hours
from servers.hris.model import (
    Absence,
    Balances,
    Department,
    Employee,
    EmployeePage,
    RequestStatus,
    TimeOffPage,
    TimeOffPreview,
    TimeOffRequest,
)
from servers.hris.store import HOURS_PER_DAY, business_days
from servers.kit.credentials import Basic, connect
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError, not_found
from servers.kit.http import ProviderHTTP

BASE_FIELDS = ["firstName", "lastName", "displayName", "employeeNumber", "workEmail", "jobTitle", "department",
               "location", "supervisorEId", "status", "employmentHistoryStatus", "hireDate", "terminationDate", "lastChanged"]
SENSITIVE_TO_BAMBOO = {"date_of_birth": ["dateOfBirth"], "national_id": ["ssn"], "compensation": ["payRate"],
                       "bank_account": ["bankAccount"], "home_address": ["address1", "city", "zipcode", "country"],
                       "personal_email": ["homeEmail"], "personal_phone": ["mobilePhone"]}
TYPES = {"full-time": "full_time", "part-time": "part_time", "contractor": "contractor", "intern": "intern",
         "temporary": "temporary"}
STATUS_TO_BAMBOO = {"approve": "approved", "deny": "denied", "cancel": "canceled"}
STATUS_FROM_BAMBOO: dict[str, RequestStatus] = {"requested": "requested", "approved": "approved", "denied": "denied",
                                                "canceled": "cancelled", "superceded": "cancelled"}


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value and value != "0000-00-00" else None


def holiday_days(rows: list[dict[str, Any]], start: date, end: date) -> set[str]:
    """Every day in `start`..`end` that a Who's Out holiday covers: a holiday has a start and an end and
    may span days (a year-end shutdown), and may have begun before `start` (outside review 18: only each
    holiday's first day was excluded, so the rest of a shutdown was charged)."""
    days: set[str] = set()
    for row in rows:
        if row.get("type") != "holiday":
            continue
        current, last = max(start, date.fromisoformat(row["start"])), min(end, date.fromisoformat(row["end"]))
        while current <= last:
            days.add(current.isoformat())
            current += timedelta(days=1)
    return days


class ErrorHeader(httpx.AsyncBaseTransport):
    """BambooHR says why it refused a request in the `X-BambooHR-Error-Message` header, with an empty or
    unrelated body; the kit reads a provider's reason from a JSON body only, so the reason is moved into the
    body as `message` here and reaches the agent masked and bounded like any provider text (outside review
    domains26 #9: "failed (400)" with no reason)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        reason = response.headers.get("x-bamboohr-error-message", "").strip()
        if response.status_code < 400 or not reason:
            return response
        raw = await response.aread()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if body.get("message") != reason:
            body = {**body, "message": reason[:500], **({"detail": body["message"]} if isinstance(body.get("message"), str) else {})}
        headers = [(k, v) for k, v in response.headers.raw
                   if k.lower() not in (b"content-length", b"content-type", b"content-encoding", b"transfer-encoding")]
        return httpx.Response(response.status_code, headers=[*headers, (b"content-type", b"application/json")],
                              content=json.dumps(body).encode(), request=request, extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _order(request: TimeOffRequest) -> tuple[str, int, str]:
    """Requests' walk order, (start, id) with numeric ids in number order."""
    return request.start.isoformat(), len(request.id), request.id


class BambooHris:
    name = "bamboohr"

    def __init__(self, http: ProviderHTTP) -> None:
        self.http = http
        self._types: dict[str, tuple[str, bool]] | None = None  # name -> (id, counted in days)

    @classmethod
    def from_env(cls, data_dir: Path | None = None, transport: httpx.AsyncBaseTransport | None = None) -> BambooHris:
        """From `BAMBOOHR_COMPANY` and `BAMBOOHR_API_KEY` (Basic, the key as user; the HRIS `PROVIDERS` table checks both)."""
        host = os.environ.get("BAMBOOHR_BASE_URL", "https://api.bamboohr.com").rstrip("/")
        return cls(connect("BambooHR", f"{host}/api/gateway.php/{os.environ['BAMBOOHR_COMPANY']}/v1",
                           Basic(os.environ["BAMBOOHR_API_KEY"], "x"), headers={"Accept": "application/json"},
                           transport=ErrorHeader(transport or httpx.AsyncHTTPTransport())))

    # -- people ----------------------------------------------------------------------------

    async def _report(self, sensitive: list[str]) -> list[dict[str, Any]]:
        fields = BASE_FIELDS + [f for name in sensitive for f in SENSITIVE_TO_BAMBOO[name]]
        body = await self.http.json("POST", "/reports/custom", params={"format": "JSON", "onlyCurrent": "true"},
                                    json={"title": "mcp-hub people", "fields": fields}, idempotent=True, writes=False)
        return body.get("employees", []) if isinstance(body, dict) else []

    def _employee(self, row: dict[str, Any], sensitive: list[str]) -> Employee:
        history = str(row.get("employmentHistoryStatus") or "").lower()
        status = "inactive" if str(row.get("status", "")).lower() == "inactive" or history == "terminated" else (
            "leave" if "leave" in history else "active")
        hire = _day(row.get("hireDate"))
        if status == "active" and hire and hire > date.today():
            status = "pending"
        values: dict[str, Any] = {}
        for name in sensitive:
            parts = [str(row[f]) for f in SENSITIVE_TO_BAMBOO[name] if row.get(f)]
            values[name] = ", ".join(parts) if parts else None
        first, last = row.get("firstName") or "", row.get("lastName") or ""
        return Employee(
            id=str(row["id"]), provider="bamboohr", remote_id=str(row["id"]), employee_number=row.get("employeeNumber"),
            first_name=first, last_name=last, display_name=row.get("displayName") or f"{first} {last}".strip(),
            work_email=row.get("workEmail"), title=row.get("jobTitle"), department=row.get("department"),
            location=row.get("location"), manager_id=str(row["supervisorEId"]) if row.get("supervisorEId") else None,
            employment_status=status, employment_type=TYPES.get(history),  # type: ignore[arg-type]
            start_date=hire, end_date=_day(row.get("terminationDate")),
            updated_at=row.get("lastChanged") or None, sensitive=values or None,
        )

    async def search(self, where: EmployeeFilter, sensitive: list[str], limit: int, cursor: str | None) -> EmployeePage:
        state = decode_cursor(cursor)
        people = [self._employee(r, sensitive) for r in await self._report(sensitive)]
        text = (where.query or "").lower()
        matched = [
            e for e in people
            if (not text or text in e.display_name.lower() or text in (e.work_email or "").lower()
                or text in (e.title or "").lower() or text == (e.employee_number or ""))
            and all(value is None or getattr(e, attr) == value for attr, value in (
                ("department", where.department), ("location", where.location), ("manager_id", where.manager_id),
                ("employment_status", where.status), ("employment_type", where.employment_type)))
        ]
        def order(e: Employee) -> tuple[str, str, int, str]:
            return e.last_name, e.first_name, len(e.id), e.id

        matched.sort(key=order)
        if "after" in state:  # keyset, as `list_requests`: a person leaving the filter shifts nothing
            after = tuple(state["after"])
            matched = [e for e in matched if order(e) > after]
        elif "offset" in state:
            matched = matched[int(state["offset"]):]
        page = matched[:limit]
        more = len(matched) > limit
        return EmployeePage(employees=page, next_cursor=encode_cursor({"after": list(order(page[-1]))}) if more else None)

    async def get(self, ref: str, sensitive: list[str]) -> Employee:
        """By id first (an all-digit ref), else by work email in any case or by employee number, which is
        often all digits too (outside review 18: "1001" was only ever tried as an id)."""
        if ref.isascii() and ref.isdigit():
            fields = ",".join(["id"] + BASE_FIELDS + [f for n in sensitive for f in SENSITIVE_TO_BAMBOO[n]])
            try:
                row = await self.http.json("GET", f"/employees/{ref}", params={"fields": fields})
            except DomainError as exc:
                if exc.body.code != "not_found":
                    raise
            else:
                return self._employee({"id": ref, **row}, sensitive)
        rows = await self._report(sensitive)
        email = ref.casefold()
        match = next((r for r in rows if str(r.get("workEmail") or "").casefold() == email), None) or next(
            (r for r in rows if str(r.get("employeeNumber") or "") == ref), None)
        if match is None:
            raise not_found("employee", ref)
        return self._employee(match, sensitive)

    async def _employee_id(self, ref: str) -> str:
        """The numeric id BambooHR paths and filters take, for an id, work email or employee number."""
        return (await self.get(ref, [])).id

    async def reports_of(self, employee_id: str) -> list[Employee]:
        return [self._employee(r, []) for r in await self._report([]) if str(r.get("supervisorEId") or "") == employee_id]

    async def departments(self) -> list[Department]:
        counts: dict[str, int] = {}
        for row in await self._report([]):
            if row.get("department") and str(row.get("status", "")).lower() != "inactive":
                counts[row["department"]] = counts.get(row["department"], 0) + 1
        return [Department(name=name, headcount=n) for name, n in sorted(counts.items())]

    # -- time off --------------------------------------------------------------------------

    async def _whos_out_rows(self, start: date, end: date) -> list[dict[str, Any]]:
        return await self.http.json("GET", "/time_off/whos_out", params={"start": start.isoformat(), "end": end.isoformat()}) or []

    async def whos_out(self, start: date, end: date) -> list[Absence]:
        """Who's Out rows carry no leave type; each time-off row's id is its request's, whose type is read
        from `time_off/requests` (the privacy policy withholds it from callers who may not see it)."""
        rows = await self._whos_out_rows(start, end)
        types: dict[str, str] = {}
        if any(r.get("type") != "holiday" for r in rows):
            listed = await self._request_rows({"start": start.isoformat(), "end": end.isoformat(), "status": "approved"})
            types = {str(r["id"]): self._request(r).type or "" for r in listed}
        return [Absence(kind="holiday" if r.get("type") == "holiday" else "time_off",
                        employee_id=str(r["employeeId"]) if r.get("employeeId") else None, name=r.get("name", ""),
                        start=r["start"], end=r["end"],
                        type=None if r.get("type") == "holiday" else types.get(str(r.get("id"))) or None) for r in rows]

    async def balances(self, employee_id: str, as_of: date) -> Balances:
        return await self._balances(await self._employee_id(employee_id), as_of)

    async def _balances(self, employee_id: str, as_of: date) -> Balances:
        """BambooHR's estimate as of `as_of` (accruals and approved time off counted) minus the
        requests still awaiting approval, which BambooHR does not count; booked is the year's
        used hours plus approved requests starting after `as_of`."""
        rows = await self.http.json("GET", f"/employees/{employee_id}/time_off/calculator", params={"end": as_of.isoformat()})
        window = {"employeeId": employee_id, "start": (as_of - timedelta(days=366)).isoformat(),
                  "end": (as_of + timedelta(days=731)).isoformat()}
        pending, upcoming = requested_hours([self._request(r) for r in await self._request_rows(window)], as_of)
        out = []
        for r in rows or []:
            factor = HOURS_PER_DAY if r.get("units") == "days" else 1.0
            kind = str(r.get("name", r.get("timeOffType", ""))).lower()
            taken = float(r.get("usedYearToDate", 0)) * factor
            out.append(balance_of(kind, provider_balance=float(r.get("balance", 0)) * factor, taken=taken,
                                  booked=taken + upcoming.get(kind, 0.0), pending=pending.get(kind, 0.0)))
        return Balances(employee_id=employee_id, as_of=as_of, balances=out)

    async def _request_rows(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return await self.http.json("GET", "/time_off/requests", params=params) or []

    def _request(self, r: dict[str, Any]) -> TimeOffRequest:
        amount = r.get("amount") or {}
        hours = float(amount.get("amount", 0)) * (HOURS_PER_DAY if amount.get("unit") == "days" else 1.0)
        native = str((r.get("status") or {}).get("status", "requested")).lower()
        note = (r.get("notes") or {}).get("employee")
        return TimeOffRequest(id=str(r["id"]), employee_id=str(r["employeeId"]), type=str((r.get("type") or {}).get("name", "")).lower(),
                              start=r["start"], end=r["end"], hours=hours, status=STATUS_FROM_BAMBOO.get(native, "requested"),
                              note=note, created_at=r.get("created") or datetime.now(UTC))

    async def list_requests(
        self, employee_id: str | None, start: date | None, end: date | None, status: RequestStatus | None,
        limit: int, cursor: str | None,
    ) -> TimeOffPage:
        state = decode_cursor(cursor)
        today = date.today()
        params = {"start": (start or today - timedelta(days=365)).isoformat(), "end": (end or today + timedelta(days=365)).isoformat()}
        if employee_id:
            params["employeeId"] = await self._employee_id(employee_id)
        if status:
            params["status"] = {"cancelled": "canceled"}.get(status, status)
        rows = sorted((self._request(r) for r in await self._request_rows(params)), key=_order)
        if "after" in state:  # keyset: rows after the last one shown, however the list changed since
            after = tuple(state["after"])
            rows = [r for r in rows if _order(r) > after]
        elif "offset" in state:  # a cursor made before keyset paging
            rows = rows[int(state["offset"]):]
        page = rows[:limit]
        more = len(rows) > limit
        return TimeOffPage(requests=page, next_cursor=encode_cursor({"after": list(_order(page[-1]))}) if more else None)

    async def _type(self, name: str) -> tuple[str, bool]:
        """A time-off type's id, and whether BambooHR counts it in days (`units`) rather than hours."""
        if self._types is None:
            body = await self.http.json("GET", "/meta/time_off/types")
            self._types = {t["name"].lower(): (str(t["id"]), t.get("units") == "days") for t in body.get("timeOffTypes", [])}
        found = self._types.get(name.lower())
        if found is None:
            raise DomainError("invalid_argument", f"BambooHR has no time-off type {name!r}; types: {', '.join(sorted(self._types))}")
        return found

    async def request_time_off(
        self, employee_id: str, type: str, start: date, end: date, note: str | None, dry_run: bool,
        hours_per_day: float | None = None, check_balance: bool = True,
    ) -> TimeOffPreview:
        """The hub checks no balance here (`check_balance` changes nothing): the provider's policy decides."""
        type_id, in_days = await self._type(type)
        working = business_days(start, end, holiday_days(await self._whos_out_rows(start, end), start, end))
        if working == 0:
            raise DomainError("invalid_argument", "that range has no working days (weekends and holidays only)")
        # BambooHR takes `amount` in the type's units: days for a type counted in days
        person = await self.get(employee_id, [])
        employee_id = person.id  # an email or employee number names the same person; paths take the id
        check_employed(person, start, end)
        each, hours_each = provider_day(person, hours_per_day, in_days)
        amount, hours = working * each, working * hours_each
        balance = next((b.available_hours for b in (await self._balances(employee_id, end)).balances if b.type == type.lower()), 0.0)
        existing = await self._request_rows({"employeeId": employee_id, "start": start.isoformat(), "end": end.isoformat()})
        overlaps = [str(r["id"]) for r in existing
                    if str((r.get("status") or {}).get("status", "")).lower() in ("requested", "approved")]
        preview = TimeOffPreview(dry_run=dry_run, hours=hours, hours_per_day=hours / working, balance_before=balance,
                                 balance_after=balance - hours, overlaps=overlaps)
        if overlaps:  # in a dry run too, which answers what the real call would
            raise DomainError("conflict", f"overlaps existing request(s) {', '.join(overlaps)}", details={"overlaps": overlaps})
        if dry_run:
            return preview
        body = {"status": "requested", "start": start.isoformat(), "end": end.isoformat(), "timeOffTypeId": type_id,
                "amount": amount, "notes": [{"from": "employee", "note": note}] if note else []}

        async def put() -> dict[str, Any]:
            return await self.http.json("PUT", f"/employees/{employee_id}/time_off/request", json=body,  # type: ignore[no-any-return]
                                        idempotent=False)

        async def find() -> dict[str, Any] | None:
            """The request this call made, after an unclear answer: one for these days and type that was not there
            before it (the overlap check above saw none for these days)."""
            before = {str(r["id"]) for r in existing}
            rows = await self._request_rows({"employeeId": employee_id, "start": start.isoformat(), "end": end.isoformat()})
            return next((r for r in rows if str(r["id"]) not in before and r.get("start") == body["start"]
                         and r.get("end") == body["end"] and str((r.get("type") or {}).get("id", type_id)) == type_id
                         and str((r.get("status") or {}).get("status", "requested")).lower() == "requested"), None)

        # a 5xx or no answer after BambooHR stored the request is settled by reading it back, never answered as
        # retryable: the hub's retry found the request and called it a conflict with itself (outside review domains26 #2)
        created = await settle_create("BambooHR", f"the {type} request for {start}..{end}", put, find,
                                      what=f"the time-off request of employee {employee_id}", details={},
                                      advice=f"List this employee's requests for {start}..{end} (list_time_off_requests) "
                                             "before asking again: it may exist")
        preview.request = self._request(created)
        return preview

    async def _find_request(self, request_id: str) -> TimeOffRequest:
        today = date.today()
        rows = await self._request_rows({"id": request_id, "start": (today - timedelta(days=3650)).isoformat(),
                                         "end": (today + timedelta(days=3650)).isoformat()})
        match = next((r for r in rows if str(r["id"]) == request_id), None)
        if match is None:
            raise not_found("time-off request", request_id)
        return self._request(match)

    async def decide(self, request_id: str, decision: str) -> TimeOffRequest:
        """Approved leave that has begun is not cancelled, as on the embedded backend (docs/domains.md): its
        days so far are taken, and BambooHR would give them back to the balance."""
        current = await self._find_request(request_id)
        if decision == "cancel" and current.status == "approved" and current.start <= date.today():
            raise DomainError("conflict", f"request {request_id} is approved leave that began on {current.start}: its "
                              "days so far are taken, so it cannot be cancelled; only leave not yet begun can be. "
                              "To end it early, have HR shorten it in BambooHR.",
                              details={"status": current.status, "start": current.start.isoformat()})
        await self.http.request("PUT", f"/time_off/requests/{request_id}/status",
                                json={"status": STATUS_TO_BAMBOO[decision], "note": "via mcp-hub"})
        return await self._find_request(request_id)
