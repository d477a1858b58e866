"""The HRIS tool surface over `HrisBackend`, with the privacy policy applied before any backend call."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from mcp.server import MCPServer
from pydantic import Field

from hub.datadir import default_data_dir
from servers.hris.backend import EmployeeFilter, HrisBackend
from servers.hris.model import (
    Balances,
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
from servers.kit.text import refuse_blank, refuse_control_chars
from servers.kit.caller import current_caller
from servers.kit.errors import DomainError
from servers.kit.providers import Provider, Providers
from servers.kit.store import Store
from servers.kit.tools import configure_domain, domain_examples, domain_tool
from servers.kit.webhooks import attach_webhooks

PROVIDERS = Providers("hris", {
    "embedded": Provider("servers.hris.store:EmbeddedHris"),
    "bamboohr": Provider("servers.hris.providers.bamboohr:BambooHris", ("BAMBOOHR_COMPANY", "BAMBOOHR_API_KEY")),
    "workday": Provider("servers.hris.providers.workday:WorkdayHris", (
        "WORKDAY_HOST", "WORKDAY_TENANT", "WORKDAY_CLIENT_ID", "WORKDAY_CLIENT_SECRET", "WORKDAY_REFRESH_TOKEN")),
})
Limit = Annotated[int, Field(ge=1, le=200, description="Items per page (1-200).")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page; omit for the first page.")]
EmployeeId = Annotated[str, Field(description="Employee id (from search_employees or get_employee).")]
Fields = Annotated[
    list[str] | None,
    Field(description="Extra fields to include. Sensitive ones (date_of_birth, national_id, compensation, "
                      "bank_account, home_address, personal_email, personal_phone) need scope hris:sensitive and "
                      "the operator's allow-list HRIS_SENSITIVE_ALLOW; otherwise the call is refused (forbidden)."),
]
MAX_RANGE_DAYS = 366


def make_backend(name: str | None = None, data_dir: Path | None = None) -> HrisBackend:
    """The backend named by `name`, else `$HRIS_BACKEND`, else the embedded one (`PROVIDERS`)."""
    return PROVIDERS.make(name, data_dir)


def _check_range(start: date, end: date) -> None:
    if end < start:
        raise DomainError("invalid_argument", "end is before start", details={"field": "end"})
    if (end - start).days > MAX_RANGE_DAYS:
        raise DomainError("invalid_argument", f"ranges are limited to {MAX_RANGE_DAYS} days; split the query")


def create_server(backend: HrisBackend | None = None, policy: PrivacyPolicy | None = None) -> MCPServer:
    backend = backend or make_backend()
    policy = policy or PrivacyPolicy.from_env()
    store = getattr(backend, "store", None) or Store(default_data_dir() / "hris-idempotency.sqlite", [])
    mcp = MCPServer("hris", instructions="People, org chart and time off. Sensitive fields and leave reasons need "
                                         "scope hris:sensitive and the operator's allow-list HRIS_SENSITIVE_ALLOW.")
    configure_domain(mcp, open_world=backend.name != "embedded", idempotency=store, examples=domain_examples(__package__))
    # list_changes reads the kit's feed, like every domain: verified BambooHR webhooks and the embedded
    # backend's own writes (employees, time-off requests) — see docs/events.md.
    attach_webhooks(mcp, "hris", store, ("bamboohr",), ("employee", "time_off_request"))

    @domain_tool(mcp, read_only=True)
    async def search_employees(
        query: Annotated[str | None, Field(max_length=200, description="Name, email, title or number.")] = None,
        department: Annotated[str | None, Field(max_length=200, description="Department name, e.g. Finance.")] = None,
        location: Annotated[str | None, Field(max_length=200, description="Office or work location.")] = None,
        manager_id: Annotated[
            str | None, Field(max_length=200, description="Only the direct reports of this employee id.")
        ] = None,
        status: Annotated[EmploymentStatus | None, Field(description="Employment status; default any.")] = None,
        employment_type: Annotated[
            EmploymentType | None, Field(description="Full-time, part-time, contractor, ...; default any.")
        ] = None,
        fields: Fields = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> EmployeePage:
        """Look people up in the company directory (by name, email, job title, department, location or number): who
        works where, someone's email or role; to read one
        employee whose id you know, use get_employee.
        Find employees by name, email, title or number, and filters."""
        sensitive = policy.sensitive_requested(fields, current_caller())
        where = EmployeeFilter(query=query, department=department, location=location, manager_id=manager_id,
                               status=status, employment_type=employment_type)
        return await backend.search(where, sensitive, limit, cursor)

    @domain_tool(mcp, read_only=True)
    async def get_employee(
        ref: Annotated[str, Field(min_length=1, max_length=200, description="Id, work email or employee number.")],
        fields: Fields = None,
    ) -> Employee:
        """Read one employee's record by employee id (title, department, manager, start date); to find people by
        name, use search_employees.
        One employee."""
        return await backend.get(ref, policy.sensitive_requested(fields, current_caller()))

    @domain_tool(mcp, read_only=True)
    async def get_org_chart(
        ref: Annotated[str, Field(min_length=1, max_length=200, description="Employee id, work email or number.")],
        direction: Annotated[Literal["reports", "chain"], Field(
            description="reports: who reports to them (their team); chain: their manager and up.")] = "reports",
        depth: Annotated[int, Field(ge=1, le=5, description="Levels of reports to include (reports only).")] = 2,
    ) -> OrgChart:
        """The reporting structure: someone's manager and chain of command, or their team.
        Who reports to someone (a tree, `depth` levels) or their management chain up to the top."""
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
        """All departments and how many people work in each.
        Departments with their active headcount."""
        return DepartmentList(departments=await backend.departments())

    @domain_tool(mcp, read_only=True)
    async def whos_out(
        start: Annotated[date, Field(description="First day, YYYY-MM-DD.")],
        end: Annotated[date, Field(description="Last day, inclusive; at most a year after start.")],
    ) -> WhosOut:
        """Who is out of office (on leave, vacation, sick) or on holiday between two dates; for someone's remaining
        days use get_time_off_balances, for requests and their approval state list_time_off_requests.
        Approved leave and public holidays between two dates (inclusive). The leave type (the
        reason someone is out: health data) is shown only to callers with scope hris:sensitive when
        HRIS_SENSITIVE_ALLOW includes leave_reason; otherwise type is null and reason_hidden true."""
        _check_range(start, end)
        absences = policy.absences(await backend.whos_out(start, end), current_caller())
        return WhosOut(start=start, end=end, absences=absences)

    @domain_tool(mcp, read_only=True)
    async def get_time_off_balances(
        employee_id: EmployeeId,
        as_of: Annotated[date | None, Field(description="Balances on this day; default today.")] = None,
    ) -> Balances:
        """How many vacation, PTO or sick days someone has left and has used.
        Per time-off type: entitlement, booked (approved, taken or upcoming), taken by as_of,
        pending, and available = entitlement − booked − pending, the hours request_time_off grants.
        The per-type hours tell the type of someone's leave (health data), so they need scope
        hris:sensitive and leave_reason in HRIS_SENSITIVE_ALLOW; otherwise they are null, reason_hidden
        is true, and `total` gives all types added up."""
        return policy.balances(await backend.balances(employee_id, as_of or date.today()), current_caller())

    @domain_tool(mcp, read_only=True)
    async def list_time_off_requests(
        employee_id: Annotated[str | None, Field(description="Only this employee's requests; default everyone's.")] = None,
        start: Annotated[date | None, Field(description="Only requests overlapping days from this one.")] = None,
        end: Annotated[date | None, Field(description="Only requests overlapping days up to this one.")] = None,
        status: Annotated[RequestStatus | None, Field(description="requested (awaiting approval), approved, denied or cancelled.")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> TimeOffPage:
        """Leave and vacation requests with their status (requested, i.e. pending approval; approved, denied), e.g. those awaiting approval;
        for who is away on given dates use whos_out.
        Time-off requests, filtered by employee, overlap with a date range, and status. Type and
        note (health data) need scope hris:sensitive and leave_reason in HRIS_SENSITIVE_ALLOW;
        otherwise they are null and reason_hidden is true."""
        page = await backend.list_requests(employee_id, start, end, status, limit, cursor)
        return page.model_copy(update={"requests": policy.requests(page.requests, current_caller())})

    @domain_tool(mcp)
    async def request_time_off(
        employee_id: EmployeeId,
        type: Annotated[str, Field(min_length=1, max_length=50, description="vacation, sick, ...")],
        start: Annotated[date, Field(description="First day off, YYYY-MM-DD.")],
        end: Annotated[date, Field(description="Last day off, inclusive.")],
        note: Annotated[str | None, Field(max_length=2000, description="Optional note for the approver.")] = None,
        dry_run: Annotated[bool, Field(description="Only compute hours, balance after and overlaps.")] = False,
        idempotency_key: Annotated[str | None, Field(max_length=200)] = None,
        hours_per_day: Annotated[float | None, Field(
            gt=0, le=24, multiple_of=0.25,
            description="Hours off on each working day of the range, for part days (4 for half days of an 8-hour "
                        "day). Default: the employee's whole working day (scheduled_hours_per_day, else 8); required "
                        "for a part-time employee without a recorded schedule.")] = None,
    ) -> TimeOffPreview:
        """Ask for (book) vacation, leave or days off, whole or part days.
        Request time off (inclusive dates); dry_run answers what the real call would, with hours and the
        balance after. The balance (balance_before/after, the over-balance refusal) needs scope hris:sensitive
        and leave_reason in HRIS_SENSITIVE_ALLOW, as the leave types it reveals do; otherwise balance_before/after
        are null, reason_hidden is true, and the request is booked (status requested, pending approval) whatever the balance (its
        approval is refused if over it)."""
        _check_range(start, end)
        refuse_control_chars(type=type, note=note)
        refuse_blank(type=type)
        caller = current_caller()
        try:  # no balance check for a caller who may not see it: its refusal would tell the type of other leave
            made = await backend.request_time_off(employee_id, type, start, end, note, dry_run, hours_per_day,
                                                  check_balance=policy.shows_leave_reason(caller))
        except DomainError as exc:
            raise policy.refusal(exc, caller) from None
        return policy.preview(made, caller)

    @domain_tool(mcp, destructive=True, idempotent=True)
    async def decide_time_off(
        request_id: Annotated[str, Field(description="Time-off request id (list_time_off_requests).")],
        decision: Annotated[Literal["approve", "deny", "cancel"], Field(description="What to do with the request.")],
        confirm: Annotated[bool, Field(description="Must be true: the decision is applied at once.")] = False,
    ) -> TimeOffRequest:
        """Decide on a leave request.
        Approve, deny or cancel a time-off request. Requires confirm=true. Approving leave that would
        pass its type's entitlement is refused (conflict). The answer withholds type and note unless
        the caller holds scope hris:sensitive (see list_time_off_requests)."""
        if not confirm:
            raise DomainError("invalid_argument", f"to {decision} request {request_id}, call again with confirm=true")
        caller = current_caller()
        try:
            decided = await backend.decide(request_id, decision)
        except DomainError as exc:
            raise policy.refusal(exc, caller) from None
        return policy.requests([decided], caller)[0]

    mcp.backend = backend  # type: ignore[attr-defined]
    return mcp
