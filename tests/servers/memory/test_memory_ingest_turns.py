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
