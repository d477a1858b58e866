"""The accounting domain on the embedded double-entry ledger: every tool, the refusals, and
hypothesis properties that any sequence of business events keeps the books consistent."""

from __future__ import annotations

import datetime as _dt
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters

from hub.config import parse_config
from hub.hub import Hub
from servers.accounting.demo import seed as seed_demo_company
from servers.accounting.ledger import check_journal, price_lines
from servers.accounting.model import ContactInput, JournalLine, LineInput, NewInvoice
from servers.accounting.money import allocate
from servers.accounting.server import create_server
from servers.accounting.store import EmbeddedAccounting
from servers.kit.errors import DomainError
from tests.conftest import PY, ROOT

D = Decimal
DAY0 = _dt.date(2026, 1, 1)


def test_rounding_is_per_line_half_even() -> None:
    totals = price_lines([LineInput(quantity=D("3"), unit_price=D("0.125"), account_code="4000", tax_code="STD20"),
                          LineInput(quantity=D("1"), unit_price=D("0.135"), account_code="4000", tax_code="STD20")], "USD",
                         {"STD20": D("0.20")})
    assert [line.net for line in totals.lines] == [D("0.38"), D("0.14")], "0.375 -> 0.38 and 0.135 -> 0.14 (half-even)"
    assert [line.tax for line in totals.lines] == [D("0.08"), D("0.03")]
    assert (totals.subtotal, totals.tax_total, totals.total) == (D("0.52"), D("0.11"), D("0.63"))
    assert price_lines([LineInput(quantity=D("2.5"), unit_price=D("101"), account_code="4000")], "JPY", {}).total == D("252")
    assert allocate(D("100.00"), [D("1"), D("1"), D("1")], "USD") == [D("33.34"), D("33.33"), D("33.33")]


def test_unbalanced_and_malformed_journals_are_refused() -> None:
    with pytest.raises(DomainError, match="does not balance: debits 100.00 != credits 99.99"):
        check_journal([JournalLine(account_code="1000", debit=D("100.00")), JournalLine(account_code="3000", credit=D("99.99"))], "USD")
    with pytest.raises(DomainError, match="more decimals than USD"):
        check_journal([JournalLine(account_code="1000", debit=D("1.005")), JournalLine(account_code="3000", credit=D("1.005"))], "USD")
    with pytest.raises(DomainError, match="exactly one"):
        check_journal([JournalLine(account_code="1000", debit=D("1"), credit=D("1")), JournalLine(account_code="3000")], "USD")
    with pytest.raises(DomainError, match="at least two"):
        check_journal([JournalLine(account_code="1000", debit=D("1"))], "USD")


