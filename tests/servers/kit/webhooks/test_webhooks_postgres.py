"""Issue #24, the event log on PostgreSQL (`servers/kit/webhooks/log_pg.py`) when the hub's shared
store is configured: dedupe, retries and dead letter, replay processed once, retention, a restart
losing nothing, two processors never taking one event twice, and the HTTP hub and `mcp-hub events`
on it. A real PostgreSQL server (`tests.cluster_support`; skipped without its binaries unless
MCP_HUB_REQUIRE_INTEROP=1)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from servers.kit.webhooks import Policy, Processor
from servers.kit.webhooks.log_pg import PgEventLog, close_pools
from tests.cluster_support import PgServer
from tests.servers.kit.webhooks.pg_support import pg  # noqa: F401 — the module's own server (a fixture)
from tests.conftest import PY, ROOT
from tests.webhook_support import SECRETS, deliver, http_hub, payload, signed

pytestmark = pytest.mark.anyio
FAST = Policy(max_attempts=3, base_delay_s=0.0, max_delay_s=0.0)


def events_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`mcp-hub events ...` as a process, against the store at `url`."""
    env = {**os.environ, "MCP_HUB_STORE_URL": url}
    return subprocess.run([PY, "-m", "hub.cli", "events", *args], capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)


async def events_run(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str]:
    """The same command's code (`servers.kit.webhooks.cli.run`) in a thread: (exit status, stdout)."""
    from servers.kit.webhooks.cli import run

    capsys.readouterr()
    status = await anyio.to_thread.run_sync(run, *args)
    return status, capsys.readouterr().out


