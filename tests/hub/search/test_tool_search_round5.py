"""Tool search, round 5 (issue #20): get-vs-search by whether the request holds an identifier, a stemmer
that meets `changed` with `change`, and typo tolerance — through an in-process hub's `ToolSearch`
(deterministic word-hash embedder) and through `mcp-hub tools search --json` (keyword ranking).

The fixture servers below are built so that shared words alone pick the wrong tool and only the
behaviour under test picks the right one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
from mcp.server import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

import hub.search.index as index
from hub.config import parse_config
from hub.hub import Hub
from hub.search.service import ToolSearch
from hub.search.specific import fetches_one, query_holds_id
from hub.search.typos import Spelling, is_english
from hub.search.words import stem

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
READ = ToolAnnotations(read_only_hint=True)
SERVERS = {d: {"module": f"tests.hub.search.test_tool_search_round5:{d}"} for d in ("staff", "agenda", "pantry")}


def staff() -> MCPServer:
    """A read-one-by-id tool whose text says the user's words, beside the finder it should lose to."""
    server = MCPServer("staff")

    @server.tool(description="One employee.", annotations=READ)
    def get_employee(employee_id: Annotated[str, Field(description="Employee key.")]) -> str:
        return "one"

    @server.tool(description="Employees.", annotations=READ)
    def search_employees(query: Annotated[str, Field(description="Employee words.")]) -> list[str]:
        return []

    @server.tool(description="Each change to people's data since a cursor, for sync jobs.", annotations=READ)
    def list_changes(cursor: Annotated[str, Field(description="Where the last sync stopped.")] = "") -> list[str]:
        return []

    @server.tool(description="Which people changed team.", annotations=READ)
    def team_moves(since: Annotated[str, Field(description="From this day.")] = "") -> list[str]:
        return []

    return server


def agenda() -> MCPServer:
    server = MCPServer("agenda")

    @server.tool(description="Events between two days.", annotations=READ)
    def list_calendar_events(start: str = "", end: str = "") -> list[str]:
        return []

    return server


def pantry() -> MCPServer:
    server = MCPServer("pantry")

    @server.tool(description="What is on the kitchen shelf today.", annotations=READ)
    def list_shelf() -> list[str]:
        return []

    return server


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def ranked(search: ToolSearch, query: str) -> list[str]:
    return [h.name for h in search.search(query, 3)]


def test_what_holds_an_identifier_and_what_fetches_one() -> None:
    assert query_holds_id("show employee 4711") and query_holds_id("status of SUP-12?") and query_holds_id("ticket #42")
    assert query_holds_id("who is ada@example.com") and query_holds_id("details of event evt_77")
    for no_id in ("invoices over 5000", "changes since March 12", "top 10 customers", "book it at 3pm", "Q3 2025"):
        assert not query_holds_id(no_id), no_id
    assert fetches_one("get_employee", {"properties": {"employee_id": {}}})
    assert fetches_one("lookupUserByEmail", {"properties": {"email": {}}})
    assert not fetches_one("get_time_off_balances", {"properties": {"employee_id": {}}}), "plural: many records"
    assert not fetches_one("search_employees", {"properties": {"id": {}}}), "a finder"
    assert not fetches_one("get_metadata", {"properties": {"project": {}, "ticket_id": {}}}), "first parameter is no id"


async def test_a_request_without_an_identifier_gets_the_finder_and_one_with_an_id_the_reader(cache_dir: Path) -> None:
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, None, use_default_embedder=False)
        assert ranked(search, "employee Grace Hopper")[0] == "staff__search_employees"
        hit = search.search("employee 4711", 1)[0]
        assert hit.name == "staff__get_employee" and "reads the one record named" in hit.why()


async def test_the_stemmer_meets_changed_with_change(cache_dir: Path) -> None:
    assert stem("updated") == stem("update") == stem("updates") == stem("updating")
    assert stem("changed") == stem("change") and stem("employees") == stem("employee")
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, None, use_default_embedder=False)
        hit = search.search("each record changed since the last sync", 1)[0]
        assert hit.name == "staff__list_changes"
        assert "changed" in hit.why(), "why-matched shows the word as the query wrote it, not its stem"


async def test_a_misspelt_tool_word_is_read_as_the_word(cache_dir: Path) -> None:
    assert is_english("profile") and is_english("rotates") and not is_english("calender")
    spelling = Spelling({"calendar": 3, "profit": 2, "employee": 5})
    assert spelling.correct(["calender", "profil", "emplyee"], written={"profil": "profile"}) == ["calendar", "employee"]
    assert spelling.corrections("employee") == [] and spelling.corrections("form") == []
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, None, use_default_embedder=False)
        assert ranked(search, "what is on my calender today")[0] == "agenda__list_calendar_events"


def test_cli_json_ranks_a_misspelt_request(tmp_path: Path) -> None:
    config = tmp_path / "hub.json"
    config.write_text(json.dumps({"mcpServers": SERVERS, "hub": {"audit": {"enabled": False}}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MCP_HUB_SEARCH_EMBEDDER": "none",
           "MCP_HUB_CACHE_DIR": str(tmp_path / "cache"), "MCP_HUB_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-m", "hub.cli", "tools", "search", "what is on my calender today",
                          "--config", str(config), "--json", "--limit", "3"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)
    assert rows[0]["name"] == "agenda__list_calendar_events" and rows[0]["score"] >= rows[-1]["score"]


async def test_without_the_get_vs_search_weight_words_alone_pick_the_reader(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "SPECIFIC_WEIGHT", 0.0)
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, None, use_default_embedder=False)
        assert ranked(search, "employee Grace Hopper")[0] == "staff__get_employee", "the fixture is fair"
