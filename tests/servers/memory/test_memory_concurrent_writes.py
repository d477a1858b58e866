"""Writes that check something, then embed, then write (outside review domains8): the check is made
again where the write happens, so a slow ingest never replaces a document another caller created
meanwhile, and a graph re-index never writes an entity's older text over a newer one;
`list_documents` walks each document once while others ingest; equivalent Unicode spellings (NFC/NFD)
are one memory text, title and tag; a NUL in a document's text is refused. Embedders gated by events
make the overlaps happen without timing."""

from __future__ import annotations

import datetime as _dt
import types
import unicodedata
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from servers.kit.errors import DomainError
from servers.memory import documents as documents_module
from servers.memory.documents import Writer
from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.fixtures.word_embedder import GatedWordEmbedder, WordEmbedder

pytestmark = pytest.mark.anyio
WAIT = 30
ALICE, BOB = Writer("api_key:alice", False), Writer("api_key:bob", False)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def held(embedder: GatedWordEmbedder, work: Any) -> Any:
    """Start `work()` and return once its embedding is held at the gate; `finish()` releases it and gives its outcome."""
    outcome: dict[str, Any] = {}
    done = anyio.Event()

    async def run() -> None:
        try:
            outcome["value"] = await work()
        except DomainError as exc:
            outcome["error"] = exc
        finally:
            done.set()

    async def finish() -> Any:
        embedder.release.set()
        with anyio.fail_after(WAIT):
            await done.wait()
        return outcome

    return run, finish


async def test_a_slow_ingest_does_not_replace_a_document_created_meanwhile(tmp_path: Path) -> None:
    """Bob's ingest passed the owner check (no document yet) and is embedding when alice ingests the same
    title: bob's write is refused, alice's document keeps her text; and the status a writer gets is
    decided as it writes (alice racing herself: the second to write answers `replaced`, not `created`)."""
    embedder = GatedWordEmbedder("bobmark")
    documents = MemoryService(tmp_path, embedder).documents
    run, finish = held(embedder, lambda: documents.ingest("Travel policy", "bobmark fraud loopholes. " * 40, None, None,
                                                                None, writer=BOB))
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        assert await anyio.to_thread.run_sync(embedder.entered.wait, WAIT), "bob's ingest never reached its embedding"
        mine = await documents.ingest("Travel policy", "Economy class for flights under six hours.", None, None, None, writer=ALICE)
        assert mine.status == "created"
        theirs = await finish()
    assert "error" in theirs, f"bob's ingest answered {theirs.get('value')!r} over alice's document"
    assert theirs["error"].body.code == "forbidden" and "while yours was being indexed" in theirs["error"].body.message
    listed = (await documents.list(None, 10, None)).documents
    assert [(d.id, d.chunks) for d in listed] == [(mine.document.id, 1)]
    hits = (await documents.search("economy class flights", "keyword", None, None, None, 5)).hits
    assert hits and "Economy class" in hits[0].text
    assert not (await documents.search("fraud loopholes", "keyword", None, None, None, 5)).hits

    embedder.release.clear()
    embedder.entered.clear()
    run, finish = held(embedder, lambda: documents.ingest("Desk rules", "bobmark first draft.", None, None, None, writer=ALICE))
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        assert await anyio.to_thread.run_sync(embedder.entered.wait, WAIT)
        second = await documents.ingest("Desk rules", "Clear desks every evening.", None, ["rules"], None, writer=ALICE)
        assert second.status == "created"
        first = (await finish())["value"]
    assert first.status == "replaced" and first.document.id == second.document.id
    # Its tags were left out: it keeps the tags stored when it writes (the second ingest's), not those it read before.
    assert first.changed == ["content"] and first.document.tags == ["rules"]


