"""Currency codes read back (outside review recheck21d #2): a code a provider or the stored ledger holds that
is not ISO 4217 never fails a read; the ones providers use are read at their own minor unit
(`money.PROVIDER_CURRENCIES`), any other keeps the digits the provider sent. Arguments stay ISO 4217."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting import money
from servers.accounting.money import currency_code, read_money
from servers.accounting.providers.qbo_mapping import read_contact, read_invoice
from servers.accounting.server import create_server
from servers.accounting.store import EmbeddedAccounting
from servers.kit.errors import DomainError
from tests.fakes.xero import FakeXero
from tests.servers.accounting.test_accounting_xero import xero  # noqa: F401  (fixture)

pytestmark = pytest.mark.anyio

XERO_NOT_ISO = {"GGP", "IMP", "JEP", "SPL", "TVD", "BYR", "LTL", "VEF", "ZMK", "ZWD", "XDR"}
"""Xero's CurrencyCode enum (XeroAPI/xero-python accounting/models/currency_code.py) outside ISO 4217 list one."""


def test_every_code_xero_lists_outside_iso_has_a_known_minor_unit() -> None:
    assert XERO_NOT_ISO <= money.PROVIDER_CURRENCIES.keys()
    assert (read_money("100", "JEP"), read_money("100", "BYR"), read_money("10.5", "BYR")) == (Decimal("100.00"), 100, 10)
    assert str(read_money("100", "JEP")) == "100.00" and str(read_money("12.345", "QQQ")) == "12.345", "unknown: the digits sent"
    assert str(read_money("7", "QQQ")) == "7.00" and str(read_money(None, "")) == "0.00"


@pytest.mark.parametrize("code", ["JEP", "ZWD", "ABC"])
def test_a_provider_listed_code_is_still_no_argument(code: str) -> None:
    with pytest.raises(DomainError) as refused:
        currency_code(code)
    assert refused.value.body.code == "invalid_argument"
    if code in XERO_NOT_ISO:
        assert "reads invoices in it" in refused.value.body.message and "leave currency out" in refused.value.body.message


def _seed(fake: FakeXero, currency: str) -> str:
    contact = next(iter(fake.contacts))
    invoice = {"InvoiceID": f"inv-{currency.lower()}", "InvoiceNumber": f"INV-{currency}", "Type": "ACCREC", "Status": "AUTHORISED",
               "Contact": {"ContactID": contact, "Name": fake.contacts[contact]["Name"]}, "Date": "2026-10-01",
               "DueDate": "2026-10-31", "CurrencyCode": currency, "LineAmountTypes": "Exclusive", "Payments": [],
               "LineItems": [{"Description": "work", "Quantity": 1, "UnitAmount": Decimal("100"), "AccountCode": "200",
                              "TaxType": "NONE"}]}
    fake._compute(invoice)
    fake.invoices[invoice["InvoiceID"]] = invoice
    return invoice["InvoiceID"]


async def test_xero_reads_invoices_in_codes_it_offers_outside_iso(xero: tuple[FakeXero, Any]) -> None:  # noqa: F811
    fake, server = xero
    ids = {code: _seed(fake, code) for code in ("USD", "JEP", "BYR", "VEF", "QQQ")}
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, args)
            assert not result.is_error, result.structured_content
            return result.structured_content  # type: ignore[return-value]

        listed = (await call("search_invoices"))["invoices"]
        assert {i["currency"]: i["total"] for i in listed} == {"USD": "100.00", "JEP": "100.00", "BYR": "100", "VEF": "100.00",
                                                               "QQQ": "100.00"}
        assert (await call("get_invoice", invoice_id=ids["JEP"]))["balance"] == "100.00"
        report = await call("get_report", report="aged_receivables", as_of="2026-11-30")
        assert report["sections"], report


def test_quickbooks_reads_an_invoice_and_a_contact_in_a_code_outside_iso() -> None:
    raw = {"Id": "7", "DocNumber": "1007", "TxnDate": "2026-10-01", "CurrencyRef": {"value": "JEP"}, "TotalAmt": 100, "Balance": 40,
           "CustomerRef": {"value": "1", "name": "Acme"}, "SyncToken": "0",
           "Line": [{"Amount": 100, "Description": "work", "SalesItemLineDetail": {"Qty": 1, "UnitPrice": 100, "ItemRef": {"value": "1"}}}]}
    invoice = read_invoice(raw, "invoice", "USD")
    assert (invoice.currency, str(invoice.total), str(invoice.balance), invoice.status) == ("JEP", "100.00", "40.00", "partially_paid")
    odd = read_invoice(raw | {"CurrencyRef": {"value": "QQQ"}, "TotalAmt": "100.125", "Balance": "0"}, "invoice", "USD")
    assert (str(odd.total), odd.status) == ("100.125", "paid")
    assert read_contact({"Id": "1", "DisplayName": "Acme", "CurrencyRef": {"value": "JEP"}}, "customer").currency == "JEP"


@pytest.mark.parametrize("stored", ["JEP", "ABC", "eur", "usd"])
async def test_the_embedded_ledger_reads_what_it_stored_in_any_code(stored: str, tmp_path: Path) -> None:
    """Rows written before codes were checked (or by another version) are read, not refused; but an aged report
    never adds one in another currency into the home one (r38b #6): it is refused, naming it."""
    async with Client(create_server(EmbeddedAccounting(tmp_path, "USD"))) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, args)
            assert not result.is_error, result.structured_content
            return result.structured_content  # type: ignore[return-value]

        contact = await call("upsert_contact", name="Client", kind="customer")
        made = (await call("create_invoice", contact_id=contact["id"], issue_date="2026-10-01", approve=True,
                           lines=[{"description": "x", "quantity": "1", "unit_price": "100.00"}]))["invoice"]
        with sqlite3.connect(tmp_path / "accounting.sqlite") as db:
            db.execute("UPDATE invoices SET currency = ? WHERE id = ?", (stored, made["id"]))
        assert (await call("get_invoice", invoice_id=made["id"]))["balance"] == "100.00"
        assert [i["id"] for i in (await call("search_invoices"))["invoices"]] == [made["id"]]
        if stored == "usd":
            assert (await call("get_report", report="aged_receivables", as_of="2026-11-30"))["totals"]["total"] == "100.00"
            return
        refused = (await client.call_tool("get_report", {"report": "aged_receivables", "as_of": "2026-11-30"})).structured_content
        assert refused["code"] == "conflict" and f"{made['number']} (100.00 {stored})" in refused["message"], refused
        assert "ACCOUNTING_CURRENCY" in refused["message"] and refused["details"]["foreign"][0]["currency"] == stored
