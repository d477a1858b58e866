"""Ticketing writes land as meant (issue #16, items 11-12), through the MCP interface: keyset
cursors bound to their query and signed, a property test that a walk under concurrent writes sees
each matching ticket once, no project made by a typo, literal text search, no control characters."""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from hub.hub import Hub
from servers.ticketing.server import create_server
from servers.ticketing.store import EmbeddedTicketing
from tests.domain_support import hub_fixture, tool_caller

pytestmark = pytest.mark.anyio


# The demo data: users u1-u3, projects OPS and APP, tickets OPS-1, OPS-2, APP-1.
hub = hub_fixture("ticketing", seed=lambda data_dir: EmbeddedTicketing(data_dir).seed_demo())
call = tool_caller("ticketing")


async def walk(hub: Hub, between: Any = None, **query: Any) -> list[str]:
    """Every key a full search walk returns, calling `between(page_number)` after each page."""
    seen, cursor, page = [], None, 0
    while True:
        found = await call(hub, "search_tickets", **query, **({"cursor": cursor} if cursor else {}))
        assert "tickets" in found, found
        seen += [t["key"] for t in found["tickets"]]
        cursor, page = found["next_cursor"], page + 1
        if cursor is None:
            return seen
        if between:
            await between(page)


# -- 11: keyset cursors ----------------------------------------------------------------------


async def test_a_walk_sees_each_ticket_once_while_others_update_and_create(hub: Hub) -> None:
    for n in range(6):
        await call(hub, "create_ticket", project="OPS", title=f"batch {n}", labels=["walk"])
    before = {t["key"] for t in (await call(hub, "search_tickets", labels=["walk"], limit=100))["tickets"]}

    async def write(page: int) -> None:
        # Touch the ticket the next pages would show, and add a new matching one.
        rest = (await call(hub, "search_tickets", labels=["walk"], limit=100))["tickets"]
        await call(hub, "update_ticket", id=rest[-1]["key"], title=f"touched after page {page}")
        await call(hub, "add_comment", id=rest[-2]["key"], body="bump")
        await call(hub, "create_ticket", project="OPS", title=f"new during page {page}", labels=["walk"])

    seen = await walk(hub, write, labels=["walk"], limit=2)
    assert len(seen) == len(set(seen)), f"a ticket came back twice: {seen}"
    assert before <= set(seen), f"missed {before - set(seen)}"


async def test_a_cursor_only_works_for_its_own_query(hub: Hub) -> None:
    first = await call(hub, "search_tickets", project="OPS", limit=1)
    other = await call(hub, "search_tickets", project="APP", limit=1, cursor=first["next_cursor"])
    assert other["code"] == "invalid_argument" and "different query" in other["message"]
    assert "same filters" in other["message"] and other["details"] == {"field": "cursor"}
    text = await call(hub, "search_tickets", project="OPS", text="VPN", limit=1, cursor=first["next_cursor"])
    assert text["code"] == "invalid_argument" and "different query" in text["message"]
    # The same query spelled differently (case of the project key) is the same query.
    same = await call(hub, "search_tickets", project="ops", limit=1, cursor=first["next_cursor"])
    assert [t["key"] for t in same["tickets"]] == ["OPS-1"] and same["next_cursor"] is None


async def test_a_crafted_or_altered_cursor_is_refused(hub: Hub) -> None:
    offset_style = base64.urlsafe_b64encode(b'{"offset":1}').decode().rstrip("=")  # unsigned, made by hand
    crafted = await call(hub, "search_tickets", project="OPS", limit=1, cursor=offset_style)
    assert crafted["code"] == "invalid_argument" and "not issued by this server" in crafted["message"]
    first = await call(hub, "search_tickets", project="OPS", limit=1)
    body, _, mac = first["next_cursor"].partition(".")
    state = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    state["after"][1] += 1000  # point elsewhere, keep the old signature
    moved = base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=") + "." + mac
    flipped = first["next_cursor"][:-3] + ("B" if first["next_cursor"][-3] == "A" else "A") + first["next_cursor"][-2:]
    for forged in (moved, flipped, "garbage!", "x" * 5000):
        refused = await call(hub, "search_tickets", project="OPS", limit=1, cursor=forged)
        assert refused["code"] == "invalid_argument", forged
        assert "not issued by this server" in refused["message"] and "unchanged" in refused["message"]
        assert "x" * 100 not in refused["message"], "a huge cursor is not echoed back"


