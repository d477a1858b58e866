"""ServiceNow ACLs (outside review domains18 #2, #5): read ACLs drop rows from a page after ServiceNow
cut it, so paging by rows received repeated incidents and an emptied page ended the walk; field write
ACLs make the Table API skip a field and still answer 200, so writes answered success for changes that
were not made."""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

import httpx
import pytest

from servers.ticketing.providers.servicenow import ServiceNowTicketing
from servers.ticketing.server import create_server
from tests.fakes.servicenow import GROUPS, FakeServiceNow
from tests.servers.ticketing.test_ticketing_servicenow import env, tool  # noqa: F401 — the fixture

pytestmark = pytest.mark.anyio


def _server(fake: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SERVICENOW_USER", fake.user)
    monkeypatch.setenv("SERVICENOW_PASSWORD", fake.password)
    return create_server(ServiceNowTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


def _incident(fake: FakeServiceNow, n: int, state: str = "2") -> dict[str, Any]:
    stamp = f"2026-12-01 10:{n // 60:02d}:{n % 60:02d}"
    row = {"sys_id": secrets.token_hex(16), "number": f"INC{n:07d}", "state": state, "short_description": f"Incident {n}",
           "description": "", "impact": "2", "urgency": "2", "priority": "3", "category": "software", "assigned_to": "",
           "assignment_group": GROUPS[0]["sys_id"], "caller_id": "", "opened_at": stamp, "sys_created_on": stamp,
           "sys_updated_on": stamp, "sys_mod_count": "0", "parent_incident": "", "close_code": "", "close_notes": ""}
    fake.incidents.append(row)
    return row


async def _walk(server: Any, tool_name: str, **args: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(40):
        page = await tool(server, tool_name, **args, **({"cursor": cursor} if cursor else {}))
        seen += [t["id"] for t in page.get("tickets", page.get("comments", []))]
        if not (cursor := page.get("next_cursor")):
            return seen
    raise AssertionError(f"the walk did not end: {seen}")


async def test_servicenow_search_walk_skips_acl_hidden_rows(env: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fake = env
    server = _server(fake, monkeypatch)
    rows = {n: _incident(fake, n) for n in range(1, 31)}
    hidden = {29, 27, *range(10, 15)}  # two near the top; five in a row further down: one page of 5 is all hidden
    fake.hidden = {rows[n]["sys_id"] for n in hidden}
    readable = {f"INC{n:07d}" for n in rows if n not in hidden}
    seen = await _walk(server, "search_tickets", limit=5)
    repeated = sorted(k for k, v in Counter(seen).items() if v > 1)
    missing = sorted(readable - set(seen))
    assert not repeated and not missing, f"walk returned {len(seen)} rows for {len(readable)} readable: repeated {repeated}, missing {missing}"
    offsets = [r["params"]["sysparm_offset"] for r in fake.requests if r["path"] == "/api/now/table/incident"]
    # keyed pages (outside review domains27 #1): each continues after the last readable row at offset 0; only a
    # window read ACLs emptied is stepped over by sysparm_limit, as ServiceNow counts rows
    assert set(offsets) == {"0", "5"} and offsets.count("5") == 1, offsets


async def test_servicenow_comment_walk_skips_acl_hidden_entries(env: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fake = env
    server = _server(fake, monkeypatch)
    row = _incident(fake, 1)
    for n in range(12):
        fake.journal.append({"sys_id": f"j{n:031d}", "element_id": row["sys_id"], "element": "comments", "value": f"c{n}",
                             "sys_created_on": f"2026-12-01 11:00:{n:02d}", "sys_created_by": "beth.anglin"})
    fake.hidden = {f"j{n:031d}" for n in (0, 4, 5, 6)}  # one page of 3 wholly hidden
    seen = await _walk(server, "list_comments", id="INC0000001", limit=3)
    assert seen == [f"j{n:031d}" for n in range(12) if n not in (0, 4, 5, 6)], seen


async def test_servicenow_skipped_fields_are_reported(env: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fake = env
    server = _server(fake, monkeypatch)
    one, two = _incident(fake, 1), _incident(fake, 2)
    fake.readonly_fields = {"state", "impact", "urgency"}

    moved = await tool(server, "transition_ticket", id="INC0000001", to="on_hold")
    assert moved.get("code") == "forbidden", f"a transition ServiceNow skipped answered {moved}"
    assert moved["details"]["not_applied"] == ["status"] and moved["details"]["native_fields"] == ["state"]
    assert "incident.state" in moved["message"] and "retrying will not help" in moved["message"]
    assert one["state"] == "2"

    edited = await tool(server, "update_ticket", id="INC0000002", priority="critical", title="Payroll run failed")
    assert edited.get("code") == "forbidden", f"an update ServiceNow partly skipped answered {edited}"
    assert edited["details"]["not_applied"] == ["priority"] and edited["details"]["applied"] == ["title"]
    assert "did apply title" in edited["message"] and two["short_description"] == "Payroll run failed"
    assert edited["details"]["current_version"] == "1"

    fake.readonly_fields = {"work_notes", "parent_incident"}
    note = await tool(server, "add_comment", id="INC0000001", body="internal only", public=False)
    assert note.get("code") == "forbidden" and note["details"]["native_fields"] == ["work_notes"], note
    assert fake.journal == []
    linked = await tool(server, "link_tickets", id="INC0000001", other_id="INC0000002", type="parent of")
    assert linked.get("code") == "forbidden" and linked["details"]["native_fields"] == ["parent_incident"], linked

    fake.readonly_fields = {"category"}
    made = await tool(server, "create_ticket", project="Service Desk", title="Disk full", type="hardware")
    assert made.get("code") == "forbidden" and "was created" in made["message"] and "Do not create it again" in made["message"], made

    fake.readonly_fields = set()  # what ServiceNow stores as sent is a success, as before
    assert (await tool(server, "transition_ticket", id="INC0000001", to="on_hold"))["status"] == "on_hold"
    assert (await tool(server, "update_ticket", id="INC0000002", priority="critical"))["priority"] == "critical"
    assert (await tool(server, "add_comment", id="INC0000001", body="now it lands", public=False))["body"] == "now it lands"
    assert (await tool(server, "link_tickets", id="INC0000001", other_id="INC0000002", type="parent of"))["type"] == "parent of"
    assert (await tool(server, "transition_ticket", id="INC0000002", to="resolved"))["status"] == "resolved"


async def test_servicenow_comment_answer_is_its_journal_entry(env: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The answer's id is the `sys_journal_field` entry `list_comments` (and `delete_ticket`) use, not one
    made up from the incident's `sys_updated_on` (which two comments in one second shared)."""
    fake = env
    server = _server(fake, monkeypatch)
    _incident(fake, 1)
    public = await tool(server, "add_comment", id="INC0000001", body="We are on it", public=True)
    note = await tool(server, "add_comment", id="INC0000001", body="Vendor case 42", public=False)
    listed = {c["id"]: (c["body"], c["public"]) for c in (await tool(server, "list_comments", id="INC0000001"))["comments"]}
    assert listed.get(public["id"]) == ("We are on it", True) and listed.get(note["id"]) == ("Vendor case 42", False), \
        f"answered ids {public['id']!r}, {note['id']!r}; list_comments has {sorted(listed)}"


async def test_text_servicenow_cut_to_its_column_is_said_so_not_reported_forbidden(
        env: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:
    """A title over 160 characters is stored cut (short_description's length): the write landed, so the
    answer says what was kept and not to write it again — not `forbidden` "ask an admin for write
    access", which it is not (re-check 19 #2)."""
    server = _server(env, monkeypatch)
    long_title = "Printer on floor 3 " * 10  # 190 characters
    created = await tool(server, "create_ticket", project="Service Desk", title=long_title)
    assert created["code"] == "invalid_argument" and "cut title to 160 characters" in created["message"], created
    assert created["details"]["partially_applied"] is True and "do not write it again" in created["message"]
    assert len(env.incidents) == 1 and env.incidents[0]["short_description"] == long_title[:160]
    env.readonly_fields.add("urgency")
    number = env.incidents[0]["number"]
    both = await tool(server, "update_ticket", id=number, priority="critical", description="x" * 4100)
    assert both["code"] == "forbidden" and "priority" in both["details"]["not_applied"], both  # a permission is still one
