"""Outside review writes28, memory: (#5) `forget(before=T)` deletes what was stored earlier in T's own second, and
writes order inside a second; (#8) a file's text is decoded by its byte-order mark, as UTF-8 or as Windows-1252,
or refused with what to do, never stored with replacement characters, by `ingest_document` and `ingest_folder`;
(#9) a correction that differs only in letter case is stored (passwords and codes are case-sensitive)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from servers.kit.errors import DomainError
from servers.memory.decoding import decode_text
from servers.memory.facts import recased
from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.fixtures.word_embedder import WordEmbedder

pytestmark = pytest.mark.anyio
SCOPE = {"agent": "a1"}


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    if result.structured_content is not None:
        return result.structured_content
    return {"code": "?", "message": " ".join(getattr(c, "text", "") for c in result.content)}


def server(tmp_path: Path) -> Any:
    return create_server(MemoryService(tmp_path / "data", WordEmbedder()))


# -- 5. forget(before) at the precision it is stored ------------------------------------------------


async def test_forget_before_deletes_what_was_stored_earlier_in_the_same_second(tmp_path: Path) -> None:
    async with Client(server(tmp_path)) as client:
        # Start just after a second boundary (waiting for the clock, no fixed sleep), so the note and the cutoff
        # share their second: the old code cut both to that second and kept the note.
        with anyio.fail_after(5):
            while _dt.datetime.now(_dt.UTC).microsecond > 300_000:
                await anyio.sleep(0.005)
        made = await call(client, "remember", content="Temporary note: the door code is 4711.", scope=SCOPE)
        stored = _dt.datetime.fromisoformat(made["memory"]["updated_at"])
        with anyio.fail_after(5):
            while (cutoff := _dt.datetime.now(_dt.UTC)) <= stored:
                await anyio.sleep(0.001)
        later = await call(client, "remember", content="Kept note: the lunch room is on floor 3.", scope=SCOPE)
        assert _dt.datetime.fromisoformat(later["memory"]["updated_at"]) > cutoff
        gone = await call(client, "forget", scope=SCOPE, before=cutoff.isoformat(), confirm=True)
        assert gone["deleted"] == 1 and gone["ids"] == [made["memory"]["id"]], (stored, cutoff, gone)
        left = await call(client, "list_recent", scope=SCOPE)
        assert [m["content"] for m in left["memories"]] == ["Kept note: the lunch room is on floor 3."]


async def test_a_before_without_an_offset_is_utc(tmp_path: Path) -> None:
    async with Client(server(tmp_path)) as client:
        await call(client, "remember", content="The printer on floor 2 is out of toner.", scope=SCOPE)
        naive_past = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
        assert (await call(client, "forget", scope=SCOPE, before=naive_past, confirm=True))["deleted"] == 0
        naive_future = (_dt.datetime.now(_dt.UTC) + _dt.timedelta(minutes=1)).replace(tzinfo=None).isoformat()
        assert (await call(client, "forget", scope=SCOPE, before=naive_future, confirm=True))["deleted"] == 1


# -- 8. decoding files ------------------------------------------------------------------------------


TEXT = "# Canteen\n\nThe café serves crème brûlée on Fridays.\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252"])
def test_decode_text_reads_each_accepted_encoding_exactly(encoding: str) -> None:
    assert decode_text("menu.md", TEXT.encode(encoding)) == TEXT


@pytest.mark.parametrize("data, words", [
    ("Привет, как дела? Всё хорошо.\n".encode("cp1251"), ["not UTF-8", "another encoding", "save it as UTF-8"]),
    ("会議は月曜日です。\n".encode("shift_jis"), ["not UTF-8", "another encoding"]),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00binary", ["control character", "binary file"]),
    (b"\xef\xbb\xbfcaf\xe9\n", ["not valid utf-8-sig", "offset"]),
], ids=["cyrillic_cp1251", "shift_jis", "binary", "bom_then_latin1"])
def test_decode_text_refuses_what_it_cannot_read_saying_what_to_do(data: bytes, words: list[str]) -> None:
    with pytest.raises(DomainError) as refused:
        decode_text("notes.txt", data)
    assert refused.value.body.code == "invalid_argument"
    for word in words:
        assert word in refused.value.body.message, (word, refused.value.body.message)


def test_html_names_its_charset() -> None:
    page = '<html><head><meta charset="windows-1251"><title>T</title></head><body><p>Привет мир</p></body></html>'
    assert "Привет мир" in decode_text("page.html", page.encode("cp1251"), html=True)


async def _ingest_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notepad.txt").write_bytes("Quarterly expense policy\n\nTaxi receipts must be filed within thirty days.\n"
                                       .encode("utf-16"))
    (docs / "menu.md").write_bytes(TEXT.encode("latin-1"))
    (docs / "russian.txt").write_bytes("Отчёт о расходах за квартал\n".encode("cp1251"))
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(docs))
    return docs


async def test_ingest_document_decodes_utf16_and_latin1_and_refuses_an_unknown_encoding(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = await _ingest_files(tmp_path, monkeypatch)
    async with Client(server(tmp_path)) as client:
        for name, query, word in (("notepad.txt", "taxi receipts", "Taxi receipts"), ("menu.md", "café crème", "café")):
            made = await call(client, "ingest_document", path=str(docs / name))
            assert made.get("status") == "created", made
            hits = (await call(client, "search_documents", query=query, mode="keyword"))["hits"]
            assert hits and word in hits[0]["text"] and "\ufffd" not in hits[0]["text"] and "\x00" not in hits[0]["text"], hits
        refused = await call(client, "ingest_document", path=str(docs / "russian.txt"))
        assert refused.get("code") == "invalid_argument" and "save it as UTF-8" in refused["message"], refused


async def test_ingest_folder_reports_the_unreadable_file_and_indexes_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = await _ingest_files(tmp_path, monkeypatch)
    async with Client(server(tmp_path)) as client:
        job = await call(client, "ingest_folder", path=str(docs))
        done = await call(client, "ingest_status", job_id=job["id"], wait_s=30)
        assert done["state"] == "done" and done["counts"] == {"created": 2, "failed": 1}, done
        assert [e["message"] for e in done["errors"] if "russian.txt" in e["message"]], done["errors"]
        hits = (await call(client, "search_documents", query="taxi receipts", mode="keyword"))["hits"]
        assert hits and "Taxi receipts" in hits[0]["text"]


# -- 9. a case-only correction is new text ----------------------------------------------------------


async def test_a_case_only_correction_is_stored_and_whitespace_only_is_unchanged(tmp_path: Path) -> None:
    async with Client(server(tmp_path)) as client:
        first = await call(client, "remember", content="The guest wifi password is hunter2.", scope=SCOPE)
        fixed = await call(client, "remember", content="The guest wifi password is HUNTER2.", scope=SCOPE)
        assert fixed["action"] == "updated" and fixed["changed"] == ["content"], fixed
        assert fixed["memory"]["id"] == first["memory"]["id"] and fixed["replaced_text"] == "The guest wifi password is hunter2."
        again = await call(client, "remember", content="The  guest wifi password is HUNTER2", scope=SCOPE)
        assert again["action"] == "unchanged" and again["stored_text"] == "The guest wifi password is HUNTER2.", again
        listed = await call(client, "list_recent", scope=SCOPE)
        assert [m["content"] for m in listed["memories"]] == ["The guest wifi password is HUNTER2."]


@pytest.mark.parametrize("stored, new, corrects", [
    ("The guest wifi password is hunter2.", "The guest wifi password is HUNTER2.", True),
    ("The door code is ab-12", "The door code is AB-12", True),
    ("The wifi password is swordfish", "The wifi password is SwordFish", True),
    ("Our contact is Sam Mcdonald", "Our contact is Sam McDonald", True),
    ("Carol is allergic to peanuts.", "  carol is ALLERGIC to peanuts ", False),
    ("Carol's dog is called Rex", "carol's dog is called Rex", False),
    ("She needs an x-ray", "She needs an X-ray", False),
])
def test_which_case_only_differences_are_corrections(stored: str, new: str, corrects: bool) -> None:
    assert recased(stored, new) is corrects


def test_a_utf8_log_with_colour_codes_is_read_as_written_and_a_nul_still_refuses() -> None:
    """A terminal log's ANSI escapes (ESC) are a few control characters in valid UTF-8 text: kept, not refused."""
    from servers.kit.errors import DomainError
    from servers.memory.decoding import decode_text

    log = "\x1b[32mINFO\x1b[0m deploy finished in 42 s\n" + "plain line of the build log\n" * 20
    assert decode_text("build.log.txt", log.encode()) == log
    with pytest.raises(DomainError):
        decode_text("blob.txt", b"text then \x00 a NUL" + b" more" * 50)
    with pytest.raises(DomainError):
        decode_text("noise.txt", bytes(range(1, 32)) * 10)  # mostly control characters: binary