async def test_comment_cursors_are_keyset_and_bound_to_their_ticket(hub: Hub) -> None:
    for n in range(5):
        await call(hub, "add_comment", id="OPS-1", body=f"c{n}")
    await call(hub, "add_comment", id="OPS-2", body="other")
    seen, cursor, added = [], None, 0
    while True:
        page = await call(hub, "list_comments", id="OPS-1", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [c["body"] for c in page["comments"]]
        if (cursor := page["next_cursor"]) is None:
            break
        if added < 2:
            await call(hub, "add_comment", id="OPS-1", body=f"late{added}")
            added += 1
    assert seen == ["c0", "c1", "c2", "c3", "c4", "late0", "late1"]

    first = await call(hub, "list_comments", id="OPS-1", limit=1)
    elsewhere = await call(hub, "list_comments", id="OPS-2", limit=1, cursor=first["next_cursor"])
    assert elsewhere["code"] == "invalid_argument" and "different query" in elsewhere["message"]
    crafted = base64.urlsafe_b64encode(b'{"offset":1}').decode().rstrip("=")
    assert (await call(hub, "list_comments", id="OPS-1", cursor=crafted))["code"] == "invalid_argument"
    search_cursor = (await call(hub, "search_tickets", limit=1))["next_cursor"]
    mixed = await call(hub, "list_comments", id="OPS-1", cursor=search_cursor)
    assert mixed["code"] == "invalid_argument"


# Operations another agent performs between two pages: (kind, which ticket, priority).
_op = st.tuples(st.sampled_from(["create", "retitle", "comment", "reprioritize", "delete"]),
                st.integers(0, 50), st.sampled_from(["high", "low"]))


@pytest.fixture
def ticketing_client(tmp_path: Path) -> Iterator[tuple[BlockingPortal, Client]]:
    """One embedded ticketing server and one client session for every example of a property test
    (building the server and the client's output-schema validators is most of an example's cost);
    each example works in a project of its own, so examples share no tickets."""
    with start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(create_server(EmbeddedTicketing(tmp_path)))) as client:
            yield portal, client


async def _walk_under_writes(client: Client, project: str, initial: list[str], limit: int,
                             batches: list[list[tuple[str, int, str]]]) -> None:
    """One example: a fresh `project`, its tickets, one walk of its high-priority tickets under writes."""

    async def tool(name: str, **args: Any) -> dict[str, Any]:
        result = (await client.call_tool(name, args)).structured_content
        assert result is not None and "code" not in result, (name, args, result)
        return result

    assert (await tool("create_project", key=project))["created"] is True
    priority: dict[str, str] = {}  # the model: every live ticket's priority
    for n, p in enumerate(initial):
        priority[(await tool("create_ticket", project=project, title=f"t{n}", priority=p))["key"]] = p
    throughout = {k for k, p in priority.items() if p == "high"}  # matched at the start and never stopped
    ever = set(throughout)
    seen: list[str] = []
    cursor, page = None, 0
    while True:
        found = await tool("search_tickets", project=project, priority=["high"], limit=limit,
                           **({"cursor": cursor} if cursor else {}))
        seen += [t["key"] for t in found["tickets"]]
        if (cursor := found["next_cursor"]) is None:
            break
        for kind, index, p in batches[page] if page < len(batches) else []:
            keys = sorted(priority)
            key = keys[index % len(keys)] if keys else None
            if kind == "create" or key is None:
                priority[(await tool("create_ticket", project=project, title="new", priority=p))["key"]] = p
            elif kind == "retitle":
                await tool("update_ticket", id=key, title=f"retitled {page}")
            elif kind == "comment":
                await tool("add_comment", id=key, body="bump")
            elif kind == "reprioritize":
                await tool("update_ticket", id=key, priority=p)
                priority[key] = p
            else:
                await tool("delete_ticket", id=key, confirm=True)
                del priority[key]
            if key is not None and priority.get(key) != "high":
                throughout.discard(key)
            ever |= {k for k, q in priority.items() if q == "high"}
        page += 1
    assert len(seen) == len(set(seen)), f"returned twice: {seen}"
    assert throughout <= set(seen), f"missed {throughout - set(seen)}"
    assert set(seen) <= ever, "only tickets that matched at some point"


