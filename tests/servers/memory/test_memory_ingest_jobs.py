"""Folder ingest in the background (servers/memory/jobs.py) through the MCP interface: the call
answers at once with a job id, progress is readable while it runs and as progress notifications,
keyword search finds files already indexed while a later one is still embedding, and what search
returns carries the heading path the chunk sits under. An embedder stub gated by events stands in
for the model, so the test waits for states, never for time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.fixtures.word_embedder import GatedWordEmbedder

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_folder_ingest_runs_in_background_and_search_works_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a_expenses.md").write_text("# Expenses\n\n## Hotels\n\nHotel costs are capped at 160 euros per night.\n")
    (folder / "b_leave.md").write_text("# Leave\n\nEmployees receive 27 days of zebrafinch annual leave.\n")
    (folder / "notes.bin").write_bytes(b"\x00ignored")
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(tmp_path))
    embedder = GatedWordEmbedder("zebrafinch")
    service = MemoryService(tmp_path / "data", embedder)
    async with Client(create_server(service)) as client:
        job = await call(client, "ingest_folder", path=str(folder), tags=["handbook"])
        assert job["files_total"] == 2 and job["state"] in ("queued", "running")

        assert await anyio.to_thread.run_sync(embedder.entered.wait, 30), "the second file started embedding"
        with anyio.fail_after(30):  # the first file's write may still be finishing: the next one embeds meanwhile
            while (status := await call(client, "ingest_status", job_id=job["id"]))["files_done"] < 1:
                await anyio.sleep(0.01)
        assert status["state"] == "running" and status["files_done"] == 1 and status["current"] == "b_leave.md", status

        found = await call(client, "search_documents", query="hotel costs per night", mode="keyword")
        assert [h["title"] for h in found["hits"]] == ["Expenses"], "the file already indexed is searchable meanwhile"
        assert found["hits"][0]["heading"] == "Expenses > Hotels", "a hit carries its heading path"

        seen: list[tuple[float, float | None]] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            seen.append((done, total))

        embedder.release.set()
        result = await client.call_tool("ingest_status", {"job_id": job["id"], "wait_s": 30}, progress_callback=progress)
        done = result.structured_content
        assert done is not None and done["state"] == "done", done
        assert done["files_done"] == 2 and done["counts"] == {"created": 2} and done["chunks_indexed"] == 2 and not done["errors"]
        assert seen and seen[-1] == (2, 2), "progress notifications reached the waiting caller"

        found = await call(client, "search_documents", query="zebrafinch", mode="keyword", tags=["handbook"])
        assert [h["title"] for h in found["hits"]] == ["Leave"]

        again = await call(client, "ingest_folder", path=str(folder), tags=["handbook"])
        finished = await call(client, "ingest_status", job_id=again["id"], wait_s=30)
        assert finished["counts"] == {"unchanged": 2} and finished["chunks_indexed"] == 0


async def test_folder_ingest_refuses_what_it_may_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "one.md").write_text("# One\n\ntext\n")
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(allowed))
    service = MemoryService(tmp_path / "data", GatedWordEmbedder("never"))
    async with Client(create_server(service)) as client:
        outside = await client.call_tool("ingest_folder", {"path": str(tmp_path)})
        assert outside.is_error and outside.structured_content and outside.structured_content["code"] == "forbidden"
        a_file = await client.call_tool("ingest_folder", {"path": str(allowed / "one.md")})
        assert a_file.is_error and a_file.structured_content and a_file.structured_content["code"] == "invalid_argument"
        unknown = await client.call_tool("ingest_status", {"job_id": "nosuchjob"})
        assert unknown.is_error and unknown.structured_content and unknown.structured_content["code"] == "not_found"


async def test_folder_ingest_reads_nothing_through_a_link_out_of_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A symbolic link inside the allowed folder to a file (or a folder) outside it is not followed:
    `ingest_document` refuses such a path, and a folder job must not read it either."""
    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    secret.mkdir()
    (secret / "passwords.txt").write_text("topsecretpassword kept outside\n")
    (allowed / "a_link.txt").symlink_to(secret / "passwords.txt")
    (allowed / "linked_dir").symlink_to(secret, target_is_directory=True)
    (allowed / "b_inside.md").write_text("# Inside\n\nplainword inside the folder\n")
    (allowed / "c_inner_link.md").symlink_to(allowed / "b_inside.md")  # a link that stays inside: fine
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(allowed))
    service = MemoryService(tmp_path / "data", GatedWordEmbedder("never"))
    async with Client(create_server(service)) as client:
        job = await call(client, "ingest_folder", path=str(allowed))
        done = await call(client, "ingest_status", job_id=job["id"], wait_s=30)
        assert done["state"] == "done" and done["files_total"] == 2, done
        leaked = await call(client, "search_documents", query="topsecretpassword", mode="keyword")
        assert leaked["hits"] == []
        inside = await call(client, "search_documents", query="plainword", mode="keyword")
        assert inside["hits"], "the files inside are indexed"


async def test_one_odd_or_unreadable_file_does_not_stop_the_folder_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file name that is not UTF-8, or a file that cannot be read, is that file's error; the job
    goes on to the files after it (it stopped at the first such file, every time)."""
    import os

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a_first.md").write_text("# First\n\nalphaword\n")
    (folder / os.fsdecode(b"b_bad\xffname.md")).write_text("betaword in a file whose name is not UTF-8\n")
    (folder / "c_proc_link.txt").symlink_to("/proc/self/mem")  # outside the folder: refused, not read
    unreadable = folder / "d_unreadable.md"
    unreadable.mkdir()  # a folder named like a file: skipped by the listing
    (folder / "e_after.md").write_text("# After\n\naftertok\n")
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(tmp_path))
    real_read = __import__("servers.memory.jobs", fromlist=["read_document"]).read_document

    def flaky_read(path: Path) -> tuple[str, str]:
        if path.name == "a_first.md":
            raise PermissionError(13, "Permission denied")  # as for a file the server's user may not read
        return real_read(path)

    monkeypatch.setattr("servers.memory.jobs.read_document", flaky_read)
    service = MemoryService(tmp_path / "data", GatedWordEmbedder("never"))
    async with Client(create_server(service)) as client:
        job = await call(client, "ingest_folder", path=str(folder))
        done = await call(client, "ingest_status", job_id=job["id"], wait_s=30)
        assert done["state"] == "done", done
        assert done["counts"] == {"created": 2, "failed": 1}, done
        assert any("Permission denied" in e["message"] for e in done["errors"]), done["errors"]
        for word in ("betaword", "aftertok"):
            assert (await call(client, "search_documents", query=word, mode="keyword"))["hits"], word
