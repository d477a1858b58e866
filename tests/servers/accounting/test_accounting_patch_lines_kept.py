"""A lines patch keeps what the provider holds on each line sent back (outside review r38b #5, #5b): Xero's
LineItemID, Tracking and discount; QuickBooks' line Id, class and billable customer. A QuickBooks document
with lines the tools cannot show is refused rather than having them deleted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting.server import create_server
from tests.accounting_support import quickbooks_on_fake, xero_on_fake

pytestmark = pytest.mark.anyio
Call = Callable[..., Awaitable[dict[str, Any]]]
NORTH, SOUTH = [{"Name": "Region", "Option": "North"}], [{"Name": "Region", "Option": "South"}]


def _caller(client: Client) -> Call:
    async def call(tool: str, **args: Any) -> dict[str, Any]:
        return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]
    return call


def _as_shown(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines as get_invoice shows them, as a caller sends them back."""
    keys = ("description", "quantity", "unit_price", "account_code", "tax_code", "item")
    return [{k: line[k] for k in keys if line.get(k) is not None} for line in invoice["lines"]]


async def test_xero_lines_patch_keeps_ids_tracking_and_discounts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        acme = (await call("search_contacts", query="acme"))["contacts"][0]
        lines = [{"description": d, "quantity": "1", "unit_price": p, "account_code": "200", "tax_code": "NONE"}
                 for d, p in (("Consulting", "150.00"), ("Travel", "80.00"), ("Printing", "20.00"), ("Setup", "10.00"))]
        draft = (await call("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-11-02", approve=False))["invoice"]
        stored = fake.invoices[draft["id"]]["LineItems"]
        ids = [item["LineItemID"] for item in stored]
        stored[0]["Tracking"], stored[1]["Tracking"], stored[3]["Tracking"] = NORTH, SOUTH, NORTH
        stored[1]["DiscountRate"] = Decimal("10")  # coded in Xero: 10 % off the travel line
        fake._compute(fake.invoices[draft["id"]])
        shown = await call("get_invoice", invoice_id=draft["id"])
        assert shown["lines"][1]["net"] == "72.00"

        new = _as_shown(shown)
        new[1]["quantity"] = "2"                              # travel: quantity changed
        new[3]["description"] = "Setup and training"          # edited in place (same position)
        del new[2]                                            # printing removed
        new.append({"description": "Hosting", "quantity": "1", "unit_price": "5.00", "account_code": "200", "tax_code": "NONE"})
        del new[0]["account_code"]                            # left out: not a change
        patched = await call("update_invoice", invoice_id=draft["id"], action="patch", lines=new, version=shown["version"])
        assert patched["status"] == "draft", patched

        after = fake.invoices[draft["id"]]["LineItems"]
        assert [i["Description"] for i in after] == ["Consulting", "Travel", "Setup and training", "Hosting"]
        assert [i["LineItemID"] for i in after[:3]] == [ids[0], ids[1], ids[3]] and after[3]["LineItemID"] not in ids
        assert [i.get("Tracking") for i in after] == [NORTH, SOUTH, NORTH, None], "each kept line keeps its tracking"
        assert after[0]["AccountCode"] == "200", "a line sent back unchanged keeps its account"
        assert after[1]["DiscountRate"] == 10 and after[1]["LineAmount"] == Decimal("144.00"), "the discount stays on the changed line"
        assert patched["total"] == "309.00", "150 + 144 (2 x 80 less 10 %) + 10 + 5"


