"""The session ledger's room-making rules, without a server: caps per principal and in all, idle
sessions giving way first, and busy sessions of the biggest holders never locking a newcomer out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.session_ledger import SessionLedger, SessionRefused


def open_session(ledger: SessionLedger, sid: str, owner: str, idle: bool, closed: list[str]) -> None:
    ledger.make_room(owner)
    ledger.add(sid, owner, "streamable_http", lambda: idle, lambda: closed.append(sid))


def test_busy_sessions_of_a_few_principals_cannot_lock_a_newcomer_out() -> None:
    ledger, closed = SessionLedger(per_principal=8, total=40), []
    for p in range(5):  # five principals, eight busy sessions each (open GET streams): the hub is full
        for i in range(8):
            open_session(ledger, f"p{p}-{i}", f"p{p}", False, closed)
    open_session(ledger, "new-0", "newcomer", False, closed)
    assert closed == ["p0-0"], "the least recently used session of a biggest holder gave way"
    assert ledger.counts()["streamable_http"] == 40


def test_a_newcomer_holding_as_many_as_anyone_is_refused_when_all_are_busy() -> None:
    ledger, closed = SessionLedger(per_principal=2, total=4), []
    for owner in ("a", "b"):
        for i in range(2):
            open_session(ledger, f"{owner}{i}", owner, False, closed)
    with pytest.raises(SessionRefused) as refused:
        ledger.make_room("a")
    assert refused.value.status == 429
    ledger2, closed2 = SessionLedger(per_principal=3, total=4), []
    for sid, owner in (("a0", "a"), ("a1", "a"), ("b0", "b"), ("b1", "b")):
        open_session(ledger2, sid, owner, False, closed2)
    with pytest.raises(SessionRefused) as full:
        ledger2.make_room("a")  # holds 2, as many as anyone: nobody gives way for it
    assert full.value.status == 503 and closed2 == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.booleans()), min_size=1, max_size=60))
def test_a_principal_without_a_session_gets_one_unless_every_holder_has_just_one(opens: list[tuple[str, bool]]) -> None:
    """The only refusal a newcomer can meet: the hub full of busy sessions held one each (a fair
    share already); caps are never exceeded."""
    ledger, closed = SessionLedger(per_principal=4, total=6), []
    idle_of: dict[str, bool] = {}
    for n, (owner, idle) in enumerate(opens):
        try:
            open_session(ledger, f"{owner}{n}", owner, idle, closed)
            idle_of[f"{owner}{n}"] = idle
        except SessionRefused:
            pass
        assert ledger.counts()["streamable_http"] <= 6
    held = {sid: owner for owner, mine in ledger._by_owner.items() for sid in mine}  # noqa: SLF001
    per_owner = {owner: list(held.values()).count(owner) for owner in set(held.values())}
    fair_share_full = len(held) >= 6 and not any(idle_of.get(sid) for sid in held) and max(per_owner.values()) <= 1
    if fair_share_full:
        with pytest.raises(SessionRefused):
            ledger.make_room("zz-never-seen")
    else:
        open_session(ledger, "fresh", "zz-never-seen", False, closed)
