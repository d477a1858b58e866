"""Search mode's meta-tools keep the contract of a direct call (outside review search15 #2, #4).

A real hub process over stdio with the SDK client:
- a `search_tools` hit carries what `tools/list` in `all` mode says of the tool (title, annotations,
  output schema, `_meta` without the hub's example requests), so a client whose list never grows
  learns that a tool it runs through `call_tool` is destructive;
- every meta-tool argument is held to the schema the meta-tool advertises: an unknown one is
  refused `invalid_argument` naming the accepted ones, and the target tool never runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from hub.search.examples import EXAMPLES_META_KEY
from tests.conftest import write_config, error_body
from tests.hub.search.test_tool_search import SERVERS, audited, hub_params

pytestmark = pytest.mark.anyio

CATALOG = {**SERVERS, "people": {"module": "tests.fixtures.search_examples:people"}}


async def test_hits_carry_the_tool_as_tools_list_shows_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, CATALOG, hub={"tools_mode": "search"})
    async with Client(hub_params(config, tmp_path), mode="legacy") as client:
        found = await client.call_tool("search_tools", {"query": "delete a ticket for good", "limit": 20})
        hits = {hit["name"]: hit for hit in found.structured_content["tools"]}
        # Progressive discovery lists every tool found as `all` mode lists it: the reference.
        listed = {t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True)
                  for t in (await client.list_tools()).tools[2:]}
    assert set(hits) == set(listed) and len(hits) == 8
    assert hits["desk__delete_ticket"]["annotations"]["destructiveHint"] is True
    assert hits["desk__get_ticket"]["annotations"]["readOnlyHint"] is True
    assert hits["desk__get_ticket"]["output_schema"]["type"] == "object", "the structured result's shape"
    for name, hit in hits.items():
        tool = listed[name]
        assert hit.get("annotations") == tool.get("annotations"), name
        assert hit.get("output_schema") == tool.get("outputSchema"), name
        assert hit.get("title") == tool.get("title") and hit.get("execution") == tool.get("execution"), name
        assert hit.get("meta") == tool.get("_meta"), name
        assert hit["input_schema"] == tool["inputSchema"] and hit["description"] == tool["description"]
        assert set(hit) <= {"name", "title", "description", "input_schema", "output_schema", "annotations",
                            "execution", "meta", "score", "why"}, "snake case keys, no icons"
    assert hits["people__roster_gaps"]["meta"] == {"com.example/owner": "hr-platform"}, \
        f"the server's own _meta key reaches the client, {EXAMPLES_META_KEY} never does"
    assert "meta" not in hits["desk__get_ticket"], "absent fields are left out, not null"


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error and error_body(result)["code"] == "invalid_argument", result
    return str(error_body(result)["message"])


async def test_meta_tools_refuse_unknown_arguments_naming_the_accepted_ones(tmp_path: Path) -> None:
    config = write_config(tmp_path, CATALOG, hub={"tools_mode": "search"})
    async with Client(hub_params(config, tmp_path), mode="legacy") as client:
        message = await refusal(client, "call_tool", {"name": "desk__get_ticket", "args": {"ticket_id": "T-1"}})
        assert "unknown argument(s) 'args'; accepted: arguments, name" in message
        message = await refusal(client, "search_tools", {"query": "find tickets", "lmit": 1})
        assert "unknown argument(s) 'lmit'; accepted: limit, query" in message
        for tool, arguments in (("call_tool", {"name": "desk__get_ticket", "arguments": {"ticket_id": "T-1"}, "x": 1}),
                                ("call_tool", {"name": 7, "arguments": {}}),
                                ("call_tool", {"name": "desk__get_ticket", "arguments": []}),
                                ("search_tools", {"query": "   "}),
                                ("search_tools", {"query": "find tickets", "limit": 2.0}),
                                ("search_tools", {"query": "find tickets", "limit": True}),
                                ("search_tools", {"query": "x" * 1001})):
            await refusal(client, tool, arguments)
        # What the schema allows still works: `arguments` left out or null is no arguments.
        for arguments in ({"name": "rooms__list_rooms"}, {"name": "rooms__list_rooms", "arguments": None}):
            ran = await client.call_tool("call_tool", arguments)
            assert ran.is_error is False, ran
        found = await client.call_tool("search_tools", {"query": "find tickets", "limit": 2})
        assert len(found.structured_content["tools"]) == 2
        ran = await client.call_tool("call_tool", {"name": "desk__get_ticket", "arguments": {"ticket_id": "T-1"}})
        assert ran.structured_content == {"id": "T-1", "title": "Printer on fire"}
    rows = await audited(tmp_path, 1, "desk__get_ticket")
    assert len(rows) == 1, "only the well-formed call reached the tool: a refused meta-tool call runs nothing"
