"""Outside review s28 on the GitHub repository scope (`providers/github_scope.py`): a `project` without `/` never
falls back to the default (#1), a search cannot escape the allowed repositories nor report a foreign count (#2),
one issue has one id (#3), owners GitHub accepts are accepted (#5), ordinary label and text values are searched,
not refused (#6)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from servers.kit.credentials import Bearer, connect
from servers.kit.errors import DomainError
from servers.ticketing.model import NewTicket, SearchQuery
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.providers.github_scope import RepoScope
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub
from tests.servers.ticketing.test_ticketing_github import tool

pytestmark = pytest.mark.anyio
ISSUE = {"id": 33, "number": 3, "title": "t", "body": "", "state": "open", "labels": [], "user": {"login": "x"},
         "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z"}


class Recorder:
    """A GitHub that answers every request with `item` (search: a page of it, counted `total`) and records it."""

    def __init__(self, repository: str = "acme/app", total: int = 1) -> None:
        self.sent: list[httpx.Request] = []
        self.item = {**ISSUE, "repository_url": f"http://github.test/repos/{repository}"}
        self.total = total

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if request.url.path == "/search/issues":
            return httpx.Response(200, json={"total_count": self.total, "items": [self.item]})
        if request.method == "GET" and request.url.path.endswith("/comments"):
            return httpx.Response(200, json=[])
        return httpx.Response(201 if request.method == "POST" else 200, json={**self.item, "id": 7, "body": "x"})

    def backend(self, scope: RepoScope) -> GitHubTicketing:
        http = connect("GitHub", "http://github.test", Bearer("t"), transport=httpx.MockTransport(self))
        return GitHubTicketing(scope, http, "http://github.test")

    @property
    def queries(self) -> list[str]:
        return [r.url.params["q"] for r in self.sent if r.url.path == "/search/issues"]


def confined(q: str) -> bool:
    """Whether leading, unquoted `repo:` qualifiers scope the whole query: the rest is one parenthesised group (or
    groups), quotes balanced, and no OR/AND/NOT outside parentheses."""
    outside = re.sub(r'"[^"]*"', '""', q)
    if outside.count('"') % 2:
        return False
    match = re.match(r"((?:repo:[^\s()]+\s*)+)(.*)$", outside)
    if not match:
        return False
    depth = 0
    for token in re.findall(r"\(|\)|[^\s()]+", match.group(2)):
        depth += (token == "(") - (token == ")")
        if depth < 0 or (depth == 0 and token.upper() in ("OR", "AND", "NOT")) or (depth == 0 and token.lower().startswith(
                ("repo:", "-repo:", "org:", "user:", "owner:"))):
            return False
    return depth == 0


# -- 1: a project without `/` is one allowed repository, never the default by guess ------------------------------


async def test_an_ambiguous_or_unknown_project_is_refused_and_nothing_is_written() -> None:
    github = Recorder("acme/main")
    backend = github.backend(RepoScope.parse("acme/main", "acme/app,beta/app"))
    for project in ("app", "ap", "OPS"):
        with pytest.raises(DomainError) as refused:
            await backend.create(NewTicket(project=project, title="x"))
        body = refused.value.body
        assert body.code == "invalid_argument" and body.details["allowed_repositories"] == ["acme/main", "acme/app", "beta/app"]
        assert "acme/main, acme/app, beta/app" in body.message and "project" in body.message, body.message
    assert "acme/app or beta/app" in str(await _message(backend, "app"))
    assert github.sent == [], "nothing was sent for a project the caller did not name exactly"
    # the unique name part, any case, and the full name still work
    await backend.create(NewTicket(project="MAIN", title="x"))
    await backend.create(NewTicket(project="beta/APP", title="x"))
    assert [r.url.path for r in github.sent if r.method == "POST"] == ["/repos/acme/main/issues", "/repos/beta/app/issues"]


async def _message(backend: GitHubTicketing, project: str) -> str:
    try:
        await backend.search(SearchQuery(project=project, text="x"), 10, None)
    except DomainError as exc:
        return exc.body.message
    return ""


async def test_a_single_repository_refuses_a_project_key_of_another_backend() -> None:
    github = Recorder()
    backend = github.backend(RepoScope("acme/app"))
    for call in (backend.metadata("OPS", None), backend.search(SearchQuery(project="OPS"), 10, None)):
        with pytest.raises(DomainError) as refused:
            await call
        assert refused.value.body.code == "invalid_argument" and "acme/app" in refused.value.body.message
    assert github.sent == []


# -- 2: a search stays in the allowed repositories, and never reports a foreign count -----------------------------


async def test_native_and_text_searches_cannot_escape_the_allowed_repositories() -> None:
    github = Recorder()
    backend = github.backend(RepoScope.parse("acme/app", "acme/lib"))
    sent = [
        SearchQuery(native_query='"repo:acme/app" secret'),  # a quoted phrase is text: it does not scope
        SearchQuery(native_query="repo:acme/app is:issue OR secret"),
        SearchQuery(native_query="repo:acme/lib (crash OR secret)"),
        SearchQuery(native_query="crash OR secret"),
        SearchQuery(text="x OR secret"),
        SearchQuery(text="x) OR (secret".replace(")", "").replace("(", "")),
        SearchQuery(text='"user: not authorized" OR secret', labels=["a (b"]),
    ]
    for query in sent:
        await backend.search(query, 10, None)
    assert all(confined(q) for q in github.queries), github.queries
    assert github.queries[1] == "repo:acme/app (is:issue OR secret)"
    assert github.queries[2] == "repo:acme/lib ((crash OR secret))"
    assert github.queries[3] == "repo:acme/app repo:acme/lib (crash OR secret)"
    # stray parentheses are quoted (text to GitHub); a negated allowed repo: stays inside, where it only narrows
    for native, q in (("crash) OR (secret", 'repo:acme/app repo:acme/lib (crash ")" OR "(" secret)'),
                      ("(crash", 'repo:acme/app repo:acme/lib ("(" crash)'),
                      ("NOT repo:acme/app secret", "repo:acme/app repo:acme/lib (NOT repo:acme/app secret)"),
                      ("-repo:acme/lib secret", "repo:acme/app repo:acme/lib (-repo:acme/lib secret)")):
        await backend.search(SearchQuery(native_query=native), 10, None)
        assert github.queries[-1] == q and confined(q), (native, github.queries[-1])
    await backend.search(SearchQuery(text="x) OR (y"), 10, None)
    assert github.queries[-1] == 'repo:acme/app is:issue (x ")" OR "(" y)'
    github.sent.clear()
    for native in ('crash "secret', "(repo:acme/app OR secret)", "repo: acme/app secret", "NOT repo:other/x secret",
                   "-org:acme secret", "NOT user:octo secret"):
        with pytest.raises(DomainError) as error:
            await backend.search(SearchQuery(native_query=native), 10, None)
        assert error.value.body.code == "invalid_argument" and error.value.body.details["field"] == "native_query", native
    for text in ('say "hi', "x -owner:acme"):
        with pytest.raises(DomainError) as error:
            await backend.search(SearchQuery(text=text), 10, None)
        assert error.value.body.details["field"] == "text", text
    assert github.sent == [], "a refused search is never sent"


async def test_a_page_holding_a_foreign_result_reports_no_total() -> None:
    """GitHub's count of a search that reached another repository is an existence oracle: not reported."""
    github = Recorder("victim/private", total=4242)
    backend = github.backend(RepoScope("acme/app"))
    page = await backend.search(SearchQuery(native_query="secret"), 10, None)
    assert page.tickets == [] and page.total is None
    ours = Recorder("acme/app", total=1).backend(RepoScope("acme/app"))
    assert (await ours.search(SearchQuery(native_query="secret"), 10, None)).total == 1


