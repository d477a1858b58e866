"""The repositories a GitHub connector may touch (`servers.ticketing.providers.github`).

An operator who sets `GITHUB_REPO=acme/app` expects the agent to read and write that repository only; the
token usually reaches many more. Before this allow-list, an id (`other/x#3`), a `project`, a native search
(`repo:other/x`, `org:`, `user:`) or a crafted cursor picked the repository, and a write to such an id landed
there with the connector's token (fixer ticketing28 #1). Decisions:

- The allowed repositories are `GITHUB_REPO` (the default) plus `GITHUB_REPOS` (optional, comma-separated
  `owner/name`); names compare without case, as GitHub's do, and are always sent and shown as configured
  (`canonical`: a search result or webhook delivery spelling one `Acme/Lib` still gets the id `acme/lib#3`,
  outside review s28 #3). A name is checked for its shape only: one `/`, no `.`/`..` part, and only the
  characters GitHub allows in either part (letters, digits, `-`, `_`, `.`: EMU owners end in `_shortcode`,
  outside review s28 #5).
- An id (`owner/name#n`, `#n`, `n`), a link's other id and a `project` resolve only inside the list. A
  `project` without `/` is the one allowed repository of that name; one matching none or several is
  refused, never the default (outside review s28 #1: a write landed in a repository the caller did not
  name). Anything else is `invalid_argument` naming the allowed repositories and the setting that widens
  them. That code, not `forbidden`: the caller named something outside this server's configuration and
  can fix the call; `forbidden` is kept for GitHub's own 403s.
- A native search is confined (`confine`, outside review s28 #2): quotes must balance (else refused: which
  part is text cannot be told); a parenthesis without a partner is sent quoted (`")"`, text to GitHub), so it
  can neither close nor open a group past the scope; `org:`, `user:`, `owner:` (any case, negated or not)
  are refused, since they can only widen it; each `repo:` must name an allowed repository, and a positive
  one must stand at the top level (not inside parentheses, no space after the colon). The allowed `repo:`
  qualifiers the query names (or, naming none, one per allowed repository) are sent first and the rest of
  the query always after them in parentheses, so an `OR` never escapes them; a negated allowed `repo:`
  (`-repo:`, `NOT repo:`) stays inside, where it can only narrow. A quoted phrase is text to GitHub: a
  `repo:` inside one neither scopes nor is refused. Results
  naming a repository outside the list are dropped as well, whatever GitHub made of the query, and the
  page then reports no total (GitHub's count would include them: an existence oracle).
- The structured search (`text`, labels, type, assignee) is built by the connector (`text_terms`,
  `label_term`): the caller's `text` is checked like a native query and wrapped in parentheses; a word
  such as `user:` followed by a space (an error message: `user: not authorized`) is sent quoted, as text;
  a real qualifier in `text` (`user:octo`) is refused with how to search for it as words (quote it).
  Label and type values are quoted by the connector and not read as qualifiers (`owner: platform` is a
  label); one holding `"` is refused, since it would close the quotes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from servers.kit.errors import DomainError

_PART = r"[A-Za-z0-9_.-]{1,100}"
_NAME = re.compile(rf"({_PART})/({_PART})")
_QUALIFIER = re.compile(r'(?<![A-Za-z0-9_])(-?)(repo|org|user|owner)\s*:(\s*)("[^"]*"|[^\s)]*)', re.I)
"""A scope qualifier in any case, negated or not, after anything but a word character (conservative: GitHub
reads fewer spellings than this finds, and one found is checked, never passed unchecked)."""
_PHRASE = re.compile(r'(?<![^\s(])-?"[^"]*"')
"""A quoted phrase standing alone (not a qualifier's value): text to GitHub."""
_NOT = re.compile(r"(?:^|[\s(])NOT\s*$", re.I)
_BARE_KEY = re.compile(r'(?<![A-Za-z0-9_"])(repo|org|user|owner)\s*:(?=\s|$|\))', re.I)
"""`user:` followed by a space in free text: a word to look for (sent quoted), not a qualifier."""
WIDEN = "GITHUB_REPOS (comma-separated owner/name, beside GITHUB_REPO)"


def _mask(query: str, only: re.Pattern[str] = re.compile(r'"[^"]*"')) -> str:
    """`query` with the inside of each quoted string (`only`: those the pattern finds) blanked, same length."""
    return only.sub(lambda m: m.group()[0] + " " * (len(m.group()) - 2) + '"', query)


def _escape_stray(query: str) -> str:
    """`query` with each parenthesis that has no partner (outside quoted phrases) quoted, `")"`: text to GitHub,
    so it can neither close the parentheses the scope is wrapped in nor open a group past them."""
    blank = _mask(query)
    opened: list[int] = []
    stray: list[int] = []
    for at, char in enumerate(blank):
        if char == "(":
            opened.append(at)
        elif char == ")":
            (opened.pop() if opened else stray.append(at))
    for at in sorted(stray + opened, reverse=True):
        query = f'{query[:at]} "{query[at]}" {query[at + 1:]}'
    return query


class RepoScope:
    """The allowed repositories: `default` (GITHUB_REPO) first, then the others, as configured."""

    def __init__(self, default: str, others: Iterable[str] = ()) -> None:
        names = [default, *others]
        for name in names:
            match = _NAME.fullmatch(name)
            if not match or {".", ".."} & set(match.groups()):
                raise ValueError(f"{name[:80]!r} is not a GitHub repository: GITHUB_REPO and GITHUB_REPOS take owner/name "
                                 "(letters, digits, -, _ and .), e.g. octo-org/octo-repo")
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

    def canonical(self, name: str) -> str | None:
        """The configured spelling of allowed repository `name` (any case), else None."""
        return self._by_key.get(name.lower())

    def _refuse(self, what: str, field: str) -> DomainError:
        return DomainError("invalid_argument", f"{what} is outside the GitHub repositories this server may use "
                           f"({', '.join(self.names)}); use one of those, or ask the operator to add it to {WIDEN}",
                           details={"field": field, "allowed_repositories": self.names})

    def repo(self, name: str | None, field: str = "project") -> str:
        """The allowed repository `name` names (None or blank: the default; no `/`: the one allowed repository
        of that name, refused when none or several are)."""
        name = (name or "").strip()
        if not name:
            return self.default
        if "/" in name:
            if not self.allows(name):
                raise self._refuse(f"repository {name[:100]!r}", field)
            return self._by_key[name.lower()]
        found = [r for r in self.names if r.partition("/")[2].lower() == name.lower()]
        if len(found) == 1:
            return found[0]
        what = (f"project {name[:100]!r} could mean {' or '.join(found)}: give the full owner/name" if found else
                f"project {name[:100]!r} names none of the GitHub repositories this server may use")
        raise DomainError("invalid_argument", f"{what} (allowed: {', '.join(self.names)}); pass one of those as project, or "
                          f"leave project out for {self.default}", details={"field": field, "allowed_repositories": self.names})

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

    def ticket_id(self, repo: str, number: int | str) -> str:
        """The one id of issue `number` of allowed `repo`: the number in the default repository, else `owner/name#n`."""
        repo = self.canonical(repo) or repo
        return str(int(number)) if repo == self.default else f"{repo}#{int(number)}"

    def confine(self, native_query: str) -> tuple[list[str], str]:
        """`native_query` kept inside the allowed repositories (module docstring): (the repositories to search,
        the rest of the query in parentheses, to follow their `repo:` qualifiers), or invalid_argument."""
        rest, named = self._split(native_query, "native_query")
        return named or self.names, f"({rest})" if rest else ""

    def text_terms(self, text: str) -> tuple[list[str], str]:
        """The caller's free `text` as the structured search sends it: (the allowed repositories its top-level
        `repo:` qualifiers name, the rest in parentheses), checked like a native query; outside quoted phrases, a
        word such as `user:` followed by a space is quoted (text to look for, not a qualifier)."""
        text = re.sub(r'"[^"]*"|[^"]+', lambda m: m.group() if m.group().startswith('"')
                      else _BARE_KEY.sub(lambda k: f'"{k.group(1)}:"', m.group()), text)
        rest, named = self._split(text, "text", words=True)
        return named, f"({rest})" if rest else ""

    @staticmethod
    def label_term(key: str, value: str, field: str) -> str:
        """`key:"value"`, a quoted value the connector builds (never read as a qualifier), or invalid_argument."""
        if '"' in value or "\\" in value:
            raise DomainError("invalid_argument", f"{field} {value[:100]!r} holds a \" or \\, which GitHub search cannot quote; "
                              f"remove it, or search with native_query", details={"field": field})
        return f'{key}:"{value}"'

    def _split(self, query: str, field: str, words: bool = False) -> tuple[str, list[str]]:
        """(the query without its top-level allowed `repo:` qualifiers, the repositories those name), after the
        checks of the module docstring; `words`: the refusal says how to search for a qualifier as words."""
        def refuse(why: str) -> DomainError:
            return DomainError("invalid_argument", f"{field} {query[:100]!r}: {why}", details={
                "field": field, "allowed_repositories": self.names})

        if query.count('"') % 2:
            raise refuse('its quotes do not balance: close each " or remove it')
        query = _escape_stray(query)
        blank = _mask(query, _PHRASE)  # a phrase is text; a qualifier's quoted value is read below
        depth, depths = 0, []
        for char in _mask(query):  # balanced now (_escape_stray): the depth of each character, quotes being literal
            depth += (char == "(") - (char == ")")
            depths.append(depth)
            if depth < 0:
                break
        if depth != 0:  # cannot happen after _escape_stray; never send a query whose grouping is unclear
            raise refuse("its parentheses do not balance: close each ( with a ) or remove them")
        named: list[str] = []
        cut: list[tuple[int, int]] = []
        for m in _QUALIFIER.finditer(blank):
            negated, kind, space, value = m.group(1), m.group(2), m.group(3), m.group(4).strip('"')
            hint = (f'; to look for these words, put them in quotes ("{m.group()[:60]}")' if words else "")
            if kind.lower() != "repo":
                raise refuse(f"a GitHub search may not use {kind}: qualifiers (they reach beyond the allowed repositories: "
                             f"{', '.join(self.names)}){hint}; to narrow to one of those, use project or repo:<owner/name>, "
                             f"or ask the operator to add repositories to {WIDEN}")
            if not self.allows(value):
                raise self._refuse(f"repo:{value[:100]}", field)
            if negated or _NOT.search(blank[:m.start()]):
                continue  # excludes an allowed repository: it stays inside the parentheses, where it can only narrow
            if depths[m.start()] or space:
                raise refuse("put repo: qualifiers at the top level, outside parentheses and without a space after "
                             f"the colon (repo:{value[:100]}){hint}")
            named.append(self._by_key[value.lower()])
            cut.append(m.span())
        rest = query
        for start, end in reversed(cut):
            rest = rest[:start] + rest[end:]
        return " ".join(rest.split()), list(dict.fromkeys(named))
