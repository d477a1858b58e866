"""The repositories a GitHub connector may touch (`servers.ticketing.providers.github`).

An operator who sets `GITHUB_REPO=acme/app` expects the agent to read and write that repository only; the
token usually reaches many more. Before this allow-list, an id (`other/x#3`), a `project`, a native search
(`repo:other/x`, `org:`, `user:`) or a crafted cursor picked the repository, and a write to such an id landed
there with the connector's token (fixer ticketing28 #1). Decision:

- The allowed repositories are `GITHUB_REPO` (the default) plus `GITHUB_REPOS` (optional, comma-separated
  `owner/name`); names compare without case, as GitHub's do, and are sent as configured.
- An id (`owner/name#n`, `#n`, `n`), a link's other id and a `project` resolve only inside the list; a
  `project` without `/` (e.g. `OPS`) is the allowed repository of that name, else the default one (GitHub
  has no project keys). Anything else is `invalid_argument` naming the allowed repositories and the
  setting that widens them. That code, not `forbidden`: the caller named something outside this server's
  configuration and can fix the call; `forbidden` is kept for GitHub's own 403s.
- A native search is confined: every `repo:` qualifier must name an allowed repository (GitHub ORs several);
  one naming none gets a `repo:` qualifier for each allowed one; `org:`, `user:` and `owner:` (any case,
  negated or not) are refused, since they can only widen it. A query using boolean operators or parentheses
  is wrapped in parentheses after the qualifiers, so an `OR` never escapes them. Results naming a repository
  outside the list are dropped as well (`allows`), whatever GitHub made of the query. The search built from
  `text`, labels, type and assignee is checked the same way (`named`): a value holding `repo:other/x` (or a
  label closing its quotes) would otherwise add a repository GitHub ORs with ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from servers.kit.errors import DomainError

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
_QUALIFIER = re.compile(r'(?<![A-Za-z0-9_])(-?)(repo|org|user|owner)\s*:\s*("[^"]*"|[^\s)]*)', re.I)
"""A scope qualifier in any case, negated or not, after anything but a word character (conservative: GitHub
reads fewer spellings than this finds, and one found is checked, never passed unchecked)."""
_BOOLEAN = re.compile(r"[()]|(?:^|\s)(?:OR|AND|NOT)(?:\s|$)")
WIDEN = "GITHUB_REPOS (comma-separated owner/name, beside GITHUB_REPO)"


class RepoScope:
    """The allowed repositories: `default` (GITHUB_REPO) first, then the others, as configured."""

    def __init__(self, default: str, others: Iterable[str] = ()) -> None:
        names = [default, *others]
        for name in names:
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name[:80]!r} is not a GitHub repository: GITHUB_REPO and GITHUB_REPOS take owner/name, "
                                 "e.g. octo-org/octo-repo")
        self.default = default
        self._by_key: dict[str, str] = {}
        for name in names:
            self._by_key.setdefault(name.lower(), name)

    @classmethod
    def parse(cls, repo: str, repos: str | None) -> RepoScope:
        """From the values of GITHUB_REPO and GITHUB_REPOS (blank entries ignored)."""
        return cls(repo.strip(), [r.strip() for r in (repos or "").split(",") if r.strip()])

    @property
    def names(self) -> list[str]:
        """Every allowed repository, the default first."""
        return list(self._by_key.values())

    def allows(self, name: str) -> bool:
        return name.lower() in self._by_key

    def _refuse(self, what: str, field: str) -> DomainError:
        return DomainError("invalid_argument", f"{what} is outside the GitHub repositories this server may use "
                           f"({', '.join(self.names)}); use one of those, or ask the operator to add it to {WIDEN}",
                           details={"field": field, "allowed_repositories": self.names})

    def repo(self, name: str | None, field: str = "project") -> str:
        """The allowed repository `name` names (None or blank: the default; no `/`: by its name part)."""
        name = (name or "").strip()
        if not name:
            return self.default
        if "/" in name:
            if not self.allows(name):
                raise self._refuse(f"repository {name[:100]!r}", field)
            return self._by_key[name.lower()]
        found = [r for r in self.names if r.partition("/")[2].lower() == name.lower()]
        return found[0] if len(found) == 1 else self.default

    def issue(self, ticket_id: str, field: str = "id") -> tuple[str, str]:
        """`owner/name#12`, `#12` or `12` → (allowed repository, number); else invalid_argument."""
        repo, _, number = ticket_id.strip().rpartition("#")
        number = number.strip()
        if not (number.isascii() and number.isdigit()):
            raise DomainError("invalid_argument", f"{ticket_id[:100]!r} is not a GitHub issue id: use 42, #42 or owner/repo#42",
                              details={"field": field})
        repo = repo.strip()
        if repo and not self.allows(repo):
            raise self._refuse(f"issue {ticket_id[:100]!r}", field)
        return (self._by_key[repo.lower()] if repo else self.default), number

    def confine(self, native_query: str) -> str:
        """`native_query` kept inside the allowed repositories (module docstring), or invalid_argument."""
        if self.named(native_query, "native_query"):
            return native_query
        scope = " ".join(f"repo:{r}" for r in self.names)
        return f"{scope} ({native_query})" if _BOOLEAN.search(native_query) else f"{scope} {native_query}"

    def named(self, query: str, field: str) -> list[str]:
        """The repositories `query`'s `repo:` qualifiers name (negated ones left out), all allowed; any other
        scope qualifier, or a `repo:` outside the list, is invalid_argument on `field`. Also run on the search
        text built from `text`, labels, type and assignee, so a value holding `repo:other/x` cannot widen it."""
        named: list[str] = []
        for negated, kind, value in _QUALIFIER.findall(query):
            value = value.strip('"')
            if kind.lower() != "repo":
                raise DomainError("invalid_argument", f"a GitHub search may not use {kind}: qualifiers (they reach "
                                  f"beyond the allowed repositories: {', '.join(self.names)}); use repo:<owner/name> of those "
                                  f"or none (all of them), or ask the operator to add repositories to {WIDEN}",
                                  details={"field": field, "allowed_repositories": self.names})
            if not self.allows(value):
                raise self._refuse(f"repo:{value[:100]}", field)
            if not negated:
                named.append(value)
        return named
