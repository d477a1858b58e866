"""Pipelined ingest (servers/memory/pipeline.py, `DocumentStore.prepare`/`commit`, the folder job's
look-ahead): the next embedding batch, and the next file, start before the current one is done;
vectors and progress stay in order; a failure mid-ingest stores nothing of the document; a folder
job still commits files in order, records a bad file and goes on, and stops cleanly on an embedder
failure. Stub embedders gated by events make the overlaps observable without timing."""

from __future__ import annotations

import sqlite3
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import numpy as np
import pytest

from servers.memory import pipeline
from servers.memory.service import MemoryService
from servers.memory.words import index_text

pytestmark = pytest.mark.anyio
WAIT = 30


def vector_of(text: str, dimensions: int = 160) -> np.ndarray:
    """One dimension per `tokenN` marker word (so chunk N's vector is told apart exactly), plus hashed other words."""
    out = np.zeros(dimensions, dtype=np.float32)
    for word in text.lower().split():
        marker = re.fullmatch(r"token(\d+)", word)
        out[int(marker.group(1)) if marker else 128 + zlib.crc32(word.encode()) % 32] += 4.0 if marker else 0.1
    return out / max(float(np.linalg.norm(out)), 1e-12)


class StubEmbedder:
    """Hash-of-words vectors; `hook(texts)` runs first in the embedding thread (to block or fail)."""

    name = "pipeline-stub"
    dimensions = 160

    def __init__(self, hook: Callable[[Sequence[str]], None] | None = None) -> None:
        self.hook = hook
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
        if self.hook is not None:
            self.hook(texts)
        return np.vstack([vector_of(t) for t in texts]) if texts else np.zeros((0, self.dimensions), np.float32)


def numbered(count: int) -> str:
    """`count` paragraphs, each its own chunk at chunk size 200, each with a unique word."""
    return "\n\n".join(f"Paragraph {i} mentions the marker word token{i} and some filler text about freight, depots, drivers "
                       "and invoices." for i in range(count))


def table_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("documents", "chunks", "chunk_fts")}


async def test_the_next_batch_starts_before_the_current_one_ends_and_order_is_kept(tmp_path: Path) -> None:
    """Batch 1 is held until batch 2 has started, and batch 2 finishes first: vectors still land
    in their rows and progress is reported in batch order."""
    second_started = threading.Event()

    def hook(texts: Sequence[str]) -> None:
        if "token0 " in texts[0]:
            assert second_started.wait(WAIT), "the second batch never started while the first was running"
        elif f"token{pipeline.EMBED_BATCH} " in texts[0]:
            second_started.set()

    embedder = StubEmbedder(hook)
    texts = [f"Paragraph {i} mentions the marker word token{i} ." for i in range(3 * pipeline.EMBED_BATCH + 5)]
    seen: list[tuple[float, float]] = []

    async def progress(done: float, total: float, message: str) -> None:
        seen.append((done, total))

    vectors = await pipeline.embed_batches(embedder, texts, progress, "doc")
    assert np.allclose(vectors, np.vstack([vector_of(t) for t in texts]))
    total = len(texts)
    assert seen == [(32, total), (64, total), (96, total), (total, total)]


async def test_a_failure_mid_ingest_stores_nothing_of_the_document(tmp_path: Path) -> None:
    calls = {"n": 0}

    def hook(texts: Sequence[str]) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("embedder failed (injected)")

    service = MemoryService(tmp_path / "data", StubEmbedder(hook))
    with pytest.raises(RuntimeError, match="injected"):
        await service.documents.ingest("Big", numbered(150), "kb://big", [], None, size=200, overlap=0)
    assert table_counts(service.store.path) == {"documents": 0, "chunks": 0, "chunk_fts": 0}
    assert len(await service.documents._vectors()) == 0

    first = await service.documents.ingest("Big", numbered(40), "kb://big", [], None, size=200, overlap=0)
    assert first.status == "created" and first.document.chunks == 40
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="injected"):
        await service.documents.ingest("Big", numbered(150), "kb://big", [], None, size=200, overlap=0)
    assert table_counts(service.store.path) == {"documents": 1, "chunks": 40, "chunk_fts": 40}, "the old version stays whole"
    hits = (await service.documents.search("token39", "keyword", None, None, None, 5)).hits
    assert hits and "token39 " in hits[0].text
    assert not (await service.documents.search("token120", "keyword", None, None, None, 5)).hits