_EXAMPLES = itertools.count()  # each example's project: W0, W1, ...


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    initial=st.lists(st.sampled_from(["high", "low"]), min_size=1, max_size=10),
    limit=st.integers(1, 4),
    batches=st.lists(st.lists(_op, max_size=3), max_size=6),
)
def test_any_walk_under_concurrent_writes_returns_each_matching_ticket_once(
    ticketing_client: tuple[BlockingPortal, Client], initial: list[str], limit: int,
    batches: list[list[tuple[str, int, str]]],
) -> None:
    portal, client = ticketing_client
    project = f"W{next(_EXAMPLES)}"
    portal.call(_walk_under_writes, client, project, initial, limit, batches)


# -- 12: projects, literal text, control characters, status hint ------------------------------


async def test_a_mistyped_project_is_refused_not_created(hub: Hub) -> None:
    typo = await call(hub, "create_ticket", project="OSP", title="Disk full")
    assert typo["code"] == "not_found" and "'OSP'" in typo["message"] and "APP, OPS" in typo["message"]
    assert typo["details"]["known_projects"] == ["APP", "OPS"] and "create_project" in typo["message"]
    assert (await call(hub, "get_metadata"))["projects"] == ["APP", "OPS"], "nothing was created"
    assert (await call(hub, "search_tickets", text="Disk full"))["total"] == 0
    assert (await call(hub, "search_tickets", project="OSP"))["code"] == "not_found"

    lower = await call(hub, "create_ticket", project="ops", title="Disk full")
    assert lower["key"] == "OPS-3" and lower["project"] == "OPS"
    assert (await call(hub, "search_tickets", project="ops"))["total"] == 3
    assert (await call(hub, "get_ticket", id="ops-3"))["key"] == "OPS-3"

    made = await call(hub, "create_project", key="pay")
    assert made == {"key": "PAY", "created": True}
    assert await call(hub, "create_project", key="Pay") == {"key": "PAY", "created": False}
    assert (await call(hub, "create_ticket", project="Pay", title="Refund stuck"))["key"] == "PAY-1"
    bad = await call(hub, "create_project", key="PAY-2")
    assert bad["code"] == "invalid_argument" and "letters, digits or underscores" in bad["message"]


async def test_a_fresh_store_says_how_to_make_a_project(tmp_path: Path) -> None:
    async with Client(create_server(EmbeddedTicketing(tmp_path))) as client:
        first = (await client.call_tool("create_ticket", {"project": "OPS", "title": "first"})).structured_content
        assert first["code"] == "not_found" and "no projects yet" in first["message"] and "create_project" in first["message"]
        await client.call_tool("create_project", {"key": "OPS"})
        made = (await client.call_tool("create_ticket", {"project": "OPS", "title": "first"})).structured_content
        assert made["key"] == "OPS-1"


async def test_text_search_matches_percent_and_underscore_literally(hub: Hub) -> None:
    await call(hub, "create_ticket", project="APP", title="Progress stuck at 100% on upload")
    await call(hub, "create_ticket", project="APP", title="Rename snake_case fields")
    assert [t["title"] for t in (await call(hub, "search_tickets", text="%"))["tickets"]] == ["Progress stuck at 100% on upload"]
    assert [t["title"] for t in (await call(hub, "search_tickets", text="_"))["tickets"]] == ["Rename snake_case fields"]
    assert (await call(hub, "search_tickets", text="e_c"))["total"] == 1
    assert (await call(hub, "search_tickets", text="\\"))["total"] == 0
    assert (await call(hub, "find_users", query="%"))["users"] == []
    assert [u["id"] for u in (await call(hub, "find_users", query="ada"))["users"]] == ["u1"]


