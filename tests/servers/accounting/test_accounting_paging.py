"""Accounting lists page with signed keyset cursors bound to their query (issue #16 item 11, for
the embedded ledger), a crafted provider cursor is invalid_argument, and payments go only to bank
or cash accounts — all through the MCP interface."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from hub.hub import Hub
from servers.accounting.server import create_server
from servers.accounting.store import EmbeddedAccounting
from tests.accounting_support import quickbooks_on_fake
from tests.domain_support import hub_fixture, tool_caller

pytestmark = pytest.mark.anyio
LINE = [{"description": "Work", "quantity": "1", "unit_price": "100.00"}]


def crafted(state: dict[str, Any]) -> str:
    """An unsigned cursor made by hand, as the old offset cursors were."""
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


hub = hub_fixture("accounting")
call = tool_caller("accounting")


async def walk(hub: Hub, tool: str, items: str, between: Any = None, **query: Any) -> list[str]:
    """Every id a full walk of `tool` returns, awaiting `between(page)` after each page."""
    seen, cursor, page = [], None, 0
    while True:
        found = await call(hub, tool, **query, **({"cursor": cursor} if cursor else {}))
        assert items in found, found
        seen += [x["id"] for x in found[items]]
        if (cursor := found["next_cursor"]) is None:
            return seen
        page += 1
        if between:
            await between(page)


async def test_a_contact_walk_sees_each_contact_once_while_others_rename_and_add(hub: Hub) -> None:
    made = [(await call(hub, "upsert_contact", name=f"M{n} Ltd"))["id"] for n in range(6)]

    async def write(page: int) -> None:
        # Rename the last contact to sort first by name, and add one that sorts first too.
        last = (await call(hub, "search_contacts", limit=100))["contacts"][-1]
        await call(hub, "upsert_contact", id=last["id"], name=f"A{page} renamed", version=last["version"])
        await call(hub, "upsert_contact", name=f"A{page} new")

    seen = await walk(hub, "search_contacts", "contacts", write, limit=2)
    assert len(seen) == len(set(seen)), f"a contact came back twice: {seen}"
    assert set(made) <= set(seen), f"missed {set(made) - set(seen)}"


async def test_an_invoice_walk_sees_each_invoice_once_while_earlier_ones_are_added(hub: Hub) -> None:
    acme = (await call(hub, "upsert_contact", name="Acme"))["id"]
    made = [(await call(hub, "create_invoice", contact_id=acme, lines=LINE, issue_date=f"2026-03-0{n + 1}"))["invoice"]["id"]
            for n in range(5)]

    async def write(page: int) -> None:  # an invoice dated before every other one, and a payment
        await call(hub, "create_invoice", contact_id=acme, lines=LINE, issue_date=f"2026-01-0{page}")
        await call(hub, "record_payment", invoice_id=made[page], amount="10.00", date="2026-04-01")

    seen = await walk(hub, "search_invoices", "invoices", write, limit=2, issued_from="2026-01-01")
    assert len(seen) == len(set(seen)), f"an invoice came back twice: {seen}"
    assert set(made) <= set(seen), f"missed {set(made) - set(seen)}"


async def test_cursors_only_work_for_their_own_query(hub: Hub) -> None:
    acme = (await call(hub, "upsert_contact", name="Acme"))["id"]
    await call(hub, "upsert_contact", name="Acme Two")
    for n in range(3):
        await call(hub, "create_invoice", contact_id=acme, lines=LINE, issue_date=f"2026-03-0{n + 1}")
    invoices = await call(hub, "search_invoices", limit=1)
    other = await call(hub, "search_invoices", limit=1, status=["paid"], cursor=invoices["next_cursor"])
    assert other["code"] == "invalid_argument" and "different query" in other["message"], other
    assert other["details"] == {"field": "cursor"}
    # The same query spelled differently (amount precision, status order) is the same query.
    first = await call(hub, "search_invoices", limit=1, min_total="100", status=["open", "draft"])
    same = await call(hub, "search_invoices", limit=1, min_total="100.00", status=["draft", "open"], cursor=first["next_cursor"])
    assert [i["issue_date"] for i in same["invoices"]] == ["2026-03-02"], same

    contacts = await call(hub, "search_contacts", limit=1, query="Acme")
    assert contacts["next_cursor"]
    elsewhere = await call(hub, "search_contacts", limit=1, query="Two", cursor=contacts["next_cursor"])
    assert elsewhere["code"] == "invalid_argument" and "different query" in elsewhere["message"], elsewhere
    mixed = await call(hub, "search_invoices", limit=1, cursor=contacts["next_cursor"])
    assert mixed["code"] == "invalid_argument", mixed

    ledger = await call(hub, "list_transactions", start="2026-01-01", end="2026-12-31", limit=2)
    assert ledger["next_cursor"]
    moved = await call(hub, "list_transactions", start="2026-01-01", end="2026-12-31", account_code="1100",
                       limit=2, cursor=ledger["next_cursor"])
    assert moved["code"] == "invalid_argument" and "different query" in moved["message"], moved
    rest = await call(hub, "list_transactions", start="2026-01-01", end="2026-12-31", limit=100, cursor=ledger["next_cursor"])
    all_at_once = await call(hub, "list_transactions", start="2026-01-01", end="2026-12-31", limit=100)
    assert [t["id"] for t in ledger["transactions"] + rest["transactions"]] == [t["id"] for t in all_at_once["transactions"]]


async def test_crafted_or_altered_cursors_are_refused(hub: Hub) -> None:
    acme = (await call(hub, "upsert_contact", name="Acme"))["id"]
    await call(hub, "upsert_contact", name="Beta")
    for n in range(2):
        await call(hub, "create_invoice", contact_id=acme, lines=LINE, issue_date=f"2026-03-0{n + 1}")
    real = (await call(hub, "search_invoices", limit=1))["next_cursor"]
    body, _, mac = real.partition(".")
    state = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    state["after"][0] = "2000-01-01"  # point elsewhere, keep the old signature
    moved = base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=") + "." + mac
    dates = {"start": "2026-01-01", "end": "2026-12-31"}
    for tool, args, forged in (
        ("search_invoices", {}, crafted({"offset": 1})),
        ("search_invoices", {}, moved),
        ("search_invoices", {}, "x" * 5000),
        ("search_contacts", {}, crafted({"offset": 1})),
        ("list_transactions", dates, crafted({"after": 1})),
        ("list_transactions", dates, "garbage!"),
    ):
        refused = await call(hub, tool, limit=1, cursor=forged, **args)
        assert refused["code"] == "invalid_argument", (tool, forged[:40], refused)
        assert "unchanged" in refused["message"] and "x" * 100 not in refused["message"]


async def test_a_crafted_quickbooks_cursor_is_invalid_argument_not_internal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        for state in ({"entity": "Account"}, {"start": "1; drop"}, {"entity": ["customer"]}, {"start": -5, "entity": "vendor"}):
            result = await client.call_tool("search_contacts", {"cursor": crafted(state)})
            sc = result.structured_content
            assert result.is_error and sc is not None and sc["code"] == "invalid_argument", (state, sc)
            assert "next_cursor" in sc["message"]
        invoices = await client.call_tool("search_invoices", {"cursor": crafted({"start": "x"})})
        assert invoices.structured_content is not None and invoices.structured_content["code"] == "invalid_argument"


# -- payments go to a bank or cash account ------------------------------------------------------


async def test_a_payment_must_go_to_a_bank_or_cash_account(hub: Hub) -> None:
    acme = (await call(hub, "upsert_contact", name="Acme"))["id"]
    invoice = (await call(hub, "create_invoice", contact_id=acme, lines=LINE, issue_date="2026-03-01"))["invoice"]
    for code in ("1100", "1500", "4000", "2000"):
        refused = await call(hub, "record_payment", invoice_id=invoice["id"], amount="10.00", date="2026-03-02", account_code=code)
        assert refused["code"] == "invalid_argument", (code, refused)
        assert f"account {code}" in refused["message"] and "not a bank or cash account" in refused["message"]
        assert "1000 Bank" in refused["message"] and refused["details"] == {"field": "account_code", "accepted": ["1000"]}
    missing = await call(hub, "record_payment", invoice_id=invoice["id"], amount="10.00", date="2026-03-02", account_code="9999")
    assert missing["code"] == "invalid_argument" and "does not exist" in missing["message"] and "1000 Bank" in missing["message"]
    after = await call(hub, "get_invoice", invoice_id=invoice["id"])
    assert after["amount_paid"] == "0.00", "nothing was written by the refusals"
    paid = await call(hub, "record_payment", invoice_id=invoice["id"], amount="10.00", date="2026-03-02", account_code="1000")
    assert paid["account_code"] == "1000" and paid["invoice_balance"] == "90.00"
    default = await call(hub, "record_payment", invoice_id=invoice["id"], amount="10.00", date="2026-03-02")
    assert default["account_code"] == "1000"
    bank = [a for a in (await call(hub, "list_accounts", type="asset"))["accounts"] if a["subtype"] == "bank"]
    assert [a["code"] for a in bank] == ["1000"], "the chart says which accounts take payments"


# -- property: a walk under interleaved writes --------------------------------------------------

_op = st.tuples(st.sampled_from(["invoice", "pay", "patch", "contact", "rename"]), st.integers(0, 40), st.integers(1, 28))


async def _walk_under_writes(days: list[int], limit: int, batches: list[list[tuple[str, int, int]]], folder: Path) -> None:
    async with Client(create_server(EmbeddedAccounting(folder))) as client:

        async def tool(tool_name: str, /, **args: Any) -> dict[str, Any]:
            result = (await client.call_tool(tool_name, args)).structured_content
            assert result is not None and "code" not in result, (tool_name, args, result)
            return result

        contacts = [(await tool("upsert_contact", name="Acme"))["id"]]
        invoices = [(await tool("create_invoice", contact_id=contacts[0], lines=LINE, issue_date=f"2026-02-{d:02d}"))["invoice"]["id"]
                    for d in days]
        initial_contacts, initial_invoices = set(contacts), set(invoices)
        walks: dict[str, tuple[str, list[str], str | None, bool]] = {
            "invoices": ("search_invoices", [], None, False), "contacts": ("search_contacts", [], None, False)}
        page = 0
        while not all(done for *_, done in walks.values()):
            for name, (list_tool, seen, cursor, done) in walks.items():
                if not done:
                    found = await tool(list_tool, limit=limit, **({"cursor": cursor} if cursor else {}))
                    seen += [x["id"] for x in found[name]]
                    walks[name] = (list_tool, seen, found["next_cursor"], found["next_cursor"] is None)
            for kind, index, day in batches[page] if page < len(batches) else []:
                target = invoices[index % len(invoices)]
                if kind == "invoice":
                    contact = contacts[index % len(contacts)]
                    invoices.append((await tool("create_invoice", contact_id=contact, lines=LINE,
                                                issue_date=f"2026-02-{day:02d}"))["invoice"]["id"])
                elif kind == "pay":
                    current = await tool("get_invoice", invoice_id=target)
                    if current["balance"] != "0.00":
                        await tool("record_payment", invoice_id=target, amount="25.00", date="2026-03-01")
                elif kind == "patch":
                    await tool("update_invoice", invoice_id=target, action="patch", reference=f"r{page}")
                elif kind == "contact":
                    contacts.append((await tool("upsert_contact", name=f"{chr(65 + day)} new"))["id"])
                else:
                    who = contacts[index % len(contacts)]
                    await tool("upsert_contact", id=who, name=f"{chr(90 - day)} renamed")
            page += 1
        for name, initial, current in (("invoices", initial_invoices, invoices), ("contacts", initial_contacts, contacts)):
            seen = walks[name][1]
            assert len(seen) == len(set(seen)), f"{name} returned twice: {seen}"
            assert initial <= set(seen), f"{name} missed {initial - set(seen)}"
            assert set(seen) <= set(current)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days=st.lists(st.integers(1, 28), min_size=1, max_size=7),
    limit=st.integers(1, 3),
    batches=st.lists(st.lists(_op, max_size=3), max_size=5),
)
def test_any_walk_under_interleaved_writes_returns_each_record_once(
    days: list[int], limit: int, batches: list[list[tuple[str, int, int]]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        anyio.run(_walk_under_writes, days, limit, batches, Path(folder))

