"""GitHub searches spread over several queries, one per chunk of `repo:` qualifiers (`github_search.repo_chunks`,
`merged`), walked as one search: outside review gh30 — a walk with `limit` 100 skipped issues of a busy repository
(#1), a crowded second in one chunk passed unseen without `truncated` (#2), a page could cost more searches than
GitHub allows a minute (#3), the too-long refusal blamed `text` for labels (#4), a bulk import into several
repositories made the walk's own cursor too long to be taken back (#5), and a query of exactly 256 characters
was split (#6)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from servers.kit.errors import DomainError
from servers.ticketing.model import SearchQuery
from servers.ticketing.providers.github import GitHubTicketing
from tests.fakes.github_multi import TOKEN, MultiGitHub

pytestmark = pytest.mark.anyio


def _repos(n: int, width: int = 60) -> list[str]:
    """`n` repository names of about `width` characters: three fit one query."""
    return [f"acme-corporation/service-{k:03d}-{'x' * (width - 29)}" for k in range(n)]


def _connector(fake: MultiGitHub, repos: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> GitHubTicketing:
    monkeypatch.setenv("GITHUB_REPO", repos[0])
    monkeypatch.setenv("GITHUB_REPOS", ",".join(repos[1:]))
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", "http://github.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app()))


def _at(second: int, day: int = 2) -> str:
    return f"2026-11-{day:02d}T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"


async def _walk(gh: GitHubTicketing, limit: int, **query: Any) -> tuple[Counter[str], bool]:
    """Every ticket a walk shows (with how often), and whether a page said `truncated`."""
    shown: Counter[str] = Counter()
    truncated, cursor = False, None
    for _ in range(400):
        page = await gh.search(SearchQuery(**query), limit, cursor)
        shown.update(t.id for t in page.tickets)
        truncated = truncated or page.truncated
        if not (cursor := page.next_cursor):
            return shown, truncated
    raise AssertionError("the walk did not end")


async def test_a_full_page_walk_over_two_searches_shows_every_issue_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    repos = _repos(6)
    fake = MultiGitHub()
    for k in range(250):
        fake.add(repos[0], f"crash a{k}", _at(40000 + k))
    for k in range(150):
        fake.add(repos[3], f"crash b{k}", _at(k, day=1))
    shown, truncated = await _walk(_connector(fake, repos, monkeypatch, tmp_path), 100, native_query="crash")
    assert len(shown) == 400 and set(shown.values()) == {1} and not truncated
    assert len({q.split(" ", 1)[0] for q in fake.queries}) == 2, "two searches a page"


async def test_a_crowded_second_in_one_search_is_said_truncated(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    repos = _repos(6)
    fake = MultiGitHub()
    for k in range(150):
        fake.add(repos[0], f"crash a{k}", _at(40000))
    for k in range(50):
        fake.add(repos[3], f"crash b{k}", _at(k, day=1))
    shown, truncated = await _walk(_connector(fake, repos, monkeypatch, tmp_path), 25, native_query="crash")
    assert truncated, "issues of the crowded second were passed over: the walk says so"
    assert set(shown.values()) == {1} and sum(1 for i in shown if "service-003" in i) == 50


async def test_a_bulk_import_into_several_repositories_keeps_the_cursor_usable(monkeypatch: pytest.MonkeyPatch,
                                                                               tmp_path: Any) -> None:
    repos = _repos(8, width=110)  # one repository a search
    fake = MultiGitHub()
    fake.next_id = 3_100_000_000
    for repo in repos:
        for k in range(80):
            fake.add(repo, f"crash {k}", _at(40000))
    shown, truncated = await _walk(_connector(fake, repos, monkeypatch, tmp_path), 50, native_query="crash")
    assert set(shown.values()) == {1} and len(shown) >= 300 and truncated


async def test_too_many_searches_a_page_are_refused_before_any_is_sent(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = MultiGitHub()
    gh = _connector(fake, [f"acme/service-{k:03d}" for k in range(300)], monkeypatch, tmp_path)
    with pytest.raises(DomainError) as refused:
        await gh.search(SearchQuery(native_query="crash"), 10, None)
    assert refused.value.body.code == "invalid_argument" and "GITHUB_REPOS" in refused.value.body.message
    assert fake.queries == []
    assert (await gh.search(SearchQuery(native_query="repo:acme/service-007 crash"), 10, None)).tickets == []


async def test_labels_too_long_are_named_with_how_much(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = MultiGitHub()
    gh = _connector(fake, ["acme/app"], monkeypatch, tmp_path)
    with pytest.raises(DomainError) as refused:
        await gh.search(SearchQuery(labels=[f"team: platform-reliability-and-operations-{n}" for n in range(5)], type="incident"),
                        10, None)
    body = refused.value.body
    assert body.code == "invalid_argument" and body.details["field"] == "labels" and body.details["over_by"] > 0, body
    assert fake.queries == []


async def test_a_query_of_exactly_256_characters_is_one_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    created = len(" created:<=2026-12-01T10:00:00Z")
    owner = "o" * 39  # GitHub's longest owner
    first, second = f"{owner}/{'a' * 67}", f"{owner}/{'b' * 67}"
    assert len(f"repo:{first} repo:{second}") + created == 256
    fake = MultiGitHub()
    for k in range(3):
        fake.add(second, f"crash {k}", _at(k))
    gh = _connector(fake, [first, second], monkeypatch, tmp_path)
    page = await gh.search(SearchQuery(native_query=f"repo:{first} repo:{second}"), 2, None)
    assert len(page.tickets) == 2 and len(fake.queries) == 1
    await gh.search(SearchQuery(native_query=f"repo:{first} repo:{second}"), 2, page.next_cursor)
    assert len(fake.queries) == 2 and all(len(q) <= 256 for q in fake.queries)


async def test_a_search_github_counts_as_too_long_is_split_and_still_walked_whole(monkeypatch: pytest.MonkeyPatch,
                                                                                  tmp_path: Any) -> None:
    """GitHub's own count is undocumented (an encoded space is said to count three): a search it refuses as too long
    is split in two, down to one repository, and the walk goes on as one search."""
    repos = _repos(6, width=66)  # three a query, 254 characters with the walk's created:, more as this fake counts
    fake = MultiGitHub(length=lambda q: len(q) + 2 * q.count(" "))
    for k, repo in enumerate(repos):
        for n in range(5):
            fake.add(repo, f"crash {k}-{n}", _at(100 * k + n))
    shown, truncated = await _walk(_connector(fake, repos, monkeypatch, tmp_path), 7, native_query="crash")
    assert len(shown) == 30 and set(shown.values()) == {1} and not truncated
    assert any(fake.length(q) > 256 for q in fake.queries), "GitHub refused some of them"


async def test_splits_stay_within_a_pages_search_budget_and_later_pages_plan_for_them(monkeypatch: pytest.MonkeyPatch,
                                                                                      tmp_path: Any) -> None:
    """Outside review gh31 #1: splits were not counted against the 10 searches of a page (30 sent, GitHub's whole
    minute), and every later page paid the same refusals again."""
    repos = _repos(30, width=66)  # ten searches of three, each refused as this fake counts
    fake = MultiGitHub(length=lambda q: len(q) + 2 * q.count(" "))
    for k, repo in enumerate(repos):
        fake.add(repo, f"crash {k}", _at(60 * k))
    gh = _connector(fake, repos, monkeypatch, tmp_path)
    first = await gh.search(SearchQuery(native_query="crash"), 1, None)  # fits without the walk's created:
    before = len(fake.queries)
    with pytest.raises(DomainError) as refused:  # with it, GitHub refuses every search: split, within the budget
        await gh.search(SearchQuery(native_query="crash"), 1, first.next_cursor)
    assert refused.value.body.code == "invalid_argument" and "GITHUB_REPOS" in refused.value.body.message
    assert len(fake.queries) - before <= 10
    sent = len(fake.queries)
    with pytest.raises(DomainError):  # planned as GitHub counts now: more than 10 searches, refused before any is sent
        await gh.search(SearchQuery(native_query="crash"), 1, first.next_cursor)
    assert len(fake.queries) == sent


async def test_one_repository_github_still_finds_too_long_names_what_to_shorten(monkeypatch: pytest.MonkeyPatch,
                                                                                tmp_path: Any) -> None:
    fake = MultiGitHub(length=lambda q: len(q) + 2 * q.count(" "))
    gh = _connector(fake, ["acme/app", "acme/web"], monkeypatch, tmp_path)
    with pytest.raises(DomainError) as refused:
        await gh.search(SearchQuery(native_query=" ".join(["crash"] * 35)), 5, None)
    assert refused.value.body.code == "invalid_argument" and refused.value.body.details["field"] == "native_query"
