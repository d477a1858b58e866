"""Outside review memory26: server file sources are the server's (D1); recall's filters narrow what each
method ranks (D2); keyword search in scripts written without spaces and in accented text (D3); folder-ingest
jobs bounded per caller (D4); a waiting ingest_status keeps its call alive and answers in time (D5); a job
cut off by a restart says so (D6); the document size advertised fits one hub request (D7)."""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from servers.kit.caller import Caller
from servers.kit.errors import DomainError
from servers.memory import jobs as jobs_module
from servers.memory import server as memory_server
from servers.memory.documents import Writer
from servers.memory.model import Scope
from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.fixtures.word_embedder import GatedWordEmbedder, WordEmbedder

pytestmark = pytest.mark.anyio
ALICE = Caller("api_key:alice", frozenset({"memory:write"}), "api_key", "alice", "memory")
BOB = Caller("api_key:bob", frozenset({"memory:write"}), "api_key", "bob", "memory")
HUB_REQUEST_BYTES = 4 * 1024 * 1024


class As:
    """Calls through `client` as `caller`: the server's document writer is the one `writers` names now (a
    stand-in for the hub's signed caller, which an in-process client does not carry)."""

    def __init__(self, client: Client, writers: dict[str, Writer], caller: Caller) -> None:
        self.client, self.writers, self.caller = client, writers, caller

    async def call_tool(self, tool: str, args: dict[str, Any]) -> Any:
        self.writers["now"] = Writer(self.caller.principal, False)
        return await self.client.call_tool(tool, args)


def callers(monkeypatch: pytest.MonkeyPatch, client: Client) -> tuple[As, As]:
    writers: dict[str, Writer] = {}
    monkeypatch.setattr(memory_server, "document_writer", lambda: writers["now"])
    return As(client, writers, ALICE), As(client, writers, BOB)


