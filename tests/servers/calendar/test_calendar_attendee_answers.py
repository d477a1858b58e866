"""Attendee lists and locations as every backend keeps them (outside review cal30): a retried split that cleared the
location answered not_found (#1); Google's split named at an occurrence without attendees crashed (#2); on Graph a
split's new invitee never reached an occurrence another invitee had answered (#3); a whole-series attendee change
reaches an answered occurrence (#4, a guard); replacing the attendee list reset every kept invitee's answer, and on
Google their optional flag and name (#5); an occurrence's list differing from its series' only in case counted as its
own (#6); a blank location was kept as "   " (#7). Reuses `test_calendar_series_matrix`'s backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.google_calendar import CAL as GOOGLE_ME
from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, SPAN, backend
from tests.servers.calendar.test_calendar_series_matrix_moves import _until
from tests.servers.calendar.test_calendar_series_matrix_rule_end import ME

pytestmark = pytest.mark.anyio


def _answer(event: dict, email: str) -> str:
    return next(a["response"] for a in event["attendees"] if a["email"] == email)


def _b_accepts_the_twelfth(kind: str, fake, series_id: str) -> None:  # type: ignore[no-untyped-def]
    """b answers the 12th alone, as the provider keeps it (its fakes let only the mailbox answer)."""
    if kind == "graph":
        stored = fake._materialize(f"{series_id}_20260612T0700", keep=True)
        stored["attendees"] = [a | {"status": {"response": "accepted", "time": "2026-06-01T08:00:00Z"}}
                               if a["emailAddress"]["address"] == "b@x.test" else a for a in stored["attendees"]]
    else:
        stored = fake._materialize(f"{series_id}_20260612T070000Z", keep=True)
        stored["attendees"] = [a | {"responseStatus": "accepted"} if a["email"] == "b@x.test" else a for a in stored["attendees"]]


# 1
@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_retried_split_clearing_the_location_answers_as_the_first(kind: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"), location="Room 1")
        args = dict(event_id=t["id"], scope="this_and_following", instance_start="2026-06-12T09:00:00+02:00", location="")
        first = await cal("update_event", **args)
        assert "code" not in first, first
        retry = await cal("update_event", **args)  # the first answer was lost: the same call again
        assert "code" not in retry, retry
        assert retry["id"] == first["id"], (first, retry)


# 2: Google leaves an empty attendee list out of an event
async def test_a_split_named_at_an_occurrence_without_attendees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend("google", tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until("google", "20260613"), attendees=[GOOGLE_ME, "b@x.test"])
        alone = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-12T09:00:00+02:00", attendees=[])
        assert "code" not in alone, alone
        for raw in cal.fake.events.values():  # as Google answers it: an empty attendee list is left out
            if "recurringEventId" in raw and raw.get("attendees") == []:
                del raw["attendees"]
        s = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-12T09:00:00+02:00",
                      attendees=[GOOGLE_ME, "b@x.test", "c@x.test"])
        assert "code" not in s, s
        page = await cal("list_events", limit=100, **SPAN)
        twelfth = [e for e in page["events"] if e["start"]["utc"].startswith("2026-06-12")][0]
        assert sorted(a["email"] for a in twelfth["attendees"]) == sorted([GOOGLE_ME, "b@x.test", "c@x.test"]), twelfth


# 3
@pytest.mark.parametrize("kind", ["graph", "google"])
@pytest.mark.parametrize("at", ["2026-06-11", "2026-06-12"])
async def test_a_split_reaches_an_occurrence_another_invitee_answered(kind: str, at: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"), attendees=[ME[kind], "b@x.test"])
        _b_accepts_the_twelfth(kind, cal.fake, t["id"])
        s = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start=f"{at}T09:00:00+02:00",
                      attendees=[ME[kind], "b@x.test", "c@x.test"])
        assert "code" not in s, s
        page = await cal("list_events", limit=100, **SPAN)
        twelfth = [e for e in page["events"] if e["start"]["utc"].startswith("2026-06-12")][0]
        got = {a["email"]: a["response"] for a in twelfth["attendees"]}
        assert set(got) == {ME[kind], "b@x.test", "c@x.test"}, got
        if kind == "google":  # Graph: an attendee's status is set by that attendee's reply, a split cannot carry it
            assert got["b@x.test"] == "accepted" and got["c@x.test"] == "needs_action", got


# 4
@pytest.mark.parametrize("kind", ["embedded", "google", "graph"])
async def test_a_whole_series_attendee_change_reaches_an_answered_occurrence(kind: str, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"), attendees=[ME[kind], "b@x.test"])
        r = await cal("respond_to_event", event_id=t["id"], response="declined", instance_start="2026-06-12T09:00:00+02:00")
        assert "code" not in r, r
        u = await cal("update_event", event_id=t["id"], attendees=[ME[kind], "b@x.test", "c@x.test"])
        assert "code" not in u, u
        page = await cal("list_events", limit=100, **SPAN)
        twelfth = [e for e in page["events"] if e["start"]["utc"].startswith("2026-06-12")][0]
        got = {a["email"]: a["response"] for a in twelfth["attendees"]}
        assert set(got) == {ME[kind], "b@x.test", "c@x.test"}, got
        assert got[ME[kind]] == "declined", got


# 5
@pytest.mark.parametrize("kind", ["embedded", "google"])
@pytest.mark.parametrize("how", ["single", "all", "this_and_following"])
async def test_adding_a_guest_keeps_the_answers_given(kind: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      procs: list) -> None:
    me = ME[kind]
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        rule = {} if how == "single" else {"rrule": "FREQ=DAILY;" + _until(kind, "20260612")}
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      attendees=[me, "b@x.test"], **rule)
        r = await cal("respond_to_event", event_id=t["id"], response="tentative")
        assert "code" not in r and _answer(r, me) == "tentative", r
        where = {"scope": how, "instance_start": "2026-06-11T09:00:00+02:00"} if how == "this_and_following" else {}
        u = await cal("update_event", event_id=t["id"], attendees=[me, "b@x.test", "c@x.test"], **where)
        assert "code" not in u, u
        page = await cal("list_events", limit=100, **SPAN)
        answers = {e["start"]["utc"][:10]: _answer(e, me) for e in page["events"]}
        assert set(answers.values()) == {"tentative"}, answers


async def test_adding_a_guest_keeps_an_optional_invitee_and_its_name_on_google(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                procs: list) -> None:
    """The same bare rebuild drops what else an invitee's entry holds: b, made optional and named in Google's UI,
    becomes a required guest without a name when c is added."""
    async with backend("google", tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      attendees=[GOOGLE_ME, "b@x.test"])
        raw = cal.fake.events[t["id"]]
        raw["attendees"] = [a | {"optional": True, "displayName": "Bee", "responseStatus": "accepted"} if a["email"] == "b@x.test" else a
                            for a in raw["attendees"]]
        u = await cal("update_event", event_id=t["id"], attendees=[GOOGLE_ME, "b@x.test", "c@x.test"])
        assert "code" not in u, u
        b = next(a for a in (await cal("get_event", event_id=t["id"]))["attendees"] if a["email"] == "b@x.test")
        assert (b["optional"], b["name"], b["response"]) == (True, "Bee", "accepted"), b


# 6
@pytest.mark.parametrize("kind", ["embedded", "google", "graph"])
async def test_an_occurrence_list_differing_only_in_case_is_the_series_list(kind: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"), attendees=[ME[kind], "b@x.test"])
        same = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-12T09:00:00+02:00",
                         attendees=[ME[kind], "B@x.test"])
        assert "code" not in same, same
        s = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-11T09:00:00+02:00",
                      attendees=[ME[kind], "b@x.test", "c@x.test"])
        assert "code" not in s, s
        page = await cal("list_events", limit=100, **SPAN)
        twelfth = [e for e in page["events"] if e["start"]["utc"].startswith("2026-06-12")][0]
        assert {a["email"].lower() for a in twelfth["attendees"]} == {ME[kind], "b@x.test", "c@x.test"}, twelfth["attendees"]


async def test_an_override_written_with_uppercase_mailto_is_the_series_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                            procs: list) -> None:
    """The same on the iCalendar path with a prefix another client writes: an override whose ATTENDEE values read
    "MAILTO:" (RFC 5545 URIs are case-insensitive in the scheme; `ical.py` strips either) counts as its own list."""
    from servers.calendar.store import EmbeddedCalendar

    async with backend("embedded", tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until("embedded", "20260613"), attendees=["me@x.test", "b@x.test"])
        r = await cal("respond_to_event", event_id=t["id"], response="declined", instance_start="2026-06-12T09:00:00+02:00")
        assert "code" not in r, r
        store = EmbeddedCalendar(tmp_path)
        text, etag = await store._load("me@x.test", t["id"])
        head, sep, rest = text.partition("RECURRENCE-ID")  # only the override's lines, as another client rewrote them
        assert sep, text
        await store._save("me@x.test", t["id"], head + sep + rest.replace("mailto:", "MAILTO:"), etag)
        s = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-11T09:00:00+02:00",
                      attendees=["me@x.test", "b@x.test", "c@x.test"])
        assert "code" not in s, s
        page = await cal("list_events", limit=100, **SPAN)
        twelfth = [e for e in page["events"] if e["start"]["utc"].startswith("2026-06-12")][0]
        got = {a["email"].lower(): a["response"] for a in twelfth["attendees"]}
        assert got == {"me@x.test": "declined", "b@x.test": "needs_action", "c@x.test": "needs_action"}, got


# 7
@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_blank_location_reads_as_none_and_as_answered(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        e = await cal("create_event", title="S", start="2026-06-02T09:00:00", end="2026-06-02T10:00:00", location="Room")
        u = await cal("update_event", event_id=e["id"], location="   ")
        assert "code" not in u, u
        read = await cal("get_event", event_id=e["id"])
        assert u["location"] == read["location"], (u["location"], read["location"])  # the answer is what is kept
        assert read["location"] is None, read["location"]  # a blank place is no place, as "" (d3a8826)
