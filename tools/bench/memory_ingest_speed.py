"""End-to-end ingest speed the way a client sees it, in chunks per wall-clock second, for the two
shapes issue 23 names: one long business document (~300 KB: the business handbook repeated, each
copy under its own division heading) through `DocumentStore.ingest` with a progress callback (what
the `ingest_document` tool calls), and a folder (the pydoc topics as text files, ~465 KB) through
`IngestJobs` (what `ingest_folder` + `ingest_status` run). Also prints CPU-seconds and how many
cores the run used (CPU / wall), and the load average: on a shared machine read the wall figure
with it.

    .venv/bin/python tools/bench/memory_ingest_speed.py [--case long folder] [--repeat 1] [--copies 20]

Run timed figures under the shared lock: `flock /work/bench.lock .venv/bin/python tools/bench/...`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hub.text.embedding import QuantizedMiniLM  # noqa: E402
from servers.memory.service import MemoryService  # noqa: E402
from tools.bench import retrieval_business as business  # noqa: E402

DIVISIONS = ["Nordic", "Iberia", "Benelux", "Alpine", "Baltic", "Danube", "Atlantic", "Adriatic", "Carpathian", "Rhine"]


def long_text(copies: int) -> str:
    """The handbook `copies` times, each copy's title naming a different division and year (~15.5 KB each)."""
    base = business.text().split("\n", 1)[1]
    parts = []
    for i in range(copies):
        division = f"{DIVISIONS[i % len(DIVISIONS)]} division, {2015 + i}"
        parts.append(f"# Halvorsen & Reyes Freight, {division}: Handbook and Annual Report\n{base}")
    return "\n\n".join(parts)


def write_folder(folder: Path) -> int:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True)
    for key, text in topics.items():
        (folder / f"{key}.txt").write_text(text, encoding="utf-8")
    return sum(len(t) for t in topics.values())


def line(label: str, chunks: int, chars: int, wall: float, cpu: float) -> None:
    print(f"  {label}: {chunks} chunks, {chars / 1000:.0f} KB in {wall:.1f}s = {chunks / wall:.1f} chunks/s wall; "
          f"{cpu:.1f} CPU s = {chunks / cpu:.1f} chunks per CPU-second, {cpu / wall:.2f} cores used; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)


async def long_case(embedder: QuantizedMiniLM, folder: Path, copies: int) -> None:
    service = MemoryService(folder, embedder)
    text = long_text(copies)

    async def progress(done: float, total: float, message: str) -> None:
        pass

    wall, cpu = time.perf_counter(), time.process_time()
    result = await service.documents.ingest("Halvorsen & Reyes Freight: group handbook", text, "bench://long", [], None,
                                            progress=progress)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    line("one long document", result.document.chunks, len(text), wall, cpu)


async def folder_case(embedder: QuantizedMiniLM, folder: Path) -> None:
    from servers.memory.jobs import folder_files

    service = MemoryService(folder / "data", embedder)
    chars = write_folder(folder / "docs")
    files = folder_files(folder / "docs")
    wall, cpu = time.perf_counter(), time.process_time()
    job = service.ingest_jobs.start(folder / "docs", files, [], 500, 100)
    job = await service.ingest_jobs.wait(job.id, 3600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert job.state == "done" and not job.errors, job
    line(f"folder of {len(files)} files", job.chunks_indexed, chars, wall, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs="+", default=["long", "folder"], choices=("long", "folder"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--copies", type=int, default=20, help="handbook copies in the long document (20 = ~310 KB)")
    args = parser.parse_args()
    started = time.perf_counter()
    embedder = QuantizedMiniLM()
    embedder.embed(["warm up", "the model load is not ingest"])
    print(f"memory ingest speed: {os.cpu_count()} cores, embedder loaded in {time.perf_counter() - started:.1f}s, "
          f"{embedder.workers} workers; load {os.getloadavg()[0]:.2f}", flush=True)
    for _ in range(args.repeat):
        for case in args.case:
            with tempfile.TemporaryDirectory() as folder:
                if case == "long":
                    anyio.run(long_case, embedder, Path(folder), args.copies)
                else:
                    anyio.run(folder_case, embedder, Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
