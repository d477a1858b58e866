"""Outside review faults19 #6: when a per-client session cannot be opened, the refusal names why (the
first real exception of the SDK's exception group, masked), not "ExceptionGroup"."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from hub.downstream.sessions import SessionPool
from hub.errors import HubRefusal
from tests.conftest import free_port

pytestmark = pytest.mark.anyio


class Owner:
    """Stands for an upstream client connection."""


async def test_a_session_that_cannot_be_opened_is_refused_naming_the_cause() -> None:
    port = free_port()  # nothing listens there

    def open_session(owner: Any) -> Client:
        return Client(f"http://127.0.0.1:{port}/mcp", mode="legacy")

    pool = SessionPool("m", open_session)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            with pytest.raises(HubRefusal) as refused:
                async with pool.using(Owner()):
                    pass
            tg.cancel_scope.cancel()
    body = refused.value.body
    assert body.code == "unavailable" and body.retry_after_s == 1.0 and body.details == {"server": "m", "reason": "down"}
    assert "ExceptionGroup" not in body.message, body.message
    assert "could not open a session with server 'm' (All connection attempts failed)" in body.message, body.message
    assert "try again" in body.message


async def test_the_cause_is_masked() -> None:
    def open_session(owner: Any) -> Any:
        raise ExceptionGroup("opening", [RuntimeError("refused for token=sk-live-abcdefghijklmnopqrstuvwx")])

    pool = SessionPool("m", open_session)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            with pytest.raises(HubRefusal) as refused:
                async with pool.using(Owner()):
                    pass
            tg.cancel_scope.cancel()
    message = refused.value.body.message
    assert "refused for token=" in message and "sk-live-abcdefghijklmnopqrstuvwx" not in message, message
