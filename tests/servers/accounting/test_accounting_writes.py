"""Accounting writes land as meant (issue #16, items 9-10): a fully paid invoice shows the same
amounts on the cash and accrual bases to the cent, with partial payments recognised as consistent
cumulative allocations; and every refused payment or amount says what is wrong, truly, and what to
do — through the MCP interface (the hub in front of the embedded ledger, or a client session)."""

from __future__ import annotations

import datetime as _dt
import tempfile
from decimal import Decimal
from pathlib import Path
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from hub.hub import Hub
from servers.accounting.server import create_server
from servers.accounting.store import EmbeddedAccounting
from tests.accounting_support import xero_on_fake
from tests.domain_support import hub_fixture, tool_caller

pytestmark = pytest.mark.anyio
D = Decimal
YEAR = {"start": "2026-01-01", "end": "2026-12-31"}


hub = hub_fixture("accounting")
call = tool_caller("accounting")


def refused(answer: dict[str, Any], *words: str) -> str:
    """The message of an `invalid_argument` answer that contains every one of `words`."""
    assert answer.get("code") == "invalid_argument", answer
    for word in words:
        assert word in answer["message"], (word, answer["message"])
    return answer["message"]


async def rows(hub: Hub, basis: str, as_of: str = "2026-12-31") -> dict[str, str]:
    trial = await call(hub, "get_report", report="trial_balance", as_of=as_of, basis=basis)
    assert trial["balanced"], trial
    return {row["account_code"]: row["amount"] for row in trial["sections"][0]["rows"]}


# -- 9. cash basis = accrual basis once paid -----------------------------------------------------


async def test_the_issue_invoice_paid_50_20_50_is_cent_exact_on_the_cash_basis(hub: Hub) -> None:
    customer = await call(hub, "upsert_contact", name="Acme")
    line = {"quantity": "1", "unit_price": "33.33", "account_code": "4000", "tax_code": "STD20"}
    invoice = (await call(hub, "create_invoice", contact_id=customer["id"], lines=[line] * 3, issue_date="2026-03-01"))["invoice"]
    assert (invoice["subtotal"], invoice["tax_total"], invoice["total"]) == ("99.99", "20.01", "120.00")
    # after each payment, the cash basis has recognised the allocation of everything paid so far
    expected = {"2026-03-02": ("50.00", "41.66", "8.34"), "2026-03-03": ("20.00", "58.33", "11.67"),
                "2026-03-04": ("50.00", "99.99", "20.01")}
    for day, (amount, income, tax) in expected.items():
        await call(hub, "record_payment", invoice_id=invoice["id"], amount=amount, date=day)
        cash = await rows(hub, "cash", day)
        assert (cash["4000"], cash["2100"]) == (income, tax), (day, cash)
        pnl = await call(hub, "get_report", report="profit_and_loss", basis="cash", start="2026-03-01", end=day)
        assert pnl["totals"]["income"] == income
    accrual = await call(hub, "get_report", report="profit_and_loss", **YEAR)
    cash_pnl = await call(hub, "get_report", report="profit_and_loss", basis="cash", **YEAR)
    assert cash_pnl["totals"] == accrual["totals"] == {"income": "99.99", "expenses": "0.00", "net_income": "99.99"}
    assert await rows(hub, "cash") == await rows(hub, "accrual") == {"1000": "120.00", "2100": "20.01", "4000": "99.99"}


line_spec = st.fixed_dictionaries({
    "quantity": st.decimals(min_value=D("1"), max_value=D("40"), places=1),
    "unit_price": st.one_of(st.decimals(min_value=D("0.01"), max_value=D("700"), places=2),
                            st.decimals(min_value=D("0.01"), max_value=D("90"), places=4)),
    "tax_code": st.sampled_from(["NONE", "STD20", "RED5"]),
    "second_account": st.booleans(),
})
INCOME, EXPENSE = {False: "4000", True: "4100"}, {False: "6000", True: "6200"}


