"""Aged reports state every balance in the home currency and never answer a short figure (outside review r38b
#6, #7): Xero converts each invoice with its CurrencyRate, refuses one without a rate, reads only invoices that
can be open on the day and refuses past its page cap; the aging itself refuses to add currencies as one; and a
QuickBooks list read whole (the chart of accounts) pages past 1,000 rows instead of stopping there."""

from __future__ import annotations

import copy
import datetime as _dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting import reports
from servers.accounting.server import create_server
from servers.kit.errors import DomainError
from tests.accounting_support import quickbooks_on_fake, xero_on_fake
from tests.fakes.xero import _stamp

pytestmark = pytest.mark.anyio
LINE = {"description": "Consulting", "quantity": "1", "unit_price": "1000.00", "account_code": "200", "tax_code": "NONE"}


async def _call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]


async def test_xero_aged_reports_convert_foreign_balances_with_each_invoices_rate(monkeypatch: pytest.MonkeyPatch,
                                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("XERO_BANK_ACCOUNT_CODE", "090")
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        acme = (await _call(client, "search_contacts", query="acme"))["contacts"][0]
        paper = (await _call(client, "search_contacts", query="paper"))["contacts"][0]
        nzd = (await _call(client, "create_invoice", contact_id=acme["id"], lines=[LINE], issue_date="2026-11-02"))["invoice"]
        usd = (await _call(client, "create_invoice", contact_id=acme["id"], lines=[LINE], issue_date="2026-11-02", currency="USD"))["invoice"]
        assert (nzd["currency"], usd["currency"], fake.invoices[usd["id"]]["CurrencyRate"]) == ("NZD", "USD", Decimal("0.588235"))
        await _call(client, "record_payment", invoice_id=usd["id"], amount="400.00", date="2026-11-20")

        today = await _call(client, "get_report", report="aged_receivables")
        assert (today["currency"], today["totals"]["total"]) == ("NZD", "2020.00"), "1000 NZD + 600 USD / 0.588235"
        past = await _call(client, "get_report", report="aged_receivables", as_of="2026-11-10")
        assert past["totals"]["total"] == "2700.00", "before the payment: 1000 NZD + 1000 USD / 0.588235"

        bill = {**LINE, "account_code": "469", "unit_price": "470.00"}
        await _call(client, "create_invoice", kind="payable", contact_id=paper["id"], lines=[bill], issue_date="2026-11-02", currency="GBP")
        payables = await _call(client, "get_report", report="aged_payables")
        assert payables["totals"]["total"] == "1000.00", "470 GBP / 0.47"


async def test_xero_aged_report_refuses_a_foreign_balance_without_a_rate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        acme = (await _call(client, "search_contacts", query="acme"))["contacts"][0]
        nzd = (await _call(client, "create_invoice", contact_id=acme["id"], lines=[LINE], issue_date="2026-11-02"))["invoice"]
        fake.invoices[nzd["id"]].pop("CurrencyRate")
        assert (await _call(client, "get_report", report="aged_receivables"))["totals"]["total"] == "1000.00", "home: no rate needed"
        usd = (await _call(client, "create_invoice", contact_id=acme["id"], lines=[LINE], issue_date="2026-11-02", currency="USD"))["invoice"]
        for rate in (None, Decimal(0)):
            fake.invoices[usd["id"]]["CurrencyRate"] = rate
            refused = await _call(client, "get_report", report="aged_receivables")
            assert refused["code"] == "upstream_error" and not refused["retryable"], refused
            assert usd["number"] in refused["message"] and "1000.00 USD" in refused["message"] and "CurrencyRate" in refused["message"]
            assert "in NZD" in refused["message"] and "Set the invoice's exchange rate in Xero" in refused["message"]


def test_the_aging_refuses_to_add_other_currencies_as_its_own() -> None:
    day = _dt.date(2026, 11, 30)
    items = [reports.OpenItem("Acme", day, Decimal("10"), "NZD", "INV-1"), reports.OpenItem("Acme", day, Decimal("5"), "usd", "INV-2")]
    with pytest.raises(DomainError) as refused:
        reports.aged("receivable", items, day, "NZD", "xero", advice="Convert first.")
    assert refused.value.body.code == "conflict" and "INV-2 (5 usd)" in refused.value.body.message
    assert refused.value.body.message.endswith("Convert first.")
    assert reports.aged("receivable", items[:1] + [reports.OpenItem("B", day, Decimal("0"), "USD")], day, "nzd", "x").totals["total"] == 10


def _history(fake: Any, template: dict[str, Any], count: int, paid_on: str | None) -> None:
    """`count` PAID invoices like `template`, dated over 2020-2024, fully paid on `paid_on` (else their date)."""
    for n in range(count):
        old = copy.deepcopy(template)
        day = _stamp(f"202{n % 5}-0{1 + n % 9}-1{n % 10}")
        old.update(InvoiceID=str(uuid.uuid4()), InvoiceNumber=f"OLD-{n}", Status="PAID", AmountDue=Decimal(0), AmountPaid=old["Total"],
                   Date=day[""], DateString=day["String"], DueDate=day[""], DueDateString=day["String"],
                   FullyPaidOnDate=_stamp(paid_on)[""] if paid_on else day[""])
        fake.invoices[old["InvoiceID"]] = old


async def test_xero_aged_report_reads_only_what_can_be_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        acme = (await _call(client, "search_contacts", query="acme"))["contacts"][0]
        owed = (await _call(client, "create_invoice", contact_id=acme["id"], lines=[{**LINE, "unit_price": "500.00"}],
                            issue_date="2026-11-02"))["invoice"]
        template = fake.invoices[owed["id"]]
        _history(fake, template, 5000, None)  # years of paid history: more than the page cap ever allowed
        _history(fake, template, 3, "2025-06-30")  # open on 2025-03-01, paid since
        reads = len(fake.requests)
        assert (await _call(client, "get_report", report="aged_receivables"))["totals"]["total"] == "500.00"
        asked = [r["params"] for r in fake.requests[reads:] if r["path"].endswith("/Invoices")]
        assert [a["Statuses"] for a in asked] == ["AUTHORISED"], "today: only AUTHORISED invoices can be open"

        reads = len(fake.requests)
        past = await _call(client, "get_report", report="aged_receivables", as_of="2025-03-01")
        asked = [r["params"] for r in fake.requests[reads:] if r["path"].endswith("/Invoices")]
        assert [a["Statuses"] for a in asked] == ["AUTHORISED", "PAID"]
        assert "FullyPaidOnDate>DateTime(2025,03,01)" in asked[1]["where"] and len(asked) == 2, "one page each"
        assert past["totals"]["total"] == "1500.00", "the three paid after that day; 500 each"


async def test_xero_aged_report_past_its_page_cap_is_an_error_not_a_short_total(monkeypatch: pytest.MonkeyPatch,
                                                                                tmp_path: Path) -> None:
    from servers.accounting.providers import xero_aging

    monkeypatch.setattr(xero_aging, "MAX_PAGES", 2)
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        acme = (await _call(client, "search_contacts", query="acme"))["contacts"][0]
        first = (await _call(client, "create_invoice", contact_id=acme["id"], lines=[LINE], issue_date="2026-11-02"))["invoice"]
        for n in range(199):
            twin = {**copy.deepcopy(fake.invoices[first["id"]]), "InvoiceID": str(uuid.uuid4()), "InvoiceNumber": f"T-{n}"}
            fake.invoices[twin["InvoiceID"]] = twin
        assert (await _call(client, "get_report", report="aged_receivables"))["totals"]["total"] == "200000.00", "200: all read"
        fake.invoices["one-more"] = {**copy.deepcopy(fake.invoices[first["id"]]), "InvoiceID": "one-more"}
        refused = await _call(client, "get_report", report="aged_receivables")
        assert refused["code"] == "upstream_error" and not refused["retryable"], refused
        assert "more than 200 AUTHORISED invoices" in refused["message"] and "search_invoices" in refused["message"]


async def test_quickbooks_chart_of_accounts_pages_past_a_thousand(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    for n in range(1000, 2500):
        fake.store["Account"][str(n)] = {"Id": str(n), "Name": f"Project {n}", "AccountType": "Expense", "Classification": "Expense",
                                         "CurrentBalance": Decimal("0"), "Active": True, "SyncToken": "0"}
    async with Client(create_server(backend)) as client:
        accounts = (await _call(client, "list_accounts"))["accounts"]
        assert len(accounts) == 1506 and {a["code"] for a in accounts} >= {"1000", "2499", "17"}
        queries = [r["params"]["query"] for r in fake.requests if r["path"].endswith("/query")]
        assert [q.rsplit("STARTPOSITION", 1)[1] for q in queries] == [" 1 MAXRESULTS 1000", " 1001 MAXRESULTS 1000"]
