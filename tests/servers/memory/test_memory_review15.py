"""Outside review memory15: a retag made while a slow re-ingest embeds is kept; the knowledge graph's
owner rule; keyword ranking of memories with the caller's own statistics; opaque list cursors that
carry nothing global; document walks that are snapshots; headings-only documents refused; text made
only of invisible characters treated as blank (memory and the other domains' required text)."""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from servers.kit.errors import DomainError
from servers.memory.documents import Writer
from servers.memory.model import Scope
from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.fixtures.word_embedder import GatedWordEmbedder, WordEmbedder
from tests.servers.memory.test_memory_concurrent_writes import WAIT, held

pytestmark = pytest.mark.anyio
ALICE, BOB, ADMIN = Writer("api_key:alice", False), Writer("api_key:bob", False), Writer("api_key:root", True)
INVISIBLE = ["\u200b", "\u2060\u200b", "\ufeff", " \u200b\n", "\u3164"]


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    if result.structured_content is not None:
        return result.structured_content
    return {"error": True, "text": " ".join(getattr(c, "text", "") for c in result.content)}


def refused(answer: dict[str, Any]) -> bool:
    return answer.get("code") == "invalid_argument" or (answer.get("error") is True and "invalid" in answer["text"].lower())


async def test_a_retag_made_while_a_re_ingest_embeds_is_not_undone_by_it(tmp_path: Path) -> None:
    """D1: the re-ingest left tags and date out ("keep them"); a retag and a new date landed while it
    embedded. It keeps those (read as it writes), and its answer does not claim it changed them."""
    embedder = GatedWordEmbedder("slowmark")
    documents = MemoryService(tmp_path, embedder).documents
    made = await documents.ingest("Plan", "The osprey project installs rooftop arrays.", None, ["old"], None)
    run, finish = held(embedder, lambda: documents.ingest("Plan", "slowmark a long new text about tariffs. " * 30, None, None, None))
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        assert await anyio.to_thread.run_sync(embedder.entered.wait, WAIT)
        retag = await documents.ingest("Plan", "The osprey project installs rooftop arrays.", None, ["new"], _dt.date(2026, 5, 1))
        assert retag.status == "updated" and retag.document.tags == ["new"]
        outcome = await finish()
    answer = outcome["value"]
    assert answer.status == "replaced" and answer.changed == ["content"], answer
    listed = (await documents.list(None, 10, None)).documents
    assert [(d.id, d.tags, d.date) for d in listed] == [(made.document.id, ["new"], _dt.date(2026, 5, 1))]
    assert [d.id for d in (await documents.list(["new"], 10, None)).documents] == [made.document.id]