@pytest.mark.anyio
async def test_accounting_tools_on_the_embedded_ledger(tmp_path: Path) -> None:
    backend = EmbeddedAccounting(tmp_path)
    async with Client(create_server(backend)) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, args)
            return result.structured_content or {"text": result.content[0].text}  # type: ignore[union-attr]

        chart = (await call("list_accounts"))["accounts"]
        assert {"1000", "1100", "2000", "2100", "3000", "4000", "6000"} <= {a["code"] for a in chart}
        assert [a["code"] for a in (await call("list_accounts", type="income"))["accounts"]] == ["4000", "4100"]
        acme = await call("upsert_contact", name="Acme Corp", email="ap@acme.test")
        vendor = await call("upsert_contact", name="Paper & Co", kind="vendor")
        renamed = await call("upsert_contact", id=acme["id"], name="Acme Corporation", version=acme["version"])
        assert renamed["version"] == "2"
        assert (await call("upsert_contact", id=acme["id"], name="x", version="1"))["code"] == "conflict"
        assert [c["name"] for c in (await call("search_contacts", query="acme"))["contacts"]] == ["Acme Corporation"]
        assert [c["name"] for c in (await call("search_contacts", kind="vendor"))["contacts"]] == ["Paper & Co"]

        lines = [{"description": "Consulting", "quantity": "10", "unit_price": "150.00", "account_code": "4100", "tax_code": "STD20"},
                 {"description": "Travel", "quantity": "1", "unit_price": "80.55", "account_code": "4000"}]
        preview = await call("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-03-01", dry_run=True)
        assert preview["dry_run"] and preview["invoice"] is None
        assert (preview["totals"]["subtotal"], preview["totals"]["tax_total"], preview["totals"]["total"]) == ("1580.55", "300.00", "1880.55")
        assert (await call("list_transactions", start="2026-01-01", end="2026-12-31"))["transactions"] == [], "dry run posts nothing"
        assert (await call("create_invoice", contact_id="C-nobody", lines=lines, dry_run=True))["code"] == "not_found"
        created = await call("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-03-01", idempotency_key="inv-1")
        again = await call("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-03-01", idempotency_key="inv-1")
        invoice = created["invoice"]
        assert again["invoice"]["id"] == invoice["id"] and invoice["status"] == "open" and invoice["due_date"] == "2026-03-31"
        assert len((await call("search_invoices"))["invoices"]) == 1, "the idempotency key made one invoice"
        floaty = await call("create_invoice", contact_id=acme["id"], lines=[{"unit_price": 10.5, "account_code": "4000"}])
        assert floaty["code"] == "invalid_argument" and "lines[0].unit_price" in floaty["message"] and "string" in floaty["message"], \
            "a float amount is refused, not rounded"
        wrong = await call("create_invoice", contact_id=acme["id"], lines=[{"unit_price": "1", "account_code": "6000"}])
        assert wrong["code"] == "invalid_argument" and "expected income" in wrong["message"]

        over = await call("record_payment", invoice_id=invoice["id"], amount="1880.56", date="2026-03-10")
        assert over["code"] == "invalid_argument" and "more than the balance due" in over["message"] and "1880.55" in over["message"]
        assert (await call("record_payment", invoice_id=invoice["id"], amount="-5.00"))["code"] == "invalid_argument"
        assert (await call("record_payment", invoice_id=invoice["id"], amount="1.001"))["code"] == "invalid_argument"
        part = await call("record_payment", invoice_id=invoice["id"], amount="880.55", date="2026-03-10", idempotency_key="pay-1")
        assert (part["invoice_balance"], part["invoice_status"]) == ("1000.00", "partially_paid")
        again = await call("record_payment", invoice_id=invoice["id"], amount="880.55", date="2026-03-10", idempotency_key="pay-1")
        assert again["id"] == part["id"]
        assert (await call("record_payment", invoice_id=invoice["id"], amount="880.55", idempotency_key="pay-1"))["code"] == "conflict"
        overdue = await call("search_invoices", overdue_only=True)
        assert [i["id"] for i in overdue["invoices"]] == [invoice["id"]], "due 31 March 2026, unpaid balance"
        paid = await call("record_payment", invoice_id=invoice["id"], amount="1000.00", date="2026-04-15")
        assert (paid["invoice_balance"], paid["invoice_status"]) == ("0.00", "paid")
        assert (await call("update_invoice", invoice_id=invoice["id"], action="void", confirm=True))["code"] == "invalid_argument"

        bill = (await call("create_invoice", kind="payable", contact_id=vendor["id"], issue_date="2026-03-05", approve=False,
                           lines=[{"description": "Paper", "quantity": "3", "unit_price": "33.33", "account_code": "6000", "tax_code": "RED5"}]))["invoice"]
        assert bill["status"] == "draft" and bill["number"] == "BILL-00001" and bill["total"] == "104.99"
        patched = await call("update_invoice", invoice_id=bill["id"], action="patch", version=bill["version"],
                             lines=[{"description": "Paper", "quantity": "4", "unit_price": "33.33", "account_code": "6000", "tax_code": "RED5"}])
        assert patched["total"] == "139.99" and patched["version"] != bill["version"]
        stale = await call("update_invoice", invoice_id=bill["id"], action="approve", version=bill["version"])
        assert stale["code"] == "conflict"
        approved = await call("update_invoice", invoice_id=bill["id"], action="approve", version=patched["version"])
        assert approved["status"] == "open"
        assert (await call("update_invoice", invoice_id=bill["id"], action="void"))["code"] == "invalid_argument", "void needs confirm"
        voided = await call("update_invoice", invoice_id=bill["id"], action="void", confirm=True, void_date="2026-03-20")
        assert voided["status"] == "voided" and voided["balance"] == "0.00"
        ledger = (await call("list_transactions", start="2026-01-01", end="2026-12-31", limit=500))["transactions"]
        sources = [t["source"] for t in ledger if t["source_id"] == bill["id"]]
        assert sources.count("payable") == 3 and sources.count("void") == 3, "the void reversed the bill's postings; none deleted"
        ap = [t for t in ledger if t["account_code"] == "2000"]
        assert sum(D(t["credit"]) - D(t["debit"]) for t in ap) == 0
        page = await call("list_transactions", start="2026-01-01", end="2026-12-31", limit=4)
        rest = await call("list_transactions", start="2026-01-01", end="2026-12-31", limit=500, cursor=page["next_cursor"])
        assert [t["id"] for t in page["transactions"] + rest["transactions"]] == [t["id"] for t in ledger]

        unbalanced = await call("create_journal_entry", date="2026-03-31", memo="Rent",
                                lines=[{"account_code": "6100", "debit": "1200.00"}, {"account_code": "1000", "credit": "1100.00"}])
        assert unbalanced["code"] == "invalid_argument" and "does not balance" in unbalanced["message"]
        await call("create_journal_entry", date="2026-03-31", memo="Rent",
                   lines=[{"account_code": "6100", "debit": "1200.00"}, {"account_code": "1000", "credit": "1200.00"}])
        ghost = await call("create_journal_entry", lines=[{"account_code": "9999", "debit": "1"}, {"account_code": "1000", "credit": "1"}])
        assert ghost["code"] == "invalid_argument" and "9999" in ghost["message"]

        accrual = await call("get_report", report="profit_and_loss", start="2026-03-01", end="2026-03-31")
        cash = await call("get_report", report="profit_and_loss", start="2026-03-01", end="2026-03-31", basis="cash")
        assert accrual["totals"] == {"income": "1580.55", "expenses": "1200.00", "net_income": "380.55"}
        # cash: the 880.55 paid in March recognises its share of income (1580.55/1880.55 of it), tax the rest
        assert cash["totals"]["income"] == "740.08" and cash["totals"]["expenses"] == "1200.00"
        trial = await call("get_report", report="trial_balance", as_of="2026-12-31")
        assert trial["balanced"] and trial["totals"]["debit"] == trial["totals"]["credit"]
        sheet = await call("get_report", report="balance_sheet", as_of="2026-12-31")
        assert sheet["balanced"] and sheet["totals"]["assets"] == sheet["totals"]["liabilities_and_equity"]
        aged = await call("get_report", report="aged_receivables", as_of="2026-04-01")
        assert aged["totals"]["1_30"] == "1000.00" and aged["sections"][0]["rows"][0]["name"] == "Acme Corporation"
        assert (await call("get_report", report="aged_receivables", as_of="2026-05-01"))["totals"]["total"] == "0.00"
        assert (await call("get_report", report="profit_and_loss"))["code"] == "invalid_argument"
        assert (await call("create_invoice", contact_id=acme["id"], currency="EUR", lines=lines))["code"] == "invalid_argument"


