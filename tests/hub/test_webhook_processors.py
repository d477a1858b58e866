"""The hub runs one webhook processor per in-process server: when the server object is replaced (a
console Restart, Disable/Enable, a crash) or goes away, the old intake's processor stops (outside
review events18 #9: each Restart left one more processor, its stores and its push-channel keepers
running, so channels were renewed once per leaked keeper and orphaned)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from hub.settings import StoreSettings
from hub.webhooks import HubWebhooks

pytestmark = pytest.mark.anyio


class Intake:
    """Counts how many of its processors are running."""

    def __init__(self) -> None:
        self.live = 0
        self.started = False

    def bind(self, *args: Any, **kwargs: Any) -> None:
        pass

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Intake]:
        self.live += 1
        try:
            yield self
        finally:
            self.live -= 1


def server(intake: Intake | None) -> SimpleNamespace | None:
    return None if intake is None else SimpleNamespace(webhooks=intake, change_resources=None)


async def wait(what: str, done: Any) -> None:
    with anyio.fail_after(10):
        while not done():
            await anyio.sleep(0.01)


async def test_a_replaced_or_removed_servers_old_processor_stops() -> None:
    config = SimpleNamespace(namespace="tk", builtin=None, module="servers.ticketing", transport="inprocess")
    downstream = SimpleNamespace(name="tk", config=config, server_object=server(first := Intake()))
    hub = SimpleNamespace(downstreams={"tk": downstream}, config=SimpleNamespace(hub=SimpleNamespace(store=StoreSettings())),
                          metrics=SimpleNamespace(webhooks=SimpleNamespace(source=None)))
    webhooks = HubWebhooks(hub)  # type: ignore[arg-type]
    async with webhooks.lifespan():
        await wait("the first processor", lambda: first.live == 1)
        for _ in range(3):  # restarts: a new server object, a new intake each time
            downstream.server_object = server(again := Intake())
            await wait("the new processor, and the old one stopped", lambda: again.live == 1 and first.live == 0)
            assert again.live == 1 and first.live == 0
            first = again
        downstream.server_object = None  # disabled: no intake, no processor
        await wait("the processor of a stopped server to end", lambda: first.live == 0)