async def test_graph_deletes_follow_the_owner_rule(tmp_path: Path) -> None:
    """D2: bob (write only) could delete alice's entities and observations. Now: an entity is its creator's
    (or an admin's) to delete; an observation its adder's, its entity owner's or an admin's; a relation its
    creator's, an end's owner's or an admin's. A refused call deletes nothing, and names nobody."""
    graph = MemoryService(tmp_path, WordEmbedder()).graph
    await graph.create_entities([{"name": "Heron", "entityType": "project", "observations": ["budget 2M EUR", "lead is Alice"]}],
                                ALICE)
    await graph.create_entities([{"name": "Bob", "entityType": "person", "observations": []}], BOB)
    assert (await graph.add_observations([{"entityName": "Heron", "contents": ["cancelled"]}], BOB))[0]["addedObservations"]
    await graph.create_relations([{"from": "Bob", "to": "Heron", "relationType": "works on"},
                                  {"from": "Heron", "to": "Bob", "relationType": "employs"}], BOB)
    await graph.create_relations([{"from": "Heron", "to": "Bob", "relationType": "reports to"}], ALICE)

    async def forbidden(work: Any) -> None:
        with pytest.raises(DomainError) as caught:
            await work
        body = caught.value.body
        assert body.code == "forbidden" and "admin" in body.message and "alice" not in body.message.lower(), body

    await forbidden(graph.delete_entities(["Heron"], BOB))
    await forbidden(graph.delete_entities(["Bob", "Heron"], BOB))  # his own first: the call is refused whole
    await forbidden(graph.delete_observations([{"entityName": "Heron", "observations": ["cancelled", "budget 2M EUR"]}], BOB))
    await forbidden(graph.delete_relations([{"from": "Heron", "to": "Bob", "relationType": "reports to"}], Writer("api_key:eve", False)))
    heron = (await graph.open_nodes(["Heron", "Bob"]))
    assert [e["name"] for e in heron["entities"]] == ["Heron", "Bob"]
    assert heron["entities"][0]["observations"] == ["budget 2M EUR", "lead is Alice", "cancelled"]
    assert len(heron["relations"]) == 3

    await graph.delete_observations([{"entityName": "Heron", "observations": ["cancelled"]}], BOB)  # his own
    await graph.add_observations([{"entityName": "Heron", "contents": ["spam"]}], BOB)
    await graph.delete_observations([{"entityName": "Heron", "observations": ["spam"]}], ALICE)  # on her entity
    await graph.delete_relations([{"from": "Heron", "to": "Bob", "relationType": "reports to"}], BOB)  # touches his entity
    await graph.delete_relations([{"from": "Bob", "to": "Heron", "relationType": "works on"}], ALICE)  # touches hers
    await graph.delete_relations([{"from": "Heron", "to": "Bob", "relationType": "employs"}], BOB)  # his own
    assert (await graph.open_nodes(["Heron"]))["entities"][0]["observations"] == ["budget 2M EUR", "lead is Alice"]
    assert (await graph.read_graph())["relations"] == []
    await graph.delete_entities(["Bob"], BOB)
    await graph.delete_entities(["Heron"], ADMIN)
    assert (await graph.read_graph())["entities"] == []


async def test_recall_ranks_a_scopes_memories_by_that_scopes_words_only(tmp_path: Path) -> None:
    """D3: FTS5's bm25() counted alice's memories when weighing bob's query words, so her private words
    moved his order (a side channel). Now his order is the same whatever anyone else stores."""
    memories = MemoryService(tmp_path, WordEmbedder()).memories
    bob, alice = Scope(user="api_key:bob", agent="probe"), Scope(user="api_key:alice")
    await memories.remember("Notes mention quokka twice: quokka.", None, bob, [], None, {}, True)
    await memories.remember("Notes mention narwhal once only here today.", None, bob, [], None, {}, True)

    async def order(mode: Any) -> list[str]:
        return [h.memory.content.split()[2] for h in (await memories.recall("quokka narwhal", bob, None, None, mode, 10)).hits]

    before = {mode: await order(mode) for mode in ("keyword", "hybrid")}
    for i in range(30):
        await memories.remember(f"Private diary {i}: the quokka enclosure visit number {i}.", None, alice, [], None, {}, True)
    assert {mode: await order(mode) for mode in ("keyword", "hybrid")} == before
    assert before["keyword"] == ["quokka", "narwhal"]  # the word said twice ranks first among his own
    # His own statistics still count: once most of his memories mention quokka, narwhal is the rarer word.
    for i in range(6):
        await memories.remember(f"Quokka sighting {i} logged at the zoo gate {i}.", None, bob, [], None, {}, True)
    assert (await memories.recall("narwhal quokka", bob, None, None, "keyword", 10)).hits[0].memory.content.startswith("Notes mention narwhal")


