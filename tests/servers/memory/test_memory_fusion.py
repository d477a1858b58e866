"""Hybrid document search weights the keyword ranking by how much of the query's distinctive
wording its best hit holds (`servers.memory.search.keyword_coverage`): a paraphrase whose words
match only incidental text must not outvote the semantic ranking, while a keyword question keeps
its exact hit on top."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from servers.memory.search import fuse, keyword_coverage, named_words, spread_sections
from servers.memory.service import MemoryService

pytestmark = pytest.mark.anyio

CONCEPTS = {"flu": 0, "sick": 0, "sickness": 0, "unwell": 0, "ill": 0,
            "tell": 1, "report": 1, "notify": 1, "inform": 1}


class ConceptEmbedder:
    """Each text is the unit vector of the concepts its words name (sickness, telling someone):
    a stand-in for a model that knows `flu` and `unwell` mean the same, made deterministic."""

    name = "test-concepts-v1"
    dimensions = 3

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                if word in CONCEPTS:
                    out[row, CONCEPTS[word]] = 1.0
            if not out[row].any():
                out[row, 2] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


ANSWER = "Absence"
TEXT = "\n\n".join([
    "# Staff rules",
    f"## {ANSWER}\n\nIf you are unwell, report it to your manager before 09:30 on the first day.",
    *(f"## Rule {n}\n\nTell the team about rota swap {n}. Tell the desk as well, and tell the shift lead." for n in range(1, 7)),
    "## Stores\n\nTell the quartermaster before you take anything from the stores.",
    "## Codes\n\nIncident files carry the TH-INC prefix and a number.",
])


async def ranked(service: MemoryService, query: str) -> list[str]:
    hits = (await service.documents.search(query, "hybrid", None, None, None, 10)).hits
    return [hit.heading.split(" > ")[-1] for hit in hits]


async def test_a_paraphrase_is_not_outvoted_by_keyword_hits_on_incidental_words(tmp_path: Path) -> None:
    service = MemoryService(tmp_path, ConceptEmbedder())
    await service.documents.ingest("Staff rules", TEXT, "test://rules", [], None, 500, 100)
    keyword = [h.heading for h in (await service.documents.search("I caught the flu, who do I tell", "keyword", None, None, None, 10)).hits]
    assert ANSWER not in " ".join(keyword), "the answer shares no word with the question"
    assert (await ranked(service, "I caught the flu, who do I tell"))[0] == ANSWER
    # A question naming the text's own rare word keeps its exact hit first.
    assert (await ranked(service, "quartermaster stores"))[0] == "Stores"
    # A code among words its section lacks (and the semantic ranking knows nothing of) stays first too.
    assert (await ranked(service, "TH-INC numbering scheme explained"))[0] == "Codes"


def test_keyword_coverage_weighs_words_by_rarity() -> None:
    frequency = {"safety": 3, "tell": 40, "flu": 0}
    assert keyword_coverage(frequency, set(frequency), 100) == pytest.approx(1.0)
    assert keyword_coverage(frequency, set(), 100) == 0.0
    only_common = keyword_coverage(frequency, {"tell"}, 100)
    only_rarer = keyword_coverage(frequency, {"safety"}, 100)
    assert 0.0 < only_common < 0.2 < only_rarer < 1.0
    assert keyword_coverage({"tell": 40}, {"tell"}, 100) == pytest.approx(1.0)  # a one-word query: a full vote
    # A rare word the query writes as a code or a name gives its holder a full vote.
    code = {"th": 1, "inc": 1, "numbering": 21, "explained": 2, "scheme": 0}
    named = named_words("TH-INC numbering scheme explained")
    assert named == {"th", "inc"}
    assert keyword_coverage(code, {"th", "inc"}, 1000, named) == 1.0
    assert keyword_coverage(code, {"th", "inc"}, 1000) < 1.0  # the same words, not written as a code
    assert keyword_coverage(code, {"numbering"}, 1000, named) < 0.3
    assert keyword_coverage({"th": 20, "x": 3}, {"th"}, 1000, {"th"}) < 1.0  # in 2% of the chunks: not rare
    assert named_words("the Spendwise app, form HR17 and MFA") == {"spendwise", "hr17", "mfa"}
    assert named_words("Who do I tell when I caught the flu") <= {"i"}  # a question's first word is no name


def test_fuse_scales_a_methods_votes_by_its_weight() -> None:
    rankings = {"keyword": [1, 2], "semantic": [3, 1]}
    assert [i for i, _, _ in fuse(rankings, 5)] == [1, 3, 2]
    assert [i for i, _, _ in fuse(rankings, 5, {"keyword": 0.1})] == [3, 1, 2]
    assert fuse(rankings, 5, {"keyword": 1.0}) == fuse(rankings, 5)


async def test_searches_while_documents_are_ingested_never_fail(tmp_path: Path) -> None:
    """The per-word counts are cached until the index changes; an ingest committing while a search
    counts its words must not break that search (outside review: `KeyError` from the shared cache)."""
    import anyio

    from tests.fixtures.word_embedder import WordEmbedder

    documents = MemoryService(tmp_path, WordEmbedder()).documents
    await documents.ingest("A", "some text about leave", None, [], None, 500, 100)
    query = " ".join(f"term{i}" for i in range(200)) + " leave"
    failures: list[BaseException] = []
    done = False

    async def search_until_done() -> None:
        while not done:
            try:
                hits = (await documents.search(query, "hybrid", None, None, None, 5)).hits
                assert hits, "every document holds `leave`"
            except Exception as exc:  # noqa: BLE001 — collected, reported below
                failures.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(search_until_done)
        group.start_soon(search_until_done)
        for n in range(150):
            await documents.ingest(f"note {n}", f"note {n} about leave", None, [], None, 500, 100)
        done = True
    assert failures == []


def test_spread_sections_lets_one_section_fill_no_more_than_its_share() -> None:
    # Section A has three chunks at the top; B and C one each below them.
    fused = [(1, 0.30, {}), (2, 0.28, {}), (3, 0.26, {}), (4, 0.20, {}), (5, 0.10, {})]
    section = {1: ("d", "A"), 2: ("d", "A"), 3: ("d", "A"), 4: ("d", "B"), 5: ("d", "C")}
    spread = spread_sections(fused, section)
    assert [i for i, _, _ in spread] == [1, 4, 2, 5, 3]
    assert [round(s, 3) for _, s, _ in spread] == [0.30, 0.20, 0.14, 0.10, 0.065]  # best first, as shown
    # A much stronger second chunk of a section still beats a weak other section.
    assert [i for i, _, _ in spread_sections([(1, 0.3, {}), (2, 0.29, {}), (3, 0.05, {})],
                                             {1: ("d", "A"), 2: ("d", "A"), 3: ("d", "B")})] == [1, 2, 3]
    # The same heading in two documents is two sections; a chunk of unknown section is left as it is.
    assert [i for i, _, _ in spread_sections([(1, 0.3, {}), (2, 0.29, {}), (3, 0.2, {})],
                                             {1: ("d", "A"), 2: ("e", "A")})] == [1, 2, 3]
    assert spread_sections(fused, section, factor=1.0) == fused
    # A chunk a method ranked first or second keeps its score, repeat or not (outside review: the
    # one chunk holding a pasted error code, keyword #1, fell from 2nd to 8th).
    ranked = [(1, 0.30, {"semantic": 1}), (2, 0.28, {"keyword": 1, "semantic": 3}), (3, 0.26, {"semantic": 4}),
              (4, 0.20, {"semantic": 5})]
    assert [i for i, _, _ in spread_sections(ranked, {1: ("d", "A"), 2: ("d", "A"), 3: ("d", "A"), 4: ("d", "B")})] == [1, 2, 4, 3]


async def test_a_long_section_does_not_crowd_the_answer_out_of_the_top_five(tmp_path: Path) -> None:
    """Eight chunks of one section share every word of the question; the section that answers it
    (one chunk) came ninth, behind them all. Each section's best chunk now comes first."""
    from tests.fixtures.word_embedder import WordEmbedder

    rota = "\n\n".join(f"Rota swap rule {n}: a swap of shifts on the rota must be agreed with the shift lead, "
                       f"entered on the rota board and confirmed to the team by the end of day {n}. " * 2
                       for n in range(8))
    text = (f"# Handbook\n\n## Rota\n\n{rota}\n\n## Sign-off\n\nThe duty manager signs off each shift exchange in the log."
            "\n\n## Canteen\n\nThe canteen opens at seven.")
    documents = MemoryService(tmp_path, WordEmbedder()).documents
    await documents.ingest("Handbook", text, None, [], None, 500, 100)
    hits = (await documents.search("who approves a shift swap on the rota", "hybrid", None, None, None, 10)).hits
    headings = [h.heading.split(" > ")[-1] for h in hits]
    assert headings.count("Rota") >= 6, "the long section holds most chunks"
    assert headings[0] == "Rota", "the best section's best chunk stays first"
    assert "Sign-off" in headings[:5], headings  # ninth before
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True), "hits stay in the order of the scores they show"


