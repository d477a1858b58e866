"""Workday as an HRIS backend, over its REST APIs with an OAuth 2.0 refresh-token grant.

Configuration: `WORKDAY_HOST` (tenant-specific, e.g. wd2-impl-services1.workday.com),
`WORKDAY_TENANT`, `WORKDAY_CLIENT_ID`, `WORKDAY_CLIENT_SECRET`, `WORKDAY_REFRESH_TOKEN` (of the API
client bound to an integration system user). Tokens come from `/ccx/oauth2/{tenant}/token`, are
refreshed before expiry and once on a 401, and persist encrypted (see `servers.kit.oauth`).

Used: Staffing `workers` (`limit` ≤ 100 + `offset`, `{data, total}`), `workers/{id}/directReports`,
`supervisoryOrganizations`; Absence Management `balances`, `workers/{id}/timeOffDetails` and
`workers/{id}/requestTimeOff`. Workday's REST API has no who's-out list, no approval endpoint
(approvals are business processes) and no change feed (SOAP is out of scope), so `whos_out`
and `decide_time_off` answer with a clear error saying so (`list_changes` shows only what this server
wrote: Workday sends no webhooks we take). Values that arrive as
strings where numbers are expected are converted strictly: a non-number is an `upstream_error`.
`request_time_off` reads the worker's `timeOffDetails` for the range first: days already in a
submitted or approved request are refused with `conflict` naming it (a dry run too), as on BambooHR.
No holiday calendar is read (a weekday holiday is charged). Dates may arrive as date-times, midnight in
the tenant's zone (`workday_date`, `WORKDAY_TIMEZONE`).
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from servers.kit.settle import settle_create
from servers.hris.backend import EmployeeFilter
from servers.hris.balances import balance_of, check_employed, provider_day, requested_hours
from servers.hris.model import (
    Absence,
    Balance,
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
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError, not_found
from servers.kit.credentials import connect, refresh_token_manager
from servers.kit.http import ProviderHTTP
from servers.kit.oauth import TokenManager

PAGE_MAX = 100
STATUS_FROM_WORKDAY: dict[str, RequestStatus] = {"submitted": "requested", "approved": "approved", "denied": "denied",
                                                 "canceled": "cancelled", "cancelled": "cancelled"}


def strict_number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DomainError("upstream_error", f"Workday sent {what} that is not a number") from None


def workday_date(value: Any, what: str, zone: ZoneInfo | None = None) -> date | None:
    """A calendar date Workday sent as a date or as a date-time. A date-time is midnight in the tenant's
    zone ("2024-06-08T07:00:00.000Z" in Los Angeles, "2024-06-07T22:00:00.000Z" in Berlin): it is read in
    `zone` (`WORKDAY_TIMEZONE`) when configured, else as the nearest midnight in its own offset — the day
    the tenant meant, not the UTC date (a day early east of UTC). Without `zone`, tenants ahead of UTC+12
    (New Zealand in summer, Tonga) would read a day early. Anything else is an `upstream_error` (values
    are typed strictly, PROVIDERS.md)."""
    if value is None or value == "":
        return None
    text = str(value)
    try:
        if "T" not in text:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DomainError("upstream_error", f"Workday sent {what} that is not a date") from None
    if zone is not None and moment.tzinfo is not None:
        return moment.astimezone(zone).date()
    return (moment + timedelta(hours=12)).date()


def _unsupported(tool: str, why: str) -> DomainError:
    return DomainError("invalid_argument", f"{tool} is not available with the Workday backend: {why}")


class WorkdayHris:
    name = "workday"

    def __init__(self, staffing: ProviderHTTP, absence: ProviderHTTP, tokens: TokenManager, zone: ZoneInfo | None = None) -> None:
        self.staffing = staffing
        self.absence = absence
        self.tokens = tokens
        self.zone = zone  # the tenant's time zone, for dates Workday sends as date-times (`workday_date`)

    @classmethod
    def from_env(
        cls, data_dir: Path | None = None, transport: httpx.AsyncBaseTransport | None = None, token_transport: Any = None
    ) -> WorkdayHris:
        """`transport` is for the API (httpx); `token_transport` for the token endpoint, which authlib
        reaches through its own HTTP stack (httpx2 where installed). Both exist for tests. The HRIS
        `PROVIDERS` table checks WORKDAY_HOST, _TENANT, _CLIENT_ID, _CLIENT_SECRET, _REFRESH_TOKEN."""
        host, tenant = os.environ["WORKDAY_HOST"].rstrip("/"), os.environ["WORKDAY_TENANT"]
        base = host if host.startswith("http") else f"https://{host}"
        tokens = refresh_token_manager(
            "Workday", "WORKDAY", f"{base}/ccx/oauth2/{tenant}/token", data_dir=data_dir, vault_name=f"workday-{tenant}",
            token_transport=token_transport, sign_in="generate a new refresh token for the API client in Workday")

        def client(service: str) -> ProviderHTTP:
            return connect("Workday", f"{base}/ccx/api/{service}/{tenant}", tokens, headers={"Accept": "application/json"},
                           transport=transport)

        return cls(client("staffing/v6"), client("absenceManagement/v1"), tokens, _tenant_zone())

    # -- people ----------------------------------------------------------------------------

    def _employee(self, w: dict[str, Any]) -> Employee:
        first, _, last = str(w.get("descriptor", "")).partition(" ")
        org = w.get("primarySupervisoryOrganization") or {}
        manager = w.get("manager") or {}
        active = w.get("isActive", True) not in (False, "false", "0")
        return Employee(
            id=str(w["id"]), provider="workday", remote_id=str(w["id"]), employee_number=w.get("workerId"),
            first_name=first, last_name=last, display_name=w.get("descriptor", ""), work_email=w.get("primaryWorkEmail"),
            title=w.get("businessTitle"), department=org.get("descriptor"), location=(w.get("location") or {}).get("descriptor"),
            manager_id=manager.get("id"), employment_status="active" if active else "inactive",
            employment_type="contractor" if w.get("workerType") == "Contingent_Worker" else "full_time",
            start_date=workday_date(w.get("hireDate"), "a hire date", self.zone),
        )

    async def _workers(self, search: str | None, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        params: dict[str, Any] = {"limit": min(limit, PAGE_MAX), "offset": offset}
        if search:
            params["search"] = search
        body = await self.staffing.json("GET", "/workers", params=params)
        return body.get("data", []), int(strict_number(body.get("total", 0), "a total"))

    async def search(self, where: EmployeeFilter, sensitive: list[str], limit: int, cursor: str | None) -> EmployeePage:
        if sensitive:
            raise _unsupported("sensitive fields", "the workers API used here does not expose them")
        offset = int(decode_cursor(cursor).get("offset", 0))
        rows, total = await self._workers(where.query, offset, limit)
        people = [self._employee(w) for w in rows]
        people = [e for e in people if all(value is None or getattr(e, attr) == value for attr, value in (
            ("department", where.department), ("location", where.location), ("manager_id", where.manager_id),
            ("employment_status", where.status), ("employment_type", where.employment_type)))]
        end = offset + len(rows)
        return EmployeePage(employees=people, next_cursor=encode_cursor({"offset": end}) if end < total and rows else None)

    async def get(self, ref: str, sensitive: list[str]) -> Employee:
        """By Workday id, else by work email in any case or by employee number (`workerId`)."""
        if sensitive:
            raise _unsupported("sensitive fields", "the workers API used here does not expose them")
        if "@" not in ref and not (ref.isascii() and ref.isdigit()):
            try:
                return self._employee(await self.staffing.json("GET", f"/workers/{ref}"))
            except DomainError as exc:
                if exc.body.code != "not_found":
                    raise
        rows, _ = await self._workers(ref, 0, 10)
        email = ref.casefold()
        match = next((w for w in rows if str(w.get("primaryWorkEmail") or "").casefold() == email
                      or str(w.get("workerId") or "") == ref), None)
        if match is None:
            raise not_found("employee", ref)
        return self._employee(match)

    async def _worker_id(self, ref: str) -> str:
        """The Workday id paths take, for an id, work email or employee number."""
        return (await self.get(ref, [])).id

    async def reports_of(self, employee_id: str) -> list[Employee]:
        body = await self.staffing.json("GET", f"/workers/{employee_id}/directReports", params={"limit": PAGE_MAX})
        return [self._employee(w) for w in body.get("data", [])]

    async def departments(self) -> list[Department]:
        body = await self.staffing.json("GET", "/supervisoryOrganizations", params={"limit": PAGE_MAX})
        return [Department(name=o["descriptor"], headcount=int(strict_number(o.get("workerCount", 0), "a worker count")))
                for o in body.get("data", [])]

    # -- time off --------------------------------------------------------------------------

    async def whos_out(self, start: date, end: date) -> list[Absence]:
        raise _unsupported("whos_out", "Workday's REST API has no who's-out list; use list_time_off_requests per employee")

    async def balances(self, employee_id: str, as_of: date) -> Balances:
        """Workday's plan balance as of `as_of` minus submitted requests not yet approved (Workday
        deducts time off once approved); booked is the plan's used hours plus approved requests
        starting after `as_of`."""
        employee_id = await self._worker_id(employee_id)
        return Balances(employee_id=employee_id, as_of=as_of, balances=[b for b, _ in await self._plans(employee_id, as_of)])

    async def _plans(self, employee_id: str, as_of: date) -> list[tuple[Balance, bool]]:
        """Each absence plan's balance in hours, and whether Workday counts it in days."""
        body = await self.absence.json("GET", "/balances", params={"worker": employee_id, "effective": as_of.isoformat()})
        pending, upcoming = requested_hours(await self._open_requests(employee_id, as_of), as_of)
        out = []
        for b in body.get("data", []):
            factor = _hours_per_unit(b)
            kind = str((b.get("absencePlan") or {}).get("descriptor", "")).lower()
            taken = strict_number(b.get("used", 0), "a used amount") * factor
            out.append((balance_of(kind, provider_balance=strict_number(b.get("quantity"), "a balance") * factor, taken=taken,
                                   booked=taken + upcoming.get(kind, 0.0), pending=pending.get(kind, 0.0)), factor != 1.0))
        return out

    async def _open_requests(self, employee_id: str, as_of: date, max_pages: int = 20) -> list[TimeOffRequest]:
        """The worker's requests from a year before `as_of` to two years after, every page."""
        found: list[TimeOffRequest] = []
        cursor: str | None = None
        start, end = as_of - timedelta(days=366), as_of + timedelta(days=731)
        for _ in range(max_pages):
            page = await self._list_requests(employee_id, start, end, None, PAGE_MAX, cursor)
            found += page.requests
            if not (cursor := page.next_cursor):
                break
        return found

    async def _overlapping(self, employee_id: str, start: date, end: date, max_pages: int = 20) -> list[str]:
        """Ids of the worker's submitted or approved requests with a day in [start, end]."""
        found: list[str] = []
        cursor: str | None = None
        for _ in range(max_pages):
            page = await self._list_requests(employee_id, start, end, None, PAGE_MAX, cursor)
            found += [r.id for r in page.requests
                      if r.status in ("requested", "approved") and r.start <= end and r.end >= start and r.id not in found]
            if not (cursor := page.next_cursor):
                break
        return found

    def _request(self, employee_id: str, d: dict[str, Any]) -> TimeOffRequest:
        start = workday_date(d.get("date"), "a time-off date", self.zone)
        if start is None:
            raise DomainError("upstream_error", f"Workday sent time-off entry {d.get('id')} without a date")
        return TimeOffRequest(
            id=str(d["id"]), employee_id=employee_id, type=str((d.get("timeOffType") or {}).get("descriptor", "")).lower(),
            start=start, end=workday_date(d.get("endDate"), "a time-off end date", self.zone) or start,
            hours=strict_number(d.get("quantity", 0), "a quantity") * _hours_per_unit(d),
            status=STATUS_FROM_WORKDAY.get(str((d.get("status") or {}).get("descriptor", "submitted")).lower(), "requested"),
            note=d.get("comment"), created_at=d.get("createdOn") or datetime.now().astimezone(),
        )

    async def list_requests(
        self, employee_id: str | None, start: date | None, end: date | None, status: RequestStatus | None,
        limit: int, cursor: str | None,
    ) -> TimeOffPage:
        if not employee_id:
            raise DomainError("invalid_argument", "the Workday backend lists time off per employee: give employee_id")
        return await self._list_requests(await self._worker_id(employee_id), start, end, status, limit, cursor)

    async def _list_requests(
        self, employee_id: str, start: date | None, end: date | None, status: RequestStatus | None,
        limit: int, cursor: str | None,
    ) -> TimeOffPage:
        offset = int(decode_cursor(cursor).get("offset", 0))
        today = date.today()
        params = {"fromDate": (start or today - timedelta(days=365)).isoformat(), "toDate": (end or today + timedelta(days=365)).isoformat(),
                  "limit": min(limit, PAGE_MAX), "offset": offset}
        body = await self.absence.json("GET", f"/workers/{employee_id}/timeOffDetails", params=params)
        requests = [self._request(employee_id, d) for d in body.get("data", [])]
        if status:
            requests = [r for r in requests if r.status == status]
        end_at = offset + len(body.get("data", []))
        more = end_at < int(strict_number(body.get("total", 0), "a total"))
        return TimeOffPage(requests=requests, next_cursor=encode_cursor({"offset": end_at}) if more else None)

    async def request_time_off(
        self, employee_id: str, type: str, start: date, end: date, note: str | None, dry_run: bool,
        hours_per_day: float | None = None, check_balance: bool = True,
    ) -> TimeOffPreview:
        """The hub checks no balance here (`check_balance` changes nothing): the provider's policy decides.
        A range overlapping a submitted or approved request is `conflict` (a dry run too), as on BambooHR."""
        person = await self.get(employee_id, [])
        employee_id = person.id  # an email or employee number names the same worker; paths take the id
        plans = await self._plans(employee_id, end)
        plan, in_days = next(((b, days) for b, days in plans if b.type == type.lower()), (None, False))
        if plan is None:
            raise DomainError("invalid_argument", f"no {type!r} absence plan for {employee_id}; plans: "
                              f"{', '.join(b.type for b, _ in plans) or 'none'}")
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        working = [d for d in days if business_days(d, d, set())]
        if not working:
            raise DomainError("invalid_argument", "that range has no working days")
        # Workday takes each day's quantity in the plan's unit: days for a plan counted in days
        check_employed(person, start, end)
        daily, hours_each = provider_day(person, hours_per_day, in_days)
        hours = len(working) * hours_each
        overlaps = await self._overlapping(employee_id, start, end)
        preview = TimeOffPreview(dry_run=dry_run, hours=hours, hours_per_day=hours / len(working),
                                 balance_before=plan.available_hours, balance_after=plan.available_hours - hours,
                                 overlaps=overlaps)
        if overlaps:  # in a dry run too, which answers what the real call would
            raise DomainError("conflict", f"overlaps existing request(s) {', '.join(overlaps)}: cancel or change them in "
                              "Workday first, or ask for other days", details={"overlaps": overlaps})
        if dry_run:
            return preview
        body = {"days": [{"date": d.isoformat(), "dailyQuantity": daily, "timeOffType": {"descriptor": type}} for d in working],
                "comment": note}

        async def post() -> dict[str, Any]:
            return await self.absence.json("POST", f"/workers/{employee_id}/requestTimeOff", json=body)  # type: ignore[no-any-return]

        async def find() -> dict[str, Any] | None:
            """After an unclear answer: a submitted request of this type in the range, which the overlap check above
            saw none of, is the one this call made (outside review domains26 #2, the Workday sibling)."""
            page = await self._list_requests(employee_id, start, end, None, PAGE_MAX, None)
            mine = next((r for r in page.requests if r.type == type.lower() and r.status in ("requested", "approved")
                         and r.start <= end and r.end >= start), None)
            return {"id": mine.id, "status": {"descriptor": "submitted" if mine.status == "requested" else mine.status}} if mine else None

        created = await settle_create("Workday", f"the {type} request for {start}..{end}", post, find,
                                      what=f"the time-off request of worker {employee_id}", details={},
                                      advice=f"List this worker's requests for {start}..{end} (list_time_off_requests) before "
                                             "asking again: it may exist")
        preview.request = TimeOffRequest(
            id=str(created["id"]), employee_id=employee_id, type=type.lower(), start=start, end=end, hours=hours,
            status=STATUS_FROM_WORKDAY.get(str((created.get("status") or {}).get("descriptor", "submitted")).lower(), "requested"),
            note=note, created_at=datetime.now().astimezone(),
        )
        return preview

    async def decide(self, request_id: str, decision: str) -> TimeOffRequest:
        raise _unsupported("decide_time_off", "approvals are Workday business processes; decide in Workday's inbox")


def _tenant_zone() -> ZoneInfo | None:
    """`WORKDAY_TIMEZONE`, the tenant's IANA zone (optional; see `workday_date`)."""
    name = os.environ.get("WORKDAY_TIMEZONE", "").strip()
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"WORKDAY_TIMEZONE={name!r} is not an IANA time zone (e.g. Pacific/Auckland)") from None


def _hours_per_unit(row: dict[str, Any]) -> float:
    """Hours in one of a Workday plan's or entry's units (`unit.descriptor`: Hours, or Days)."""
    return HOURS_PER_DAY if str((row.get("unit") or {}).get("descriptor", "Hours")).lower().startswith("day") else 1.0
