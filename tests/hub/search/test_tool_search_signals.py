"""Tool search signals beyond shared words (issue #20 round 2): read/write intent, id-shaped query
tokens, the namespace prior; and every built-in tool parameter described in `tools/list`.

Rankings run on an in-process hub with the deterministic word-hash embedder (no MiniLM here);
the fixture servers (`tests.fixtures.search_signals`) are built so that words alone pick the
wrong tool and only the signal under test picks the right one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import hub.search.index as index
from hub.config import parse_config
from hub.hub import Hub
from hub.search.intent import param_shapes, query_intent, query_shapes
from hub.search.service import ToolSearch
from servers import BUILTIN_DOMAINS
from tests.fixtures.word_embedder import WordEmbedder

pytestmark = pytest.mark.anyio

SERVERS = {d: {"module": f"tests.fixtures.search_signals:{d}"} for d in ("leave", "desk", "chores")}
KIT_OWNED = {"idempotency_key"}
"""Parameters the shared kit adds or owns (described there, not in a domain's server.py)."""


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def top(search: ToolSearch, query: str) -> str:
    return search.search(query, 3)[0].name


def test_query_intent_and_shapes_are_read_from_the_words() -> None:
    assert query_intent("is anyone on vacation on Friday?") == "read"
    assert query_intent("Can you please show the open tickets") == "read"
    assert query_intent("could you book a room for 3pm") == "write"
    assert query_intent("I need to cancel the team lunch") == "write"
    assert query_intent("the Q3 numbers") is None
    assert query_intent("open a bug for the login page") == "write"
    assert query_intent("open tickets assigned to Maria") is None, "an order word before a plural noun reads as a noun"
    assert query_intent("report on Q3 revenue") is None
    assert query_shapes("mark OPS-99 as done") == ["⟨key⟩"]
    assert query_shapes("who is ada@example.com") == ["⟨email⟩"]
    assert query_shapes("show 3 open tickets") == []
    schema = {"properties": {"id": {"description": "Ticket key, e.g. OPS-12."}, "owner_email": {"type": "string"}}}
    assert param_shapes(schema) == ["⟨key⟩", "⟨email⟩"]


async def test_a_question_prefers_the_tool_that_reads(cache_dir: Path) -> None:
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        hit = search.search("is anyone on vacation on Friday?", 1)[0]
        assert hit.name == "leave__out_of_office" and "reads" in hit.why()
        assert top(search, "request vacation for Omar on Friday") == "leave__request_vacation"


async def test_an_id_shaped_token_favours_tools_whose_parameter_takes_that_shape(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        hit = search.search("mark ABC-7 as done", 1)[0]
        assert hit.name == "desk__transition_ticket" and "takes ⟨key⟩" in hit.why() and "writes" in hit.why()
        monkeypatch.setattr(index, "SHAPE_WEIGHT", 0.0)
        assert top(search, "mark ABC-7 as done") == "chores__complete_todo", "the shape is what decides"


async def test_the_namespace_the_query_is_about_breaks_a_tie_between_same_named_tools(cache_dir: Path) -> None:
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        ranked = [h.name for h in search.search("change state of a ticket", 3)]
        assert ranked[:2] == ["desk__set_state", "chores__set_state"]


async def test_every_builtin_tool_parameter_has_a_description(tmp_path: Path) -> None:
    config = parse_config({"mcpServers": {d: {"builtin": d} for d in sorted(BUILTIN_DOMAINS)}})
    async with Hub(config) as hub:
        tools = hub.visible_tools(hub.access.local)
        assert len(tools) > 50
        missing: list[str] = []
        for tool in tools:
            properties: dict[str, Any] = (tool.input_schema or {}).get("properties") or {}
            for name, spec in properties.items():
                if name in KIT_OWNED or tool.name.endswith("__list_changes") and name in ("limit", "cursor"):
                    continue
                if not str(spec.get("description") or "").strip():
                    missing.append(f"{tool.name}.{name}")
        assert missing == [], f"parameters without a description: {missing}"