# -- 3: one issue, one id --------------------------------------------------------------------------------------


async def test_an_issue_has_the_configured_spelling_in_every_answer() -> None:
    github = Recorder("Acme/Lib")  # GitHub's canonical spelling; the operator wrote acme/lib
    backend = github.backend(RepoScope.parse("acme/app", "acme/lib"))
    got = (await backend.get("ACME/LIB#3", [])).id
    found = [t.id for t in (await backend.search(SearchQuery(native_query="repo:acme/lib crash"), 10, None)).tickets]
    texted = [t.id for t in (await backend.search(SearchQuery(text="crash", project="lib"), 10, None)).tickets]
    linked = (await backend.link("1", "ACME/Lib#03", "relates")).ticket
    assert {got, *found, *texted, linked} == {"acme/lib#3"}, (got, found, texted, linked)


# -- 5: owners GitHub accepts ----------------------------------------------------------------------------------


def test_owners_with_an_underscore_and_dots_are_accepted_and_bad_names_refused() -> None:
    scope = RepoScope.parse("mona_octo/app", "octo-org/my.repo, Mona_EMU/x_y")
    assert scope.repo("mona_octo/APP") == "mona_octo/app" and scope.issue("mona_emu/x_y#2") == ("Mona_EMU/x_y", "2")
    for bad in ("acme", "acme/app/x", "../app", "acme/..", "acme/.", "ac me/app", "acme/app#1", "acme/ap p", "/app", "acme/"):
        with pytest.raises(ValueError, match="GITHUB_REPO"):
            RepoScope.parse(bad, None)


# -- 6: ordinary label and text values are searched ------------------------------------------------------------


async def test_labels_and_text_that_merely_hold_owner_words_are_searched(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.delenv("GITHUB_REPOS", raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "http://github.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    fake.add("Login fails: user: not authorized", labels=["owner: platform"])
    server = create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))
    for args in ({"text": "login", "labels": ["owner: platform"]}, {"text": "user: not authorized"},
                 {"text": "login", "type": "org: infra"}, {"text": '"owner:platform" login'}):
        answer = await tool(server, "search_tickets", **args)
        assert "code" not in answer, (args, answer)
    sent = [r["params"]["q"] for r in fake.requests if r["path"] == "/search/issues"]
    assert sent[0] == 'repo:acme/app is:issue (login) label:"owner: platform"'
    assert sent[1] == 'repo:acme/app is:issue ("user:" not authorized)'
    assert all(confined(q.split(" label:")[0]) for q in sent), sent
    # a real qualifier is refused, saying how to search for it as words
    refused = await tool(server, "search_tickets", text="login user:octo")
    assert refused["code"] == "invalid_argument" and 'put them in quotes ("user:octo")' in refused["message"], refused
