"""Keyed accounting writes after a lost answer (re-check 17w #2, #4): a provider key folds in the call's
arguments, so a corrected call never gets the earlier record; a keyed full payment is answered on retry
instead of refused as "paid"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from servers.accounting.server import create_server
from tests.accounting_support import quickbooks_on_fake
from tests.fakes.xero import FakeXero
from tests.servers.accounting.test_accounting_provider_keys import ALICE, LoseAnswer, call, xero  # noqa: F401 — the fixture

pytestmark = pytest.mark.anyio
LINE = {"description": "A", "quantity": "1", "unit_price": "100.00", "account_code": "200"}


async def test_xero_corrected_call_with_the_key_gets_its_own_invoice(xero: tuple[FakeXero, LoseAnswer, Any]) -> None:  # noqa: F811
    fake, shim, server = xero
    ids = {c["Name"]: c["ContactID"] for c in fake.contacts.values()}
    shim.lost = False
    lost = await call(server, ALICE, "create_invoice", contact_id=ids["Acme Ltd"], issue_date="2026-03-01", idempotency_key="k1",
                      lines=[LINE])
    assert lost["code"] == "unavailable" and len(fake.invoices) == 1
    fixed = await call(server, ALICE, "create_invoice", contact_id=ids["Both Ways"], issue_date="2026-03-02", idempotency_key="k1",
                       lines=[dict(LINE, quantity="3", unit_price="40.00")])
    assert "code" not in fixed, fixed
    assert (fixed["invoice"]["contact_name"], fixed["invoice"]["total"]) == ("Both Ways", "120.00"), "not the Acme invoice replayed"
    assert len(fake.invoices) == 2


async def test_xero_keyed_full_payment_is_answered_on_retry(xero: tuple[FakeXero, LoseAnswer, Any]) -> None:  # noqa: F811
    fake, shim, server = xero
    ids = {c["Name"]: c["ContactID"] for c in fake.contacts.values()}
    invoice = (await call(server, ALICE, "create_invoice", contact_id=ids["Acme Ltd"], issue_date="2026-03-01", lines=[LINE]))["invoice"]
    shim.path_end, shim.lost = "/Payments", False
    args = dict(invoice_id=invoice["id"], amount="100.00", date="2026-03-02", idempotency_key="pay-1")
    assert (await call(server, ALICE, "record_payment", **args))["code"] == "unavailable"
    retried = await call(server, ALICE, "record_payment", **args)
    assert "code" not in retried and retried["invoice_balance"] == "0.00", retried
    fresh = await call(server, ALICE, "record_payment", **dict(args, idempotency_key="pay-2"))
    assert fresh["code"] == "invalid_argument" and "paid" in fresh["message"], "a new key on a paid invoice is refused"


class LosePayment:
    """Answers the first POST /payment with 503 after QuickBooks booked it."""

    def __init__(self, app: Any) -> None:
        self.app, self.armed = app, False

    def around(self, app: Any) -> LosePayment:
        """Wrap `app` (`tests.accounting_support`'s `wrap`)."""
        self.app = app
        return self

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.armed and scope["method"] == "POST" and scope["path"].endswith("/payment"):
            self.armed = False

            async def drop(message: Any) -> None:
                return None

            await self.app(scope, receive, drop)
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await self.app(scope, receive, send)


async def test_quickbooks_keyed_full_payment_is_answered_on_retry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shim = LosePayment(None)
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path, wrap=shim.around)
    server = create_server(backend)
    invoice = (await call(server, ALICE, "create_invoice", contact_id="customer:58", issue_date="2026-03-01",
                          lines=[{"description": "x", "quantity": "1", "unit_price": "100.00", "item": "1"}]))["invoice"]
    args = dict(invoice_id=invoice["id"], amount="100.00", date="2026-03-02", idempotency_key="pay-1")
    shim.armed = True
    assert (await call(server, ALICE, "record_payment", **args))["code"] == "unavailable"
    retried = await call(server, ALICE, "record_payment", **args)
    assert "code" not in retried and retried["invoice_balance"] == "0.00", retried
    assert retried["id"] == f"payment:{next(iter(fake.store['Payment']))}" and len(fake.store["Payment"]) == 1
    fresh = await call(server, ALICE, "record_payment", **dict(args, idempotency_key="pay-2"))
    assert fresh["code"] == "invalid_argument" and "paid" in fresh["message"], fresh
    assert len(fake.store["Payment"]) == 1, "never an overpayment"
