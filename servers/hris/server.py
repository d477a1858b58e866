"""The HRIS tool surface over `HrisBackend`, with the privacy policy applied before any backend call."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal

from mcp.server import MCPServer
from pydantic import Field

from hub.datadir import default_data_dir
from servers.hris.backend import EmployeeFilter, HrisBackend
from servers.hris.model import (
    Balances,
    ChangePage,
    DepartmentList,
    Employee,
    EmployeePage,
    EmploymentStatus,
    EmploymentType,
    OrgChart,
    OrgNode,
    RequestStatus,
    TimeOffPage,
    TimeOffPreview,
    TimeOffRequest,
    WhosOut,
)
from servers.hris.privacy import PrivacyPolicy
from servers.kit.errors import DomainError
from servers.kit.idempotency import run_once
from servers.kit.store import Store
from servers.kit.tools import domain_tool

BACKENDS = ("embedded", "bamboohr", "workday")
Limit = Annotated[int, Field(ge=1, le=200)]
Fields = Annotated[
    list[str] | None,
    Field(description="Extra fields to include; sensitive ones (date_of_birth, national_id, compensation, "
                      "bank_account, home_address, personal_email, personal_phone) only if the privacy policy allows."),
]
MAX_RANGE_DAYS = 366


def make_backend(name: str | None = None, data_dir: Path | None = None) -> HrisBackend:
    name = (name or os.environ.get("HRIS_BACKEND") or "embedded").lower()
    if name == "embedded":
        from servers.hris.store import EmbeddedHris

        return EmbeddedHris(data_dir or default_data_dir())
    if name == "bamboohr":
        from servers.hris.providers.bamboohr import BambooHris

        return BambooHris.from_env()
    if name == "workday":
        from servers.hris.providers.workday import WorkdayHris

        return WorkdayHris.from_env(data_dir or default_data_dir())
    raise ValueError(f"unknown HRIS backend {name!r}; choose one of {', '.join(BACKENDS)}")


def _check_range(start: date, end: date) -> None:
    if end < start:
        raise DomainError("invalid_argument", "end is before start", details={"field": "end"})
    if (end - start).days > MAX_RANGE_DAYS:
        raise DomainError("invalid_argument", f"ranges are limited to {MAX_RANGE_DAYS} days; split the query")


def create_server(backend: HrisBackend | None = None, policy: PrivacyPolicy | None = None) -> MCPServer:
    backend = backend or make_backend()
    policy = policy or PrivacyPolicy.from_env()
    store = getattr(backend, "store", None) or Store(default_data_dir() / "hris-idempotency.sqlite", [])
    mcp = MCPServer("hris", instructions="People, org chart and time off. Sensitive fields are off unless allowed.")

    @domain_tool(mcp, read_only=True)
    async def search_employees(
        query: str | None = None,
        department: str | None = None,
        location: str | None = None,
        manager_id: str | None = None,
        status: EmploymentStatus | None = None,
        employment_type: EmploymentType | None = None,
        fields: Fields = None,
        limit: Limit = 50,
        cursor: str | None = None,
    ) -> EmployeePage:
        """Find employees by name, email, title or number, and filters."""
        sensitive = policy.sensitive_requested(fields)
        where = EmployeeFilter(query=query, department=department, location=location, manager_id=manager_id,
                               status=status, employment_type=employment_type)
        return await backend.search(where, sensitive, limit, cursor)

    @domain_tool(mcp, read_only=True)
    async def get_employee(
        ref: Annotated[str, Field(min_length=1, max_length=200, description="Id, work email or employee number.")],
        fields: Fields = None,
    ) -> Employee:
        """One employee."""
        return await backend.get(ref, policy.sensitive_requested(fields))

    @domain_tool(mcp, read_only=True)
    async def get_org_chart(
        ref: Annotated[str, Field(min_length=1, max_length=200)],
        direction: Literal["reports", "chain"] = "reports",
        depth: Annotated[int, Field(ge=1, le=5)] = 2,
    ) -> OrgChart:
        """Who reports to someone (a tree, `depth` levels) or their management chain up to the top."""
        root = await backend.get(ref, [])
        if direction == "chain":
            chain, current, seen = [], root, {root.id}
            while current.manager_id and len(chain) < 20:
                current = await backend.get(current.manager_id, [])
                if current.id in seen:
                    break
                seen.add(current.id)
                chain.append(current)
            return OrgChart(root=root, direction="chain", chain=chain)

        async def tree(employee_id: str, level: int) -> list[OrgNode]:
            if level > depth:
                return []
            return [OrgNode(employee=e, reports=await tree(e.id, level + 1)) for e in await backend.reports_of(employee_id)]

        return OrgChart(root=root, direction="reports", reports=await tree(root.id, 1))

    @domain_tool(mcp, read_only=True)
    async def list_departments() -> DepartmentList:
        """Departments with their active headcount."""
        return DepartmentList(departments=await backend.departments())

    @domain_tool(mcp, read_only=True)
    async def whos_out(start: date, end: date) -> WhosOut:
        """Approved leave and public holidays between two dates (inclusive)."""
        _check_range(start, end)
        return WhosOut(start=start, end=end, absences=await backend.whos_out(start, end))

    @domain_tool(mcp, read_only=True)
    async def get_time_off_balances(employee_id: str, as_of: date | None = None) -> Balances:
        """Hours available and used per time-off type."""
        return await backend.balances(employee_id, as_of or date.today())

    @domain_tool(mcp, read_only=True)
    async def list_time_off_requests(
        employee_id: str | None = None,
        start: date | None = None,
        end: date | None = None,
        status: RequestStatus | None = None,
        limit: Limit = 50,
        cursor: str | None = None,
    ) -> TimeOffPage:
        """Time-off requests, filtered by employee, overlap with a date range, and status."""
        return await backend.list_requests(employee_id, start, end, status, limit, cursor)

    @domain_tool(mcp)
    async def request_time_off(
        employee_id: str,
        type: Annotated[str, Field(min_length=1, max_length=50, description="vacation, sick, ...")],
        start: date,
        end: date,
        note: Annotated[str | None, Field(max_length=2000)] = None,
        dry_run: Annotated[bool, Field(description="Only compute hours, balance after and overlaps.")] = False,
        idempotency_key: Annotated[str | None, Field(max_length=200)] = None,
    ) -> TimeOffPreview:
        """Request time off (inclusive dates); try dry_run first to see hours and the balance after."""
        _check_range(start, end)
        if dry_run:
            return await backend.request_time_off(employee_id, type, start, end, note, True)
        return await run_once(store, "request_time_off", idempotency_key, TimeOffPreview,
                              lambda: backend.request_time_off(employee_id, type, start, end, note, False))

    @domain_tool(mcp, destructive=True, idempotent=True)
    async def decide_time_off(
        request_id: str, decision: Literal["approve", "deny", "cancel"], confirm: bool = False
    ) -> TimeOffRequest:
        """Approve, deny or cancel a time-off request. Requires confirm=true."""
        if not confirm:
            raise DomainError("invalid_argument", f"to {decision} request {request_id}, call again with confirm=true")
        return await backend.decide(request_id, decision)

    @domain_tool(mcp, read_only=True)
    async def list_changes(since: datetime, limit: Limit = 100, cursor: str | None = None) -> ChangePage:
        """Employees changed since a time (for syncing)."""
        return await backend.changes(since, limit, cursor)

    mcp.backend = backend  # type: ignore[attr-defined]
    return mcp
