"""Outside review writes28, accounting: (#6) an invoice or bill whose total is zero or below is refused before
anything is sent, on every backend, for create, dry run and a draft's patched lines, even when the provider
computes the tax; (#7) a retried approve or void whose first answer was lost answers the invoice as the first
call did, on the embedded ledger, Xero and QuickBooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting.server import create_server
from servers.accounting.store import EmbeddedAccounting
from tests.accounting_support import quickbooks_on_fake, xero_on_fake

pytestmark = pytest.mark.anyio
Call = Callable[..., Awaitable[dict[str, Any]]]

ZERO_LINES = [{"quantity": "1", "unit_price": "0.004", "account_code": "200"}]
NEGATIVE_LINES = [{"quantity": "1", "unit_price": "10", "account_code": "200"},
                  {"quantity": "1", "unit_price": "-20", "account_code": "200", "description": "discount"}]
QBO_ZERO_LINES = [{"quantity": "1", "unit_price": "0.004", "item": "1"}]
QBO_NEGATIVE_LINES = [{"quantity": "1", "unit_price": "10", "item": "1"}, {"quantity": "1", "unit_price": "-20", "item": "7"}]


@asynccontextmanager
async def session(server: Any) -> AsyncIterator[Call]:
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, args)
            return result.structured_content or {"message": " ".join(getattr(c, "text", "") for c in result.content)}
        yield call


def refused_as_not_positive(answer: dict[str, Any]) -> None:
    assert answer.get("code") == "invalid_argument", answer
    assert "must be positive" in answer["message"] and "Nothing was created" in answer["message"], answer


def writes(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] in ("PUT", "POST")]


# -- 6. zero and negative totals -------------------------------------------------------------------


@pytest.mark.parametrize("lines", [ZERO_LINES, NEGATIVE_LINES], ids=["rounds_to_zero", "discount_outweighs"])
@pytest.mark.parametrize("kind", ["receivable", "payable"])
async def test_xero_refuses_a_zero_or_negative_invoice_as_its_dry_run_does(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                          lines: list[dict[str, str]], kind: str) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with session(create_server(backend)) as call:
        contacts = (await call("search_contacts", kind="customer" if kind == "receivable" else "vendor"))["contacts"]
        args = dict(contact_id=contacts[0]["id"], lines=lines, kind=kind, issue_date="2026-03-01")
        refused_as_not_positive(await call("create_invoice", dry_run=True, **args))
        before = len(fake.invoices)
        refused_as_not_positive(await call("create_invoice", **args))
        assert len(fake.invoices) == before and not writes(fake.requests), "nothing was sent to Xero"


@pytest.mark.parametrize("lines", [ZERO_LINES, NEGATIVE_LINES], ids=["rounds_to_zero", "discount_outweighs"])
async def test_xero_refuses_patching_a_draft_to_a_zero_or_negative_total(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                        lines: list[dict[str, str]]) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with session(create_server(backend)) as call:
        customer = (await call("search_contacts", kind="customer"))["contacts"][0]["id"]
        draft = (await call("create_invoice", contact_id=customer, issue_date="2026-03-01", approve=False,
                            lines=[{"quantity": "1", "unit_price": "10", "account_code": "200"}]))["invoice"]
        sent = len(writes(fake.requests))
        refused_as_not_positive(await call("update_invoice", invoice_id=draft["id"], action="patch", lines=lines))
        assert len(writes(fake.requests)) == sent, "nothing was sent to Xero"
        assert (await call("get_invoice", invoice_id=draft["id"]))["total"] == "10.00"


@pytest.mark.parametrize("lines", [QBO_ZERO_LINES, QBO_NEGATIVE_LINES], ids=["rounds_to_zero", "discount_outweighs"])
async def test_quickbooks_refuses_a_zero_or_negative_invoice_and_its_patch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                          lines: list[dict[str, str]]) -> None:
    """A zero invoice would even read back as voided (QuickBooks has no void flag)."""
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    async with session(create_server(backend)) as call:
        args = dict(contact_id="customer:58", lines=lines, issue_date="2026-03-01")
        refused_as_not_positive(await call("create_invoice", dry_run=True, **args))
        refused_as_not_positive(await call("create_invoice", **args))
        assert not writes(fake.requests), "nothing was sent to QuickBooks"
        made = (await call("create_invoice", contact_id="customer:58", issue_date="2026-03-01",
                           lines=[{"quantity": "1", "unit_price": "10", "item": "1"}]))["invoice"]
        refused_as_not_positive(await call("update_invoice", invoice_id=made["id"], action="patch", lines=lines))
        assert len(writes(fake.requests)) == 1
        assert (await call("get_invoice", invoice_id=made["id"]))["total"] == "10.00"


async def test_quickbooks_refuses_a_negative_bill(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    async with session(create_server(backend)) as call:
        refused_as_not_positive(await call("create_invoice", contact_id="vendor:41", kind="payable", issue_date="2026-03-01",
                                           lines=[{"quantity": "1", "unit_price": "5", "account_code": "7"},
                                                  {"quantity": "1", "unit_price": "-5", "account_code": "7"}]))
        assert not writes(fake.requests)


# -- 7. a retried approve or void answers what the first did ---------------------------------------


async def test_embedded_retried_void_and_approve_answer_the_invoice(tmp_path: Path) -> None:
    async with session(create_server(EmbeddedAccounting(tmp_path))) as call:
        customer = await call("upsert_contact", name="Acme")
        draft = (await call("create_invoice", contact_id=customer["id"], issue_date="2026-03-01", approve=False,
                            lines=[{"quantity": "1", "unit_price": "10", "account_code": "4000"}]))["invoice"]
        approve = dict(invoice_id=draft["id"], action="approve", version=draft["version"])
        first = await call("update_invoice", **approve)
        assert first["status"] == "open", first
        assert await call("update_invoice", **approve) == first  # the same call again, its first answer lost
        void = dict(invoice_id=draft["id"], action="void", confirm=True, void_date="2026-03-02", version=first["version"])
        voided = await call("update_invoice", **void)
        assert voided["status"] == "voided", voided
        assert await call("update_invoice", **void) == voided
        trial = await call("get_report", report="trial_balance", as_of="2026-12-31")
        assert trial["balanced"] and all(row["amount"] in ("0.00", "0") for row in trial["sections"][0]["rows"]), \
            "the retry posted no second reversal"
        redated = await call("update_invoice", **{**void, "void_date": "2026-03-05"})
        assert redated.get("code") == "invalid_argument" and "already voided on 2026-03-02" in redated["message"], redated
        again = await call("update_invoice", invoice_id=draft["id"], action="approve")
        assert again.get("code") == "invalid_argument" and "voided" in again["message"], again


async def test_xero_retried_void_and_approve_answer_the_invoice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with session(create_server(backend)) as call:
        customer = (await call("search_contacts", kind="customer"))["contacts"][0]["id"]
        draft = (await call("create_invoice", contact_id=customer, issue_date="2026-03-01", approve=False,
                            lines=[{"quantity": "1", "unit_price": "10", "account_code": "200"}]))["invoice"]
        approve = dict(invoice_id=draft["id"], action="approve", version=draft["version"])
        first = await call("update_invoice", **approve)
        assert first["status"] == "open", first
        sent = len(writes(fake.requests))
        assert (await call("update_invoice", **approve))["status"] == "open"
        void = dict(invoice_id=draft["id"], action="void", confirm=True, version=first["version"])
        assert (await call("update_invoice", **void))["status"] == "voided"
        retried = await call("update_invoice", **void)
        assert retried.get("status") == "voided", retried
        assert len(writes(fake.requests)) == sent + 1, "only the first void was sent"


async def test_quickbooks_retried_void_answers_the_voided_invoice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    async with session(create_server(backend)) as call:
        made = (await call("create_invoice", contact_id="customer:58", issue_date="2026-03-01",
                           lines=[{"quantity": "1", "unit_price": "10", "item": "1"}]))["invoice"]
        void = dict(invoice_id=made["id"], action="void", confirm=True, version=made["version"])
        assert (await call("update_invoice", **void))["status"] == "voided"
        retried = await call("update_invoice", **void)
        assert retried.get("status") == "voided", retried
        assert len(writes(fake.requests)) == 2, "create and one void were sent"


async def test_a_retried_patch_answers_the_invoice_and_a_stale_different_patch_is_still_a_conflict(tmp_path: Path) -> None:
    async with session(create_server(EmbeddedAccounting(tmp_path))) as call:
        customer = await call("upsert_contact", name="Acme")
        draft = (await call("create_invoice", contact_id=customer["id"], issue_date="2026-03-01", approve=False,
                            lines=[{"quantity": "1", "unit_price": "10", "account_code": "4000"}]))["invoice"]
        lines = [{"quantity": "2", "unit_price": "7.50", "account_code": "4000", "tax_code": "STD20"}]
        patch = dict(invoice_id=draft["id"], action="patch", version=draft["version"], due_date="2026-04-15", lines=lines)
        first = await call("update_invoice", **patch)
        assert (first["due_date"], first["total"]) == ("2026-04-15", "18.00"), first
        assert await call("update_invoice", **patch) == first, "the retry answers what the first call did"
        stale = await call("update_invoice", **{**patch, "due_date": "2026-05-01"})
        assert stale.get("code") == "conflict", stale


@pytest.mark.parametrize("provider", ["xero", "quickbooks"])
async def test_a_provider_retried_patch_answers_the_invoice_without_sending(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                           provider: str) -> None:
    if provider == "xero":
        fake, backend = xero_on_fake(monkeypatch, tmp_path)
        line = {"quantity": "1", "unit_price": "10", "account_code": "200"}
    else:
        fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)  # type: ignore[assignment]
        line = {"quantity": "1", "unit_price": "10", "item": "1"}
    async with session(create_server(backend)) as call:
        contact = "customer:58" if provider == "quickbooks" else (await call("search_contacts", kind="customer"))["contacts"][0]["id"]
        made = (await call("create_invoice", contact_id=contact, issue_date="2026-03-01", lines=[line]))["invoice"]
        patch = dict(invoice_id=made["id"], action="patch", version=made["version"], due_date="2026-04-15", reference="PO-7")
        first = await call("update_invoice", **patch)
        assert (first.get("due_date"), first.get("reference")) == ("2026-04-15", "PO-7"), first
        sent = len(writes(fake.requests))
        retried = await call("update_invoice", **patch)
        assert (retried.get("due_date"), retried.get("reference")) == ("2026-04-15", "PO-7"), retried
        assert len(writes(fake.requests)) == sent, "nothing was sent again"
