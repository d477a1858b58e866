"""Outside review r38b, ticketing, on every backend (embedded and each connector's local fake):

- #2: `update_ticket` / `transition_ticket` repeated with the `expected_version` it was first sent with (its
  answer lost) answered `conflict` though the ticket held exactly what was asked. A call that would change
  nothing now answers the ticket as it is whatever `expected_version` says; one that would still change
  something keeps the `conflict`.
- #8: on Jira, GitHub and Zendesk an update whose values equal the stored ones still wrote, so the version
  moved and another caller's `expected_version` went stale. Each connector now compares with the stored ticket
  (labels as a set, the assignee by account, email or login, the description after the provider's round trip)
  and writes only what differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.jira import FakeJira
from tests.servers.ticketing.test_ticketing_same_status import backend, writes

pytestmark = pytest.mark.anyio
KINDS = ["embedded", "jira", "servicenow", "zendesk", "github"]


def sent(fake: Any) -> list[dict[str, Any]]:
    """The write requests a fake received (none for the embedded backend)."""
    return [r for r in fake.requests if r["method"] != "GET"] if fake is not None else []


def caller(server: Any) -> Any:
    async def call(tool: str, **args: Any) -> dict[str, Any]:
        return (await server.call_tool(tool, args)).structured_content  # type: ignore[no-any-return]

    return call


@pytest.mark.parametrize("kind", KINDS)
async def test_a_repeated_versioned_write_answers_the_ticket_it_made(kind: str, monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    server, fake, project = backend(kind, monkeypatch, tmp_path)
    call = caller(server)
    if kind == "embedded":
        await call("create_project", key=project)
    made = await call("create_ticket", project=project, title="VPN flaps", description="It drops hourly.")
    read = await call("get_ticket", id=made["id"])

    asked = {"id": made["id"], "title": "VPN flaps on floor 3", "priority": "high", "expected_version": read["version"]}
    first = await call("update_ticket", **asked)
    assert first.get("version") not in (None, read["version"]), first
    before = writes(fake)
    again = await call("update_ticket", **asked)  # the retry of an update that landed
    assert again.get("code") is None, f"{kind}: a repeat holding what was asked must answer the ticket, not {again}"
    assert (again["title"], again["priority"], again["version"], again["changed"]) == (asked["title"], "high", first["version"], [])
    assert writes(fake) == before, f"{kind}: nothing was written for the repeat"
    assert first["changed"] == ["priority", "title"], f"{kind}: the answer names what the first call changed ({first})"

    stale = await call("update_ticket", **{**asked, "priority": "low"})  # would still change something
    assert stale.get("code") == "conflict" and stale["details"]["current_version"] == first["version"], stale
    assert (await call("get_ticket", id=made["id"]))["priority"] == "high", "the stale change was not written"

    moved = await call("transition_ticket", id=made["id"], to="resolved", expected_version=first["version"])
    assert moved.get("status") == "resolved", moved
    before = writes(fake)
    moved_again = await call("transition_ticket", id=made["id"], to="resolved", expected_version=first["version"])
    assert moved_again.get("code") is None, f"{kind}: a repeated move that landed must answer the ticket, not {moved_again}"
    assert (moved_again["status"], moved_again["version"]) == ("resolved", moved["version"]) and writes(fake) == before
    elsewhere = await call("transition_ticket", id=made["id"], to="in_progress", expected_version=first["version"])
    assert elsewhere.get("code") == "conflict" and elsewhere["details"]["current_version"] == moved["version"], elsewhere
    assert (await call("get_ticket", id=made["id"]))["status"] == "resolved", "the stale move was not made"


async def test_jira_writes_only_what_differs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, fake, _ = backend("jira", monkeypatch, tmp_path)
    call = caller(server)
    made = await call("create_ticket", project="OPS", title="VPN flaps", type="bug", priority="high", labels=["vpn", "net"],
                      assignee="acc-1", description="Steps:\n\n* reboot\n* wait")
    assert made["description"] == "Steps:\n\n- reboot\n- wait", "Jira's round trip respells the list"
    before = len(sent(fake))
    same = await call("update_ticket", id=made["id"], title="VPN flaps", type="Bug", priority="high", labels=["net", "vpn"],
                      assignee="ADA@example.com", description="Steps:\n\n* reboot\n* wait")
    assert same.get("code") is None and same["version"] == made["version"] and same["changed"] == [], same
    assert len(sent(fake)) == before, "no PUT for values Jira already holds"

    renamed = await call("update_ticket", id=made["id"], title="VPN drops", priority="high", labels=["vpn", "net"], assignee="acc-1")
    assert renamed["changed"] == ["title"] and renamed["version"] != made["version"], renamed
    assert sent(fake)[-1]["json"] == {"fields": {"summary": "VPN drops"}}, "only the field that differs is sent"
    cleared = await call("update_ticket", id=made["id"], assignee="", labels=[])
    assert cleared["assignee"] is None and cleared["labels"] == [] and cleared["changed"] == ["assignee", "labels"], cleared


async def test_jira_same_description_is_not_refused_as_lossy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A description markdown cannot carry is refused only when it would be replaced: re-sending what was read
    (an agent's retry of an edit to another field) writes nothing and answers the issue."""
    server, fake, _ = backend("jira", monkeypatch, tmp_path)
    call = caller(server)
    made = await call("create_ticket", project="OPS", title="Panel", description="Read me")
    assert isinstance(fake, FakeJira)
    panel = {"type": "panel", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Read me"}]}]}
    fake.issues[made["id"]]["fields"]["description"] = {"type": "doc", "version": 1, "content": [panel]}
    read = await call("get_ticket", id=made["id"])
    same = await call("update_ticket", id=made["id"], description=read["description"], expected_version=read["version"])
    assert same.get("code") is None and same["changed"] == [], same
    other = await call("update_ticket", id=made["id"], description="Read me, then act")
    assert other.get("code") == "invalid_argument" and "panel" in other["message"], other


async def test_github_writes_only_what_differs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, fake, project = backend("github", monkeypatch, tmp_path)
    call = caller(server)
    made = await call("create_ticket", project=project, title="Login fails", labels=["auth", "ui"], priority="high",
                      assignee="octocat", description="Since 2.3")
    before = len(sent(fake))
    same = await call("update_ticket", id=made["id"], title="Login fails", labels=["UI", "auth"], priority="high",
                      assignee="OctoCat", description="Since 2.3\n")
    assert same.get("code") is None and same["version"] == made["version"] and same["changed"] == [], same
    assert len(sent(fake)) == before, "no PATCH and no label call for values GitHub already holds"
    assert (await call("update_ticket", id=made["id"], priority="high", expected_version="stale"))["changed"] == []

    retitled = await call("update_ticket", id=made["id"], title="Login fails on Safari", assignee="octocat", priority="high")
    assert retitled["changed"] == ["title"] and sent(fake)[-1]["json"] == {"title": "Login fails on Safari"}, sent(fake)[-1]
    lowered = await call("update_ticket", id=made["id"], labels=["auth", "ui"], priority="low")
    assert lowered["changed"] == ["priority"] and lowered["labels"] == ["auth", "ui"] and lowered["priority"] == "low", lowered
    indented = await call("update_ticket", id=made["id"], description="    Since 2.3")  # a markdown code block (r39b #5)
    assert indented["changed"] == ["description"] and sent(fake)[-1]["json"]["body"].startswith("    Since 2.3"), indented


async def test_zendesk_writes_only_what_differs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, fake, project = backend("zendesk", monkeypatch, tmp_path)
    call = caller(server)
    made = await call("create_ticket", project=project, title="Cannot log in", type="incident", priority="high",
                      labels=["vip", "sso"], assignee="501", description="Since Monday")
    before = len(sent(fake))
    same = await call("update_ticket", id=made["id"], title="Cannot log in", type="Incident", priority="high",
                      labels=["SSO", "vip"], assignee="smith@acme.test")
    assert same.get("code") is None and same["version"] == made["version"] and same["changed"] == [], same
    assert len(sent(fake)) == before, "no PUT for values Zendesk already holds"
    retry = await call("update_ticket", id=made["id"], title="Cannot log in", description="Since Monday",
                       expected_version="2020-01-01T00:00:00Z")
    assert retry.get("code") is None and retry["changed"] == [], f"the description it has is no change to refuse ({retry})"
    assert len(sent(fake)) == before

    moved = await call("update_ticket", id=made["id"], title="Cannot log in", priority="low", labels=["vip", "sso"])
    assert moved["changed"] == ["priority"] and sent(fake)[-1]["json"] == {"ticket": {"priority": "low"}}, sent(fake)[-1]
    refused = await call("update_ticket", id=made["id"], description="Since Tuesday")
    assert refused.get("code") == "invalid_argument" and "add_comment" in refused["message"], refused


async def test_servicenow_writes_only_what_differs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, fake, project = backend("servicenow", monkeypatch, tmp_path)
    call = caller(server)
    made = await call("create_ticket", project=project, title="Email down", type="software", priority="high",
                      assignee="david@acme.test", description="Outlook fails")
    before = len(sent(fake))
    same = await call("update_ticket", id=made["id"], title="Email down", type="software", priority="high",
                      assignee="b" * 32, description="Outlook fails\r\n", expected_version="0-stale")
    assert same.get("code") is None and same["version"] == made["version"] and same["changed"] == [], same
    assert len(sent(fake)) == before, "no PATCH for values ServiceNow already holds"
    moved = await call("update_ticket", id=made["id"], title="Email down", priority="critical")
    assert moved["changed"] == ["priority"] and sent(fake)[-1]["json"] == {"impact": "1", "urgency": "1"}, sent(fake)[-1]