async def test_dedupe_retries_dead_letter_replay_and_retention(pg: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg.new_database()
    monkeypatch.setenv("MCP_HUB_STORE_URL", url)
    log = PgEventLog(url, "ticketing")
    first, duplicate = await log.record("github", "d-1", {"x-github-event": "issues"}, b'{"a": 1}'), await log.record(
        "github", "d-1", {}, b'{"a": 1}')
    assert first[1] is False and duplicate == (first[0], True)
    assert (await PgEventLog(url, "calendar").record("github", "d-1", {}, b"{}"))[1] is False, "ids are per domain"

    calls: list[int] = []
    fail = True

    async def handler(event: dict[str, Any]) -> None:
        calls.append(event["seq"])
        assert event["headers"] == {"x-github-event": "issues"} and event["payload"] == b'{"a": 1}'
        if fail:
            raise RuntimeError("downstream broke")

    processor = Processor(log, None, FAST, handler)
    for _ in range(3):
        await processor.drain()
    [dead] = await log.list("dead")
    assert (dead.seq, dead.attempts, dead.duplicates) == (first[0], 3, 1) and "downstream broke" in (dead.last_error or "")
    assert calls == [first[0]] * 3 and await processor.drain() == 0, "dead letters are left alone"

    status, out = await events_run(capsys, "dead-letter", tmp_path, None, None, True)
    assert status == 0 and [(r["domain"], r["seq"]) for r in map(json.loads, out.splitlines())] == [("ticketing", first[0])]

    fail = False
    status, out = await events_run(capsys, "replay", tmp_path, "ticketing", first[0], True)
    assert status == 0 and json.loads(out)["state"] == "received", out
    assert await processor.drain() == 1 and await processor.drain() == 0, "replayed, processed once"
    assert (await log.counts())["processed"] == 1 and len(calls) == 4

    status, out = await events_run(capsys, "list", tmp_path, "ticketing", None, True)
    assert [json.loads(line)["state"] for line in out.splitlines()] == ["processed"]
    assert (await events_run(capsys, "dead-letter", tmp_path, None, None, True)) == (0, "")
    assert (await events_run(capsys, "replay", tmp_path, "calendar", first[0], False))[0] == 1, "another domain's id"

    assert await log.purge(older_than=1e12) == 1
    with pytest.raises(ValueError, match="purged"):
        await log.replay(first[0])


async def test_a_delivery_matching_either_key_is_a_duplicate(pg: PgServer) -> None:
    """A re-signed retry matches by its alias (retry id + body), a captured attempt under a new id by its
    signed key; a delivery matching neither is new (as the SQLite log: test_webhooks.py)."""
    log = PgEventLog(pg.new_database(), "ticketing")
    seq, duplicate = await log.record("zendesk", "sig-1", {}, b"{}", alias="alias-1")
    assert duplicate is False
    assert await log.record("zendesk", "sig-2", {}, b"{}", alias="alias-1") == (seq, True), "a retry signed anew"
    assert await log.record("zendesk", "sig-1", {}, b"{}", alias="alias-9") == (seq, True), "a captured attempt"
    assert await log.record("zendesk", "sig-2", {}, b"{}", alias="alias-8") == (seq, True), "a captured retry"
    other, duplicate = await log.record("zendesk", "sig-3", {}, b"{}", alias="alias-3")
    assert duplicate is False and other != seq
    assert (await log.record("zendesk", "sig-4", {}, b"{}"))[1] is False, "no alias: the signed key alone"
    assert sorted((r.seq, r.duplicates) for r in await log.list())[:2] == [(seq, 3), (other, 0)]


async def test_a_restart_loses_no_accepted_event(pg: PgServer) -> None:
    url = pg.new_database()
    seqs = [(await PgEventLog(url, "hris").record("bamboohr", f"d-{i}", {}, b"{}"))[0] for i in range(5)]
    close_pools()  # the process that accepted them ends, and PostgreSQL restarts too
    pg.stop()
    pg.start()
    seen: list[int] = []

    async def handler(event: dict[str, Any]) -> None:
        seen.append(event["seq"])

    assert await Processor(PgEventLog(url, "hris"), None, FAST, handler).drain() == 5
    assert seen == seqs, "oldest first"


async def test_two_processors_never_take_one_event_twice(pg: PgServer) -> None:
    base = pg.new_database()
    urls = [f"{base}?application_name=replica-{i}" for i in (1, 2)]  # one pool each, as two processes
    log = PgEventLog(urls[0], "accounting")
    for i in range(120):
        await log.record("xero", f"d-{i}", {}, b"{}")
    handled: list[tuple[str, int]] = []

    def handler_for(name: str) -> Any:
        async def handler(event: dict[str, Any]) -> None:
            handled.append((name, event["seq"]))
            await anyio.sleep(0)  # let the other replica claim meanwhile

        return handler

    async with anyio.create_task_group() as group:
        for i, url in enumerate(urls):
            processor = Processor(PgEventLog(url, "accounting"), None, FAST, handler_for(f"r{i}"))
            group.start_soon(processor.drain)
    seqs = [seq for _, seq in handled]
    assert len(seqs) == 120 and len(set(seqs)) == 120, "each event processed exactly once"
    assert (await log.counts())["processed"] == 120


async def test_a_claim_skips_rows_another_replica_is_claiming(pg: PgServer) -> None:
    """Deterministic half of the above: while replica A's claim holds rows locked (its transaction is
    open), replica B's claim neither waits for them nor takes them; it takes the others."""
    import psycopg

    url = pg.new_database()
    log = PgEventLog(url, "ticketing")
    seqs = [(await log.record("github", f"d-{i}", {}, b"{}"))[0] for i in range(4)]
    with psycopg.connect(url) as replica_a:  # a transaction, as the claim statement is
        replica_a.execute("SELECT seq FROM webhook_events WHERE seq = ANY(%s) FOR UPDATE", (seqs[:2],))
        with anyio.fail_after(10):
            claimed = await PgEventLog(url, "ticketing").due(now=time.time())
        replica_a.rollback()
    assert sorted(e["seq"] for e in claimed) == seqs[2:]


async def test_http_hub_with_the_shared_store_logs_and_processes_in_postgresql(pg: PgServer, tmp_path: Path) -> None:
    url = pg.new_database()
    secret = {"GITHUB_WEBHOOK_SECRET": SECRETS["github"]}
    async with http_hub(tmp_path, {"ticketing": {"builtin": "ticketing"}}, secret, hub={"store": {"url": url}}) as (mcp_url, http):
        body = payload("github", "42")
        headers = signed("github", body)
        answer = await deliver(http, "/webhooks/ticketing/github", body, headers)
        assert answer.status_code == 200, answer.text
        assert (await http.post("/webhooks/ticketing/github", content=body, headers=headers)).json()["duplicate"] is True
        async with Client(mcp_url) as client:
            with anyio.fail_after(30):
                while not (await client.call_tool("ticketing__list_changes", {})).structured_content["changes"]:
                    await anyio.sleep(0.05)  # waiting for the state "processed"
        listed = events_cli(url, "list", "--domain", "ticketing", "--json")
        [row] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (row["state"], row["provider"], row["duplicates"]) == ("processed", "github", 1), listed.stderr
        from servers.kit.webhooks.log import EventLog, events_path

        assert await EventLog(events_path(tmp_path, "ticketing")).list() == [], "nothing in the SQLite log"
