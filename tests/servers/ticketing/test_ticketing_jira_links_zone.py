"""Jira link direction and `updated_since` zone (outside review domains18 #1, #6): `link_tickets(A, B,
"blocks")` made B block A (POST /issueLink operands swapped), and `updated_since` was written into JQL as
a UTC wall-clock time, which Jira reads in the API user's profile zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from servers.ticketing.server import create_server
from tests.fakes.jira import FakeJira
from tests.servers.ticketing.test_ticketing import jira, jira_call  # noqa: F401 — the fixture

pytestmark = pytest.mark.anyio


def _link_posts(fake: FakeJira) -> list[dict[str, Any]]:
    return [r["json"] for r in fake.requests if r["path"].endswith("/issueLink")]


async def test_jira_blocks_and_duplicates_read_as_asked(jira: tuple[FakeJira, Any]) -> None:  # noqa: F811
    fake, backend = jira
    server = create_server(backend)
    for title in ("one", "two", "three"):
        await jira_call(server, "create_ticket", project="OPS", title=title)
    made = await jira_call(server, "link_tickets", id="OPS-1", other_id="OPS-2", type="blocks")
    assert made == {"type": "blocks", "direction": "outward", "ticket": "OPS-2"}
    assert _link_posts(fake)[-1] == {"type": {"name": "Blocks"}, "inwardIssue": {"key": "OPS-1"}, "outwardIssue": {"key": "OPS-2"}}, \
        "on Jira Cloud the inwardIssue is the one that blocks"
    one = await jira_call(server, "get_ticket", id="OPS-1", include=["links"])
    assert one["links"] == [{"type": "blocks", "direction": "outward", "ticket": "OPS-2"}], f"OPS-1 should block OPS-2: {one['links']}"
    two = await jira_call(server, "get_ticket", id="OPS-2", include=["links"])
    assert two["links"] == [{"type": "is blocked by", "direction": "inward", "ticket": "OPS-1"}]

    await jira_call(server, "link_tickets", id="OPS-3", other_id="OPS-1", type="duplicates")
    three = await jira_call(server, "get_ticket", id="OPS-3", include=["links"])
    assert three["links"] == [{"type": "duplicates", "direction": "outward", "ticket": "OPS-1"}], three["links"]

    before = len(fake.issues["OPS-1"]["fields"]["issuelinks"])
    again = await jira_call(server, "link_tickets", id="OPS-1", other_id="OPS-2", type="Blocks")
    assert again == made and len(fake.issues["OPS-1"]["fields"]["issuelinks"]) == before, "a link that exists stays one"

    inward = await jira_call(server, "link_tickets", id="OPS-3", other_id="OPS-2", type="is blocked by")
    assert inward == {"type": "blocks", "direction": "inward", "ticket": "OPS-2"}
    assert _link_posts(fake)[-1]["inwardIssue"] == {"key": "OPS-2"}, "an inward spelling is the other way round"
    got = await jira_call(server, "get_ticket", id="OPS-3", include=["links"])
    assert {"type": "is blocked by", "direction": "inward", "ticket": "OPS-2"} in got["links"], got["links"]


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Kolkata", "UTC"])
async def test_jira_updated_since_is_the_instant_given(jira: tuple[FakeJira, Any], zone: str) -> None:  # noqa: F811
    fake, backend = jira
    fake.time_zone = zone
    server = create_server(backend)
    stamps = {"OPS-1": "2026-12-05T09:00:00.000+0000", "OPS-2": "2026-12-05T12:30:00.000+0000",
              "OPS-3": "2026-12-05T19:00:00.000+0000"}
    for key, stamp in stamps.items():
        await jira_call(server, "create_ticket", project="OPS", title=f"VPN {key}")
        fake.issues[key]["fields"]["updated"] = stamp
    since = datetime(2026, 12, 5, 10, 0, tzinfo=UTC).isoformat()
    page = await jira_call(server, "search_tickets", text="VPN", updated_since=since)
    got = sorted(t["id"] for t in page["tickets"])
    jql = [r for r in fake.requests if r["path"].endswith("/search/jql")][-1]["params"]["jql"]
    assert got == ["OPS-2", "OPS-3"], f"updated_since 10:00Z for a {zone} user sent {jql!r} and returned {got}"
    offset = await jira_call(server, "search_tickets", text="VPN", updated_since="2026-12-05T14:00:00+02:00")  # 12:00Z
    assert sorted(t["id"] for t in offset["tickets"]) == ["OPS-2", "OPS-3"]


async def test_jira_native_query_is_sent_as_written(jira: tuple[FakeJira, Any]) -> None:  # noqa: F811
    fake, backend = jira
    server = create_server(backend)
    await jira_call(server, "search_tickets", native_query='updated >= "2026-12-05 10:00"')
    assert not [r for r in fake.requests if r["path"].endswith("/myself")], "no zone lookup for JQL written by the caller"


def test_jql_instant_is_never_after_the_instant() -> None:
    """Minute precision floors; a wall time repeated when clocks go back is written so that either reading
    Jira takes of it is at or before the instant."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from servers.ticketing.providers.jira import jql_instant

    zone = ZoneInfo("America/Los_Angeles")
    start = datetime(2026, 11, 1, 7, 0, 30, tzinfo=UTC)  # 00:00:30 PDT; clocks go back at 09:00Z
    for minutes in range(0, 240, 7):
        instant = start + timedelta(minutes=minutes)
        wall = datetime.strptime(jql_instant(instant, zone), "%Y-%m-%d %H:%M")
        readings = {wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)}
        assert all(r <= instant for r in readings), (instant, wall, readings)
        assert instant - min(readings) <= timedelta(hours=1, minutes=1), "only the repeated hour is widened"
