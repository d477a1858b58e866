"""The Xero connector against a local fake of the Accounting API 2.0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp import Client

from servers.accounting.providers.xero import Xero
from servers.accounting.server import create_server
from servers.kit.idempotency import provider_key
from tests.fakes.xero import TENANT, FakeXero

pytestmark = pytest.mark.anyio


@pytest.fixture
def xero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeXero, Any]:
    fake = FakeXero()
    for name, value in {"XERO_TENANT_ID": TENANT, "XERO_API": "http://xero.test/api.xro/2.0", "XERO_CLIENT_ID": fake.oauth.client_id,
                        "XERO_CLIENT_SECRET": fake.oauth.client_secret, "XERO_REFRESH_TOKEN": fake.oauth.refresh_token,
                        "XERO_TOKEN_URL": "http://xero.test/connect/token", "XERO_CURRENCY": "NZD", "MCP_HUB_DATA_DIR": str(tmp_path),
                        "MCP_HUB_SECRET_KEY": Fernet.generate_key().decode()}.items():
        monkeypatch.setenv(name, value)
    app = fake.app()
    return fake, create_server(Xero.from_env(tmp_path, transport=httpx.ASGITransport(app=app), token_transport=httpx2.ASGITransport(app=app)))


async def test_xero_connector(xero: tuple[FakeXero, Any]) -> None:
    fake, server = xero
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        def last(method: str) -> dict[str, Any]:
            return [r for r in fake.requests if r["method"] == method][-1]

        accounts = (await call("list_accounts"))["accounts"]
        assert [(a["code"], a["type"]) for a in accounts] == [("090", "asset"), ("200", "income"), ("469", "expense")], "archived hidden"
        assert last("GET")["headers"]["xero-tenant-id"] == TENANT
        vendors = (await call("search_contacts", kind="vendor"))["contacts"]
        assert [c["name"] for c in vendors] == ["Both Ways", "Paper Supplies"] and last("GET")["params"]["where"] == "IsSupplier==true OR IsCustomer==false"
        acme = (await call("search_contacts", query="acme"))["contacts"][0]
        assert acme["kind"] == "customer" and acme["version"].startswith("/Date(")
        renamed = await call("upsert_contact", id=acme["id"], name="Acme Limited", version=acme["version"])
        assert renamed["name"] == "Acme Limited" and last("POST")["json"] == {"Contacts": [{"Name": "Acme Limited", "ContactID": acme["id"]}]}
        assert (await call("upsert_contact", id=acme["id"], name="x", version=acme["version"]))["code"] == "conflict"

        lines = [{"description": "Consulting", "quantity": "10", "unit_price": "150.00", "account_code": "200", "tax_code": "OUTPUT"},
                 {"description": "Widgets", "quantity": "3", "unit_price": "26.8499", "account_code": "200", "tax_code": "NONE"}]
        preview = await call("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-03-01", dry_run=True)
        assert (preview["totals"]["subtotal"], preview["totals"]["tax_total"], preview["totals"]["total"]) == ("1580.55", "225.00", "1805.55")
        assert not [r for r in fake.requests if r["method"] == "PUT"], "a dry run creates nothing"
        created = (await call("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-03-01", idempotency_key="inv-1"))["invoice"]
        sent = last("PUT")
        sent_key = sent["headers"]["idempotency-key"]  # derived, the call's arguments folded in (outside a call: none)
        assert len(sent_key) == 64 and sent_key not in ("inv-1", provider_key("create_invoice", "inv-1")) and sent["params"] == {"unitdp": "4"}
        assert sent["json"]["Invoices"][0]["LineItems"][1] == {"Description": "Widgets", "Quantity": 3, "UnitAmount": 26.8499,
                                                                "AccountCode": "200", "TaxType": "NONE"}
        assert sent["json"]["Invoices"][0]["Type"] == "ACCREC" and sent["json"]["Invoices"][0]["Status"] == "AUTHORISED"
        assert (created["total"], created["status"], created["issue_date"], created["due_date"]) == \
            ("1805.55", "open", "2026-03-01", "2026-03-31"), "the provider's totals agree with the dry run's"

        over = await call("record_payment", invoice_id=created["id"], amount="1805.56", account_code="090")
        assert over["code"] == "invalid_argument" and not [r for r in fake.requests if r["path"].endswith("/Payments")]
        needs_bank = await call("record_payment", invoice_id=created["id"], amount="5.00")
        assert needs_bank["code"] == "invalid_argument" and "XERO_BANK_ACCOUNT_CODE" in needs_bank["message"]
        part = await call("record_payment", invoice_id=created["id"], amount="805.55", date="2026-03-10", account_code="090",
                          idempotency_key="pay-1")
        assert last("PUT")["json"]["Payments"][0] == {"Invoice": {"InvoiceID": created["id"]}, "Account": {"Code": "090"},
                                                      "Date": "2026-03-10", "Amount": 805.55}
        assert (part["invoice_balance"], part["invoice_status"]) == ("1000.00", "partially_paid")
        assert (await call("update_invoice", invoice_id=created["id"], action="void", confirm=True))["code"] == "invalid_argument"

        overdue = await call("search_invoices", overdue_only=True, min_total="100", status=["partially_paid"])
        params = last("GET")["params"]
        assert params["where"].startswith('Type=="ACCREC" AND DueDate<DateTime(') and "AmountDue>0" in params["where"]
        assert "Total>=100" in params["where"] and params["Statuses"] == "AUTHORISED"
        assert [i["id"] for i in overdue["invoices"]] == [created["id"]]

        bill = (await call("create_invoice", kind="payable", contact_id=vendors[1]["id"], issue_date="2026-03-05", approve=False,
                           lines=[{"quantity": "2", "unit_price": "49.95", "account_code": "469", "tax_code": "INPUT"}]))["invoice"]
        assert bill["kind"] == "payable" and bill["status"] == "draft" and last("PUT")["json"]["Invoices"][0]["Type"] == "ACCPAY"
        stale = await call("update_invoice", invoice_id=bill["id"], action="approve", version="/Date(1+0000)/")
        assert stale["code"] == "conflict"
        approved = await call("update_invoice", invoice_id=bill["id"], action="approve", version=bill["version"])
        assert approved["status"] == "open" and approved["total"] == "114.88", "tax 14.985 rounds half-even to 14.98"
        patched = await call("update_invoice", invoice_id=bill["id"], action="patch", reference="PO-7", due_date="2026-04-30")
        assert last("POST")["json"]["Invoices"][0] == {"InvoiceID": bill["id"], "DueDate": "2026-04-30", "Reference": "PO-7"}
        assert patched["reference"] == "PO-7"
        voided = await call("update_invoice", invoice_id=bill["id"], action="void", confirm=True, version=patched["version"])
        assert voided["status"] == "voided" and last("POST")["json"]["Invoices"][0]["Status"] == "VOIDED"
        posts = len([r for r in fake.requests if r["method"] == "POST"])
        for change in ({"reference": "PO-8"}, {"due_date": "2026-05-31"}):  # a voided invoice is final, as elsewhere
            refused = await call("update_invoice", invoice_id=bill["id"], action="patch", **change)
            assert refused["code"] == "invalid_argument" and "voided" in refused["message"], refused
        assert len([r for r in fake.requests if r["method"] == "POST"]) == posts, "nothing was sent to Xero"

        entry = await call("create_journal_entry", date="2026-03-31", memo="Rent", idempotency_key="je-1",
                           lines=[{"account_code": "469", "debit": "1200.00"}, {"account_code": "090", "credit": "1200.00"}])
        assert [line["LineAmount"] for line in last("PUT")["json"]["ManualJournals"][0]["JournalLines"]] == [1200.0, -1200.0]
        assert entry["id"]
        for day in ("2026-02-01", "2026-03-02", "2026-03-03"):
            await call("create_journal_entry", date=day, memo="Move", lines=[{"account_code": "090", "debit": "10.00"},
                                                                            {"account_code": "200", "credit": "10.00"}])
        page = await call("list_transactions", start="2026-03-01", end="2026-03-31", limit=3)
        assert [(t["account_code"], t["debit"], t["credit"]) for t in page["transactions"]] == [("469", "1200.00", "0.00"), ("090", "0.00", "1200.00")]
        rest = await call("list_transactions", start="2026-03-01", end="2026-03-31", limit=3, cursor=page["next_cursor"])
        assert [t["date"] for t in rest["transactions"]] == ["2026-03-02"] * 2, "journal 2 is out of range; journal 4 would overflow"
        final = await call("list_transactions", start="2026-03-01", end="2026-03-31", limit=3, cursor=rest["next_cursor"])
        assert [t["date"] for t in final["transactions"]] == ["2026-03-03"] * 2 and final["next_cursor"] is None
        assert all(t["source"] == "manjournal" for t in rest["transactions"] + final["transactions"])

        pnl = await call("get_report", report="profit_and_loss", start="2026-03-01", end="2026-03-31", basis="cash")
        assert last("GET")["params"] == {"paymentsOnly": "true", "fromDate": "2026-03-01", "toDate": "2026-03-31"}
        assert (pnl["totals"]["income"], pnl["totals"]["expenses"], pnl["totals"]["net_income"]) == ("1580.55", "1200.00", "380.55")
        sheet = await call("get_report", report="balance_sheet", as_of="2026-03-31")
        assert sheet["balanced"] and sheet["totals"]["liabilities_and_equity"] == "3000.00"
        trial = await call("get_report", report="trial_balance", as_of="2026-03-31")
        assert trial["balanced"] and trial["totals"] == {"debit": "4200.00", "credit": "4200.00"}
        assert trial["sections"][0]["rows"][0] == {"name": "Sales (200)", "account_code": "acc-200", "amount": "-1580.55",
                                                   "columns": {"debit": "0", "credit": "1580.55"}}
        aged = await call("get_report", report="aged_receivables", as_of="2026-04-05")
        assert aged["totals"]["1_30"] == "1000.00" and aged["sections"][0]["rows"][0]["name"] == "Acme Limited"
        before_payment = await call("get_report", report="aged_receivables", as_of="2026-03-05")
        assert before_payment["totals"]["current"] == "1805.55", "as of before the payment, the whole invoice was open"

        fake.oauth.expire()
        assert (await call("get_invoice", invoice_id=created["id"]))["id"] == created["id"]
        assert len(fake.oauth.requests) == 2 and fake.oauth.requests[1]["refresh_token"] != "refresh-0", "rotated refresh token used"
        fake.fail_next.append((429, {"Retry-After": "0"}, '{"Title": "Too Many Requests"}'))
        assert (await call("get_invoice", invoice_id=created["id"]))["code"] == "rate_limited", "answered at once; the hub retries"
        assert (await call("get_invoice", invoice_id=created["id"]))["id"] == created["id"]
        fake.fail_next.append((400, {}, '{"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred", '
                                        '"Elements": [{"ValidationErrors": [{"Message": "Account code 999 is not a valid code"}]}]}'))
        invalid = await call("create_journal_entry", lines=[{"account_code": "999", "debit": "1.00"}, {"account_code": "090", "credit": "1.00"}])
        assert invalid["code"] == "invalid_argument" and "Account code 999 is not a valid code" in invalid["message"]


async def test_a_repeated_create_returns_the_contact_and_a_taken_name_is_a_clear_conflict(xero: tuple[FakeXero, Any]) -> None:
    """Xero keeps a contact's name unique: a retried create (its answer lost) got Xero's validation error,
    not the contact the tool promises; a name another contact holds is a `conflict` saying what to do."""
    fake, server = xero
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        first = await call("upsert_contact", name="Globex & Sons", email="ap@globex.test", tax_number="GB-1")
        again = await call("upsert_contact", name="Globex & Sons", email="ap@globex.test", tax_number="GB-1")
        assert again == first, again
        assert sum(1 for c in fake.contacts.values() if c["Name"] == "Globex & Sons") == 1
        other = await call("upsert_contact", name="globex & sons", email="billing@globex.test")
        assert other["code"] == "conflict" and "search_contacts" in other["message"], other
        initech = await call("upsert_contact", name="Initech", kind="vendor")
        assert initech["kind"] == "both", "Xero sets a contact's kind from its first invoice or bill; a new one read 'customer'"
        for kind in ("customer", "vendor"):
            found = (await call("search_contacts", query="Initech", kind=kind))["contacts"]
            assert [c["id"] for c in found] == [initech["id"]], f"a new contact is found as a {kind}"
        renamed = await call("upsert_contact", id=initech["id"], name="Globex & Sons", version=initech["version"])
        assert renamed["code"] == "conflict" and renamed["details"]["field"] == "name"


async def test_an_unkeyed_create_answered_502_is_an_outcome_unknown_never_retryable(xero: tuple[FakeXero, Any]) -> None:
    """Outside review recheck26 N3: an unkeyed invoice answered 502 (gateways answer so after Xero stored it)
    was `unavailable`, "try again later", retryable — and the retry made a second invoice. A POST sent without
    a provider key that fails on the provider's side is an outcome unknown now; with a key it stays retryable
    (Xero replays the key's answer)."""
    fake, server = xero
    lines = [{"description": "Consulting", "quantity": "1", "unit_price": "10.00", "account_code": "200", "tax_code": "NONE"}]
    async with Client(server) as client:
        contact = (await client.call_tool("search_contacts", {"query": "acme"})).structured_content["contacts"][0]  # type: ignore[index]
        fake.fail_next.append((502, {}, '{"Title": "Bad Gateway"}'))
        failed = await client.call_tool("create_invoice", {"contact_id": contact["id"], "lines": lines, "issue_date": "2026-03-01"})
        body = failed.structured_content or {}
        assert failed.is_error and body["code"] == "upstream_error" and body["retryable"] is False, body
        assert body["details"]["outcome"] == "unknown" and "may have been made" in body["message"], body
        fake.fail_next.append((502, {}, '{"Title": "Bad Gateway"}'))
        keyed = await client.call_tool("create_invoice", {"contact_id": contact["id"], "lines": lines, "issue_date": "2026-03-01",
                                                          "idempotency_key": "inv-502"})
        body = keyed.structured_content or {}
        assert keyed.is_error and body["code"] == "unavailable" and body["retryable"] is True, body
