"""The knowledge graph against the reference `@modelcontextprotocol/server-memory` (npm): the same
call sequence gives equivalent graphs and results; its JSONL file imports; neighbours and ranking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from servers.memory.embedding import MiniLM
from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.interop.test_interop import NODE_MODULES, need, node_env

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

SEQUENCE: list[tuple[str, dict[str, Any]]] = [
    ("create_entities", {"entities": [
        {"name": "Ada Lovelace", "entityType": "person", "observations": ["wrote the first program", "worked with Babbage"]},
        {"name": "Charles Babbage", "entityType": "person", "observations": ["designed the Analytical Engine"]},
        {"name": "Analytical Engine", "entityType": "machine", "observations": ["mechanical general-purpose computer"]},
        {"name": "London", "entityType": "city", "observations": []}]}),
    ("create_entities", {"entities": [{"name": "Ada Lovelace", "entityType": "person", "observations": ["duplicate, ignored"]}]}),
    ("create_relations", {"relations": [
        {"from": "Ada Lovelace", "to": "Charles Babbage", "relationType": "collaborated with"},
        {"from": "Charles Babbage", "to": "Analytical Engine", "relationType": "designed"},
        {"from": "Ada Lovelace", "to": "London", "relationType": "lived in"}]}),
    ("create_relations", {"relations": [{"from": "Ada Lovelace", "to": "London", "relationType": "lived in"}]}),
    ("add_observations", {"observations": [{"entityName": "Ada Lovelace", "contents": ["born 1815", "wrote the first program"]},
                                           {"entityName": "London", "contents": ["capital of England"]}]}),
    ("delete_observations", {"deletions": [{"entityName": "Ada Lovelace", "observations": ["worked with Babbage"]}]}),
    ("create_entities", {"entities": [{"name": "Temp", "entityType": "note", "observations": ["to be removed"]}]}),
    ("create_relations", {"relations": [{"from": "Temp", "to": "London", "relationType": "mentions"}]}),
    ("delete_entities", {"entityNames": ["Temp"]}),
    ("delete_relations", {"relations": [{"from": "Ada Lovelace", "to": "London", "relationType": "lived in"}]}),
]


def _graph(structured: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    entities = sorted((e["name"], e["entityType"], tuple(e["observations"])) for e in structured["entities"])
    relations = sorted((r["from"], r["to"], r["relationType"]) for r in structured["relations"])
    return entities, relations


async def _play(client: Client) -> list[dict[str, Any]]:
    results = []
    for tool, args in SEQUENCE:
        result = await client.call_tool(tool, args)
        assert not result.is_error, (tool, result.content)
        results.append(result.structured_content)
    return results


async def test_same_calls_same_graph_as_the_reference(tmp_path: Path) -> None:
    binary = need(NODE_MODULES / ".bin" / "mcp-server-memory")
    reference_file = tmp_path / "reference.jsonl"
    params = StdioServerParameters(command=str(binary), env={"PATH": node_env()["PATH"], "MEMORY_FILE_PATH": str(reference_file)})
    service = MemoryService(tmp_path / "ours", MiniLM())
    async with Client(params) as reference, Client(create_server(service)) as ours:
        ours_tools = {t.name: t for t in (await ours.list_tools()).tools}
        for tool in (await reference.list_tools()).tools:
            assert tool.name in ours_tools, f"{tool.name} is missing"
            theirs_args = set(tool.input_schema.get("properties", {}))
            assert set(ours_tools[tool.name].input_schema.get("properties", {})) == theirs_args, tool.name
        theirs_results, ours_results = await _play(reference), await _play(ours)
        assert ours_results == theirs_results, "every call answered the same structured result"
        theirs_graph = (await reference.call_tool("read_graph", {})).structured_content
        ours_graph = (await ours.call_tool("read_graph", {})).structured_content
        assert _graph(ours_graph) == _graph(theirs_graph)
        for names in (["Ada Lovelace"], ["Charles Babbage", "Analytical Engine", "Nobody"]):
            theirs = (await reference.call_tool("open_nodes", {"names": names})).structured_content
            assert _graph((await ours.call_tool("open_nodes", {"names": names})).structured_content) == _graph(theirs)
        for query in ("babbage", "PERSON", "program", "engine"):
            theirs = _graph((await reference.call_tool("search_nodes", {"query": query})).structured_content)
            mine = _graph((await ours.call_tool("search_nodes", {"query": query})).structured_content)
            assert set(theirs[0]) <= set(mine[0]), f"{query}: every entity the reference finds is found"
        twice = {"relations": [{"from": "London", "to": "Charles Babbage", "relationType": "home of"}] * 2}
        assert len((await ours.call_tool("create_relations", twice)).structured_content["relations"]) == 1
        assert len((await reference.call_tool("create_relations", twice)).structured_content["relations"]) == 2, \
            "the reference stores a relation repeated inside one call twice; we keep one (a deliberate difference)"
        await ours.call_tool("delete_relations", twice)
        await reference.call_tool("delete_relations", twice)
        unknown = await ours.call_tool("add_observations", {"observations": [{"entityName": "Nobody", "contents": ["x"]}]})
        theirs_unknown = await reference.call_tool("add_observations", {"observations": [{"entityName": "Nobody", "contents": ["x"]}]})
        assert unknown.is_error and theirs_unknown.is_error and "Entity with name Nobody not found" in unknown.content[0].text

        ranked = (await ours.call_tool("search_nodes", {"query": "who built the computing machine"})).structured_content
        assert ranked["entities"] and ranked["entities"][0]["name"] in ("Analytical Engine", "Charles Babbage"), \
            "ranking by meaning finds what substring matching cannot"
        assert (await reference.call_tool("search_nodes", {"query": "who built the computing machine"})).structured_content["entities"] == []
        near = (await ours.call_tool("graph_neighbors", {"entity": "Analytical Engine", "depth": 2})).structured_content
        assert {e["name"] for e in near["entities"]} == {"Analytical Engine", "Charles Babbage", "Ada Lovelace"}
        assert {r["relationType"] for r in near["relations"]} == {"designed", "collaborated with"}
        only = (await ours.call_tool("graph_neighbors", {"entity": "Charles Babbage", "depth": 2, "relation_types": ["designed"]}))
        assert {e["name"] for e in only.structured_content["entities"]} == {"Charles Babbage", "Analytical Engine"}

    imported = MemoryService(tmp_path / "imported", service.embedder)
    counts = await imported.graph.import_jsonl(reference_file)
    assert counts["entities"] == 4 and counts["relations"] == 2
    assert _graph(await imported.graph.read_graph()) == _graph(theirs_graph), "the reference's own file imports whole"
    again = await imported.graph.import_jsonl(reference_file)
    assert again == {"entities": 0, "observations_added": 0, "relations": 0}, "importing twice adds nothing"
    assert json.loads(reference_file.read_text().splitlines()[0])["type"] == "entity"
