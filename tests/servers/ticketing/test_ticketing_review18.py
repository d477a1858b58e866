"""Outside review 18 (domains18), ticketing defects 3, 7, 9, 10, 12 and 13, and their siblings: a
comment's answer is the comment the write made; a Zendesk project (group) given by name is filed
there or refused; `updated_since` reaches Zendesk and GitHub as the instant; GitHub search keeps
resolved and closed apart; the embedded store records who wrote; names are compared in NFC."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from servers.kit.caller import Caller, bind_caller
from servers.ticketing import normal
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.providers.zendesk import ZendeskTicketing
from servers.ticketing.server import create_server
from servers.ticketing.store import EmbeddedTicketing
from tests.fakes.github import FakeGitHub
from tests.fakes.zendesk import FakeZendesk

pytestmark = pytest.mark.anyio

ALICE = Caller("api_key:alice", frozenset({"ticketing:*"}), kind="api_key", name="alice", namespace="ticketing")
BOB = Caller("api_key:bob", frozenset({"ticketing:*"}), kind="api_key", name="bob", namespace="ticketing")


async def call(server: Any, tool: str, who: Caller | None = None, **args: Any) -> dict[str, Any]:
    if who is None:
        result = await server.call_tool(tool, args)
    else:
        with bind_caller(who):
            result = await server.call_tool(tool, args)
    return result.structured_content  # type: ignore[no-any-return]


@pytest.fixture
def zendesk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeZendesk, Any]:
    fake = FakeZendesk()
    monkeypatch.setenv("ZENDESK_BASE_URL", "https://acme.zendesk.test")
    monkeypatch.setenv("ZENDESK_EMAIL", fake.email)
    monkeypatch.setenv("ZENDESK_API_TOKEN", fake.token)
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeGitHub, Any]:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "https://api.github.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


# -- defect 3: a comment's answer is the comment the write made ------------------------------------


async def test_zendesk_concurrent_comments_each_answer_their_own(zendesk: tuple[FakeZendesk, Any]) -> None:
    fake, server = zendesk
    await call(server, "create_ticket", project="Support", title="Refund request")
    fake.answer_together = 2  # both writes land before either answer comes back, as over a slow network
    answers: dict[str, dict[str, Any]] = {}

    async def comment(name: str, body: str, public: bool) -> None:
        answers[name] = await call(server, "add_comment", id="1", body=body, public=public)

    async with anyio.create_task_group() as group:
        group.start_soon(comment, "reply", "Hi Dana, your refund was approved.", True)
        group.start_soon(comment, "note", "INTERNAL: card flagged by fraud team, do not refund", False)
    stored = {c["body"]: c["id"] for c in fake.comments[1]}
    reply, note = answers["reply"], answers["note"]
    assert (reply["body"], reply["public"], reply["id"]) == (
        "Hi Dana, your refund was approved.", True, str(stored["Hi Dana, your refund was approved."])), reply
    assert (note["body"], note["public"], note["id"]) == (
        "INTERNAL: card flagged by fraud team, do not refund", False,
        str(stored["INTERNAL: card flagged by fraud team, do not refund"])), note
    assert reply["author"] == note["author"] == "Agent Smith"
    assert not [r for r in fake.requests if r["method"] == "GET" and r["path"].endswith("/comments.json")], \
        "the answer must come from the write's own audit, not a read of the newest comment"


# -- defect 7: a Zendesk project (group) given by name ---------------------------------------------


async def test_zendesk_project_by_group_name_is_filed_there_and_found(zendesk: tuple[FakeZendesk, Any]) -> None:
    fake, server = zendesk
    made = await call(server, "create_ticket", project="Billing", title="Invoice 4411 charged twice", type="incident")
    stored = next(t for t in fake.tickets if str(t["id"]) == made["id"])
    assert stored["group_id"] == 360001, f"filed in group {stored['group_id']}, not Billing (360001)"
    assert made["project"] == "360001"
    other = await call(server, "create_ticket", project="support", title="Password reset", type="question")
    assert next(t for t in fake.tickets if str(t["id"]) == other["id"])["group_id"] == 360002  # any case

    found = await call(server, "search_tickets", project="billing")
    assert [t["id"] for t in found["tickets"]] == [made["id"]]
    listed = await call(server, "get_metadata")
    assert listed["projects"] == ["Billing", "Support"]  # a deleted group is not offered


async def test_zendesk_unknown_group_is_refused_and_nothing_is_filed(zendesk: tuple[FakeZendesk, Any]) -> None:
    fake, server = zendesk
    refused = await server.call_tool("create_ticket", {"project": "Biling", "title": "Typo'd group"})
    body = refused.structured_content
    assert refused.is_error and body["code"] == "not_found", body
    assert "Billing" in body["message"] and "Support" in body["message"] and "Old Team" not in body["message"]
    assert body["details"]["known_projects"] == ["Billing", "Support"]
    assert not [r for r in fake.requests if r["method"] == "POST"] and not fake.tickets
    searched = await server.call_tool("search_tickets", {"project": "Biling"})
    assert searched.is_error and searched.structured_content["code"] == "not_found"
    fake.groups.append({"id": 360009, "name": "Bilingual", "deleted": False})  # a group made since the list was read
    made = await call(server, "create_ticket", project="Bilingual", title="Spanish queue")
    assert fake.tickets[-1]["group_id"] == 360009 and made["project"] == "360009"


async def test_zendesk_type_in_any_case(zendesk: tuple[FakeZendesk, Any]) -> None:
    fake, server = zendesk
    made = await call(server, "create_ticket", project="Support", title="Printer on fire", type="Incident")
    assert made["type"] == "incident" and fake.tickets[-1]["type"] == "incident"


# -- defect 9: Zendesk updated_since is the instant ------------------------------------------------


async def test_zendesk_updated_since_is_the_instant(zendesk: tuple[FakeZendesk, Any]) -> None:
    fake, server = zendesk
    for subject, when in (("printer jam early", "2026-12-05T09:00:00Z"), ("printer jam late", "2026-12-05T20:00:00Z")):
        await call(server, "create_ticket", project="Support", title=subject)
        fake.tickets[-1]["updated_at"] = when
    early, late = (str(t["id"]) for t in fake.tickets)
    for since in ("2026-12-06T01:00:00+14:00", "2026-12-05T15:00:00Z", "2026-12-05T11:00:00"):  # naive: UTC
        page = await call(server, "search_tickets", text="printer", updated_since=since)
        assert [t["id"] for t in page["tickets"]] == [late], f"updated_since={since}: {page['tickets']}"
    query = [r for r in fake.requests if r["path"].endswith("/search/export.json")][-1]["params"]["query"]
    assert query == "type:ticket printer updated>=2026-12-05T11:00:00Z"
    edge = await call(server, "search_tickets", text="printer", updated_since="2026-12-05T09:00:00.700Z")
    assert sorted(t["id"] for t in edge["tickets"]) == sorted([early, late])  # same second: kept, never missed


# -- defect 10: GitHub search keeps resolved and closed apart, and the instant ---------------------


def _issues(fake: FakeGitHub) -> None:
    for title, state, reason in (("Login crash on iOS", "closed", "completed"), ("Login crash on old Android", "closed", "not_planned"),
                                 ("Login crash on web", "open", None)):
        issue = fake.add(title, state=state)
        issue.update(state_reason=reason, updated_at="2026-12-05T20:00:00Z")


async def test_github_search_with_text_keeps_resolved_and_closed_apart(github: tuple[FakeGitHub, Any]) -> None:
    fake, server = github
    _issues(fake)
    resolved = await call(server, "search_tickets", text="crash", status=["resolved"])
    assert [(t["id"], t["status"]) for t in resolved["tickets"]] == [("1", "resolved")], resolved["tickets"]
    assert resolved["total"] == 1  # reason:completed selects exactly the resolved ones: GitHub's count is the total
    closed = await call(server, "search_tickets", text="crash", status=["closed"])
    assert [(t["id"], t["status"]) for t in closed["tickets"]] == [("2", "closed")], closed["tickets"]
    assert closed["total"] is None  # GitHub's count held the resolved one too: no total is made up
    both = await call(server, "search_tickets", text="crash", status=["open", "resolved"])
    assert sorted(t["id"] for t in both["tickets"]) == ["1", "3"]
    listed = await call(server, "search_tickets", status=["resolved"])  # the list path agrees
    assert [t["id"] for t in listed["tickets"]] == ["1"]
    q = [r for r in fake.requests if r["path"] == "/search/issues"][0]["params"]["q"]
    assert q == "repo:acme/app is:issue (crash) is:closed reason:completed"


async def test_github_updated_since_is_the_instant(github: tuple[FakeGitHub, Any]) -> None:
    fake, server = github
    _issues(fake)
    east = await call(server, "search_tickets", text="crash", updated_since="2026-12-06T01:00:00+14:00")
    assert len(east["tickets"]) == 3, east["tickets"]
    late = await call(server, "search_tickets", text="crash", updated_since="2026-12-06T05:00:00+14:00")  # 12-05T15:00Z
    assert len(late["tickets"]) == 3
    after = await call(server, "search_tickets", text="crash", updated_since="2026-12-05T21:00:00Z")
    assert after["tickets"] == []  # a date would have been the whole day of the 5th
    q = [r for r in fake.requests if r["path"] == "/search/issues"][0]["params"]["q"]
    assert q == "repo:acme/app is:issue (crash) updated:>=2026-12-05T11:00:00Z"
    listed = await call(server, "search_tickets", updated_since="2026-12-06T07:00:00+14:00")
    assert len(listed["tickets"]) == 3
    since = [r for r in fake.requests if r["path"] == "/repos/acme/app/issues"][-1]["params"]["since"]
    assert since == "2026-12-05T17:00:00Z"


# -- defect 12: the embedded store records who wrote -----------------------------------------------


async def test_embedded_reporter_and_comment_authors_are_the_callers(tmp_path: Path) -> None:
    server = create_server(EmbeddedTicketing(tmp_path))
    await call(server, "create_project", ALICE, key="OPS")
    ticket = await call(server, "create_ticket", ALICE, project="OPS", title="Refund customer 4411")
    await call(server, "add_comment", ALICE, id=ticket["id"], body="Approved by finance, go ahead.", public=False)
    await call(server, "add_comment", BOB, id=ticket["id"], body="Done, refund sent.")
    got = await call(server, "get_ticket", BOB, id=ticket["id"], include=["comments"])
    assert got["reporter"]["id"] == "api_key:alice", got["reporter"]
    assert [c["author"] for c in got["comments"]] == ["api_key:alice", "api_key:bob"]
    listed = await call(server, "list_comments", id=ticket["id"])
    assert [c["author"] for c in listed["comments"]] == ["api_key:alice", "api_key:bob"]
    local = await call(server, "create_ticket", project="OPS", title="Operator's own")  # no hub: the local operator
    assert local["reporter"]["id"] == "local"


# -- defect 13: names compared in NFC, any case ----------------------------------------------------

NFD_RESOLU = unicodedata.normalize("NFD", "Résolu")


class Recording(EmbeddedTicketing):
    """The embedded backend, keeping what the tool surface handed it."""

    seen: dict[str, str]

    async def transition(self, ticket_id: str, to: str, expected_version: str | None = None) -> Any:
        self.seen["to"] = to
        return await super().transition(ticket_id, to, expected_version)

    async def find_users(self, query: str, limit: int) -> Any:
        self.seen["query"] = query
        return await super().find_users(query, limit)

    async def link(self, ticket_id: str, other_id: str, link_type: str) -> Any:
        self.seen["link"] = link_type
        return await super().link(ticket_id, other_id, link_type)


async def test_tool_surface_hands_backends_names_in_nfc(tmp_path: Path) -> None:
    backend = Recording(tmp_path)
    backend.seen = {}
    server = create_server(backend)
    await backend.seed_demo()
    await server.call_tool("transition_ticket", {"id": "OPS-1", "to": NFD_RESOLU})
    assert backend.seen["to"] == "Résolu" and unicodedata.is_normalized("NFC", backend.seen["to"]), ascii(backend.seen["to"])
    await server.call_tool("find_users", {"query": unicodedata.normalize("NFD", "Zoë")})
    assert backend.seen["query"] == "Zoë"
    await server.call_tool("link_tickets", {"id": "OPS-1", "other_id": "OPS-2", "type": unicodedata.normalize("NFD", "blocks")})
    assert backend.seen["link"] == "blocks"


async def test_embedded_transition_in_any_case_and_spacing(tmp_path: Path) -> None:
    backend = EmbeddedTicketing(tmp_path)
    server = create_server(backend)
    await backend.seed_demo()
    moved = await call(server, "transition_ticket", id="OPS-1", to="  IN   PROGRESS ")
    assert moved["status"] == "in_progress", moved


def test_names_compare_without_case_form_or_spacing() -> None:
    same_name, name_key = normal.same_name, normal.name_key
    assert same_name(NFD_RESOLU, "Résolu") and same_name("RÉSOLU", "résolu") and same_name("In Progress", "in_progress")
    assert name_key("STRASSE") == name_key("Straße")  # case folding, not lower(): ß is ss
    assert not same_name("Résolu", "Resolu")
