"""Xero aged receivables/payables: what is owed as of a date is the total less every allocation dated by
then (payments, credit notes, prepayments, overpayments), and Xero's own AmountDue from today on (outside
review money19: an invoice settled by a credit note stayed "owed" in every aging)."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting.server import create_server
from tests.accounting_support import xero_on_fake

pytestmark = pytest.mark.anyio


async def test_xero_aging_subtracts_credits_and_payments_dated_by_as_of(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XERO_BANK_ACCOUNT_CODE", "090")
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        async def owed(as_of: str, report: str = "aged_receivables") -> str:
            return (await call("get_report", report=report, as_of=as_of))["totals"]["total"]

        acme = (await call("search_contacts", query="Acme"))["contacts"][0]
        line = {"description": "work", "quantity": "1", "unit_price": "100.00", "account_code": "200"}
        credited, prepaid, overpaid = [(await call("create_invoice", contact_id=acme["id"], lines=[line], issue_date="2026-10-01"))["invoice"]
                                       for _ in range(3)]
        fake.apply_credit(credited["id"], "CreditNotes", Decimal("100"), "2026-10-05")
        fake.apply_credit(prepaid["id"], "Prepayments", Decimal("30"), "2026-10-20")
        fake.apply_credit(overpaid["id"], "Overpayments", Decimal("25"), "2026-11-10")
        await call("record_payment", invoice_id=prepaid["id"], amount="20.00", date="2026-11-20")
        assert fake.invoices[credited["id"]]["Status"] == "PAID", "a fully credited invoice is PAID in Xero"

        assert await owed("2026-10-03") == "300.00", "nothing was settled yet"
        assert await owed("2026-10-31") == "170.00", "credit note 100 (Oct 5) and prepayment 30 (Oct 20) applied"
        assert await owed("2026-11-15") == "145.00", "and the overpayment of 25 (Nov 10)"
        assert await owed("2026-11-30") == "125.00", "and the payment of 20 (Nov 20)"
        today = _dt.date.today().isoformat()
        due = sum(Decimal(str(i["AmountDue"])) for i in fake.invoices.values())
        assert await owed(today) == f"{due:.2f}" == "125.00", "from today on, Xero's own AmountDue"

        bill = (await call("create_invoice", kind="payable", contact_id=(await call("search_contacts", query="Paper"))["contacts"][0]["id"],
                           lines=[{**line, "account_code": "469"}], issue_date="2026-10-01"))["invoice"]
        fake.apply_credit(bill["id"], "CreditNotes", Decimal("40"), "2026-10-10")
        assert (await owed("2026-10-05", "aged_payables"), await owed("2026-10-31", "aged_payables")) == ("100.00", "60.00")

        voided = (await call("create_invoice", contact_id=acme["id"], lines=[line], issue_date="2026-10-01"))["invoice"]
        await call("update_invoice", invoice_id=voided["id"], action="void", confirm=True)
        assert await owed("2026-10-03") == "300.00", "Xero reverses a void on the invoice's own date: never in any aging"


def test_a_credits_own_allocations_date_it_when_xero_sends_them() -> None:
    """A credit note applied on a later day than its own date: the allocation's date counts, when present."""
    from servers.accounting.providers.xero_aging import settled as _settled

    raw = {"InvoiceID": "inv-1", "Payments": [{"DateString": "2026-10-02T00:00:00", "Amount": 5}],
           "CreditNotes": [{"DateString": "2026-10-05T00:00:00", "AppliedAmount": 60, "Allocations": [
               {"Amount": 40, "DateString": "2026-10-20T00:00:00", "Invoice": {"InvoiceID": "inv-1"}},
               {"Amount": 20, "DateString": "2026-10-25T00:00:00", "Invoice": {"InvoiceID": "inv-1"}},
               {"Amount": 99, "DateString": "2026-10-06T00:00:00", "Invoice": {"InvoiceID": "another"}}]}]}
    assert _settled(raw) == [(_dt.date(2026, 10, 2), Decimal(5)), (_dt.date(2026, 10, 20), Decimal(40)),
                             (_dt.date(2026, 10, 25), Decimal(20))]
