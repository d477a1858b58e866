"""One embedded domain server behind an in-process hub, shared by the domain test files.

Each domain test file used to carry its own copy of the same `hub` fixture and `call` helper
(issue 18: "test fixture duplication across domain test files"). They live here once:

    hub = hub_fixture("calendar", seed=two_calendars)   # a pytest fixture named `hub`
    call = tool_caller("calendar")                     # await call(hub, "list_events", ...)

The hub's data dir is the test's `tmp_path` (through MCP_HUB_DATA_DIR), so every test starts from
an empty store; `seed(data_dir)` runs before the hub starts and fills it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from hub.config import parse_config
from hub.hub import Hub

Seed = Callable[[Path], Awaitable[Any]]
Caller = Callable[..., Awaitable[dict[str, Any]]]


def builtin_hub(domain: str) -> Hub:
    """A hub (not started: use `async with`) with the embedded `domain` server mounted as `domain`."""
    return Hub(parse_config({"mcpServers": {domain: {"builtin": domain}}}))


def hub_fixture(domain: str, seed: Seed | None = None) -> Any:
    """A function-scoped pytest fixture yielding a running hub in front of the embedded `domain`."""

    @pytest.fixture
    async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
        monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
        if seed is not None:
            await seed(tmp_path)
        async with builtin_hub(domain) as running:
            yield running

    return hub


def portal_hub_fixture(domain: str, seed: Seed | None = None) -> Any:
    """Like `hub_fixture`, for synchronous (hypothesis) tests: yields `(portal, hub)`, the hub running
    in the portal's event loop, so one hub serves every example of a property test."""

    @pytest.fixture
    def portal_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BlockingPortal, Hub]]:
        monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
        with start_blocking_portal() as portal:
            if seed is not None:
                portal.call(seed, tmp_path)
            with portal.wrap_async_context_manager(builtin_hub(domain)) as running:
                yield portal, running

    return portal_hub


def calendars(*rows: tuple[Any, ...]) -> Seed:
    """A seed adding calendars `(address, name, zone[, primary])` to the embedded calendar store."""

    async def seed(data_dir: Path) -> None:
        from servers.calendar.store import EmbeddedCalendar

        store = EmbeddedCalendar(data_dir)
        for address, name, zone, *primary in rows:
            await store.add_calendar(address, name, zone, primary=bool(primary and primary[0]))

    return seed


def tool_caller(domain: str) -> Caller:
    """`await call(hub, tool, **args)`: call `<domain>__<tool>` through the hub, return its structured
    content (a tool error's content too: {code, message, ...}); fail if there is none."""

    async def call(hub: Hub, tool: str, **args: Any) -> dict[str, Any]:
        result = await hub.route_call(f"{domain}__{tool}", args)
        assert result.structured_content is not None, result.content
        return result.structured_content

    return call