# -- properties ---------------------------------------------------------------------------------

money = st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)
line = st.fixed_dictionaries({"quantity": st.decimals(min_value=D("0.5"), max_value=D("20"), places=1),
                              "unit_price": st.decimals(min_value=D("0.01"), max_value=D("900"), places=3),
                              "tax_code": st.sampled_from(["NONE", "STD20", "RED5"])})
event = st.one_of(
    st.tuples(st.just("invoice"), st.sampled_from(["receivable", "payable"]), st.lists(line, min_size=1, max_size=3), st.booleans()),
    st.tuples(st.just("pay"), st.integers(0, 50), st.floats(0.05, 1.2)),
    st.tuples(st.just("void"), st.integers(0, 50)),
    st.tuples(st.just("approve"), st.integers(0, 50)),
    st.tuples(st.just("journal"), st.sampled_from(["1000", "1500", "2500", "6000", "6100", "4000"]),
              st.sampled_from(["1000", "2500", "3000", "4100", "6200"]), money),
)


async def _play(events: list[tuple[Any, ...]], data_dir: Path) -> None:
    books = EmbeddedAccounting(data_dir)
    customer = await books.upsert_contact(ContactInput(name="C", kind="customer"))
    vendor = await books.upsert_contact(ContactInput(name="V", kind="vendor"))
    invoices: list[str] = []
    day = DAY0
    for step in events:
        day += _dt.timedelta(days=3)
        try:
            if step[0] == "invoice":
                _, kind, lines, approve = step
                account = "4000" if kind == "receivable" else "6000"
                new = NewInvoice(kind=kind, contact_id=customer.id if kind == "receivable" else vendor.id, issue_date=day,
                                 due_date=day + _dt.timedelta(days=20), currency="USD", approve=approve,
                                 lines=[LineInput(account_code=account, **spec) for spec in lines])
                invoices.append((await books.create_invoice(new, None)).id)
            elif step[0] == "journal":
                _, debit, credit, amount = step
                if debit != credit:
                    await books.journal(day, "j", [JournalLine(account_code=debit, debit=amount),
                                                   JournalLine(account_code=credit, credit=amount)], None)
            elif invoices:
                target = await books.invoice(invoices[step[1] % len(invoices)])
                if step[0] == "pay":
                    amount = min(target.balance, (target.total * D(str(step[2]))).quantize(D("0.01")))
                    if amount <= 0 or target.status not in ("open", "partially_paid"):
                        continue
                    await books.pay(target.id, amount, day, None, None, None)
                elif step[0] == "void":
                    await books.void(target.id, None, day)
                else:
                    await books.approve(target.id, None)
        except DomainError as refused:  # voiding a paid invoice, approving twice: refused and nothing changes
            assert refused.body.code == "invalid_argument", refused.body
        await _check(books, day)


