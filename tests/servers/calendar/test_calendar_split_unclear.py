"""Google and Graph splits whose answers are unclear (re-check 17w #1, #3): the new series' create is
named by a client-chosen handle (Google event id, Graph transactionId), so a 5xx after it landed is
settled, never split twice; a failed carry removes the new series; a partly applied answer names the
series involved."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from servers.calendar.server import create_server
from tests.servers.calendar.test_calendar_provider_writes import AFTER, BEFORE, Session, _connect

pytestmark = pytest.mark.anyio


def _creates(path: str) -> bool:
    return path.endswith("/events")


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_create_whose_answer_was_lost_is_found_not_made_twice(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        shim.rules = [("POST", _creates, 503, "after")]  # stored by the provider, answered 503
        answer = await call.split(series)
        assert not shim.rules and "code" not in answer, answer
        assert await call.shown() == AFTER and len(fake._masters()) == 2, "one new series, found again"
        posted = [r for r in fake.requests if r["method"] == "POST" and _creates(r["path"])][-1]["json"]
        assert ("id" if kind == "google" else "transactionId") in posted, "the create carries a client-chosen handle"


async def test_google_create_not_stored_is_the_plain_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect("google", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        shim.rules = [("POST", _creates, 503, "before")]
        answer = await call.split(series)
        assert answer["code"] == "unavailable" and answer["retryable"] is True, answer
        assert await call.shown() == BEFORE and len(fake._masters()) == 1


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_create_that_cannot_be_looked_up_names_its_handle(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        look = ("GET", lambda p: "/events/" in p and p.rsplit("/", 1)[-1] not in (series, "instances"), 503, "before")
        shim.rules = [("POST", _creates, 503, "after"), look if kind == "google" else ("POST", _creates, 503, "before")]
        answer = await call.split(series)
        assert answer["code"] == "upstream_error" and answer["retryable"] is False, answer
        left = next(m for m in fake._masters() if m["id"] != series)
        handle = left["id"] if kind == "google" else left["transactionId"]
        assert answer["details"]["may_be_left"].endswith(handle) and handle in answer["message"]


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_failed_carry_removes_the_new_series_without_reading_the_old_one(kind: str, monkeypatch: pytest.MonkeyPatch,
                                                                               tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        carried = lambda p: series not in p and "_" in p.rsplit("/", 1)[-1]  # noqa: E731 — an occurrence of the new series

        def then_fail_reads_of_the_old_series(method: str, path: str) -> None:
            if method == "DELETE" and carried(path):
                shim.rules.append(("GET", lambda p: p.endswith(series), 503, "before"))
                shim.hook = None
        shim.hook = then_fail_reads_of_the_old_series
        shim.rules = [("DELETE", carried, 503, "before")]
        answer = await call.split(series)
        assert answer["code"] == "unavailable" and answer["retryable"] is True, answer
        assert len(shim.rules) == 1 and shim.rules[0][0] == "GET", "the old series was never read back: it was not asked to end"
        assert await call.shown() == BEFORE and len(fake._masters()) == 1, "the new series was removed"
        shim.rules = []
        assert "code" not in await call.split(series) and await call.shown() == AFTER


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_an_unknown_end_names_both_series(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()

        def then_fail_the_read(method: str, path: str) -> None:
            if method == "PATCH" and path.endswith(series):
                shim.rules.append(("GET", lambda p: p.endswith(series), 503, "before"))
                shim.hook = None
        shim.hook = then_fail_the_read
        shim.rules = [("PATCH", lambda p: p.endswith(series), 503, "after")]
        answer = await call.split(series)
        assert answer["code"] == "upstream_error" and answer["retryable"] is False, answer
        left = next(m["id"] for m in fake._masters() if m["id"] != series)
        details = answer["details"]
        assert (details["series"], details["left_series"]) == (series, left) and left in answer["message"]
        assert any(row.get("id") == left for row in details["landed"]), "the writes that landed are listed too"
