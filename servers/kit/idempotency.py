"""Create-style calls run at most once per idempotency key (per principal and tool, 24 h)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel

from servers.kit.store import Store

M = TypeVar("M", bound=BaseModel)
PRINCIPAL = "local"
"""Standalone and in-process domain servers act for one principal; the hub authenticates callers."""


async def run_once(store: Store | None, tool: str, key: str | None, model: type[M], work: Callable[[], Awaitable[M]]) -> M:
    """Return the first result recorded for `key`, or run `work` and record its result."""
    if key is None or store is None:
        return await work()
    remembered = await store.remembered(PRINCIPAL, tool, key)
    if remembered is not None:
        return model.model_validate(remembered)
    result = await work()
    await store.remember(PRINCIPAL, tool, key, result.model_dump(mode="json"))
    return result
