"""Two updates sent at once with one `expected_version` (outside review domains27 #3): exactly one wins and
the other gets a `conflict` saying what to do — the check is in the write (embedded: a conditional UPDATE;
Zendesk: `safe_update`), or proven from the write's answer where the provider has no conditional write
(ServiceNow: `sys_mod_count`). Jira and GitHub check just before the write, and their tools say so."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from servers.ticketing.server import create_server
from servers.ticketing.store import EmbeddedTicketing
from tests.servers.ticketing.test_ticketing_same_status import backend

pytestmark = pytest.mark.anyio


async def call(server: Any, tool: str, **args: Any) -> dict[str, Any]:
    return (await server.call_tool(tool, args)).structured_content  # type: ignore[no-any-return]


async def race(servers: list[Any], tool: str, ticket: str, version: str, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send one `tool` call per server at once, all with `expected_version=version`; their answers."""
    answers: list[dict[str, Any]] = []

    async def one(server: Any, args: dict[str, Any]) -> None:
        answers.append(await call(server, tool, id=ticket, expected_version=version, **args))

    async with anyio.create_task_group() as group:
        for server, args in zip(servers, values, strict=True):
            group.start_soon(one, server, args)
    return answers


def one_wins(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The losing answer, after checking there is exactly one winner and one clear conflict."""
    won = [a for a in answers if "code" not in a]
    lost = [a for a in answers if a.get("code") == "conflict"]
    assert len(won) == 1 and len(lost) == 1, answers
    assert re.search(r"get (it|the ticket) again", lost[0]["message"], re.IGNORECASE) and lost[0]["details"]["current_version"], lost[0]
    return lost[0]


@pytest.mark.parametrize("tool,values", [("update_ticket", [{"title": "Alice's title"}, {"title": "Bob's title"}]),
                                          ("transition_ticket", [{"to": "in_progress"}, {"to": "resolved"}])])
async def test_embedded_two_writers_with_one_version_one_wins(tool: str, values: list[dict[str, Any]], tmp_path: Path) -> None:
    # two servers on one data directory: two connections, as two processes would be
    first, second = create_server(EmbeddedTicketing(tmp_path)), create_server(EmbeddedTicketing(tmp_path))
    await call(first, "create_project", key="OPS")
    made = await call(first, "create_ticket", project="OPS", title="Shared")
    lost = one_wins(await race([first, second], tool, made["id"], made["version"], values))
    now = await call(first, "get_ticket", id=made["id"])
    assert now["version"] == lost["details"]["current_version"] == str(int(made["version"]) + 1), (now, lost)


@pytest.mark.parametrize("kind", ["servicenow", "zendesk"])
async def test_provider_two_writers_with_one_version_one_wins(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, fake, project = backend(kind, monkeypatch, tmp_path)
    made = await call(server, "create_ticket", project=project, title="Shared", description="one ticket, two writers")
    assert "id" in made, made
    if kind == "servicenow":
        fake.reads_together = 2  # both writers read version N before either writes (as network delay lets happen)
    lost = one_wins(await race([server, server], "update_ticket", made["id"], made["version"],
                               [{"title": "Alice's title"}, {"title": "Bob's title"}]))
    if kind == "servicenow":  # no conditional write: both landed, and the later writer is told so
        assert lost["details"]["written"] is True and "both changes were stored" in lost["message"], lost
    else:  # Zendesk refused the stale write: nothing of it was stored
        assert "nothing was changed" in lost["message"], lost
    stale = await call(server, "update_ticket", id=made["id"], title="Late", expected_version=made["version"])
    assert stale.get("code") == "conflict", stale  # a version known stale before the write is refused outright


@pytest.mark.parametrize("kind", ["embedded", "jira", "servicenow", "zendesk", "github"])
async def test_the_tools_say_what_expected_version_guarantees(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, _, _ = backend(kind, monkeypatch, tmp_path)
    tools = {t.name: t for t in await server.list_tools()}
    for name in ("update_ticket", "transition_ticket"):
        text = tools[name].input_schema["properties"]["expected_version"]["description"]
        if kind in ("embedded", "zendesk"):
            assert "exactly one applies" in text, text
        elif kind == "servicenow":
            assert "no conditional write" in text and "later one gets conflict" in text, text
        else:
            assert "best effort" in text and "not detected" in text, text