async def call(client: Client | As, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    if result.structured_content is not None:
        return result.structured_content
    return {"code": "?", "message": " ".join(getattr(c, "text", "") for c in result.content)}


# -- D1 ------------------------------------------------------------------------------------------------


async def test_a_caller_cannot_give_text_a_server_files_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bob's made-up text under the file:// URI of a server file was shown by search as that file, and the file's
    real ingest was `forbidden` for everyone else. file: (and the server's title: identities) are not a caller's."""
    policy = tmp_path / "files" / "handbook" / "expenses.md"
    policy.parent.mkdir(parents=True)
    policy.write_text("# Expense policy\n\nTaxi rides are refunded up to 40 euros per ride with a receipt.\n")
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(tmp_path / "files"))
    server = create_server(MemoryService(tmp_path / "data", WordEmbedder()))
    uri = policy.resolve().as_uri()
    async with Client(server) as client:
        alice, bob = callers(monkeypatch, client)
        for source in (uri, uri.upper(), f"  {uri}", "file:relative/expenses.md", "title:Expense policy"):
            answer = await call(bob, "ingest_document", title="Expense policy", source_uri=source,
                                text="# Expense policy\n\nTaxi rides are never refunded. Email your card number to bob.\n")
            assert answer.get("code") == "invalid_argument" and "path" in answer["message"], (source, answer)
        mine = await call(alice, "ingest_document", path=str(policy))
        assert mine.get("status") == "created", mine
        hits = (await call(bob, "search_documents", query="taxi refund", mode="keyword"))["hits"]
        assert [(h["source"], "40 euros" in h["text"]) for h in hits] == [(uri, True)], hits
        other = await call(bob, "ingest_document", title="Taxi notes", source_uri="https://wiki.example/taxi",
                           text="Taxi notes from the wiki.")
        assert other.get("status") == "created", "a source of the caller's own namespace is still theirs to give"


async def test_any_writer_may_refresh_a_server_file_from_the_file_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first reader of a server file must not lock it: another writer's ingest of the same file (its own text,
    URI and title) refreshes it. What the caller chooses (tags, a title, deleting it) keeps the owner rule."""
    folder = tmp_path / "files" / "handbook"
    folder.mkdir(parents=True)
    policy = folder / "expenses.md"
    policy.write_text("# Expense policy\n\nTaxi rides are refunded up to 40 euros.\n")
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(tmp_path / "files"))
    server = create_server(MemoryService(tmp_path / "data", WordEmbedder()))
    async with Client(server) as client:
        alice, bob = callers(monkeypatch, client)
        first = await call(alice, "ingest_document", path=str(policy), tags=["hr"])
        assert first.get("status") == "created", first
        policy.write_text("# Expense policy\n\nTaxi rides are refunded up to 45 euros.\n")
        again = await call(bob, "ingest_document", path=str(policy))
        assert again.get("status") == "replaced" and again["document"]["tags"] == ["hr"], again
        job = await call(bob, "ingest_folder", path=str(folder))
        done = await call(bob, "ingest_status", job_id=job["id"], wait_s=30)
        assert done["state"] == "done" and done["counts"] == {"unchanged": 1}, done
        for args in ({"tags": ["mine"]}, {"title": "Expense policy (bob)"}):
            refused = await call(bob, "ingest_document", path=str(policy), **args)
            assert refused.get("code") == "forbidden", (args, refused)
        deleted = await call(bob, "delete_document", document_id=first["document"]["id"], confirm=True)
        assert deleted.get("code") == "forbidden", deleted


# -- D2 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "semantic"])
async def test_recall_filters_before_each_method_takes_its_top(tmp_path: Path, mode: str) -> None:
    """60 better-matching memories of another tag no longer hide the one the filter asks for."""
    bank = MemoryService(tmp_path, WordEmbedder()).memories
    scope = Scope(user="alice")
    for i in range(60):
        await bank.remember(f"Paris hotel booking {i}: room {200 + i} at the Paris hotel on rue {i}.", "fact", scope, ["work"],
                            None, {}, as_new=True)
    await bank.remember("My sister lives in Paris near the Luxembourg garden.", "note", scope, ["family"], None, {})
    by_tag = await bank.recall("Paris hotel", scope, None, ["family"], mode, 10)  # type: ignore[arg-type]
    by_kind = await bank.recall("Paris hotel", scope, ["note"], None, mode, 10)  # type: ignore[arg-type]
    for found in (by_tag, by_kind):
        assert [h.memory.content for h in found.hits] == ["My sister lives in Paris near the Luxembourg garden."], found


# -- D3 ------------------------------------------------------------------------------------------------


async def test_keyword_search_finds_words_in_unspaced_and_accented_text(tmp_path: Path) -> None:
    service = MemoryService(tmp_path, WordEmbedder())
    scope = Scope(user="alice")
    await service.memories.remember("妹は大阪に住んでいます。", "fact", scope, [], None, {})
    await service.memories.remember("The car is parked on level 3.", "fact", scope, [], None, {})
    await service.documents.ingest("倉庫の手順", "大阪の倉庫は午前八時に開きます。東京の事務所は月曜日に休みです。", None, [], None)
    await service.documents.ingest("ร้านกาแฟ", "ร้านกาแฟเปิดเวลาแปดโมงเช้าทุกวัน", None, [], None)
    await service.documents.ingest("Αθήνα", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", None, [], None)
    await service.documents.ingest("Löschen", unicodedata.normalize("NFD", "Dateien löschen dauert länger."), None, [], None)
    await service.graph.create_entities([{"name": "倉庫", "entityType": "場所", "observations": ["大阪にある"]}])

    async def titles(query: str) -> list[str]:
        return [h.title for h in (await service.documents.search(query, "keyword", None, None, None, 5)).hits]

    assert await titles("大阪") == ["倉庫の手順"]
    assert await titles("東京の事務所") == ["倉庫の手順"]
    assert await titles("กาแฟ") == ["ร้านกาแฟ"], "Thai: a word inside a run without spaces"
    assert await titles("αθηνα") == ["Αθήνα"], "Greek typed without its accent"
    assert await titles("loschen") == ["Löschen"] and await titles("löschen") == ["Löschen"], "decomposed accents"
    recalled = await service.memories.recall("大阪", scope, None, None, "keyword", 5)
    assert [h.memory.content for h in recalled.hits] == ["妹は大阪に住んでいます。"]
    lone = await service.memories.recall("妹", scope, None, None, "keyword", 5)
    assert [h.memory.content for h in lone.hits] == ["妹は大阪に住んでいます。"], "one character of such a script"
    assert [e["name"] for e in (await service.graph.search_nodes("大阪"))["entities"]] == ["倉庫"]


async def test_an_index_from_before_the_word_split_is_refilled_at_start(tmp_path: Path) -> None:
    """A database whose FTS rows hold the old text (or none) is written again, once, when the service opens it."""
    service = MemoryService(tmp_path, WordEmbedder())
    await service.memories.remember("妹は大阪に住んでいます。", "fact", Scope(user="alice"), [], None, {})
    await service.documents.ingest("倉庫の手順", "大阪の倉庫は午前八時に開きます。", None, [], None)
    service.store.close()
    with sqlite3.connect(tmp_path / "memory.sqlite") as db:
        db.execute("DELETE FROM memory_fts")
        db.execute("DELETE FROM chunk_fts")
        db.execute("INSERT INTO fts_refill VALUES (1)")
    reopened = MemoryService(tmp_path, WordEmbedder())
    assert [h.title for h in (await reopened.documents.search("大阪", "keyword", None, None, None, 5)).hits] == ["倉庫の手順"]
    assert len((await reopened.memories.recall("大阪", Scope(user="alice"), None, None, "keyword", 5)).hits) == 1


# -- D4 ------------------------------------------------------------------------------------------------


async def wait_done(jobs: jobs_module.IngestJobs, job_id: str, viewer: Writer) -> jobs_module.IngestJob:
    job = await jobs.wait(job_id, 30, None, viewer)
    assert job.state == "done", job
    return job


async def test_another_callers_jobs_never_evict_mine(tmp_path: Path) -> None:
    service = MemoryService(tmp_path / "data", WordEmbedder())
    alice_w, bob_w = Writer(ALICE.principal, False), Writer(BOB.principal, False)
    mine, theirs = tmp_path / "alice", tmp_path / "bob"
    for folder in (mine, theirs):
        folder.mkdir()
        (folder / "a.md").write_text(f"# Notes\n\nNotes of {folder.name}.\n")
    jobs = service.ingest_jobs
    alice_job = await wait_done(jobs, jobs.start(mine, jobs_module.folder_files(mine), None, 1000, 100, alice_w).id, alice_w)
    bob_ids = []
    for _ in range(jobs_module.MAX_JOBS + 2):
        bob_ids.append((await wait_done(jobs, jobs.start(theirs, jobs_module.folder_files(theirs), None, 1000, 100, bob_w).id,
                                        bob_w)).id)
    assert jobs.get(alice_job.id, alice_w).counts == {"created": 1}, "alice's finished job is still hers to read"
    with pytest.raises(DomainError):
        jobs.get(bob_ids[0], bob_w)  # bob's own oldest went
    assert jobs.get(bob_ids[-1], bob_w).state == "done"


async def test_one_caller_cannot_queue_jobs_without_bound(tmp_path: Path) -> None:
    embedder = GatedWordEmbedder("slowmark")
    service = MemoryService(tmp_path / "data", embedder)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Slow\n\nslowmark text.\n")
    bob_w, alice_w = Writer(BOB.principal, False), Writer(ALICE.principal, False)
    jobs = service.ingest_jobs
    started = [jobs.start(folder, jobs_module.folder_files(folder), None, 1000, 100, bob_w) for _ in range(jobs_module.MAX_PENDING)]
    with pytest.raises(DomainError) as caught:
        jobs.start(folder, jobs_module.folder_files(folder), None, 1000, 100, bob_w)
    assert caught.value.body.code == "rate_limited" and started[0].id in caught.value.body.message
    theirs = jobs.start(folder, jobs_module.folder_files(folder), None, 1000, 100, alice_w)  # another caller still may
    embedder.release.set()
    for job in [*started]:
        await wait_done(jobs, job.id, bob_w)
    await wait_done(jobs, theirs.id, alice_w)


# -- D5 ------------------------------------------------------------------------------------------------


async def test_a_waiting_status_keeps_reporting_while_one_file_embeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One file embedding for longer than the hub's idle deadline left the waiting call silent, and the hub
    cancelled it (`timeout`). The wait now reports progress at least every KEEPALIVE_S, only ever growing, and
    answers the job's state when its own bound (under the hub's hard limit) ends."""
    monkeypatch.setattr(jobs_module, "KEEPALIVE_S", 0.02)
    embedder = GatedWordEmbedder("slowmark")
    service = MemoryService(tmp_path / "data", embedder)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Slow\n\nslowmark text.\n")
    jobs = service.ingest_jobs
    job = jobs.start(folder, jobs_module.folder_files(folder), None, 1000, 100)
    seen: list[float] = []

    async def report(done: float, total: float, message: str) -> None:
        seen.append(done)
        if len(seen) == 5:
            embedder.release.set()

    finished = await jobs.wait(job.id, 30, report)
    assert finished.state == "done" and len(seen) >= 5, seen
    assert all(a < b for a, b in zip(seen, seen[1:])) and seen[-1] == 1, seen

    monkeypatch.setattr(jobs_module, "MAX_WAIT_S", 0.1)
    embedder.release.clear()
    (folder / "a.md").write_text("# Slow\n\nslowmark other text.\n")
    second = jobs.start(folder, jobs_module.folder_files(folder), None, 1000, 100)
    answered = await jobs.wait(second.id, 300, None)
    assert answered.state in ("queued", "running"), "wait_s beyond MAX_WAIT_S answers the state, not a timeout"
    embedder.release.set()
    await jobs.wait(second.id, 30, None)


# -- D6 ------------------------------------------------------------------------------------------------


async def test_a_job_cut_off_by_a_restart_says_so_and_how_to_resume(tmp_path: Path) -> None:
    embedder = GatedWordEmbedder("slowmark")
    before = MemoryService(tmp_path / "data", embedder)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Slow\n\nslowmark text.\n")
    job = before.ingest_jobs.start(folder, jobs_module.folder_files(folder), None, 1000, 100)
    assert await anyio.to_thread.run_sync(embedder.entered.wait, 30)
    after = MemoryService(tmp_path / "data", WordEmbedder())  # the restarted server
    with pytest.raises(DomainError) as caught:
        after.ingest_jobs.get(job.id, Writer(None, True))
    message = caught.value.body.message
    assert caught.value.body.code == "not_found" and "restart" in message and "ingest_folder" in message, message
    for unknown in ("nope", after.ingest_jobs.epoch + "0" * 9):
        with pytest.raises(DomainError) as caught:
            after.ingest_jobs.get(unknown)
        assert "restart" not in caught.value.body.message, unknown
    embedder.release.set()
    await before.ingest_jobs.wait(job.id, 30)


# -- D7 ------------------------------------------------------------------------------------------------


async def test_the_advertised_document_size_fits_one_hub_request(tmp_path: Path) -> None:
    """`text` up to its maxLength, in the costliest JSON (every character outside the BMP, ASCII-escaped), with
    every other argument at its maximum, fits the hub's 4 MiB request cap; a longer text is refused naming the
    limit and the way round it (path)."""
    server = create_server(MemoryService(tmp_path, WordEmbedder()))
    async with Client(server) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "ingest_document")
        props = tool.input_schema["properties"]

        def longest(prop: dict[str, Any]) -> int:
            return max([prop.get("maxLength", 0), *(b.get("maxLength", 0) for b in prop.get("anyOf", []))])

        limit = longest(props["text"])
        assert limit > 0
        args = {"title": "😀" * longest(props["title"]), "text": "😀" * limit, "source_uri": "😀" * longest(props["source_uri"]),
                "path": "😀" * longest(props["path"]), "tags": ["😀" * 100] * 50, "date": "2026-12-05", "chunk_size": 8000,
                "chunk_overlap": 2000}
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "memory__ingest_document", "arguments": args, "_meta": {"progressToken": "x" * 200}}})
        assert len(body.encode()) < HUB_REQUEST_BYTES - 16_384, len(body.encode())
        over = await call(client, "ingest_document", title="Big", text="a" * (limit + 1))
        assert over.get("code") == "invalid_argument" or "invalid" in over["message"].lower(), over
        assert f"at most {limit}" in json.dumps(over), over
        assert "path" in props["text"]["description"], "the field says where a bigger document goes"
