"""Provider de-duplication keys (Xero `Idempotency-Key`, QuickBooks `requestid`) are derived from the
caller, the tool and the caller's key, never the key itself (outside review writes17 #1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from servers.accounting.server import create_server
from servers.kit.caller import Caller, bind_caller
from servers.kit import idempotency
from tests.accounting_support import quickbooks_on_fake, xero_on_fake
from tests.fakes.xero import FakeXero

pytestmark = pytest.mark.anyio

ALICE = Caller("api_key:alice", frozenset({"*"}), kind="api_key", name="alice", namespace="accounting")
BOB = Caller("api_key:bob", frozenset({"*"}), kind="api_key", name="bob", namespace="accounting")


async def call(server: Any, who: Caller, tool: str, **args: Any) -> dict[str, Any]:
    with bind_caller(who):
        return (await server.call_tool(tool, args)).structured_content  # type: ignore[no-any-return]


class LoseAnswer:
    """Passes every request on, but answers the first PUT to `path_end` with 502 after the app handled
    it: the write landed, its answer was lost."""

    def __init__(self, app: Any, path_end: str) -> None:
        self.app, self.path_end, self.lost = app, path_end, False

    def around(self, app: Any) -> LoseAnswer:
        """Wrap `app` (`tests.accounting_support`'s `wrap`)."""
        self.app = app
        return self

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.lost or scope["method"] != "PUT" or not scope["path"].endswith(self.path_end):
            await self.app(scope, receive, send)
            return
        self.lost = True

        async def drop(message: Any) -> None:
            return None

        await self.app(scope, receive, drop)
        await send({"type": "http.response.start", "status": 502, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"Message":"bad gateway"}'})


@pytest.fixture
def xero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeXero, LoseAnswer, Any]:
    shim = LoseAnswer(None, "/Invoices")
    shim.lost = True  # off until a test arms it
    monkeypatch.setenv("XERO_BANK_ACCOUNT_CODE", "090")
    fake, backend = xero_on_fake(monkeypatch, tmp_path, wrap=shim.around)
    return fake, shim, create_server(backend)


def test_provider_key_is_scoped_to_caller_and_tool() -> None:
    provider_key = idempotency.provider_key
    with bind_caller(ALICE):
        mine, again, other_tool = provider_key("create_invoice", "k"), provider_key("create_invoice", "k"), provider_key("record_payment", "k")
        short = provider_key("create_invoice", "k", length=50)
        assert provider_key("create_invoice", None) is None
    with bind_caller(BOB):
        bobs = provider_key("create_invoice", "k")
    assert mine == again and len({mine, other_tool, bobs, "k"}) == 4
    assert short is not None and mine is not None and len(short) == 50 and mine.startswith(short)


async def test_xero_keys_are_per_caller_and_per_tool(xero: tuple[FakeXero, LoseAnswer, Any]) -> None:
    fake, _, server = xero
    ids = {c["Name"]: c["ContactID"] for c in fake.contacts.values()}
    line = {"description": "A", "quantity": "1", "unit_price": "100.00", "account_code": "200"}
    alice = (await call(server, ALICE, "create_invoice", contact_id=ids["Acme Ltd"], issue_date="2026-03-01",
                        idempotency_key="march", lines=[line]))["invoice"]
    sent = [r for r in fake.requests if r["method"] == "PUT"][-1]["headers"]["idempotency-key"]
    assert sent != "march" and len(sent) <= 128, "never the caller's own key"
    bob = (await call(server, BOB, "create_invoice", contact_id=ids["Both Ways"], issue_date="2026-03-02", idempotency_key="march",
                      lines=[dict(line, quantity="2", unit_price="7.50")]))["invoice"]
    assert bob["id"] != alice["id"] and (bob["contact_name"], bob["total"]) == ("Both Ways", "15.00"), "not alice's invoice"
    assert len(fake.invoices) == 2
    paid = await call(server, ALICE, "record_payment", invoice_id=alice["id"], amount="30.00", date="2026-03-03",
                      idempotency_key="march")
    assert "code" not in paid, paid
    assert (paid["invoice_balance"], (await call(server, ALICE, "get_invoice", invoice_id=alice["id"]))["balance"]) == ("70.00", "70.00")
    journal = await call(server, ALICE, "create_journal_entry", date="2026-03-03", memo="Accrual", idempotency_key="march",
                         lines=[{"account_code": "469", "debit": "5.00"}, {"account_code": "090", "credit": "5.00"}])
    assert "code" not in journal and journal["id"] != alice["id"], journal


async def test_xero_retry_after_a_lost_answer_reaches_the_same_key(xero: tuple[FakeXero, LoseAnswer, Any]) -> None:
    fake, shim, server = xero
    ids = {c["Name"]: c["ContactID"] for c in fake.contacts.values()}
    args = dict(contact_id=ids["Acme Ltd"], issue_date="2026-03-01", idempotency_key="retry-me",
                lines=[{"description": "A", "quantity": "1", "unit_price": "100.00", "account_code": "200"}])
    shim.lost = False
    lost = await call(server, ALICE, "create_invoice", **args)
    assert lost["code"] == "unavailable" and lost["retryable"] and len(fake.invoices) == 1, "it landed; its answer was lost"
    retried = await call(server, ALICE, "create_invoice", **args)
    keys = [r["headers"]["idempotency-key"] for r in fake.requests if r["method"] == "PUT"]
    assert len(set(keys)) == 1 and len(keys) == 2, "the retry sent the same provider key"
    assert len(fake.invoices) == 1 and retried["invoice"]["total"] == "100.00", "Xero replayed it: one invoice"


async def test_quickbooks_request_ids_are_per_caller(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    server = create_server(backend)
    line = {"description": "Consulting", "quantity": "1", "unit_price": "150.00", "item": "1"}
    alice = (await call(server, ALICE, "create_invoice", contact_id="customer:58", issue_date="2026-03-01", lines=[line],
                        idempotency_key="same"))["invoice"]
    bob = (await call(server, BOB, "create_invoice", contact_id="customer:58", issue_date="2026-03-02",
                      lines=[dict(line, unit_price="20.00")], idempotency_key="same"))["invoice"]
    ids = [r["params"]["requestid"] for r in fake.requests if r["method"] == "POST" and "requestid" in r["params"]]
    assert bob["id"] != alice["id"] and bob["total"] == "20.00", "bob's own invoice, not alice's replayed"
    assert len(ids) == 2 and len(set(ids)) == 2 and all(len(i) == 50 for i in ids)
