"""Outside review w28b, accounting: (#5) an approve carrying a stale version, of a draft someone else changed and
approved, is a `conflict`, while a retried approve is still answered; (#6) a retried void without `void_date`
answers the voided invoice whatever day the server defaulted to; (#9) a retried patch that carries `lines` answers
the invoice on Xero and QuickBooks, sending nothing, and Xero's version is shown as a time."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import pytest

from servers.accounting import server as accounting_server
from servers.accounting.server import create_server
from servers.accounting.store import EmbeddedAccounting
from tests.accounting_support import quickbooks_on_fake, xero_on_fake
from tests.servers.accounting.test_accounting_writes28 import Call, session, writes

pytestmark = pytest.mark.anyio
async def _draft(call: Call, contact: str, extra: dict[str, str]) -> dict[str, Any]:
    return (await call("create_invoice", contact_id=contact, issue_date="2026-03-01", approve=False,
                       lines=[{"quantity": "1", "unit_price": "100", **extra}]))["invoice"]


# -- 5. a stale approve -----------------------------------------------------------------------------


async def _changed_and_approved(call: Call, draft: dict[str, Any], extra: dict[str, str]) -> dict[str, Any]:
    other = await call("update_invoice", invoice_id=draft["id"], action="patch", version=draft["version"],
                       lines=[{"quantity": "1", "unit_price": "5000", **extra}])
    return await call("update_invoice", invoice_id=draft["id"], action="approve", version=other["version"])


def _stale_refused(mine: dict[str, Any], approved: dict[str, Any]) -> None:
    assert mine.get("code") == "conflict", mine
    assert "approved" in mine["message"] and "5000.00" in mine["message"] and "nothing was" in mine["message"], mine
    assert "/Date(" not in mine["message"], mine
    assert mine["details"]["current_version"] == approved["version"]


async def test_embedded_stale_approve_is_a_conflict_and_a_retry_is_answered(tmp_path: Path) -> None:
    async with session(create_server(EmbeddedAccounting(tmp_path))) as call:
        contact = (await call("upsert_contact", name="Acme"))["id"]
        draft = await _draft(call, contact, {})
        approved = await _changed_and_approved(call, draft, {})
        _stale_refused(await call("update_invoice", invoice_id=draft["id"], action="approve", version=draft["version"]), approved)
        for version in (approved["version"], None):  # a current view, or none: answered
            args = {"version": version} if version else {}
            assert await call("update_invoice", invoice_id=draft["id"], action="approve", **args) == approved
        # someone else approved exactly the draft the caller read: the caller's approve would have made the same
        other = await _draft(call, contact, {})
        done = await call("update_invoice", invoice_id=other["id"], action="approve", version=other["version"])
        assert await call("update_invoice", invoice_id=other["id"], action="approve", version=other["version"]) == done


async def test_xero_stale_approve_is_a_conflict_and_a_retry_is_answered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with session(create_server(backend)) as call:
        contact = (await call("search_contacts", kind="customer"))["contacts"][0]["id"]
        extra = {"account_code": "200"}
        draft = await _draft(call, contact, extra)
        approved = await _changed_and_approved(call, draft, extra)
        sent = len(writes(fake.requests))
        _stale_refused(await call("update_invoice", invoice_id=draft["id"], action="approve", version=draft["version"]), approved)
        assert len(writes(fake.requests)) == sent, "nothing sent"
        mine = await _draft(call, contact, extra)
        first = await call("update_invoice", invoice_id=mine["id"], action="approve", version=mine["version"])
        assert await call("update_invoice", invoice_id=mine["id"], action="approve", version=mine["version"]) == first


async def test_xero_conflict_shows_the_version_as_a_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with session(create_server(backend)) as call:
        contact = (await call("search_contacts", kind="customer"))["contacts"][0]["id"]
        draft = await _draft(call, contact, {"account_code": "200"})
        await call("update_invoice", invoice_id=draft["id"], action="patch", version=draft["version"], reference="A")
        stale = await call("update_invoice", invoice_id=draft["id"], action="patch", version=draft["version"], reference="B")
        assert stale.get("code") == "conflict" and "/Date(" not in stale["message"] and "2026-" in stale["message"], stale


# -- 6. a retried void without void_date ------------------------------------------------------------


async def test_a_retried_void_without_a_date_answers_across_midnight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with session(create_server(EmbeddedAccounting(tmp_path))) as call:
        contact = (await call("upsert_contact", name="Acme"))["id"]
        made = []
        for _ in range(2):
            made.append((await call("create_invoice", contact_id=contact, issue_date="2026-03-01",
                                    lines=[{"quantity": "1", "unit_price": "10"}]))["invoice"])
        monkeypatch.setattr(accounting_server, "_today", lambda: _dt.date(2026, 12, 5))
        void = dict(invoice_id=made[0]["id"], action="void", confirm=True, version=made[0]["version"])
        first = await call("update_invoice", **void)
        dated = dict(invoice_id=made[1]["id"], action="void", confirm=True, version=made[1]["version"], void_date="2026-12-01")
        first_dated = await call("update_invoice", **dated)
        monkeypatch.setattr(accounting_server, "_today", lambda: _dt.date(2026, 12, 6))
        assert await call("update_invoice", **void) == first
        no_date = {k: v for k, v in dated.items() if k != "void_date"}
        assert await call("update_invoice", **no_date) == first_dated, "no date given: any day on record answers"
        redated = await call("update_invoice", **{**void, "void_date": "2026-12-06"})
        assert redated.get("code") == "invalid_argument" and "already voided on 2026-12-05" in redated["message"], redated
        trial = await call("get_report", report="trial_balance", as_of="2026-12-31")
        assert trial["balanced"] and all(row["amount"] in ("0.00", "0") for row in trial["sections"][0]["rows"]), trial


# -- 9. a retried patch with lines on the providers -------------------------------------------------


@pytest.mark.parametrize("provider", ["xero", "quickbooks"])
async def test_a_retried_patch_with_lines_answers_the_invoice_and_sends_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                                 provider: str) -> None:
    if provider == "xero":
        fake, backend = xero_on_fake(monkeypatch, tmp_path)
        extra, other_extra = {"account_code": "200"}, {"account_code": "400"}
    else:
        fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
        extra, other_extra = {"item": "1"}, {"item": "7"}
    async with session(create_server(backend)) as call:
        contact = ((await call("search_contacts", kind="customer"))["contacts"][0]["id"] if provider == "xero" else "customer:58")
        made = (await call("create_invoice", contact_id=contact, issue_date="2026-03-01",
                           **({"approve": False} if provider == "xero" else {}),
                           lines=[{"quantity": "1", "unit_price": "10", **extra}]))["invoice"]
        patch = dict(invoice_id=made["id"], action="patch", version=made["version"],
                     lines=[{"quantity": "3", "unit_price": "10", **extra}])
        first = await call("update_invoice", **patch)
        assert first.get("total") == "30.00", first
        sent = len(writes(fake.requests))
        assert await call("update_invoice", **patch) == first
        assert len(writes(fake.requests)) == sent, "the retry sent nothing"
        for lines in ([{"quantity": "4", "unit_price": "10", **extra}], [{"quantity": "3", "unit_price": "10", **other_extra}],
                      [{"quantity": "3", "unit_price": "10", **extra}, {"quantity": "1", "unit_price": "1", **extra}]):
            stale = await call("update_invoice", **{**patch, "lines": lines})
            assert stale.get("code") == "conflict", (lines, stale)
        assert len(writes(fake.requests)) == sent