async def test_the_spread_leaves_the_exact_term_and_documents_without_headings_alone(tmp_path: Path) -> None:
    """Outside review of the first version: a section's second chunk holding the exact code the
    question pastes (keyword #1) fell out of the top 5, and a text without headings (a .txt or a
    PDF) counted as one section, so every chunk after its best was halved."""
    from tests.fixtures.word_embedder import WordEmbedder

    codes = "\n\n".join(f"- E40{n:02}: the sync failed because of reason number {n}; retry the sync after fixing it." for n in range(1, 14))
    intro = "When a sync fails the client shows a sync error code; most sync errors clear on the next sync."
    manual = (f"# Manual\n\n## Sync errors\n\n{intro}\n\n{codes}\n\n"
              + "\n\n".join(f"## Sync topic {n}\n\nThe sync of topic {n} fails rarely; a failed sync is retried." for n in range(6)))
    documents = MemoryService(tmp_path, WordEmbedder()).documents
    await documents.ingest("Manual", manual, "test://manual", [], None, 500, 100)
    hits = (await documents.search("sync keeps failing with error E4012", "hybrid", None, None, None, 5)).hits
    holder = next(i for i, h in enumerate(hits) if "E4012" in h.text)
    assert hits[holder].ranks.get("keyword") == 1 and holder <= 1, [(h.heading, h.ranks) for h in hits]

    plain = "\n\n".join(f"Paragraph {n} of the plain text is about leave and pay, item {n}. " * 6 for n in range(12))
    alone = MemoryService(tmp_path / "plain", WordEmbedder()).documents
    await alone.ingest("Plain", plain, "test://plain", [], None, 500, 100)
    found = (await alone.search("leave and pay item", "hybrid", None, None, None, 10)).hits
    assert len(found) == 10
    # Every chunk holds every word of the query (a full keyword vote): each score is plain RRF, none halved.
    assert [h.score for h in found] == [round(sum(1 / (5 + r) for r in h.ranks.values()), 6) for h in found]


