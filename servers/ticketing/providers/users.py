"""Assignees given as an email, for providers that assign by their own user id (outside review 8,
defect 4: the Jira connector sent `ada@example.com` as the accountId).

`assignee` is documented "user id or email (find_users)". Jira (accountId), ServiceNow (sys_user
sys_id) and Zendesk (numeric id) look an email up with their user search and take the one user
whose email equals it, compared without case; GitHub assigns by login and has no email lookup for
a repository's assignees, so an email is refused there. No match and several matches are both
`invalid_argument` on `assignee` (as on the embedded backend), naming what to do.
"""

from __future__ import annotations

from servers.kit.errors import DomainError
from servers.ticketing.model import User
from servers.ticketing.normal import fold, is_email


def one_user(email: str, found: list[User], provider: str) -> User:
    """The one user of `found` (a user search for `email`) whose email is `email` in any case.

    A provider that hides a user's email (Jira's profile privacy) still matches on it in search: a
    lone result without an email is taken as the match."""
    wanted = fold(email.strip())
    exact = [u for u in found if u.email and fold(u.email) == wanted]
    if not exact and len(found) == 1 and not found[0].email:
        exact = found
    if len(exact) == 1:
        return exact[0]
    if not exact:
        raise DomainError(
            "invalid_argument",
            f"no {provider} user has the email {email[:80]!r}; use find_users to get the user's id and pass that",
            details={"field": "assignee"},
        )
    shown = ", ".join(f"{u.name or '?'} ({u.id})" for u in exact[:5])
    raise DomainError(
        "invalid_argument",
        f"several {provider} users have the email {email[:80]!r}: {shown}; pass the id of the one you mean",
        details={"field": "assignee", "candidates": [u.id for u in exact[:20]]},
    )


def github_login(who: str) -> str:
    """`who` as a GitHub login; an email is refused (GitHub assigns by login and cannot look one up by email)."""
    if is_email(who):
        raise DomainError(
            "invalid_argument",
            f"GitHub assigns issues by login, not email ({who[:80]!r}); find_users lists the repository's assignees' logins",
            details={"field": "assignee"},
        )
    return who.removeprefix("@")