async def _settle(kind: str, specs: list[dict[str, Any]], parts: list[int], same_day: list[bool]) -> None:
    """Create one invoice or bill, pay it off in `parts` (relative sizes), and check the books at every step."""
    with tempfile.TemporaryDirectory() as folder:
        async with Client(create_server(EmbeddedAccounting(Path(folder), "USD"))) as client:
            async def ask(tool: str, **args: Any) -> dict[str, Any]:
                answer = (await client.call_tool(tool, args)).structured_content
                assert answer is not None and "code" not in answer, answer
                return answer

            async def trial(basis: str, day: str) -> dict[str, Decimal]:
                report = await ask("get_report", report="trial_balance", as_of=day, basis=basis)
                assert report["balanced"] and report["totals"]["debit"] == report["totals"]["credit"], report
                return {row["account_code"]: D(row["amount"]) for row in report["sections"][0]["rows"]}

            contact = await ask("upsert_contact", name="Party", kind="customer" if kind == "receivable" else "vendor")
            accounts = INCOME if kind == "receivable" else EXPENSE
            lines = [{"quantity": str(s["quantity"]), "unit_price": str(s["unit_price"]), "tax_code": s["tax_code"],
                      "account_code": accounts[s["second_account"]]} for s in specs]
            invoice = (await ask("create_invoice", kind=kind, contact_id=contact["id"], lines=lines, issue_date="2026-02-01"))["invoice"]
            total = D(invoice["total"])
            # what the invoice recognises in full, per account (on its normal side): nets per account, and tax
            weights: dict[str, Decimal] = {}
            for line in invoice["lines"]:
                weights[line["account_code"]] = weights.get(line["account_code"], D(0)) + D(line["net"])
            weights["2100" if kind == "receivable" else "1200"] = D(invoice["tax_total"])
            slack = D("0.005") * max(len(weights) - 1, 1)
            cents, whole = int(total * 100), sum(parts)
            cuts = sorted({cents * sum(parts[: i + 1]) // whole for i in range(len(parts))} - {0})
            day, paid = _dt.date(2026, 2, 1), D(0)
            for index, cut in enumerate(cuts):
                amount = D(cut - (cuts[index - 1] if index else 0)) / 100
                day += _dt.timedelta(days=0 if same_day[index % len(same_day)] else 1)
                payment = await ask("record_payment", invoice_id=invoice["id"], amount=f"{amount:.2f}", date=day.isoformat())
                paid += amount
                cash = await trial("cash", day.isoformat())
                await trial("accrual", day.isoformat())
                for code, weight in weights.items():  # a consistent cumulative allocation of what is paid so far
                    assert abs(cash.get(code, D(0)) - paid * weight / total) <= slack, (code, cash, paid, weights)
            assert payment["invoice_status"] == "paid" and paid == total
            cash, accrual = await trial("cash", "2026-12-31"), await trial("accrual", "2026-12-31")
            assert cash == accrual, "once paid, every account is the same on both bases, to the cent"
            for code, weight in weights.items():
                assert cash.get(code, D(0)) == weight
            both = [await ask("get_report", report="profit_and_loss", basis=basis, **YEAR) for basis in ("cash", "accrual")]
            assert both[0]["totals"] == both[1]["totals"] and both[0]["sections"] == both[1]["sections"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["receivable", "payable"]), specs=st.lists(line_spec, min_size=1, max_size=4),
       parts=st.lists(st.integers(1, 1000), min_size=1, max_size=5), same_day=st.lists(st.booleans(), min_size=1, max_size=5))
def test_any_invoice_paid_off_in_any_split_is_the_same_on_both_bases(kind: str, specs: list[dict[str, Any]], parts: list[int],
                                                                    same_day: list[bool]) -> None:
    anyio.run(_settle, kind, specs, parts, same_day)


# -- 10. clear, true errors ----------------------------------------------------------------------


async def test_payment_refusals_say_what_is_wrong_and_write_nothing(hub: Hub) -> None:
    customer = await call(hub, "upsert_contact", name="Acme")
    line = {"quantity": "2", "unit_price": "50.00", "account_code": "4100", "tax_code": "STD20"}
    invoice = (await call(hub, "create_invoice", contact_id=customer["id"], lines=[line], issue_date="2026-03-10"))["invoice"]
    before = await call(hub, "list_transactions", start="2026-01-01", end="2026-12-31", limit=500)

    async def pay(**args: Any) -> dict[str, Any]:
        return await call(hub, "record_payment", invoice_id=invoice["id"], **args)

    early = await pay(amount="10.00", date="2026-03-09")
    refused(early, "2026-03-09", "2026-03-10", "before")
    assert early["details"]["field"] == "date"
    huge = refused(await pay(amount="1" * 24, date="2026-03-11"), "too large", "24 digits", "15")
    assert "not a decimal" not in huge
    refused(await pay(amount="12,50"), "not a decimal amount", "12.50")
    assert len(refused(await pay(amount="9" * 200_000))) < 500, "a huge value is never echoed back"
    for amount in ("0", "0.00", "-5.00"):
        assert refused(await pay(amount=amount, date="2026-03-11"), "above zero")
    refused(await pay(amount="10.001", date="2026-03-11"), "10.001", "more decimals than USD allows", "2")
    mismatch = await pay(amount="10.00", currency="EUR", date="2026-03-11")
    refused(mismatch, "EUR", "USD", invoice["number"])
    assert mismatch["details"]["field"] == "currency"
    refused(await pay(amount="120.01", date="2026-03-11"), "more than the balance due", "120.00")
    after = await call(hub, "list_transactions", start="2026-01-01", end="2026-12-31", limit=500)
    assert after == before and (await call(hub, "get_invoice", invoice_id=invoice["id"]))["balance"] == "120.00"

    same_day = await pay(amount="20.00", date="2026-03-10", currency="usd")
    assert same_day["invoice_balance"] == "100.00", "a payment on the issue date is fine"
    assert (await pay(amount="100.00", date="2026-03-20"))["invoice_status"] == "paid"
    refused(await pay(amount="1.00", date="2026-03-21"), "paid", "no more payments")
    draft = (await call(hub, "create_invoice", contact_id=customer["id"], lines=[line], approve=False))["invoice"]
    refused(await call(hub, "record_payment", invoice_id=draft["id"], amount="1.00"), "draft", "approve")


async def test_omitted_account_codes_use_the_documented_defaults(hub: Hub) -> None:
    customer = await call(hub, "upsert_contact", name="Acme")
    vendor = await call(hub, "upsert_contact", name="Paper", kind="vendor")
    sale = await call(hub, "create_invoice", contact_id=customer["id"], lines=[{"unit_price": "10.00"}], issue_date="2026-03-01")
    bill = await call(hub, "create_invoice", kind="payable", contact_id=vendor["id"], lines=[{"unit_price": "4.00"}],
                      issue_date="2026-03-01")
    assert sale["invoice"]["lines"][0]["account_code"] == "4000", sale
    assert bill["invoice"]["lines"][0]["account_code"] == "6000", bill
    paid = await call(hub, "record_payment", invoice_id=sale["invoice"]["id"], amount="10.00", date="2026-03-02")
    assert paid["account_code"] == "1000"
    assert await rows(hub, "accrual") == {"1000": "10.00", "2000": "4.00", "4000": "10.00", "6000": "4.00"}
    schema = {t.name: t for t in hub.catalog.tools()}["accounting__create_invoice"].input_schema
    assert "4000" in str(schema) and "6000" in str(schema), "the default accounts are documented where agents read them"


async def test_amounts_beyond_the_limits_are_refused_as_too_large(hub: Hub) -> None:
    customer = await call(hub, "upsert_contact", name="Acme")
    big = [{"quantity": "999999999999999", "unit_price": "999999999999999", "account_code": "4000"}]
    refused(await call(hub, "create_invoice", contact_id=customer["id"], lines=big), "lines[0]", "too large", "999999999999999.99")
    refused(await call(hub, "create_invoice", contact_id=customer["id"], lines=[{"unit_price": "1" * 22}]), "unit_price", "too large")
    refused(await call(hub, "create_invoice", contact_id=customer["id"], lines=[{"unit_price": "1.123456789"}]), "9 decimal places")
    many = [{"quantity": "1", "unit_price": "900000000000000", "account_code": "4000"}] * 2
    refused(await call(hub, "create_invoice", contact_id=customer["id"], lines=many), "invoice total", "too large")
    journal = [{"account_code": "1000", "debit": "1" * 24}, {"account_code": "3000", "credit": "1" * 24}]
    refused(await call(hub, "create_journal_entry", lines=journal), "lines[0].debit", "too large", "15 digits")
    assert (await call(hub, "list_transactions", **YEAR))["transactions"] == [], "nothing was posted"


async def test_the_providers_share_the_payment_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        async def ask(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        acme = (await ask("search_contacts", query="acme"))["contacts"][0]
        lines = [{"quantity": "1", "unit_price": "100.00", "account_code": "200", "tax_code": "NONE"}]
        invoice = (await ask("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-03-01"))["invoice"]
        pay = {"invoice_id": invoice["id"], "account_code": "090"}
        refused(await ask("record_payment", **pay, amount="10.00", date="2026-02-28"), "before", "2026-03-01")
        refused(await ask("record_payment", **pay, amount="10.00", currency="USD", date="2026-03-02"), "NZD", "USD")
        refused(await ask("record_payment", **pay, amount="10.005", date="2026-03-02"), "more decimals than NZD")
        refused(await ask("record_payment", **pay, amount="0", date="2026-03-02"), "above zero")
        assert not [r for r in fake.requests if r["path"].endswith("/Payments")], "refused before anything was sent to Xero"
        paid = await ask("record_payment", **pay, amount="10.00", currency="NZD", date="2026-03-01")
        assert paid["invoice_balance"] == "90.00"
        # Xero keeps a field sent empty: clearing one is refused there, not answered as done (re-check).
        before = len(fake.requests)
        refused(await ask("upsert_contact", id=acme["id"], name=acme["name"], email=""), "clearing", "Xero")
        assert len(fake.requests) == before


async def test_an_update_changes_only_the_fields_given_and_a_repeated_create_makes_no_duplicate(hub: Hub) -> None:
    """Outside review: `upsert_contact(id, name)` wiped the email and tax id and turned a vendor into a
    customer; two identical creates (a hub retry of a tool marked idempotent) made two contacts."""
    vendor = await call(hub, "upsert_contact", name="Vendor V", kind="vendor", email="v@example.com", tax_number="GB123")
    renamed = await call(hub, "upsert_contact", id=vendor["id"], name="Vendor V Ltd")
    kept = {k: renamed[k] for k in ("name", "kind", "email", "tax_number")}
    assert kept == {"name": "Vendor V Ltd", "kind": "vendor", "email": "v@example.com", "tax_number": "GB123"}
    stored = (await call(hub, "search_contacts", query="Vendor V"))["contacts"]
    assert [(c["name"], c["kind"], c["email"], c["tax_number"]) for c in stored] == [("Vendor V Ltd", "vendor", "v@example.com", "GB123")]
    cleared = await call(hub, "upsert_contact", id=vendor["id"], name="Vendor V Ltd", email="", kind="both")
    assert (cleared["email"], cleared["kind"], cleared["tax_number"]) == (None, "both", "GB123")

    first = await call(hub, "upsert_contact", name="Dup Co", email="ap@dup.example")
    again = await call(hub, "upsert_contact", name="Dup Co", email="ap@dup.example")
    assert again["id"] == first["id"]
    assert len((await call(hub, "search_contacts", query="Dup Co"))["contacts"]) == 1
    other = await call(hub, "upsert_contact", name="Dup Co", email="sales@dup.example")  # another contact of that name
    assert other["id"] != first["id"]


async def test_update_invoice_refuses_fields_its_action_would_drop(hub: Hub) -> None:
    """Outside review: `approve` with a due date, reference and lines (or `void` with a reference)
    answered success and stored none of them. Now refused, and nothing changes."""
    customer = await call(hub, "upsert_contact", name="Acme")
    draft = (await call(hub, "create_invoice", contact_id=customer["id"], issue_date="2026-05-01", due_date="2026-05-31",
                        lines=[{"description": "x", "unit_price": "10"}], approve=False))["invoice"]
    message = refused(await call(hub, "update_invoice", invoice_id=draft["id"], action="approve", due_date="2026-09-01",
                                 reference="PO-9"), "approve", "due_date", "reference", "nothing was changed")
    assert "Patch" in message
    refused(await call(hub, "update_invoice", invoice_id=draft["id"], action="void", confirm=True, reference="wrong"), "void", "reference")
    refused(await call(hub, "update_invoice", invoice_id=draft["id"], action="patch", reference="PO-9", confirm=True), "confirm")
    stored = await call(hub, "get_invoice", invoice_id=draft["id"])
    assert (stored["status"], stored["due_date"], stored.get("reference")) == ("draft", "2026-05-31", None)
    patched = await call(hub, "update_invoice", invoice_id=draft["id"], action="patch", due_date="2026-09-01", reference="PO-9")
    assert (patched["due_date"], patched["reference"]) == ("2026-09-01", "PO-9")
    assert (await call(hub, "update_invoice", invoice_id=draft["id"], action="approve"))["status"] == "open"


async def test_amounts_are_stored_at_the_currencys_scale(hub: Hub) -> None:
    """Outside review: a payment of "10.000" USD and a journal line of "5.000" passed the precision
    check (they are whole cents) and were echoed and stored with that scale, unlike every other amount."""
    customer = await call(hub, "upsert_contact", name="Scale Co")
    line = {"quantity": "1", "unit_price": "100.00", "account_code": "4000", "tax_code": "NONE"}
    invoice = (await call(hub, "create_invoice", contact_id=customer["id"], lines=[line], issue_date="2026-05-01"))["invoice"]
    paid = await call(hub, "record_payment", invoice_id=invoice["id"], amount="10.000", date="2026-05-02")
    assert paid["amount"] == "10.00" and paid["invoice_balance"] == "90.00"
    entry = await call(hub, "create_journal_entry", date="2026-05-03", memo="scale",
                       lines=[{"account_code": "6100", "debit": "5.000"}, {"account_code": "1000", "credit": "5.0"}])
    assert [(l["debit"], l["credit"]) for l in entry["lines"]] == [("5.00", "0.00"), ("0.00", "5.00")]
    moved = (await call(hub, "list_transactions", start="2026-05-02", end="2026-05-03"))["transactions"]
    amounts = {t["debit"] for t in moved} | {t["credit"] for t in moved}
    assert amounts <= {"0.00", "5.00", "10.00"}, amounts


async def test_control_accounts_move_only_with_their_documents(hub: Hub) -> None:
    """Outside review: a journal to Accounts Receivable (or a bill line coded to it) was posted, so the balance
    sheet's receivables no longer matched the aged receivables report. They are control accounts, as in Xero."""
    customer = await call(hub, "upsert_contact", name="Control Co")
    line = {"quantity": "1", "unit_price": "100.00", "account_code": "4000", "tax_code": "NONE"}
    invoice = (await call(hub, "create_invoice", contact_id=customer["id"], lines=[line], issue_date="2026-05-01"))["invoice"]
    await call(hub, "update_invoice", invoice_id=invoice["id"], action="approve")
    before = await rows(hub, "accrual")
    for code in ("1100", "2000"):
        journal = await call(hub, "create_journal_entry", date="2026-05-03", memo="write-off",
                             lines=[{"account_code": "6000", "debit": "40.00"}, {"account_code": code, "credit": "40.00"}])
        refused(journal, "lines[1].account_code", f"account {code} is a control account")
        assert journal["details"]["control_account"] == code
    vendor = await call(hub, "upsert_contact", name="Control Supplies", kind="vendor")
    bill = await call(hub, "create_invoice", contact_id=vendor["id"], kind="payable",
                      lines=[{**line, "account_code": "1100"}], issue_date="2026-05-01")
    refused(bill, "lines[0].account_code", "control account")
    assert await rows(hub, "accrual") == before, "nothing was posted"
    aged = await call(hub, "get_report", report="aged_receivables", as_of="2026-12-31")
    assert before["1100"] == aged["totals"]["total"] == "100.00", aged


@asynccontextmanager
async def a_payment_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            after_commit: Callable[[], Awaitable[None]]) -> AsyncIterator[tuple[Hub, dict[str, Any]]]:
    """An in-process hub (1 s deadline, no retries) whose payments commit and then await `after_commit`; yields
    the hub and the arguments of a keyed 30.00 payment on a new 100.00 invoice, already answered `timeout`."""
    from hub.config import parse_config

    original = EmbeddedAccounting.pay

    async def pay_then_linger(self: EmbeddedAccounting, *args: Any, **kwargs: Any) -> Any:
        paid = await original(self, *args, **kwargs)  # committed
        await after_commit()  # and still busy when the deadline comes
        return paid

    monkeypatch.setattr(EmbeddedAccounting, "pay", pay_then_linger)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    config = parse_config({"mcpServers": {"accounting": {"builtin": "accounting", "timeout_s": 1, "max_timeout_s": 1,
                                                         "retry": {"max_attempts": 1}}}})
    async with Hub(config) as running:
        customer = await call(running, "upsert_contact", name="Deadline Co")
        line = {"quantity": "1", "unit_price": "100.00", "account_code": "4000", "tax_code": "NONE"}
        invoice = (await call(running, "create_invoice", contact_id=customer["id"], lines=[line],
                              issue_date="2026-05-01"))["invoice"]
        payment = {"invoice_id": invoice["id"], "amount": "30.00", "date": "2026-05-02", "idempotency_key": "pay-1"}
        late = await call(running, "record_payment", **payment)
        assert late["code"] == "timeout", late
        yield running, payment


async def test_a_keyed_write_cut_off_by_the_deadline_is_recorded_and_a_retry_replays_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside review: a payment whose write committed as the hub's deadline cancelled its call lost its
    idempotency record (the key answered "still running" for 5 minutes, then the retry paid again: 60.00
    paid for one 30.00 payment). The keyed write now runs to its end and is recorded."""
    slow = anyio.Event()
    async with a_payment_cut_off(tmp_path, monkeypatch, slow.wait) as (running, payment):
        slow.set()  # the write ends on its own and records its answer
        with anyio.fail_after(30):
            # "still running" (conflict) until it is recorded; on a loaded machine the retry itself may pass the
            # 1 s deadline (timeout), and is sent again as a client would: a second payment would show as 40.00
            while (again := await call(running, "record_payment", **payment)).get("code") in ("conflict", "timeout"):
                await anyio.sleep(0.05)
        assert again.get("invoice_balance") == "70.00", again
        assert (await call(running, "record_payment", **payment))["id"] == again["id"]
        shown = await call(running, "get_invoice", invoice_id=payment["invoice_id"])
        assert (shown["amount_paid"], shown["balance"]) == ("30.00", "70.00"), shown


async def test_a_keyed_write_cut_off_by_a_stop_keeps_its_key_claimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-check: a hub stopped while a keyed payment was still running released its key after the write had
    committed, and the retry paid again at once. The claim now stays: the retry hears "still running"."""
    from servers.kit import tools

    async with a_payment_cut_off(tmp_path, monkeypatch, anyio.sleep_forever) as (running, payment):
        for task in list(tools._DETACHED):  # noqa: SLF001 — what stopping the server does to it
            task.cancel()
        with anyio.fail_after(10):
            while tools._DETACHED:  # noqa: SLF001
                await anyio.sleep(0.01)
        retry = await call(running, "record_payment", **payment)
        assert retry["code"] == "conflict" and "still running" in retry["message"], retry
        # Later (re-check: the takeover of a claim 5 minutes old paid a second time), the outcome is unknown:
        monkeypatch.setattr("servers.kit.idempotency.STALE_CLAIM_S", 0)
        later = await call(running, "record_payment", **payment)
        assert later["code"] == "conflict" and later["details"]["outcome"] == "unknown" and not later["retryable"], later
        shown = await call(running, "get_invoice", invoice_id=payment["invoice_id"])
        assert shown["amount_paid"] == "30.00", "paid once"


async def test_numbers_name_invoices_for_writes_and_kinds_and_dates_stay_consistent(hub: Hub) -> None:
    """Re-check: update_invoice by number said the invoice did not exist; a customer made a vendor after its
    invoice stayed in aged receivables; a journal dated 300 days ahead moved today's balances."""
    customer = await call(hub, "upsert_contact", name="Number Co")
    line = {"quantity": "1", "unit_price": "110.00", "account_code": "4000", "tax_code": "NONE"}
    made = (await call(hub, "create_invoice", contact_id=customer["id"], lines=[line], issue_date="2026-05-01"))["invoice"]
    paid = await call(hub, "record_payment", invoice_id=made["number"], amount="10.00", date="2026-05-02")
    assert paid["invoice_balance"] == "100.00", paid
    patched = await call(hub, "update_invoice", invoice_id=made["number"], action="patch", reference="PO-7")
    assert patched["id"] == made["id"] and patched["reference"] == "PO-7", patched
    refused(await call(hub, "upsert_contact", id=customer["id"], name="Number Co", kind="vendor"), "kind:", "both")
    assert (await call(hub, "upsert_contact", id=customer["id"], name="Number Co", kind="both"))["kind"] == "both"
    ahead = (_dt.date.today() + _dt.timedelta(days=300)).isoformat()
    refused(await call(hub, "create_journal_entry", date=ahead, memo="later",
                       lines=[{"account_code": "1000", "debit": "1.00"}, {"account_code": "4000", "credit": "1.00"}]),
            "date:", "future")


async def test_lines_contacts_dates_and_numbers_that_led_the_books_astray(hub: Hub) -> None:
    """Outside review: a bill line on 1000 Bank made cash that never arrived (1200 Input Tax passed too); a
    sales invoice to a vendor put the vendor in aged receivables; a payment dated 200 days ahead made an
    invoice read paid while today's reports showed it owed; get_invoice by number said not_found."""
    vendor = await call(hub, "upsert_contact", name="Supplies Ltd", kind="vendor")
    customer = await call(hub, "upsert_contact", name="Buyer Inc")
    line = {"quantity": "1", "unit_price": "500.00", "tax_code": "NONE"}
    before = await rows(hub, "accrual")
    for code in ("1000", "1200"):
        bill = await call(hub, "create_invoice", contact_id=vendor["id"], kind="payable",
                          lines=[{**line, "account_code": code}], issue_date="2026-05-01")
        refused(bill, "lines[0].account_code", f"account {code}")
    refused(await call(hub, "create_invoice", contact_id=vendor["id"], lines=[{**line, "account_code": "4000"}],
                       issue_date="2026-05-01"), "is a vendor", "upsert_contact")
    refused(await call(hub, "create_invoice", contact_id=customer["id"], kind="payable",
                       lines=[{**line, "account_code": "6000"}], issue_date="2026-05-01"), "is a customer")
    assert (await call(hub, "search_invoices"))["invoices"] == [] and await rows(hub, "accrual") == before

    made = (await call(hub, "create_invoice", contact_id=customer["id"], lines=[{**line, "account_code": "4000"}],
                       issue_date="2026-05-01"))["invoice"]
    await call(hub, "update_invoice", invoice_id=made["id"], action="approve")
    assert (await call(hub, "get_invoice", invoice_id=made["number"]))["id"] == made["id"]
    ahead = (_dt.date.today() + _dt.timedelta(days=200)).isoformat()
    refused(await call(hub, "record_payment", invoice_id=made["id"], amount="50.00", date=ahead), "date:", "future")
    refused(await call(hub, "update_invoice", invoice_id=made["id"], action="void", void_date=ahead, confirm=True),
            "void_date:", "future")
    shown = await call(hub, "get_invoice", invoice_id=made["id"])
    assert (shown["status"], shown["balance"]) != ("voided", "0.00") and shown["amount_paid"] == "0.00", shown


async def test_free_text_with_control_characters_is_refused(hub: Hub) -> None:
    customer = await call(hub, "upsert_contact", name="Plain Co")
    line = {"quantity": "1", "unit_price": "1.00", "account_code": "4000", "tax_code": "NONE"}
    for tool, args, field in (
        ("upsert_contact", {"name": "Bad\x07Bell"}, "name"),
        ("create_invoice", {"contact_id": customer["id"], "lines": [{**line, "description": "a\x00b"}]}, "lines"),
        ("create_journal_entry", {"memo": "x\x1by", "lines": [{"account_code": "6100", "debit": "1.00"},
                                                              {"account_code": "1000", "credit": "1.00"}]}, "memo"),
    ):
        answer = await call(hub, tool, **args)
        assert answer["code"] == "invalid_argument" and answer["details"] == {"field": field}, (tool, answer)
    assert (await call(hub, "search_invoices"))["invoices"] == []
