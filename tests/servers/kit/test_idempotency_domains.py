"""Idempotency keys in every domain, as an agent meets them: each domain server a real process
(`mcp-hub server <domain> --transport stdio --demo`). A key reused with other arguments is a
`conflict` that writes nothing; with the same arguments it answers the first result, even after
the record changed (an invoice paid in full still answers its recorded payment)."""

from __future__ import annotations

import datetime as _dt
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def domain(name: str, data_dir: Path) -> AsyncIterator[Any]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hub.cli", "server", name, "--transport", "stdio", "--demo"],
        env={**os.environ, "MCP_HUB_DATA_DIR": str(data_dir)},
    )
    async with Client(params) as client:
        async def call(tool: str, **args: Any) -> tuple[bool, dict[str, Any]]:
            result = await client.call_tool(tool, args)
            assert result.structured_content is not None, result.content
            return bool(result.is_error), result.structured_content

        yield call


def refused_as_conflict(answer: tuple[bool, dict[str, Any]], key: str) -> None:
    failed, body = answer
    assert failed and body["code"] == "conflict" and key in body["message"], body


async def test_ticketing_keys(tmp_path: Path) -> None:
    async with domain("ticketing", tmp_path) as call:
        project = (await call("search_tickets", limit=1))[1]["tickets"][0]["project"]
        failed, first = await call("create_ticket", project=project, title="Printer", idempotency_key="t-1")
        assert not failed
        refused_as_conflict(await call("create_ticket", project=project, title="Scanner", idempotency_key="t-1"), "t-1")
        assert (await call("search_tickets", text="Scanner"))[1]["tickets"] == [], "nothing was created"
        assert (await call("create_ticket", project=project, title="Printer", idempotency_key="t-1"))[1]["id"] == first["id"]

        other = (await call("create_ticket", project=project, title="Other"))[1]
        failed, comment = await call("add_comment", id=first["id"], body="On it", idempotency_key="c-1")
        assert not failed
        refused_as_conflict(await call("add_comment", id=other["id"], body="On it", idempotency_key="c-1"), "c-1")
        assert (await call("list_comments", id=other["id"]))[1]["comments"] == []

        await call("delete_ticket", id=first["id"], confirm=True)
        failed, gone = await call("create_ticket", project=project, title="Printer", idempotency_key="t-1")
        assert failed and gone["code"] == "not_found", "a deleted ticket is never answered for its key"


async def test_accounting_keys_and_replay_after_paid(tmp_path: Path) -> None:
    async with domain("accounting", tmp_path) as call:
        contact = (await call("search_contacts", kind="customer"))[1]["contacts"][0]["id"]
        today = _dt.date.today().isoformat()
        line = {"description": "Work", "quantity": "1", "unit_price": "10.00", "account_code": "4000"}
        failed, created = await call("create_invoice", contact_id=contact, lines=[line], issue_date=today, idempotency_key="i-1")
        assert not failed
        bigger = {**line, "unit_price": "999.00"}
        refused_as_conflict(await call("create_invoice", contact_id=contact, lines=[bigger], issue_date=today,
                                       idempotency_key="i-1"), "i-1")
        invoices = (await call("search_invoices", contact_id=contact, limit=100))[1]["invoices"]
        assert not any(i["total"] == "999.00" for i in invoices)

        same_amount = {**line, "unit_price": "10.0", "quantity": "1.00"}
        failed, again = await call("create_invoice", contact_id=contact, lines=[same_amount], issue_date=today,
                                   idempotency_key="i-1")
        assert not failed and again == created, "10.0 and 10.00 are the same amount, so the same arguments"
        failed, empty = await call("create_invoice", contact_id=contact, lines=[line], issue_date=today, idempotency_key=" ")
        assert failed and empty["code"] == "invalid_argument" and "idempotency_key" in empty["message"]

        invoice = created["invoice"]["id"]
        failed, paid = await call("record_payment", invoice_id=invoice, amount="10.00", date=today, idempotency_key="p-1")
        assert not failed
        failed, replay = await call("record_payment", invoice_id=invoice, amount="10.00", date=today, idempotency_key="p-1")
        assert not failed and replay == paid, "the invoice is paid now, yet the replay answers the recorded payment"
        refused_as_conflict(await call("record_payment", invoice_id=invoice, amount="5.00", date=today,
                                       idempotency_key="p-1"), "p-1")


async def test_hris_keys(tmp_path: Path) -> None:
    async with domain("hris", tmp_path) as call:
        employee = (await call("search_employees", limit=1))[1]["employees"][0]["id"]
        start = _dt.date.today() + _dt.timedelta(days=60)
        while start.weekday() >= 5:
            start += _dt.timedelta(days=1)
        failed, first = await call("request_time_off", employee_id=employee, type="vacation", start=start.isoformat(),
                                   end=start.isoformat(), idempotency_key="r-1")
        assert not failed, first
        later = start + _dt.timedelta(days=7)
        refused_as_conflict(await call("request_time_off", employee_id=employee, type="vacation", start=later.isoformat(),
                                       end=later.isoformat(), idempotency_key="r-1"), "r-1")
        listed = (await call("list_time_off_requests", employee_id=employee, start=later.isoformat(), end=later.isoformat()))[1]
        assert listed["requests"] == []


async def test_calendar_keys(tmp_path: Path) -> None:
    async with domain("calendar", tmp_path) as call:
        calendar = (await call("list_calendars"))[1]["calendars"][0]["id"]
        args = {"calendar_id": calendar, "title": "Review", "start": "2026-06-10T09:00:00Z", "end": "2026-06-10T10:00:00Z"}
        failed, first = await call("create_event", **args, idempotency_key="e-1")
        assert not failed
        refused_as_conflict(await call("create_event", **{**args, "title": "Other"}, idempotency_key="e-1"), "e-1")
        assert (await call("create_event", **args, idempotency_key="e-1"))[1]["id"] == first["id"]
        listed = (await call("list_events", calendar_id=calendar, start="2026-06-10T00:00:00Z", end="2026-06-11T00:00:00Z"))[1]
        titles = [e["title"] for e in listed["events"]]
        assert titles.count("Review") == 1 and "Other" not in titles