async def test_xero_lines_patch_edits_in_place_and_refuses_what_it_cannot_tell_apart(monkeypatch: pytest.MonkeyPatch,
                                                                                     tmp_path: Path) -> None:
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        acme = (await call("search_contacts", query="acme"))["contacts"][0]
        lines = [{"description": d, "quantity": "1", "unit_price": p, "account_code": "200", "tax_code": "NONE"}
                 for d, p in (("Consulting", "150.00"), ("Travel", "80.00"))]
        draft = (await call("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-11-02", approve=False))["invoice"]
        stored = fake.invoices[draft["id"]]["LineItems"]
        ids = [item["LineItemID"] for item in stored]
        stored[1]["Tracking"] = SOUTH
        shown = await call("get_invoice", invoice_id=draft["id"])

        renamed = _as_shown(shown)
        renamed[1].update(description="Travel (Wellington)", unit_price="95.00")  # both changed: the line at its place
        done = await call("update_invoice", invoice_id=draft["id"], action="patch", lines=renamed, version=shown["version"])
        assert done["total"] == "245.00", done
        after = fake.invoices[draft["id"]]["LineItems"]
        assert [(i["LineItemID"], i.get("Tracking")) for i in after] == [(ids[0], None), (ids[1], SOUTH)]

        posts = sum(r["method"] == "POST" for r in fake.requests)
        unclear = [_as_shown(done)[0], {**_as_shown(done)[1], "description": "Taxi", "unit_price": "30.00"},
                   {"description": "Hosting", "quantity": "1", "unit_price": "5.00", "account_code": "200", "tax_code": "NONE"}]
        refused = await call("update_invoice", invoice_id=draft["id"], action="patch", lines=unclear, version=done["version"])
        assert refused["code"] == "invalid_argument" and "Region: South" in refused["message"], refused
        assert "'Travel (Wellington)'" in refused["message"] and "nothing was sent" in refused["message"]
        assert sum(r["method"] == "POST" for r in fake.requests) == posts


async def test_quickbooks_bill_lines_patch_keeps_ids_class_and_billable_customer(monkeypatch: pytest.MonkeyPatch,
                                                                                  tmp_path: Path) -> None:
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        lines = [{"description": "Rent November", "quantity": "1", "unit_price": "1200.00", "account_code": "17"},
                 {"description": "Cleaning", "quantity": "1", "unit_price": "80.00", "account_code": "17"}]
        bill = (await call("create_invoice", contact_id="vendor:41", kind="payable", lines=lines, issue_date="2026-11-02"))["invoice"]
        stored = fake.store["Bill"][bill["id"].partition(":")[2]]["Line"]
        ids = [line["Id"] for line in stored]
        billable = {"ClassRef": {"value": "200"}, "CustomerRef": {"value": "58"}, "BillableStatus": "Billable"}
        for line in stored:
            line["AccountBasedExpenseLineDetail"].update(billable, TaxAmount=Decimal("0"))
        shown = await call("get_invoice", invoice_id=bill["id"])
        new = _as_shown(shown)
        new[1]["unit_price"] = "90.00"
        patched = await call("update_invoice", invoice_id=bill["id"], action="patch", lines=new, version=shown["version"])
        assert patched["total"] == "1290.00", patched

        after = fake.store["Bill"][bill["id"].partition(":")[2]]["Line"]
        assert [line["Id"] for line in after] == ids
        for line in after:
            detail = line["AccountBasedExpenseLineDetail"]
            assert {k: detail.get(k) for k in billable} == billable, "still billable to Acme, in its class"
        assert "TaxAmount" in after[0]["AccountBasedExpenseLineDetail"], "the unchanged line goes back as held"
        assert "TaxAmount" not in after[1]["AccountBasedExpenseLineDetail"], "an amount QuickBooks derives is not kept on a repriced line"


