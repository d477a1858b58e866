"""Ticketing writes on the embedded backend after outside review 8: an update that changes nothing
leaves the ticket alone, transition_ticket takes expected_version, text compares in one Unicode form
(NFC) and emails without case."""

from __future__ import annotations

import unicodedata

import pytest

from hub.hub import Hub
from servers.ticketing.store import EmbeddedTicketing
from tests.domain_support import hub_fixture, tool_caller

pytestmark = pytest.mark.anyio

# The demo data: users u1 (ada@example.com), u2 (alan@), u3 (grace@); OPS-1 assigned to u1, labels ["network"].
hub = hub_fixture("ticketing", seed=lambda data_dir: EmbeddedTicketing(data_dir).seed_demo())
call = tool_caller("ticketing")


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


async def ticket_changes(hub: Hub) -> list[tuple[str, str]]:
    return [(c["record_id"], c["action"]) for c in (await call(hub, "list_changes", limit=200))["changes"]]


async def test_an_update_that_changes_nothing_keeps_version_time_and_feed(hub: Hub) -> None:
    """Defect 5: a no-op update bumped the version, moved updated_at and emitted a change, so another
    caller's edit made with the version it had just read was refused as a conflict."""
    read = await call(hub, "get_ticket", id="OPS-1")
    feed = await ticket_changes(hub)
    same = await call(hub, "update_ticket", id="OPS-1", title=read["title"], priority=read["priority"],
                      labels=read["labels"], type=read["type"], description=read["description"], assignee="ADA@example.com")
    assert same["changed"] == [], same
    assert (same["version"], same["updated_at"]) == (read["version"], read["updated_at"])
    assert await ticket_changes(hub) == feed, "no change event for an edit that never happened"

    mine = await call(hub, "update_ticket", id="OPS-1", description="the real edit", title=read["title"],
                      expected_version=read["version"])
    assert mine["description"] == "the real edit" and mine["changed"] == ["description"]
    assert int(mine["version"]) == int(read["version"]) + 1
    assert await ticket_changes(hub) == [*feed, ("OPS-1", "updated")]


async def test_transition_refuses_a_stale_version(hub: Hub) -> None:
    """Design gap: transition_ticket took no expected_version ("resolve it if nobody changed it since I read it")."""
    read = await call(hub, "get_ticket", id="OPS-2")
    await call(hub, "add_comment", id="OPS-2", body="someone else was here")
    stale = await call(hub, "transition_ticket", id="OPS-2", to="resolved", expected_version=read["version"])
    current = (await call(hub, "get_ticket", id="OPS-2"))["version"]
    assert stale["code"] == "conflict" and stale["details"] == {"current_version": current}
    assert (await call(hub, "get_ticket", id="OPS-2"))["status"] == "open", "nothing moved"
    moved = await call(hub, "transition_ticket", id="OPS-2", to="resolved", expected_version=current)
    assert moved["status"] == "resolved" and int(moved["version"]) == int(current) + 1


async def test_nfc_and_nfd_spellings_are_one_label_and_one_text(hub: Hub) -> None:
    """Defect 6: "Zoë" typed in NFC and NFD was kept as two labels, and an NFD label was not found by
    the same label in NFC; text search folded ASCII only ("école" missed "ÉCOLE")."""
    both = await call(hub, "create_ticket", project="APP", title=nfd("Inscription à l'ÉCOLE"), labels=["Zoë", nfd("Zoë")])
    assert both["labels"] == ["Zoë"] and both["title"] == "Inscription à l'ÉCOLE", "stored in NFC"
    only_nfd = await call(hub, "create_ticket", project="APP", title="decomposed", labels=[nfd("Zoë ")])
    assert only_nfd["labels"] == ["Zoë"]
    found = await call(hub, "search_tickets", labels=["zoë"])
    assert sorted(t["key"] for t in found["tickets"]) == sorted([both["key"], only_nfd["key"]])
    assert [t["key"] for t in (await call(hub, "search_tickets", text=nfd("école")))["tickets"]] == [both["key"]]
    assert (await call(hub, "search_tickets", text="50%"))["total"] == 0, "still literal"


async def test_emails_match_without_case(hub: Hub) -> None:
    """Defect 7: update_ticket(assignee="ALAN@example.com") was "no user" and the same search found nothing."""
    assigned = await call(hub, "update_ticket", id="OPS-1", assignee="ALAN@Example.com")
    assert assigned["assignee"]["id"] == "u2"
    lower = await call(hub, "search_tickets", assignee="alan@example.com")
    upper = await call(hub, "search_tickets", assignee=" ALAN@EXAMPLE.COM")
    assert lower["total"] == upper["total"] == 2
    created = await call(hub, "create_ticket", project="OPS", title="by email", assignee="Grace@Example.COM")
    assert created["assignee"]["id"] == "u3"
    unknown = await call(hub, "update_ticket", id="OPS-1", assignee="nobody@example.com")
    assert unknown["code"] == "invalid_argument" and "find_users" in unknown["message"]
