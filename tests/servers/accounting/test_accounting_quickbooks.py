"""The QuickBooks Online connector against a local fake of the Accounting API v3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting.server import create_server
from servers.kit.errors import DomainError
from tests.accounting_support import quickbooks_on_fake
from tests.fakes.quickbooks import REALM, FakeQuickBooks

pytestmark = pytest.mark.anyio


@pytest.fixture
def qbo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeQuickBooks, Any]:
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    return fake, create_server(backend)


async def test_quickbooks_connector(qbo: tuple[FakeQuickBooks, Any]) -> None:
    fake, server = qbo
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        def last(method: str = "POST") -> dict[str, Any]:
            return [r for r in fake.requests if r["method"] == method][-1]

        accounts = (await call("list_accounts"))["accounts"]
        assert {"code": "1", "name": "Services", "type": "income", "subtype": "Income", "currency": None, "balance": "0.00",
                "active": True} in accounts
        assert fake.oauth.requests[0]["grant_type"] == "refresh_token" and fake.oauth.requests[0]["refresh_token"] == "refresh-0"
        sent = last("GET")
        assert sent["params"] == {"minorversion": "75", "query": "select * from Account STARTPOSITION 1 MAXRESULTS 1000"}

        found = await call("search_contacts", query="O'Brien")
        assert found["contacts"] == [] and "DisplayName LIKE '%O\\'Brien%'" in last("GET")["params"]["query"], "quotes are escaped"
        acme = (await call("search_contacts", query="acme"))["contacts"]
        assert acme == [{"id": "customer:58", "name": "Acme Corp", "email": "ap@acme.test", "kind": "customer", "currency": None,
                         "tax_number": None, "version": "0"}]
        both = await call("search_contacts", limit=5)
        assert [c["id"] for c in both["contacts"]] == ["customer:58"] and both["next_cursor"], "then the vendors"
        assert [c["id"] for c in (await call("search_contacts", cursor=both["next_cursor"]))["contacts"]] == ["vendor:41"]

        lines = [{"description": "Consulting", "quantity": "10", "unit_price": "150.00", "item": "1", "tax_code": "TAX"},
                 {"description": "Travel", "quantity": "3", "unit_price": "26.85", "item": "7"}]
        no_item = await call("create_invoice", contact_id="customer:58", lines=[{"unit_price": "5.00"}], issue_date="2026-03-01")
        assert no_item["code"] == "invalid_argument" and "Item id" in no_item["message"]
        created = await call("create_invoice", contact_id="customer:58", lines=lines, issue_date="2026-03-01", idempotency_key="k1")
        raw = last()
        assert raw["path"] == f"/v3/company/{REALM}/invoice" and len(raw["params"]["requestid"]) == 50
        assert raw["json"]["Line"][1] == {"Amount": 80.55, "Description": "Travel", "DetailType": "SalesItemLineDetail",
                                          "SalesItemLineDetail": {"ItemRef": {"value": "7"}, "Qty": 3, "UnitPrice": 26.85}}
        invoice = created["invoice"]
        assert (invoice["id"], invoice["status"], invoice["subtotal"], invoice["tax_total"], invoice["total"]) == \
            ("invoice:101", "open", "1580.55", "126.44", "1706.99")
        assert (await call("get_invoice", invoice_id="invoice:101"))["balance"] == "1706.99"
        assert (await call("get_invoice", invoice_id="101"))["code"] == "invalid_argument", "ids say what they are"

        over = await call("record_payment", invoice_id="invoice:101", amount="2000.00")
        assert over["code"] == "invalid_argument" and "1706.99" in over["message"]
        assert sum(1 for r in fake.requests if r["path"].endswith("/payment")) == 0, "refused before anything was sent"
        paid = await call("record_payment", invoice_id="invoice:101", amount="706.99", date="2026-03-10", idempotency_key="p1")
        body = last()
        assert body["path"].endswith("/payment") and body["json"]["Line"] == [{"Amount": 706.99, "LinkedTxn": [{"TxnId": "101", "TxnType": "Invoice"}]}]
        assert (paid["invoice_balance"], paid["invoice_status"]) == ("1000.00", "partially_paid")
        overdue = await call("search_invoices", overdue_only=True, min_total="100")
        query = last("GET")["params"]["query"]
        assert "DueDate < '" in query and "Balance > '0'" in query and "TotalAmt >= '100'" in query
        assert [i["id"] for i in overdue["invoices"]] == ["invoice:101"]

        stale = await call("update_invoice", invoice_id="invoice:101", action="patch", version="0", due_date="2026-04-30")
        assert stale["code"] == "conflict"
        fresh = await call("get_invoice", invoice_id="invoice:101")
        patched = await call("update_invoice", invoice_id="invoice:101", action="patch", version=fresh["version"], due_date="2026-04-30")
        assert last()["json"] == {"Id": "101", "SyncToken": fresh["version"], "sparse": True, "DueDate": "2026-04-30"}
        assert patched["due_date"] == "2026-04-30" and patched["version"] != fresh["version"]
        with pytest.raises(DomainError) as stale_at_provider:  # someone saved in between our read and write: Fault 5010
            await server.backend._call("POST", "/invoice", json={"Id": "101", "SyncToken": fresh["version"], "sparse": True})
        assert stale_at_provider.value.body.code == "conflict" and "SyncToken" in stale_at_provider.value.body.message
        assert (await call("update_invoice", invoice_id="invoice:101", action="void", confirm=True))["code"] == "invalid_argument"
        assert (await call("update_invoice", invoice_id="invoice:101", action="approve"))["code"] == "invalid_argument"

        second = (await call("create_invoice", contact_id="customer:58", issue_date="2026-03-02",
                             lines=[{"quantity": "1", "unit_price": "40.00", "item": "1"}]))["invoice"]
        voided = await call("update_invoice", invoice_id=second["id"], action="void", confirm=True, version=second["version"])
        assert last()["params"]["operation"] == "void" and voided["status"] == "voided"
        bill = (await call("create_invoice", kind="payable", contact_id="vendor:41", issue_date="2026-03-05",
                           lines=[{"quantity": "1", "unit_price": "99.90", "account_code": "17"}]))["invoice"]
        assert last()["json"]["Line"][0]["AccountBasedExpenseLineDetail"] == {"AccountRef": {"value": "17"}}
        needs_bank = await call("record_payment", invoice_id=bill["id"], amount="99.90")
        assert needs_bank["code"] == "invalid_argument" and "account_code" in needs_bank["message"]
        paid_bill = await call("record_payment", invoice_id=bill["id"], amount="99.90", account_code="35")
        assert last()["json"]["CheckPayment"] == {"BankAccountRef": {"value": "35"}} and paid_bill["invoice_status"] == "paid"

        entry = await call("create_journal_entry", date="2026-03-31", memo="Rent", idempotency_key="je1",
                           lines=[{"account_code": "17", "debit": "1200.00"}, {"account_code": "35", "credit": "1200.00"}])
        assert entry["id"].startswith("journalentry:")
        sides = [(line["JournalEntryLineDetail"]["PostingType"], line["Amount"]) for line in last()["json"]["Line"]]
        assert sides == [("Debit", 1200.0), ("Credit", 1200.0)]
        assert '"Amount":1200.0' in json.dumps(last()["json"], separators=(",", ":"))

        pnl = await call("get_report", report="profit_and_loss", start="2026-03-01", end="2026-03-31", basis="cash")
        assert last("GET")["params"] == {"minorversion": "75", "accounting_method": "Cash", "start_date": "2026-03-01", "end_date": "2026-03-31"}
        assert pnl["totals"]["income"] == "1580.55" and pnl["totals"]["net_income"] == "380.55"
        assert [r["account_code"] for r in pnl["sections"][0]["rows"]] == ["1", "79"]
        sheet = await call("get_report", report="balance_sheet", as_of="2026-03-31")
        assert sheet["balanced"] and sheet["totals"]["assets"] == "3000.00" and sheet["totals"]["equity"] == "2700.00"
        assert last("GET")["params"]["start_date"] == "2026-01-01"
        trial = await call("get_report", report="trial_balance", as_of="2026-03-31")
        assert trial["balanced"] and trial["totals"]["debit"] == "4200.00" and trial["sections"][0]["rows"][2]["amount"] == "-300.00"
        aged = await call("get_report", report="aged_receivables", as_of="2026-04-01")
        assert last("GET")["params"]["report_date"] == "2026-04-01" and aged["totals"]["1_30"] == "1000.00"
        assert aged["sections"][0]["rows"][0]["columns"]["1_30"] == "1000.00"
        ledger = await call("list_transactions", start="2026-03-01", end="2026-03-31", limit=2)
        assert [(t["account_code"], t["debit"], t["credit"], t["source"]) for t in ledger["transactions"]] == \
            [("35", "880.55", "0.00", "payment"), ("35", "0.00", "1200.00", "journal entry")]
        rest = await call("list_transactions", start="2026-03-01", end="2026-03-31", cursor=ledger["next_cursor"])
        assert [t["account_code"] for t in rest["transactions"]] == ["17"] and rest["next_cursor"] is None

        fake.oauth.expire()  # a revoked access token: one refresh with the rotated refresh token, one retry
        assert (await call("get_invoice", invoice_id="invoice:101"))["id"] == "invoice:101"
        assert len(fake.oauth.requests) == 2 and fake.oauth.requests[1]["refresh_token"] != "refresh-0"
        fake.fail_next.append((503, {"Retry-After": "0"}, "{}"))
        assert (await call("get_invoice", invoice_id="invoice:101"))["code"] == "unavailable", "answered at once; the hub retries"
        assert (await call("get_invoice", invoice_id="invoice:101"))["id"] == "invoice:101"
        fake.fail_next.append((500, {}, "<html>oops</html>"))
        fake.fail_next.append((500, {}, "<html>oops</html>"))
        fake.fail_next.append((500, {}, "<html>oops</html>"))
        assert (await call("get_invoice", invoice_id="invoice:101"))["code"] == "unavailable"
        posted = len(fake.store["JournalEntry"])
        unbalanced = await call("create_journal_entry", lines=[{"account_code": "17", "debit": "1.00"}, {"account_code": "35", "credit": "2.00"}])
        assert unbalanced["code"] == "invalid_argument" and len(fake.store["JournalEntry"]) == posted, "refused before QuickBooks saw it"


async def test_a_voided_invoice_stays_voided_and_refuses_a_patch(qbo: tuple[FakeQuickBooks, Any]) -> None:
    """QuickBooks has no void flag and writes "Voided" into PrivateNote, which is the caller's
    `reference`: the void is read from the amounts, and a patch of a voided invoice is refused as the
    embedded ledger refuses it."""
    fake, server = qbo
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        made = (await call("create_invoice", contact_id="customer:58", issue_date="2026-12-01",
                           lines=[{"description": "x", "quantity": "1", "unit_price": "100.00", "item": "1"}]))["invoice"]
        assert (await call("update_invoice", invoice_id=made["id"], action="void", confirm=True))["status"] == "voided"
        patched = await call("update_invoice", invoice_id=made["id"], action="patch", reference="PO-7")
        assert patched["code"] == "invalid_argument" and "voided" in patched["message"]
        raw_id = made["id"].split(":")[1]
        assert fake.store["Invoice"][raw_id]["PrivateNote"] == "Voided", "nothing was sent"
        fake.store["Invoice"][raw_id]["PrivateNote"] = "PO-7 (edited in QuickBooks)"  # the note is anyone's text
        got = await call("get_invoice", invoice_id=made["id"])
        assert (got["status"], got["total"], got["balance"]) == ("voided", "0.00", "0.00")
        listed = await call("search_invoices", status=["paid"])
        assert made["id"] not in [i["id"] for i in listed["invoices"]]


async def test_a_repeated_create_returns_the_contact_and_a_taken_name_is_a_clear_conflict(qbo: tuple[FakeQuickBooks, Any]) -> None:
    """The tool promises that a create matching a contact exactly returns it (a retried create after a lost
    answer): QuickBooks refuses a second DisplayName (Fault 6240), which reached the agent as a bare
    provider error. A name taken by another contact, of either kind, is a `conflict` saying what to do; a
    customer's tax number, read back from ResaleNum, was never written."""
    fake, server = qbo
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        first = await call("upsert_contact", name="Globex Ltd", email="ap@globex.test", tax_number="RS-1")
        assert (first["kind"], first["tax_number"]) == ("customer", "RS-1")
        again = await call("upsert_contact", name="Globex Ltd", email="ap@globex.test", tax_number="RS-1")
        assert again == first, again
        assert sum(1 for c in fake.store["Customer"].values() if c["DisplayName"] == "Globex Ltd") == 1
        other = await call("upsert_contact", name="Globex Ltd", email="billing@globex.test")
        assert other["code"] == "conflict" and "search_contacts" in other["message"], other
        as_vendor = await call("upsert_contact", name="globex ltd", kind="vendor")
        assert as_vendor["code"] == "conflict", "a name is unique across customers and vendors"
        vendor = await call("upsert_contact", name="Initech", kind="vendor")
        renamed = await call("upsert_contact", id=vendor["id"], name="Globex Ltd", version=vendor["version"])
        assert renamed["code"] == "conflict" and renamed["details"]["field"] == "name"