async def _check(books: EmbeddedAccounting, day: _dt.date) -> None:
    before = DAY0 - _dt.timedelta(days=1)
    for basis in ("accrual", "cash"):
        trial = await books.report("trial_balance", basis, None, None, day)  # type: ignore[arg-type]
        assert trial.balanced and trial.totals["debit"] == trial.totals["credit"]
        sheet = await books.report("balance_sheet", basis, None, None, day)  # type: ignore[arg-type]
        assert sheet.balanced, sheet
        opening = await books.report("balance_sheet", basis, None, None, before)  # type: ignore[arg-type]
        pnl = await books.report("profit_and_loss", basis, DAY0, day, None)  # type: ignore[arg-type]
        direct = sum((r.amount for r in sheet.sections[2].rows if r.account_code), D(0))  # owner contributions: journals straight to equity
        assert pnl.totals["net_income"] == sheet.totals["equity"] - opening.totals["equity"] - direct
    accounts = {a.code: a.balance for a in await books.accounts()}
    receivables = await books.report("aged_receivables", "accrual", None, None, day)
    payables = await books.report("aged_payables", "accrual", None, None, day)
    assert receivables.totals["total"] == accounts["1100"], "aged receivables agree with the AR account"
    assert payables.totals["total"] == accounts["2000"], "aged payables agree with the AP account"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, min_size=1, max_size=14))
def test_any_sequence_of_events_keeps_the_books_balanced(events: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        anyio.run(_play, events, Path(folder))


# -- through the hub and standalone ---------------------------------------------------------


@pytest.mark.anyio
async def test_through_the_hub_and_standalone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    await seed_demo_company(EmbeddedAccounting(tmp_path))  # the runner seeds `--demo` the same way
    async with Hub(parse_config({"mcpServers": {"accounting": {"builtin": "accounting"}}})) as hub:
        tools = {t.name: t for t in hub.catalog.tools()}
        assert len([n for n in tools if n.startswith("accounting__")]) == 12
        schema = tools["accounting__record_payment"].input_schema["properties"]["amount"]
        assert schema["type"] == "string", "money is a decimal string in the schema agents see"
        floaty = await hub.route_call("accounting__record_payment", {"invoice_id": "x", "amount": 12.5})
        assert floaty.is_error and floaty.structured_content["code"] == "invalid_argument"
        sheet = (await hub.route_call("accounting__get_report", {"report": "balance_sheet"})).structured_content
        assert sheet["balanced"] and sheet["totals"]["assets"] == "27484.00"
    params = StdioServerParameters(
        command=PY, args=["-m", "hub.cli", "server", "accounting", "--demo", "--data-dir", str(tmp_path / "alone"), "--log-level", "warning"],
        env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT),
    )
    async with Client(params) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert len(listed) == 12 and listed["update_invoice"].annotations.destructive_hint is True
        assert listed["get_report"].annotations.read_only_hint is True
        trial = (await client.call_tool("get_report", {"report": "trial_balance"})).structured_content
        assert trial["balanced"] and trial["totals"]["debit"] == trial["totals"]["credit"] != "0.00"