async def test_a_graph_re_index_never_writes_an_older_text_over_a_newer_one(tmp_path: Path) -> None:
    """An observation added, then deleted while the addition's re-index embeds: the older text (with the
    deleted observation) must not be what search finds; an entity deleted meanwhile is no error."""
    embedder = GatedWordEmbedder("chess")
    graph = MemoryService(tmp_path, embedder).graph
    await graph.create_entities([{"name": "Ada", "entityType": "person", "observations": ["likes tea"]},
                                 {"name": "Bo", "entityType": "person", "observations": ["likes coffee"]}])
    assert await graph.search_nodes("coffee")  # the vector index is loaded, so the re-index also adds vectors
    run, finish = held(embedder, lambda: graph.add_observations([{"entityName": "Ada", "contents": ["plays chess"]},
                                                                       {"entityName": "Bo", "contents": ["plays chess"]}]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        assert await anyio.to_thread.run_sync(embedder.entered.wait, WAIT)
        await graph.delete_observations([{"entityName": "Ada", "observations": ["plays chess"]}])
        await graph.delete_entities(["Bo"])
        outcome = await finish()
    assert "value" in outcome, outcome
    assert (await graph.open_nodes(["Ada"]))["entities"][0]["observations"] == ["likes tea"]
    assert [e["name"] for e in (await graph.search_nodes("chess"))["entities"]] == [], "search still finds the deleted observation"


def ticking_clock(start: _dt.datetime) -> types.SimpleNamespace:
    """A stand-in for the `datetime` module whose `now()` moves a minute per call, so each write has its own time."""
    ticks = iter(range(10_000))

    class Clock(_dt.datetime):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> Clock:  # type: ignore[override]
            return cls.fromtimestamp((start + _dt.timedelta(minutes=next(ticks))).timestamp(), tz)

    return types.SimpleNamespace(datetime=Clock, date=_dt.date, UTC=_dt.UTC, timedelta=_dt.timedelta)


async def walk(documents: Any, tags: list[str] | None, during: Any) -> list[str]:
    seen, cursor = [], None
    while True:
        page = await documents.list(tags, 2, cursor)
        seen += [d.title for d in page.documents]
        if cursor is None:
            await during()
        if not (cursor := page.next_cursor):
            return seen


async def test_a_document_walk_sees_each_document_once_while_others_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-ingest moved a document to the front of an offset walk (never returned), a new one pushed one
    back into the next page (returned twice); a cursor of a `tags` walk was taken without the tags."""
    monkeypatch.setattr(documents_module, "_dt", ticking_clock(_dt.datetime(2026, 12, 1, tzinfo=_dt.UTC)))
    documents = MemoryService(tmp_path, WordEmbedder()).documents
    for i in range(6):
        await documents.ingest(f"doc {i}", f"Document number {i} about topic {i}.", None, [nfc("étude")], None)
    everything = [f"doc {i}" for i in reversed(range(6))]

    async def add() -> None:
        await documents.ingest("doc new", "A new document arrives mid walk.", None, [nfc("étude")], None)

    async def replace() -> None:
        assert (await documents.ingest("doc 1", "Doc one rewritten entirely.", None, None, None)).status == "replaced"

    assert await walk(documents, [nfc("étude")], add) == everything, "a document ingested mid-walk is not in that walk"
    assert await walk(documents, [nfc("étude")], replace) == ["doc new", *everything], "a re-ingest does not move a document"

    tagged = (await documents.list([nfc("étude")], 2, None)).next_cursor
    for tags in (None, ["other"], [nfc("étude"), "other"]):
        with pytest.raises(DomainError) as refused:
            await documents.list(tags, 2, tagged)
        assert refused.value.body.code == "invalid_argument" and "different query" in refused.value.body.message
    page = await documents.list([nfd("étude"), nfc("étude")], 2, tagged)  # the same filter, spelled otherwise
    assert [d.title for d in page.documents] == ["doc 4", "doc 3"]
    with pytest.raises(DomainError) as crafted:
        await documents.list([nfc("étude")], 2, "eyJvZmZzZXQiOjJ9")  # {"offset":2}, an old-style cursor
    assert crafted.value.body.code == "invalid_argument"


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert result.structured_content is not None, result.content
    return result.structured_content


async def test_equivalent_unicode_spellings_are_one_memory_title_and_tag(tmp_path: Path) -> None:
    async with Client(create_server(MemoryService(tmp_path, WordEmbedder()))) as client:
        text = "José prefers the café on Rua Augusta"
        first = await call(client, "remember", content=nfc(text), scope={"project": nfc("Zoë")}, tags=[nfc("café")])
        again = await call(client, "remember", content=nfd(text), scope={"project": nfd("Zoë")}, tags=[nfd("café")])
        assert (again["action"], again["memory"]["id"]) == ("unchanged", first["memory"]["id"]), "the NFD text is stored once"
        assert again["memory"]["content"] == nfc(text) and again["memory"]["tags"] == [nfc("café")]

        title = "Política de férias"
        made = await call(client, "ingest_document", title=nfc(title), text=nfc("Vinte e cinco dias úteis por ano."),
                          tags=[nfd("férias")])
        same = await call(client, "ingest_document", title=nfd(title), text=nfd("Vinte e cinco dias úteis por ano."))
        assert (same["status"], same["document"]["id"]) == ("unchanged", made["document"]["id"])
        assert made["document"]["title"] == nfc(title) and made["document"]["tags"] == [nfc("férias")]
        listed = await call(client, "list_documents", tags=[nfc("férias")])
        assert [d["id"] for d in listed["documents"]] == [made["document"]["id"]]


async def test_a_document_with_a_nul_or_a_title_with_a_control_character_is_refused(tmp_path: Path) -> None:
    """As `remember` refuses a NUL in its text and graph names refuse control characters (outside review)."""
    async with Client(create_server(MemoryService(tmp_path, WordEmbedder()))) as client:
        for args in ({"title": "Nul probe", "text": "before \x00 after"}, {"title": "Tab\there", "text": "fine"}):
            refused = await call(client, "ingest_document", **args)
            assert refused["code"] == "invalid_argument", refused
        assert (await call(client, "list_documents"))["documents"] == []
