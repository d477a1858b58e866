"""Outside review w28b, memory: (#2) valid UTF-8 wins over an HTML charset, and declared labels map as browsers
map them; (#7) a mostly-UTF-8 file with stray bytes is refused saying where, never stored as mojibake; (#3) a
fully coloured UTF-8 log and a Windows-1252 divider line are text; (#4) a case-only change of a secret or code is
a correction; (#8) `forget(before=…)` at the calendar's edges is `invalid_argument`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.kit.errors import DomainError
from servers.memory.decoding import decode_text
from servers.memory.facts import recased
from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.fixtures.word_embedder import WordEmbedder

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    if result.structured_content is not None:
        return result.structured_content
    return {"code": "?", "message": " ".join(getattr(c, "text", "") for c in result.content)}


def _page(charset: str, body: str) -> str:
    return f'<html><head><meta charset="{charset}"><title>T</title></head><body><p>{body}</p></body></html>'


# -- 2. HTML charsets -------------------------------------------------------------------------------


@pytest.mark.parametrize("data, expected", [
    (_page("iso-8859-1", "The \u201ctravel\u201d policy \u2013 taxis").encode("cp1252"), "The \u201ctravel\u201d policy \u2013 taxis"),
    (_page("us-ascii", "caf\u00e9 \u201cnoir\u201d").encode("cp1252"), "caf\u00e9 \u201cnoir\u201d"),
    ('<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"><p>The café in Zürich</p>'.encode(),
     "The café in Zürich"),
    (_page("utf-16", "The parking garage closes at noon.").encode(), "The parking garage closes at noon."),
    (_page("utf-16le", "Ünïcode déclaré").encode(), "Ünïcode déclaré"),
    (_page("windows-1251", "Привет мир").encode("cp1251"), "Привет мир"),
    (_page("shift_jis", "会議は月曜日です").encode("cp932"), "会議は月曜日です"),
], ids=["latin1_label_is_cp1252", "ascii_label_is_cp1252", "utf8_over_stale_latin1", "utf16_meta_is_utf8",
        "utf16le_meta_over_utf8", "declared_cp1251", "declared_shift_jis"])
def test_html_is_read_as_a_browser_reads_it(data: bytes, expected: str) -> None:
    text = decode_text("page.html", data, html=True)
    assert expected in text and not any("\x80" <= ch <= "\x9f" for ch in text), text


def test_a_declared_single_byte_charset_that_yields_c1_controls_is_refused() -> None:
    with pytest.raises(DomainError) as refused:
        decode_text("page.html", _page("iso-8859-15", "quote \x93here\x94").encode("latin-1"), html=True)
    assert "control character U+0093" in refused.value.body.message


# -- 7. mixed encodings -----------------------------------------------------------------------------


FRENCH = "Le café est fermé lundi. Les crêpes et la crème brûlée reviennent mardi, dit l’ami.\n" * 3


@pytest.mark.parametrize("stray", [b"Note de Ren\xe9e: it\x92s fine.\n", b"\x93quoted\x94\n", b"one \xff byte\n"])
def test_a_mostly_utf8_file_with_stray_bytes_is_refused_naming_the_first(stray: bytes) -> None:
    data = FRENCH.encode() + stray
    with pytest.raises(DomainError) as refused:
        decode_text("cafe.txt", data)
    message = refused.value.body.message
    first = next(i for i in range(len(FRENCH.encode()), len(data)) if data[i] > 0x7F)
    assert "UTF-8 except for" in message and f"line 4, byte offset {first}: 0x{data[first]:02X}" in message, message
    assert "save it as UTF-8" in message


def test_a_windows_1252_file_is_still_read_whole() -> None:
    text = "Réunion: le café “noir” coûte 2 €. Ça va.\n" * 3
    assert decode_text("cafe.txt", text.encode("cp1252")) == text


# -- 3. legitimate text refused -------------------------------------------------------------------------


def test_a_fully_coloured_utf8_log_is_text_and_control_noise_is_not() -> None:
    log = "".join(f"\x1b[32mINFO\x1b[0m step {i} ok\n\x1b[1;31mWARN\x1b[0m retry {i} ✓\n" for i in range(40))
    assert decode_text("build.txt", log.encode()) == log
    with pytest.raises(DomainError):
        decode_text("noise.txt", ("text \x01\x02\x03\x04 " * 40).encode())
    with pytest.raises(DomainError):
        decode_text("blob.txt", b"\x1b[0m then a \x00 NUL" + b" more" * 50)


@pytest.mark.parametrize("divider", ["————————————", "••••••••", "…………", "«»«»«»", "–––– ‘’‘’ ––––"])
def test_a_windows_1252_divider_of_punctuation_is_text(divider: str) -> None:
    note = f"Meeting notes — Q3\n{divider}\n• Budget: “approved”\n• Next: café on Friday\n"
    assert decode_text("notes.txt", note.encode("cp1252")) == note


@pytest.mark.parametrize("data", ["Отчёт о расходах за квартал\n".encode("cp1251"), "Καλημέρα κόσμε\n".encode("cp1253")],
                         ids=["cyrillic", "greek"])
def test_another_code_page_is_still_refused(data: bytes) -> None:
    with pytest.raises(DomainError) as refused:
        decode_text("notes.txt", data)
    assert "another encoding" in refused.value.body.message and "line 1" in refused.value.body.message


async def test_ingest_stores_the_readable_files_and_refuses_the_mixed_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "b.html").write_bytes(_page("ISO-8859-1", "The café in Zürich serves crème brûlée.").encode())
    (docs / "build.txt").write_bytes("".join(f"\x1b[32mINFO\x1b[0m step {i} compiled\n" for i in range(30)).encode())
    (docs / "cafe.txt").write_bytes(FRENCH.encode() + b"it\x92s fine\n")
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(docs))
    async with Client(create_server(MemoryService(tmp_path / "data", WordEmbedder()))) as client:
        for name in ("b.html", "build.txt"):
            assert (await call(client, "ingest_document", path=str(docs / name))).get("status") == "created", name
        hits = (await call(client, "search_documents", query="crème brûlée", mode="keyword"))["hits"]
        assert hits and "café in Zürich" in hits[0]["text"], hits
        refused = await call(client, "ingest_document", path=str(docs / "cafe.txt"))
        assert refused.get("code") == "invalid_argument" and "line 4" in refused["message"], refused
        assert str(docs) not in refused["message"]


# -- 4. case-only corrections of secrets and codes ----------------------------------------------------------


@pytest.mark.parametrize("stored, new, corrects", [
    ("The guest wifi password is swordfish.", "The guest wifi password is SWORDFISH.", True),
    ("The vault password is SwordFish.", "The vault password is swordfish.", True),
    ("The alarm disarm code is ABCD.", "The alarm disarm code is abcd.", True),
    ("My PIN: Abcd", "My PIN: abcd", True),
    ("Carol is allergic to peanuts.", "  carol is ALLERGIC to peanuts ", False),
    ("The meeting is on Monday", "the meeting is on MONDAY", False),
])
def test_a_case_change_in_a_statement_naming_a_secret_is_a_correction(stored: str, new: str, corrects: bool) -> None:
    assert recased(stored, new) is corrects


async def test_remember_stores_an_all_capitals_password_correction(tmp_path: Path) -> None:
    scope = {"agent": "a1"}
    async with Client(create_server(MemoryService(tmp_path / "data", WordEmbedder()))) as client:
        await call(client, "remember", content="The guest wifi password is swordfish.", scope=scope)
        fixed = await call(client, "remember", content="The guest wifi password is SWORDFISH.", scope=scope)
        assert fixed["action"] == "updated" and fixed["memory"]["content"] == "The guest wifi password is SWORDFISH.", fixed
        same = await call(client, "remember", content="carol is ALLERGIC to peanuts", scope={"agent": "a2"})
        again = await call(client, "remember", content="Carol is allergic to peanuts.", scope={"agent": "a2"})
        assert again["action"] == "unchanged" and again["stored_text"] == same["memory"]["content"], again


# -- 8. forget(before) at the calendar's edges ---------------------------------------------------------


@pytest.mark.parametrize("before", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
async def test_forget_before_outside_the_utc_calendar_is_invalid_argument(tmp_path: Path, before: str) -> None:
    scope = {"agent": "a"}
    async with Client(create_server(MemoryService(tmp_path / "data", WordEmbedder()))) as client:
        await call(client, "remember", content="The printer on floor 2 is out of toner.", scope=scope)
        refused = await call(client, "forget", scope=scope, before=before, confirm=True)
        assert refused.get("code") == "invalid_argument" and "0001-9999" in refused["message"], refused
        assert (await call(client, "list_recent", scope=scope))["memories"], "nothing may be deleted"
