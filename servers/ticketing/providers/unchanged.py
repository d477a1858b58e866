"""What a provider update would change, compared with the ticket as stored (outside review r38b #2, #8).

An `update_ticket` whose values equal the stored ones (an agent's retry after a lost answer, or "set
priority high" on a ticket already high) writes nothing on any connector: the version stays, so another
caller's `expected_version` stays good, and watchers see no edit. Each connector drops the fields whose
value is already stored (text after the provider's round trip, labels as a set, the assignee by the
provider's own id or login) and writes only the rest; with nothing left it answers the ticket as read,
whatever `expected_version` says, since a repeat of a write that landed holds exactly what it asked.
"""

from __future__ import annotations

from collections.abc import Iterable

from servers.ticketing.normal import fold, nfc


def same_text(stored: str | None, given: str | None) -> bool:
    """Whether `given` reads as `stored`: one Unicode form, `\\r\\n` as `\\n`, trailing whitespace ignored (leading
    whitespace is kept: four spaces make a markdown code block; outside review r39b #5)."""
    def norm(text: str | None) -> str:
        return nfc((text or "").replace("\r\n", "\n")).rstrip()

    return norm(stored) == norm(given)


def same_labels(stored: Iterable[str], given: Iterable[str], *, any_case: bool = False) -> bool:
    """Whether two label lists hold the same labels, in any order (and any case where the provider ignores it)."""
    def key(label: str) -> str:
        return fold(label.strip()) if any_case else nfc(label.strip())

    return {key(label) for label in stored} == {key(label) for label in given}


def same_user(stored: str | None, given: str | None) -> bool:
    """Whether an assignee reference (an id or login; None or "" for nobody) names the one stored, compared
    without case (GitHub logins; Jira, ServiceNow and Zendesk ids have none to differ by)."""
    return fold(stored or "") == fold(given or "")