async def test_control_characters_are_refused_in_stored_text(hub: Hub) -> None:
    cases = [
        ("create_ticket", {"project": "OPS", "title": "bad\x00title"}, "title", "U+0000"),
        ("create_ticket", {"project": "OPS", "title": "ok", "description": "bell\x07"}, "description", "U+0007"),
        ("create_ticket", {"project": "OPS", "title": "ok", "labels": ["fine", "esc\x1b"]}, "labels[1]", "U+001B"),
        ("update_ticket", {"id": "OPS-1", "title": "nul\x00"}, "title", "U+0000"),
        ("add_comment", {"id": "OPS-1", "body": "a\x00b"}, "body", "U+0000"),
        ("link_tickets", {"id": "OPS-1", "other_id": "OPS-2", "type": "blocks\x00"}, "type", "U+0000"),
        ("create_project", {"key": "P\x00"}, "key", "U+0000"),
    ]
    for tool, args, field, char in cases:
        refused = await call(hub, tool, **args)
        assert refused["code"] == "invalid_argument", (tool, refused)
        assert refused["message"].startswith(f"{field} contains control character {char}"), refused["message"]
    assert (await call(hub, "search_tickets", project="OPS"))["total"] == 2, "nothing was written"
    assert (await call(hub, "get_ticket", id="OPS-1", include=["comments", "links"]))["comments"] == []
    kept = await call(hub, "create_ticket", project="OPS", title="tab\tok", description="line 1\r\nline 2\n")
    assert kept["title"] == "tab\tok" and kept["description"] == "line 1\r\nline 2\n"


async def test_nothing_to_update_points_to_transition_ticket(hub: Hub) -> None:
    empty = await call(hub, "update_ticket", id="OPS-1")
    assert empty["code"] == "invalid_argument" and "transition_ticket" in empty["message"]
    assert "nothing to update" in empty["message"]


async def test_a_status_passed_to_update_ticket_points_to_transition_ticket(hub: Hub) -> None:
    """The issue's exact call: `status` is not an update_ticket argument, and the refusal says where it goes."""
    refused = await call(hub, "update_ticket", id="OPS-1", status="closed")
    assert refused["code"] == "invalid_argument"
    assert "'status'" in refused["message"] and "transition_ticket" in refused["message"]
    assert (await call(hub, "get_ticket", id="OPS-1"))["status"] != "closed"
    async with Client(create_server(EmbeddedTicketing(Path(os.environ["MCP_HUB_DATA_DIR"])))) as alone:
        answer = await alone.call_tool("update_ticket", {"id": "OPS-1", "status": "closed"})
    assert answer.is_error and "transition_ticket" in answer.structured_content["message"]


async def test_a_deleted_tickets_comment_keys_answer_not_found(hub: Hub) -> None:
    """Outside review: after `delete_ticket`, the key that added one of its comments still replayed
    the deleted comment (whose id a later comment on another ticket could take)."""
    made = {"id": "OPS-1", "body": "hello", "idempotency_key": "comment-1"}
    comment = await call(hub, "add_comment", **made)
    assert comment["body"] == "hello"
    assert (await call(hub, "add_comment", **made))["id"] == comment["id"]  # a replay, while the ticket lives
    await call(hub, "delete_ticket", id="OPS-1", confirm=True)
    assert (await call(hub, "add_comment", **made))["code"] == "not_found"
    # A retried delete (its answer lost) answers as the first did; a ticket that never was is not_found.
    assert (await call(hub, "delete_ticket", id="ops-1", confirm=True))["id"] == "ops-1"
    assert (await call(hub, "delete_ticket", id="OPS-99", confirm=True))["code"] == "not_found"
    other = await call(hub, "add_comment", id="OPS-2", body="next")
    assert other["id"] != comment["id"], "a deleted comment's id is never given to a new one"