async def test_a_long_document_is_written_whole_and_in_order(tmp_path: Path) -> None:
    service = MemoryService(tmp_path / "data", StubEmbedder())
    result = await service.documents.ingest("Long", numbered(100), "kb://long", [], None, size=200, overlap=0)
    assert result.document.chunks == 100
    with sqlite3.connect(service.store.path) as db:
        rows = db.execute("SELECT c.position, c.text, c.vector, f.text FROM chunks c JOIN chunk_fts f ON f.rowid = c.id "
                          "ORDER BY c.id").fetchall()
    assert [r[0] for r in rows] == list(range(100))
    for position, text, blob, fts_text in rows:
        assert f"token{position} " in text and fts_text == index_text(text)  # the FTS row holds its words (servers/memory/words.py)
        assert np.allclose(np.frombuffer(blob, dtype=np.float32), vector_of(f"Long. {text}"))
    for number in (0, 57, 99):
        semantic = (await service.documents.search(f"token{number}", "semantic", None, None, None, 1)).hits
        assert f"token{number} " in semantic[0].text, "the in-memory index holds each chunk's own vector"


def write_files(folder: Path, texts: dict[str, str]) -> list[Path]:
    folder.mkdir()
    for name, text in texts.items():
        (folder / name).write_text(text)
    return sorted(folder.iterdir())


async def test_folder_job_embeds_the_next_file_while_finishing_this_one(tmp_path: Path) -> None:
    """File a's only batch is held until file b's embedding has started; files still commit in
    order, an empty file is recorded as failed and the job goes on."""
    b_started = threading.Event()

    def hook(texts: Sequence[str]) -> None:
        if any("alphaword" in t for t in texts):
            assert b_started.wait(WAIT), "the next file did not start embedding while this one was"
        if any("bravoword" in t for t in texts):
            b_started.set()

    service = MemoryService(tmp_path / "data", StubEmbedder(hook))
    files = write_files(tmp_path / "docs", {"a.md": "# A\n\nThe alphaword file.", "b.md": "# B\n\nThe bravoword file.",
                                            "c.md": "   \n", "d.md": "# D\n\nThe deltaword file."})
    job = service.ingest_jobs.start(tmp_path / "docs", files, ["t"], 500, 100)
    with anyio.fail_after(WAIT):
        job = await service.ingest_jobs.wait(job.id, WAIT)
    assert job.state == "done" and job.files_done == 4 and job.counts == {"created": 3, "failed": 1}, job
    assert [Path(e.path).name for e in job.errors] == ["c.md"]
    listed = (await service.documents.list(None, 10, None)).documents
    with sqlite3.connect(service.store.path) as db:
        order = [r[0] for r in db.execute("SELECT title FROM documents ORDER BY rowid")]
    assert order == ["A", "B", "D"] and len(listed) == 3, "files are committed in folder order"


async def test_folder_job_stops_cleanly_when_the_embedder_fails(tmp_path: Path) -> None:
    def hook(texts: Sequence[str]) -> None:
        if any("bravoword" in t for t in texts):
            raise RuntimeError("embedder failed (injected)")

    service = MemoryService(tmp_path / "data", StubEmbedder(hook))
    files = write_files(tmp_path / "docs", {"a.md": "# A\n\nThe alphaword file.", "b.md": "# B\n\nThe bravoword file.",
                                            "c.md": "# C\n\nThe charlieword file."})
    job = service.ingest_jobs.start(tmp_path / "docs", files, [], 500, 100)
    with anyio.fail_after(WAIT):
        job = await service.ingest_jobs.wait(job.id, WAIT)
    assert job.state == "failed" and job.files_done == 1 and job.counts == {"created": 1}, job
    assert job.errors[-1].message == "ingest stopped: RuntimeError"
    assert table_counts(service.store.path) == {"documents": 1, "chunks": 1, "chunk_fts": 1}, "only the file before the failure"