async def test_a_re_ingest_without_tags_keeps_the_documents_tags(tmp_path: Path) -> None:
    """Outside review: re-ingesting a document without `tags` (only to refresh its text) cleared
    them, so it dropped out of tag-filtered searches; the date was kept. Left out, both are kept;
    `[]` clears the tags."""
    import datetime as _dt

    from tests.fixtures.word_embedder import WordEmbedder

    documents = MemoryService(tmp_path, WordEmbedder()).documents
    first = await documents.ingest("Travel policy", "Book trains for trips under four hours.", "kb://travel",
                                   ["policy", "travel"], _dt.date(2026, 1, 5))
    assert first.status == "created" and first.document.tags == ["policy", "travel"]
    changed = await documents.ingest("Travel policy", "Book trains for trips under five hours.", "kb://travel", None, None)
    assert changed.status == "replaced" and changed.document.tags == ["policy", "travel"]
    assert changed.document.date == _dt.date(2026, 1, 5)
    assert [d.title for d in (await documents.list(["travel"], 10, None)).documents] == ["Travel policy"]
    same = await documents.ingest("Travel policy", "Book trains for trips under five hours.", "kb://travel", None, None)
    assert same.status == "unchanged" and same.document.tags == ["policy", "travel"]
    cleared = await documents.ingest("Travel policy", "Book trains for trips under five hours.", "kb://travel", [], None)
    assert cleared.status == "retagged" and cleared.document.tags == []