def test_comment_ids_stay_unique_across_the_migration(tmp_path: Path) -> None:
    """A database from before the migration keeps its comments, and ids are not reused after it."""
    import sqlite3

    from servers.kit.store import _IDEMPOTENCY_TABLE
    from servers.ticketing import store as store_module

    old = sqlite3.connect(tmp_path / "ticketing.sqlite")
    for number, script in enumerate(store_module._MIGRATIONS[:2], start=1):  # noqa: SLF001
        old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    old.execute("INSERT INTO projects (key) VALUES ('OPS')")
    old.execute("INSERT INTO tickets (key, project, title, status, type, created_at, updated_at) "
                "VALUES ('OPS-1', 'OPS', 't', 'open', 'task', 'x', 'x')")
    for body in ("kept", "gone", "gone too"):
        old.execute("INSERT INTO comments (ticket_key, body, public, created_at) VALUES ('OPS-1', ?, 1, 'x')", (body,))
    # The key that added comment 3 outlives it (second outside review: the migration then gave id 2 again).
    old.executescript(_IDEMPOTENCY_TABLE)
    old.execute("INSERT INTO idempotency_keys VALUES ('local', 'add_comment', 'k3', 'f', '{}', '3', 0, 0, 9e9)")
    old.execute("DELETE FROM comments WHERE id > 1")
    old.commit()
    old.close()
    migrated = EmbeddedTicketing(tmp_path)
    db = migrated.store._db  # noqa: SLF001
    assert [tuple(r) for r in db.execute("SELECT id, body FROM comments")] == [(1, "kept")]
    db.execute("INSERT INTO comments (ticket_key, body, public, created_at) VALUES ('OPS-1', 'second', 1, 'x')")
    db.execute("DELETE FROM comments WHERE body = 'second'")
    db.execute("INSERT INTO comments (ticket_key, body, public, created_at) VALUES ('OPS-1', 'third', 1, 'x')")
    assert [r[0] for r in db.execute("SELECT id FROM comments ORDER BY id")] == [1, 5]


async def test_link_types_are_the_known_ones_in_one_spelling(hub: Hub) -> None:
    """Outside review: `link_tickets(type="bloks")` was stored as a new link type, and "Blocks",
    "blocks" and "is blocked by" as three types, all outward."""
    typo = await call(hub, "link_tickets", id="OPS-1", other_id="OPS-2", type="bloks")
    assert typo["code"] == "invalid_argument" and "'blocks'" in typo["message"]
    assert (await call(hub, "link_tickets", id="OPS-1", other_id="OPS-2", type="Blocks"))["type"] == "blocks"
    reverse = await call(hub, "link_tickets", id="APP-1", other_id="OPS-1", type="is  blocked by")
    assert reverse == {"type": "blocks", "direction": "inward", "ticket": "OPS-1"}
    links = (await call(hub, "get_ticket", id="OPS-1", include=["links"]))["links"]
    assert sorted((link["type"], link["direction"], link["ticket"]) for link in links) == [
        ("blocks", "outward", "APP-1"), ("blocks", "outward", "OPS-2")]


async def test_labels_are_stored_trimmed_and_once(hub: Hub) -> None:
    """Outside review: `labels=["x", "x", " y"]` was stored as given, and `["a", "A"]` kept both."""
    updated = await call(hub, "update_ticket", id="OPS-1", labels=["x", "x", " y", "A", "a"])
    assert updated["labels"] == ["x", "y", "A"]
    made = await call(hub, "create_ticket", project="OPS", title="t", labels=["Net", " net "])
    assert made["labels"] == ["Net"]
    empty = await call(hub, "update_ticket", id="OPS-1", labels=["ok", "  "])
    assert empty["code"] == "invalid_argument" and empty["details"]["field"] == "labels"
    assert (await call(hub, "get_ticket", id="OPS-1"))["labels"] == ["x", "y", "A"], "nothing changed"


async def test_label_search_matches_labels_as_they_are_kept_once(hub: Hub) -> None:
    """Second outside review: labels were kept once ignoring case but searched by exact spelling, so
    `labels=["URGENT"]` missed a ticket labelled "Urgent"."""
    made = await call(hub, "create_ticket", project="OPS", title="label case", labels=[" Urgent", "URGENT", "Straße"])
    assert made["labels"] == ["Urgent", "Straße"]
    for asked in (["URGENT"], ["urgent"], [" Urgent "], ["STRASSE"], ["urgent", "straße"]):
        found = await call(hub, "search_tickets", labels=asked)
        assert [t["key"] for t in found["tickets"]] == [made["key"]], asked
    assert (await call(hub, "search_tickets", labels=["urgent", "other"]))["tickets"] == []