async def test_quickbooks_invoice_lines_patch_keeps_class_and_refuses_lines_it_cannot_show(monkeypatch: pytest.MonkeyPatch,
                                                                                          tmp_path: Path) -> None:
    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        lines = [{"description": "Consulting", "quantity": "10", "unit_price": "150.00", "item": "1"},
                 {"description": "Travel", "quantity": "1", "unit_price": "80.00", "item": "7"}]
        invoice = (await call("create_invoice", contact_id="customer:58", lines=lines, issue_date="2026-11-02"))["invoice"]
        raw = fake.store["Invoice"][invoice["id"].partition(":")[2]]
        for line in raw["Line"]:
            line["SalesItemLineDetail"]["ClassRef"] = {"value": "300"}
        raw["Line"].append({"Amount": raw["TotalAmt"], "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        shown = await call("get_invoice", invoice_id=invoice["id"])
        new = _as_shown(shown)
        new[0]["quantity"] = "12"
        patched = await call("update_invoice", invoice_id=invoice["id"], action="patch", lines=new, version=shown["version"])
        assert patched["total"] == "1880.00", patched
        after = fake.store["Invoice"][invoice["id"].partition(":")[2]]["Line"]
        assert [(line["Id"], line["SalesItemLineDetail"].get("ClassRef")) for line in after] == [("1", {"value": "300"}), ("2", {"value": "300"})]

        raw = fake.store["Invoice"][invoice["id"].partition(":")[2]]
        raw["Line"].append({"Amount": Decimal("50"), "DetailType": "DiscountLineDetail",
                            "DiscountLineDetail": {"PercentBased": False, "DiscountAccountRef": {"value": "86"}}})
        posts = sum(r["method"] == "POST" for r in fake.requests)
        shown = await call("get_invoice", invoice_id=invoice["id"])
        refused = await call("update_invoice", invoice_id=invoice["id"], action="patch", lines=[{**new[0], "quantity": "11"}, new[1]],
                             version=shown["version"])
        assert refused["code"] == "invalid_argument" and "DiscountLineDetail" in refused["message"], refused
        assert "would delete them" in refused["message"] and "QuickBooks" in refused["message"]
        assert sum(r["method"] == "POST" for r in fake.requests) == posts, "nothing was sent"
        dated = await call("update_invoice", invoice_id=invoice["id"], action="patch", due_date="2026-12-31", version=shown["version"])
        assert dated["due_date"] == "2026-12-31", "a patch without lines still goes through"


async def _xero_draft(call: Call, fake: Any, lines: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    acme = (await call("search_contacts", query="acme"))["contacts"][0]
    draft = (await call("create_invoice", contact_id=acme["id"], lines=lines, issue_date="2026-11-02", approve=False))["invoice"]
    return draft, fake.invoices[draft["id"]]["LineItems"]


def _line(description: str, price: str = "100.00", quantity: str = "1") -> dict[str, Any]:
    return {"description": description, "quantity": quantity, "unit_price": price, "account_code": "200", "tax_code": "NONE"}


async def test_xero_each_of_two_like_lines_keeps_its_own_and_an_in_place_edit_keeps_its_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Outside review r39b #1, #4: the change to the first of two lines that look the same landed on the second (the
    North hours booked to South); editing two lines in place gave line 2 line 1's id and project tracking."""
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        draft, stored = await _xero_draft(call, fake, [_line("Support hours"), _line("Support hours")])
        stored[0]["Tracking"], stored[1]["Tracking"] = NORTH, SOUTH
        shown = await call("get_invoice", invoice_id=draft["id"])
        new = _as_shown(shown)
        new[0]["quantity"] = "3"
        await call("update_invoice", invoice_id=draft["id"], action="patch", lines=new, version=shown["version"])
        after = fake.invoices[draft["id"]]["LineItems"]
        assert [(item["Tracking"], Decimal(str(item["Quantity"]))) for item in after] == [(NORTH, 3), (SOUTH, 1)], after

        apollo = [{"Name": "Project", "Option": "Apollo"}]
        draft, stored = await _xero_draft(call, fake, [_line("Workshop day"), _line("Materials")])
        stored[0]["Tracking"], workshop = apollo, stored[0]["LineItemID"]
        shown = await call("get_invoice", invoice_id=draft["id"])
        new = _as_shown(shown)
        new[0].update(description="Workshop day (extended)", unit_price="150.00")
        new[1].update(description="Printed materials")
        await call("update_invoice", invoice_id=draft["id"], action="patch", lines=new, version=shown["version"])
        after = fake.invoices[draft["id"]]["LineItems"]
        assert (after[0]["Description"], after[0]["LineItemID"], after[0].get("Tracking")) == ("Workshop day (extended)", workshop, apollo)
        assert after[1]["Description"] == "Printed materials" and not after[1].get("Tracking"), after


async def test_xero_a_repeated_lines_patch_of_a_discounted_invoice_answers_what_it_made(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Outside review r39b #7: with a discount kept on a line, the retry of a patch that landed was a conflict with its
    version, and without one wrote the invoice again."""
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        draft, stored = await _xero_draft(call, fake, [_line("Consulting", "150.00", "10"), _line("Travel", "80.00")])
        stored[0]["DiscountRate"] = Decimal("10")
        fake._compute(fake.invoices[draft["id"]])
        shown = await call("get_invoice", invoice_id=draft["id"])
        new = _as_shown(shown)
        new[1]["quantity"] = "2"
        asked = {"invoice_id": draft["id"], "action": "patch", "lines": new, "version": shown["version"]}
        first = await call("update_invoice", **asked)
        assert "code" not in first, first
        posts = sum(r["method"] == "POST" for r in fake.requests)
        again = await call("update_invoice", **asked)
        unversioned = await call("update_invoice", **{k: v for k, v in asked.items() if k != "version"})
        assert "code" not in again and "code" not in unversioned and again["version"] == first["version"], again
        assert sum(r["method"] == "POST" for r in fake.requests) == posts, "a repeat wrote the invoice again"


async def test_xero_reordered_lines_with_corrected_quantities_keep_their_own_lines(monkeypatch: pytest.MonkeyPatch,
                                                                                   tmp_path: Path) -> None:
    """Review r40 #3: the hours of two lines booked the wrong way round, sent back swapped: each took the other's
    line (and tracking) by its new quantity."""
    fake, backend = xero_on_fake(monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        draft, stored = await _xero_draft(call, fake, [_line("Consulting North", quantity="10"), _line("Consulting South", quantity="12")])
        stored[0]["Tracking"], stored[1]["Tracking"] = NORTH, SOUTH
        shown = await call("get_invoice", invoice_id=draft["id"])
        north, south = _as_shown(shown)
        swapped = [{**south, "quantity": "10"}, {**north, "quantity": "12"}]
        await call("update_invoice", invoice_id=draft["id"], action="patch", lines=swapped, version=shown["version"])
        after = {item["Description"]: item.get("Tracking") for item in fake.invoices[draft["id"]]["LineItems"]}
        assert after == {"Consulting South": SOUTH, "Consulting North": NORTH}, after


async def test_two_like_lines_reordered_with_one_change_each_keep_their_own_lines(monkeypatch: pytest.MonkeyPatch,
                                                                                   tmp_path: Path) -> None:
    """Review r41 #4: stored 'Support' 10 h (North) and 'Support' 8 h (South); the patch sends South's line first with
    its hours corrected (13), then North's renamed 'Support (remote)'. Read in place, one line changes two fields; the
    reading with one change per line keeps each tracking (Xero) and class (QuickBooks) on its own line."""
    fake, backend = xero_on_fake(monkeypatch, tmp_path / "xero")
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        draft, stored = await _xero_draft(call, fake, [_line("Support", quantity="10"), _line("Support", quantity="8")])
        stored[0]["Tracking"], stored[1]["Tracking"] = NORTH, SOUTH
        shown = await call("get_invoice", invoice_id=draft["id"])
        north, south = _as_shown(shown)
        patched = await call("update_invoice", invoice_id=draft["id"], action="patch", version=shown["version"],
                             lines=[{**south, "quantity": "13"}, {**north, "description": "Support (remote)"}])
        assert "code" not in patched, patched
        after = {(item["Description"], Decimal(str(item["Quantity"]))): item.get("Tracking")
                 for item in fake.invoices[draft["id"]]["LineItems"]}
        assert after == {("Support", 13): SOUTH, ("Support (remote)", 10): NORTH}, after

    fake, backend = quickbooks_on_fake(monkeypatch, tmp_path / "qbo")
    async with Client(create_server(backend)) as client:
        call = _caller(client)
        lines = [{"description": "Contractor hours", "quantity": q, "unit_price": "100.00", "item": "1"} for q in ("10", "8")]
        invoice = (await call("create_invoice", contact_id="customer:58", lines=lines, issue_date="2026-11-02"))["invoice"]
        stored = fake.store["Invoice"][invoice["id"].partition(":")[2]]["Line"]
        for line, kept in zip(stored, ("300", "400")):
            line["SalesItemLineDetail"]["ClassRef"] = {"value": kept}
        shown = await call("get_invoice", invoice_id=invoice["id"])
        north, south = _as_shown(shown)
        patched = await call("update_invoice", invoice_id=invoice["id"], action="patch", version=shown["version"],
                             lines=[{**south, "quantity": "13"}, {**north, "description": "Contractor hours (remote)"}])
        assert "code" not in patched, patched
        after = {(line["Description"], Decimal(str(line["SalesItemLineDetail"]["Qty"]))): line["SalesItemLineDetail"]["ClassRef"]
                 for line in fake.store["Invoice"][invoice["id"].partition(":")[2]]["Line"] if "SalesItemLineDetail" in line}
        assert after == {("Contractor hours", 13): {"value": "400"}, ("Contractor hours (remote)", 10): {"value": "300"}}, after
