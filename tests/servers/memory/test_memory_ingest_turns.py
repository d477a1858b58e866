"""Folder ingests run one at a time, the next taken by owner in turn (outside review r38a #4: alice's five queued
jobs held bob's one-file ingest back until all had run)."""

from __future__ import annotations

import anyio
import pytest

from servers.memory.turns import FairTurns

pytestmark = pytest.mark.anyio


async def test_the_next_turn_goes_to_the_owner_served_longest_ago() -> None:
    turns = FairTurns()
    order: list[str] = []
    release = anyio.Event()

    async def job(name: str, owner: str, started: anyio.Event) -> None:
        started.set()
        async with turns.turn(owner):
            order.append(name)
            if name == "a1":
                await release.wait()

    async with anyio.create_task_group() as group:
        for name, owner in (("a1", "alice"), ("a2", "alice"), ("a3", "alice"), ("a4", "alice"), ("b1", "bob"),
                            ("c1", "carol"), ("b2", "bob")):
            started = anyio.Event()
            group.start_soon(job, name, owner, started)
            await started.wait()
            await anyio.sleep(0)  # queued in this order
        release.set()
    assert order == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]


async def test_a_waiter_cancelled_leaves_the_queue() -> None:
    turns = FairTurns()
    order: list[str] = []
    hold = anyio.Event()
    cancelled = anyio.CancelScope()

    async def job(name: str, owner: str) -> None:
        async with turns.turn(owner):
            order.append(name)
            if name == "first":
                await hold.wait()

    async def cancelled_job() -> None:
        with cancelled:
            await job("cancelled", "bob")

    async with anyio.create_task_group() as group:
        group.start_soon(job, "first", "alice")
        await anyio.sleep(0.01)
        group.start_soon(cancelled_job)
        await anyio.sleep(0.01)
        group.start_soon(job, "later", "carol")
        await anyio.sleep(0.01)
        cancelled.cancel()
        await anyio.sleep(0.01)
        hold.set()
    assert order == ["first", "later"], order


async def test_a_queued_jobs_wait_reports_nothing_of_another_callers_job() -> None:
    """Review r39a #7: each file of alice's running job moved the progress of bob's queued one, which crept towards
    the whole of its one file before it began (and told bob how many files alice's job had)."""
    from servers.memory.jobs import IngestJob, IngestJobs

    jobs = IngestJobs(None)  # type: ignore[arg-type]  # no file is read here: the jobs are moved by hand
    alice = jobs.jobs["a"] = IngestJob(id="a", root="/a", files_total=50, started_at="2026-12-06T00:00:00+00:00", state="running")
    bob = jobs.jobs["b"] = IngestJob(id="b", root="/b", files_total=1, started_at="2026-12-06T00:00:00+00:00")
    reports: list[tuple[float, str | None]] = []

    async def report(done: float, total: float | None, message: str | None) -> None:
        reports.append((done, message))

    async with anyio.create_task_group() as group:
        group.start_soon(jobs.wait, "b", 30.0, report)
        for _ in range(50):  # alice's files, one after another
            await anyio.sleep(0.001)
            alice.files_done += 1
            jobs._notify()
        bob.state, bob.files_done = "done", 1
        jobs._notify()
    assert all(done == 0 for done, message in reports if message and message.startswith("queued")), reports
    assert len(reports) <= 2, f"{len(reports)} reports for a job that did not move until it ended"