async def test_only_its_writer_or_an_admin_replaces_a_document(tmp_path: Path) -> None:
    """Outside review: a `memory:write` caller replaced another caller's document by re-ingesting its
    source URI, although deleting it needs `memory:admin`."""
    from servers.kit.errors import DomainError
    from servers.memory.documents import Writer
    from tests.fixtures.word_embedder import WordEmbedder

    documents = MemoryService(tmp_path, WordEmbedder()).documents
    alice, bob, admin = Writer("api_key:alice", False), Writer("api_key:bob", False), Writer("api_key:root", True)
    made = await documents.ingest("Travel policy", "Book trains.", "kb://travel", ["policy"], None, writer=alice)
    for change in ({"text": "All travel is banned."}, {"tags": ["poisoned"]}):
        with pytest.raises(DomainError) as refused:
            await documents.ingest("Travel policy", change.get("text", "Book trains."), "kb://travel", change.get("tags"), None,
                                   writer=bob)
        assert refused.value.body.code == "forbidden" and "admin" in refused.value.body.message
    assert (await documents.ingest("Travel policy", "Book trains.", "kb://travel", None, None, writer=bob)).status == "unchanged"
    mine = await documents.ingest("Travel policy", "Book trains, not planes.", "kb://travel", None, None, writer=alice)
    assert mine.status == "replaced" and mine.document.id == made.document.id
    assert (await documents.ingest("Travel policy", "Book buses.", "kb://travel", None, None, writer=admin)).status == "replaced"
    hits = (await documents.search("travel", "keyword", None, None, None, 5)).hits
    assert hits and all("banned" not in h.text for h in hits)
    # A document without an owner (the operator's, or from before owners) is not anyone's to claim.
    operator = Writer(None, True)
    await documents.ingest("Handbook", "Be kind.", "kb://handbook", None, None, writer=operator)
    with pytest.raises(DomainError):
        await documents.ingest("Handbook", "Be cruel.", "kb://handbook", None, None, writer=bob)
    assert (await documents.ingest("Handbook", "Be kinder.", "kb://handbook", None, None, writer=operator)).status == "replaced"



async def test_only_its_writer_or_an_admin_deletes_a_document_or_sees_its_folder_job(tmp_path: Path) -> None:
    """Outside review: bob (`memory:write`) could not replace alice's document but could delete it and ingest
    his own under her title, locking her out; and anyone could read another's folder job (its server path,
    errors) by its id."""
    from servers.kit.errors import DomainError
    from servers.memory.documents import Writer
    from tests.fixtures.word_embedder import WordEmbedder

    service = MemoryService(tmp_path, WordEmbedder())
    documents = service.documents
    alice, bob, admin = Writer("api_key:alice", False), Writer("api_key:bob", False), Writer("api_key:root", True)
    made = await documents.ingest("Alice handbook", "Be kind.", None, None, None, writer=alice)
    with pytest.raises(DomainError) as refused:
        await documents.delete(made.document.id, bob)
    assert refused.value.body.code == "forbidden" and "deleting it needs the admin scope" in refused.value.body.message
    assert [d.id for d in (await documents.list(None, 10, None)).documents] == [made.document.id], "nothing deleted"
    assert (await documents.delete(made.document.id, alice)).id == made.document.id
    again = await documents.ingest("Alice handbook", "Be kind.", None, None, None, writer=alice)
    assert (await documents.delete(again.document.id, admin)).id == again.document.id

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nalpha")
    job = service.ingest_jobs.start(folder, [folder / "a.md"], None, 1000, 100, alice)
    for viewer in (alice, admin, None):
        assert service.ingest_jobs.get(job.id, viewer).id == job.id
    with pytest.raises(DomainError) as hidden:
        service.ingest_jobs.get(job.id, bob)
    assert hidden.value.body.code == "not_found"
    with pytest.raises(DomainError):
        await service.ingest_jobs.wait(job.id, 0, None, bob)
    assert (await service.ingest_jobs.wait(job.id, 30, None, alice)).state == "done"
