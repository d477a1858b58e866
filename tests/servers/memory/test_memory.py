"""The memory domain: every tool, scope isolation, dedupe, idempotent and atomic re-ingest, file
reading, progress, the offline guarantee, and the hub and standalone paths."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from hub.config import parse_config
from hub.hub import Hub
from servers.memory import document_writes as documents_module
from servers.memory.chunking import chunk_text
from servers.memory.embedding import MiniLM
from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.conftest import PY, ROOT

pytestmark = pytest.mark.anyio
ADA = {"user": "ada", "project": "apollo"}
BOB = {"user": "bob", "project": "apollo"}


@pytest.fixture(scope="module")
def embedder() -> MiniLM:
    return MiniLM()  # loaded once for the module; every service below shares it


@pytest.fixture
async def client(tmp_path: Path, embedder: MiniLM) -> Any:
    service = MemoryService(tmp_path, embedder)
    async with Client(create_server(service)) as connected:
        yield connected


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert result.structured_content is not None, result.content
    return result.structured_content


def test_embeddings_rank_meaning(embedder: MiniLM) -> None:
    vectors = embedder.embed(["How do I reset my password?", "I forgot my login credentials", "Quarterly revenue grew ten percent",
                              ""])
    assert vectors.shape == (4, 384) and abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-5, "unit length"
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.4 > unrelated, (similar, unrelated)
    batched = embedder.embed(["How do I reset my password?"] + ["padding " * 50])[0]
    assert float(batched @ vectors[0]) > 0.9999, "padding in a batch does not change a text's vector"


def test_chunks_follow_headings_and_stay_near_the_size() -> None:
    text = "# Guide\n\nIntro.\n\n## Install\n\n" + " ".join(f"Step {i} is done like this." for i in range(200)) + "\n\n## Use\n\nRun it."
    chunks = chunk_text(text, size=900, overlap=150)
    assert [c.heading for c in chunks][0] == "Guide" and chunks[-1].heading == "Guide > Use" and chunks[-1].text == "Run it."
    middle = [c for c in chunks if c.heading == "Guide > Install"]
    assert len(middle) >= 5 and all(len(c.text) <= 900 + 150 for c in middle)
    assert middle[1].text.split()[0] in middle[0].text, "each chunk starts with the tail of the one before"


async def test_memories_scopes_dedupe_and_versions(client: Client) -> None:
    first = await call(client, "remember", content="Ada prefers tea over coffee", scope=ADA, kind="preference", tags=["drinks"])
    again = await call(client, "remember", content="ada prefers tea over coffee.", scope=ADA, tags=["office"])
    assert again["merged"] and again["memory"]["id"] == first["memory"]["id"] and again["memory"]["tags"] == ["drinks", "office"]
    near = await call(client, "remember", content="Ada prefers tea to coffee", scope=ADA)
    assert near["merged"] and near["memory"]["id"] == first["memory"]["id"] and near["similarity"] >= 0.92
    other = await call(client, "remember", content="Ada prefers tea over coffee", scope=BOB)
    assert not other["merged"] and other["memory"]["id"] != first["memory"]["id"], "the same text in another scope is its own memory"
    await call(client, "remember", content="The Apollo launch date is 1 March 2027", scope=ADA, kind="fact", tags=["deadline"])
    await call(client, "remember", content="Bob's secret: the vault code is 4711", scope=BOB, kind="note")

    found = await call(client, "recall", query="when does Apollo launch?", scope=ADA)
    assert found["hits"][0]["memory"]["content"].startswith("The Apollo launch date")
    assert all(h["memory"]["scope"] == {"user": "ada", "agent": None, "project": "apollo"} for h in found["hits"])
    assert not any("vault" in h["memory"]["content"] for h in (await call(client, "recall", query="vault code secret", scope=ADA))["hits"])
    assert (await call(client, "recall", query="vault code", scope=BOB, mode="keyword"))["hits"][0]["ranks"] == {"keyword": 1}
    kinds = await call(client, "recall", query="tea", scope=ADA, kinds=["fact"])
    assert all(h["memory"]["kind"] == "fact" for h in kinds["hits"])

    bobs = [h["memory"]["id"] for h in (await call(client, "recall", query="vault", scope=BOB))["hits"]]
    assert (await call(client, "get_memories", ids=bobs, scope=ADA))["memories"] == [], "ids do not cross scopes"
    assert len((await call(client, "get_memories", ids=bobs, scope=BOB))["memories"]) == len(bobs)
    recent = await call(client, "list_recent", scope=ADA, limit=1)
    assert recent["memories"][0]["content"].startswith("The Apollo") and recent["next_cursor"]
    rest = await call(client, "list_recent", scope=ADA, cursor=recent["next_cursor"])
    assert [m["id"] for m in rest["memories"]] == [first["memory"]["id"]]

    memory = first["memory"]["id"]
    updated = await call(client, "update_memory", id=memory, scope=ADA, version=near["memory"]["version"], content="Ada prefers green tea")
    assert updated["content"] == "Ada prefers green tea" and updated["version"] != near["memory"]["version"]
    assert (await call(client, "update_memory", id=memory, scope=ADA, version="1", content="x"))["code"] == "conflict"
    assert (await call(client, "update_memory", id=memory, scope=BOB, content="stolen"))["code"] == "not_found"
    assert (await call(client, "recall", query="green tea", scope=ADA))["hits"][0]["memory"]["id"] == memory, "re-embedded"

    assert (await call(client, "forget", scope=ADA, tags=["deadline"]))["code"] == "invalid_argument", "needs confirm"
    assert (await call(client, "forget", scope=ADA, confirm=True))["code"] == "invalid_argument", "needs ids or a filter"
    gone = await call(client, "forget", scope=ADA, tags=["deadline"], confirm=True)
    assert gone["deleted"] == 1
    assert (await call(client, "forget", scope=ADA, ids=bobs, confirm=True))["deleted"] == 0, "cannot delete another scope's"
    assert len((await call(client, "get_memories", ids=bobs, scope=BOB))["memories"]) == len(bobs)


async def test_documents_search_reingest_and_replace(client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handbook = ("# Handbook\n\n## Vacation\n\nEmployees accrue 25 days of paid leave every year.\n\n"
                "## Expenses\n\nReceipts are submitted within 30 days through the finance portal.\n\n"
                "## Security\n\nReport a lost laptop to the service desk within one hour.")
    seen: list[tuple[float, float | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total))

    result = await client.call_tool("ingest_document", {"title": "Handbook", "text": handbook, "source_uri": "kb://handbook",
                                                        "tags": ["policy"], "chunk_size": 200}, progress_callback=progress)
    created = result.structured_content
    assert created["status"] == "created" and created["document"]["chunks"] == 3, "one chunk per section (the title has no body)"
    assert seen and seen[-1] == (3, 3), "progress was reported while embedding"
    await call(client, "ingest_document", title="Release notes", text="# Notes\n\nVersion 2 adds dark mode and faster sync.",
               tags=["product"], date="2026-10-01")
    assert (await call(client, "ingest_document", title="Handbook", text=handbook, source_uri="kb://handbook", tags=["policy"],
                       chunk_size=200))["status"] == "unchanged"

    hits = (await call(client, "search_documents", query="how much holiday do I get per year"))["hits"]
    assert hits[0]["heading"] == "Handbook > Vacation" and hits[0]["title"] == "Handbook" and "25 days" in hits[0]["snippet"]
    assert set(hits[0]["ranks"]) <= {"keyword", "semantic"} and "semantic" in hits[0]["ranks"]
    keyword = (await call(client, "search_documents", query="receipts portal", mode="keyword"))["hits"]
    assert keyword[0]["heading"] == "Handbook > Expenses" and set(keyword[0]["ranks"]) == {"keyword"}
    assert (await call(client, "search_documents", query="dark mode", tags=["policy"]))["hits"][0]["title"] == "Handbook", \
        "the tag filter keeps other documents out"
    dated = (await call(client, "search_documents", query="dark mode", since="2026-09-01", until="2026-10-31"))["hits"]
    assert {h["title"] for h in dated} == {"Release notes"}
    assert (await call(client, "search_documents", query="?!", mode="keyword"))["hits"] == []

    changed = handbook.replace("25 days", "30 days")
    before = (await call(client, "list_documents", tags=["policy"]))["documents"][0]
    monkeypatch.setattr(documents_module, "to_blob", _fails_on_third(documents_module.to_blob))
    failed = await client.call_tool("ingest_document", {"title": "Handbook", "text": changed, "source_uri": "kb://handbook",
                                                        "tags": ["policy"], "chunk_size": 200})
    assert failed.is_error
    monkeypatch.undo()
    still = (await call(client, "search_documents", query="paid leave every year", mode="keyword"))["hits"]
    assert "25 days" in still[0]["text"], "a failed replace left the old version whole"
    assert (await call(client, "list_documents", tags=["policy"]))["documents"][0] == before
    replaced = await call(client, "ingest_document", title="Handbook", text=changed, source_uri="kb://handbook", tags=["policy"],
                          chunk_size=200)
    assert replaced["status"] == "replaced" and replaced["document"]["id"] == before["id"]
    texts = [h["text"] for h in (await call(client, "search_documents", query="paid leave", limit=20))["hits"]]
    assert any("30 days" in t for t in texts) and not any("25 days" in t for t in texts)

    listed = await call(client, "list_documents", limit=1)
    assert len(listed["documents"]) == 1 and listed["next_cursor"]
    assert (await call(client, "delete_document", document_id=before["id"]))["code"] == "invalid_argument"
    deleted = await call(client, "delete_document", document_id=before["id"], confirm=True)
    assert deleted["chunks"] == 3
    assert all(h["title"] != "Handbook" for h in (await call(client, "search_documents", query="paid leave"))["hits"])
    assert (await call(client, "delete_document", document_id=before["id"], confirm=True))["code"] == "not_found"


def _fails_on_third(real: Any) -> Any:
    calls = {"n": 0}

    def blob(vector: Any) -> bytes:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (injected)")
        return real(vector)

    return blob


def _pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


async def test_ingest_reads_allowed_files_of_each_type(client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Onboarding guide\n\nNew hires get a laptop on day one.")
    (docs / "notes.txt").write_text("The coffee machine is on the third floor.")
    (docs / "page.html").write_text("<html><head><title>Parking</title><style>p{}</style></head><body><h1>Parking</h1>"
                                    "<p>Visitors park in <b>lot C</b>.</p><script>alert(1)</script></body></html>")
    (docs / "policy.pdf").write_bytes(_pdf("Remote work is allowed two days a week."))
    (tmp_path / "secret.md").write_text("# Secret\n\nnot for the index")
    assert (await call(client, "ingest_document", path=str(docs / "guide.md")))["code"] == "forbidden", "no roots configured"
    monkeypatch.setenv("MEMORY_ALLOWED_PATHS", str(docs))
    titles = {}
    for name in ("guide.md", "notes.txt", "page.html", "policy.pdf"):
        ingested = await call(client, "ingest_document", path=str(docs / name))
        titles[name] = ingested["document"]["title"]
        assert ingested["document"]["source"] == (docs / name).resolve().as_uri()
    assert titles == {"guide.md": "Onboarding guide", "notes.txt": "notes", "page.html": "Parking", "policy.pdf": "policy"}
    assert (await call(client, "ingest_document", path=str(tmp_path / "secret.md")))["code"] == "forbidden"
    assert (await call(client, "ingest_document", path=str(docs / ".." / "secret.md")))["code"] == "forbidden", "no escaping by .."
    assert (await call(client, "ingest_document", path=str(docs / "missing.md")))["code"] == "not_found"
    for query, title in (("remote work days", "policy"), ("where do visitors park", "Parking"), ("laptop first day", "Onboarding guide")):
        assert (await call(client, "search_documents", query=query))["hits"][0]["title"] == title
    page = (await call(client, "search_documents", query="lot C", mode="keyword"))["hits"][0]["text"]
    assert "alert" not in page and "p{}" not in page, "scripts and styles are not text"


async def test_cli_ingest_and_offline(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# Alpha\n\nThe alpha project uses PostgreSQL.")
    (docs / "sub" / "b.txt").write_text("Beta runs on Kubernetes.")
    (docs / "skip.bin").write_bytes(b"\0\1")
    data = tmp_path / "data"
    # The whole CLI run happens in a network namespace with no interfaces: nothing can be downloaded.
    prefix = ["unshare", "-n"] if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0 else []
    guard = ("import socket, runpy, sys\n"
             "def refuse(*a, **k): raise OSError('network use attempted')\n"
             "socket.socket.connect = refuse; socket.getaddrinfo = refuse; socket.create_connection = refuse\n"
             "sys.argv = ['mcp-hub', *sys.argv[1:]]\nrunpy.run_module('hub.cli', run_name='__main__')\n")
    command = [*prefix, PY, "-c", guard, "memory", "ingest", str(docs), "--data-dir", str(data), "--tag", "kb"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MCP_HUB_DATA_DIR": str(data)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 file(s): 2 new" in done.stdout and "2 chunks indexed" in done.stdout, done.stdout
    assert "100%" in done.stderr, "a progress bar was drawn"
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert "2 unchanged" in again.stdout
    search = [*prefix, PY, "-c", guard, "call", "--config", str(tmp_path / "hub.json"), "memory__search_documents",
              json.dumps({"query": "which database does alpha use"})]
    (tmp_path / "hub.json").write_text(json.dumps({"mcpServers": {"memory": {"builtin": "memory"}}}))
    found = subprocess.run(search, capture_output=True, text=True, env=env, timeout=120)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"][0]["title"] == "Alpha", found.stdout


async def test_through_the_hub_and_standalone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    async with Hub(parse_config({"mcpServers": {"memory": {"builtin": "memory"}}})) as hub:
        names = [t.name for t in hub.catalog.tools() if t.name.startswith("memory__")]
        assert len(names) == 22 and "memory__search_nodes" in names and "memory__ingest_status" in names
        remembered = await hub.route_call("memory__remember", {"content": "Prefers short answers", "scope": {"user": "ada"}})
        assert remembered.structured_content["merged"] is False
        unscoped = await hub.route_call("memory__recall", {"query": "answers"})
        assert unscoped.is_error and unscoped.structured_content["code"] == "invalid_argument", "scope is required"
    params = StdioServerParameters(command=PY, args=["-m", "hub.cli", "server", "memory", "--demo", "--data-dir", str(tmp_path / "alone"),
                                                     "--log-level", "warning"], env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    async with Client(params) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["forget"].annotations.destructive_hint is True and tools["read_graph"].annotations.read_only_hint is True
        graph = (await client.call_tool("read_graph", {})).structured_content
        assert {e["name"] for e in graph["entities"]} == {"Ada", "Apollo"}
        hits = (await client.call_tool("search_documents", {"query": "lost laptop"})).structured_content["hits"]
        assert hits[0]["heading"] == "Employee handbook > Security"


def test_cli_reports_a_missing_path(tmp_path: Path) -> None:
    done = subprocess.run([PY, "-m", "hub.cli", "memory", "ingest", str(tmp_path / "nope"), "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, cwd=str(ROOT))
    assert done.returncode == 1 and "does not exist" in done.stderr and "Traceback" not in done.stderr


async def test_create_entities_answers_what_it_stored(client: Client) -> None:
    """Review: a repeated observation was stored once but answered twice."""
    made = await call(client, "create_entities", entities=[{"name": "Ann", "entityType": "person",
                                                            "observations": ["likes tea", "likes tea", "bikes"]}])
    stored = (await call(client, "read_graph"))["entities"]
    assert made["entities"][0]["observations"] == ["likes tea", "bikes"]
    assert [e["observations"] for e in stored if e["name"] == "Ann"] == [made["entities"][0]["observations"]]
