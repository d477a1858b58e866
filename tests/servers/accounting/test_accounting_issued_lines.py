"""`update_invoice action=patch lines` changes drafts only, on every backend (outside review money19: Xero
and QuickBooks rewrote the lines of an approved, issued invoice; the embedded ledger refuses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting.server import create_server
from tests.accounting_support import quickbooks_on_fake, xero_on_fake

pytestmark = pytest.mark.anyio


def _line_updates(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Updates that carried new lines: Xero `POST /Invoices/{id}` with LineItems, QuickBooks a POST with Id and Line."""
    def body(r: dict[str, Any]) -> dict[str, Any]:
        return r.get("json") or {}
    return [r for r in requests if r["method"] == "POST" and (("Id" in body(r) and "Line" in body(r))
                                                              or any("LineItems" in i for i in body(r).get("Invoices", [])))]


async def test_xero_refuses_to_patch_the_lines_of_an_approved_invoice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        acme = (await call("search_contacts", query="Acme"))["contacts"][0]
        line = {"description": "work", "quantity": "1", "unit_price": "100.00", "account_code": "200"}
        issued = (await call("create_invoice", contact_id=acme["id"], lines=[line], issue_date="2026-10-01"))["invoice"]
        refused = await call("update_invoice", invoice_id=issued["id"], action="patch", lines=[{**line, "unit_price": "40.00"}])
        assert refused.get("code") == "invalid_argument", f"an approved invoice's lines were rewritten: {refused}"
        assert "approved" in refused["message"] and "Void it and issue a new one" in refused["message"], refused
        assert "credit note" in refused["message"] and not _line_updates(fake.requests), "nothing sent to Xero"
        assert (await call("get_invoice", invoice_id=issued["id"]))["total"] == "100.00"

        draft = (await call("create_invoice", contact_id=acme["id"], lines=[line], issue_date="2026-10-01", approve=False))["invoice"]
        patched = await call("update_invoice", invoice_id=draft["id"], action="patch", lines=[{**line, "unit_price": "40.00"}])
        assert patched["total"] == "40.00" and patched["status"] == "draft", patched
        dated = await call("update_invoice", invoice_id=issued["id"], action="patch", due_date="2026-11-30")
        assert dated["due_date"] == "2026-11-30", "an approved invoice's due date and reference still change"


async def test_quickbooks_patches_lines_only_of_an_unpaid_unsent_invoice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """QuickBooks has no drafts: an invoice nothing was paid on and never emailed is the nearest thing."""
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        line = {"description": "work", "quantity": "1", "unit_price": "100.00", "item": "1"}
        new = (await call("create_invoice", contact_id="customer:58", lines=[line], issue_date="2026-10-01"))["invoice"]
        patched = await call("update_invoice", invoice_id=new["id"], action="patch", lines=[{**line, "unit_price": "90.00"}])
        assert patched["total"] == "90.00", patched

        fake.store["Invoice"][new["id"].partition(":")[2]]["EmailStatus"] = "EmailSent"  # sent from QuickBooks
        writes = len(_line_updates(fake.requests))
        sent = await call("update_invoice", invoice_id=new["id"], action="patch", lines=[{**line, "unit_price": "40.00"}])
        assert sent.get("code") == "invalid_argument" and "emailed" in sent["message"], f"a sent invoice was rewritten: {sent}"
        assert "credit memo" in sent["message"] and len(_line_updates(fake.requests)) == writes

        paid = (await call("create_invoice", contact_id="customer:58", lines=[line], issue_date="2026-10-01"))["invoice"]
        await call("record_payment", invoice_id=paid["id"], amount="10.00", date="2026-10-02")
        part = await call("update_invoice", invoice_id=paid["id"], action="patch", lines=[{**line, "unit_price": "40.00"}])
        assert part.get("code") == "invalid_argument" and "payments" in part["message"], f"a paid invoice was rewritten: {part}"
        assert len(_line_updates(fake.requests)) == writes
        assert (await call("get_invoice", invoice_id=paid["id"]))["total"] == "100.00"