def readable(cursor: str) -> list[Any]:
    """Whatever JSON any dot-separated part of `cursor` decodes to."""
    found = []
    for part in cursor.split("."):
        try:
            found.append(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
    return found


async def test_list_cursors_are_opaque_and_say_nothing_about_others(tmp_path: Path) -> None:
    """D4: bob's list_recent cursor held the global row id, so the gap between two of his cursors counted
    alice's writes. Now a cursor is encrypted and holds a position in bob's own scope; a walk still pages
    correctly, and a cursor is refused for another scope or altered."""
    service = MemoryService(tmp_path, WordEmbedder())
    memories = service.memories
    bob, alice = Scope(user="api_key:bob"), Scope(user="api_key:alice")
    for i in range(3):
        await memories.remember(f"Bob note {i} zx{i}.", None, bob, [], None, {}, True)
    first = await memories.recent(bob, 1, None)
    assert first.next_cursor and readable(first.next_cursor) == [], readable(first.next_cursor)
    for i in range(7):
        await memories.remember(f"Alice private note {i} q{i}w.", None, alice, [], None, {}, True)
    seen = [m.content for m in first.memories]
    cursor = first.next_cursor
    while cursor:
        page = await memories.recent(bob, 1, cursor)
        seen += [m.content for m in page.memories]
        cursor = page.next_cursor
    assert seen == ["Bob note 2 zx2.", "Bob note 1 zx1.", "Bob note 0 zx0."]
    for scope, token in ((alice, first.next_cursor), (bob, first.next_cursor[:-3] + "AAA")):
        with pytest.raises(DomainError) as wrong:
            await memories.recent(scope, 1, token)
        assert wrong.value.body.code == "invalid_argument"
    # Positions are per scope: bob's cursors are the same whatever alice wrote before him.
    other = MemoryService(tmp_path / "other", WordEmbedder()).memories
    for i in range(3):
        await other.remember(f"Bob note {i} zx{i}.", None, bob, [], None, {}, True)
    rows = await other.store.run(lambda db: [r[0] for r in db.execute("SELECT seq FROM memories ORDER BY seq")])
    mine = await memories.store.run(lambda db: [r[0] for r in db.execute("SELECT seq FROM memories WHERE user = ? ORDER BY seq",
                                                                         ("api_key:bob",))])
    assert rows == mine == [1, 2, 3]

    documents = service.documents
    for i in range(3):
        await documents.ingest(f"doc {i}", f"Text {i}.", None, None, None)
    assert readable((await documents.list(None, 1, None)).next_cursor or "") == []


async def test_a_document_walk_never_returns_documents_ingested_after_it_began(tmp_path: Path) -> None:
    """D5: the keyset was (created_at in whole seconds, random id), so a document ingested in the same
    second as a page's last row, with a smaller id, came later in the walk."""
    documents = MemoryService(tmp_path, WordEmbedder()).documents
    for i in range(12):
        await documents.ingest(f"walk doc {i}", f"Text {i} of the walk.", None, ["walk"], None)
    before = {d.id for d in (await documents.list(["walk"], 100, None)).documents}
    seen, cursor, made = [], None, 0
    while True:
        page = await documents.list(["walk"], 3, cursor)
        seen += [d.id for d in page.documents]
        for _ in range(6):
            await documents.ingest(f"walk new {made}", f"Fresh text {made}.", None, ["walk"], None)
            made += 1
        if not (cursor := page.next_cursor):
            break
    assert len(seen) == len(set(seen)) == 12 and set(seen) == before, f"{len(set(seen) - before)} new documents in the walk"


async def test_a_document_of_only_headings_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """D6: it was `created` with 0 chunks, listed, and no search could find it."""
    service = MemoryService(tmp_path, WordEmbedder())
    async with Client(create_server(service)) as client:
        for text in ("# Quarterly pelican review\n\n## Budget cormorant items\n", "# Agenda\n\n\u200b\n\n## Items\n\n\ufeff"):
            answer = await call(client, "ingest_document", title="Agenda", text=text)
            assert answer.get("code") == "invalid_argument" and "headings" in answer["message"], answer
        assert (await call(client, "list_documents"))["documents"] == []
        kept = await call(client, "ingest_document", title="Agenda", text="# Agenda\n\nPelican review at noon.")
        assert (await call(client, "ingest_document", title="Agenda", text="# Agenda\n"))["code"] == "invalid_argument"
        hits = (await call(client, "search_documents", query="pelican", mode="keyword"))["hits"]
        assert [h["document_id"] for h in hits] == [kept["document"]["id"]]
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Only a heading\n")
    (folder / "b.md").write_text("# B\n\nbody text")
    job = service.ingest_jobs.start(folder, [folder / "a.md", folder / "b.md"], None, 1000, 100, None)
    done = await service.ingest_jobs.wait(job.id, WAIT, None, None)
    assert done.state == "done" and len(done.errors) == 1 and "headings" in str(done.errors[0])


async def test_text_of_only_invisible_characters_is_blank_everywhere_text_is_required(tmp_path: Path) -> None:
    """D7: `str.strip()` keeps U+200B, U+2060, U+FEFF: such text was stored as a memory. Every required
    text of the memory domain now refuses it as it refuses "" and spaces."""
    service = MemoryService(tmp_path, WordEmbedder())
    async with Client(create_server(service)) as client:
        stored = await call(client, "remember", content="The locker code is 4711.", scope={})
        entity = {"name": "Ada", "entityType": "person", "observations": ["likes tea"]}
        await call(client, "create_entities", entities=[entity])
        for blank in INVISIBLE:
            for tool, args in (
                ("remember", {"content": blank, "scope": {}}),
                ("remember", {"content": "Fine text.", "scope": {}, "tags": [blank]}),
                ("remember", {"content": "Fine text.", "scope": {"project": blank}}),
                ("update_memory", {"id": stored["memory"]["id"], "scope": {}, "content": blank}),
                ("recall", {"query": blank, "scope": {}}),
                ("search_documents", {"query": blank}),
                ("ingest_document", {"title": "Blank", "text": blank}),
                ("ingest_document", {"title": blank, "text": "Some text."}),
                ("create_entities", {"entities": [{**entity, "name": blank}]}),
                ("create_entities", {"entities": [{**entity, "name": "Bo", "entityType": blank}]}),
                ("create_entities", {"entities": [{**entity, "name": "Cy", "observations": [blank]}]}),
                ("add_observations", {"observations": [{"entityName": "Ada", "contents": [blank]}]}),
                ("create_relations", {"relations": [{"from": "Ada", "to": "Ada", "relationType": blank}]}),
                ("search_nodes", {"query": blank}),
            ):
                assert refused(await call(client, tool, **args)), (tool, args)
        assert [m["content"] for m in (await call(client, "list_recent", scope={}))["memories"]] == ["The locker code is 4711."]
        assert [e["name"] for e in (await call(client, "read_graph"))["entities"]] == ["Ada"]
        assert (await call(client, "read_graph"))["entities"][0]["observations"] == ["likes tea"]
    for blank in INVISIBLE:
        with pytest.raises(DomainError):
            await service.memories.remember(blank, None, Scope(), [], None, {})
        with pytest.raises(DomainError):
            await service.documents.ingest("Blank", blank, None, None, None)


@pytest.mark.parametrize("domain, tool, args", [
    ("ticketing", "create_ticket", {"project": "OPS", "title": "\u200b"}),
    ("ticketing", "create_ticket", {"project": "OPS", "title": "Fine", "labels": ["\ufeff"]}),
    ("calendar", "create_calendar", {"calendar_id": "team", "name": "\u2060\u200b"}),
    ("accounting", "upsert_contact", {"name": "\u200b", "kind": "customer"}),
])
async def test_other_domains_refuse_invisible_only_required_text(tmp_path: Path, domain: str, tool: str, args: dict[str, Any]) -> None:
    """D7's siblings: required titles, names and labels of the other domains took invisible-only text."""
    import importlib

    module = importlib.import_module(f"servers.{domain}.server")
    async with Client(module.create_server(module.make_backend("embedded", tmp_path))) as client:
        answer = await call(client, tool, **args)
    assert answer.get("code") == "invalid_argument" and "invisible" in answer.get("message", ""), answer
