"""Outside review recheck15 #8: a stdio server that stays alive but stops reading and answering (wedged)
was never restarted — stdio servers have no health check — so every later call timed out until the hub
restarted. Now a call that times out gets the server a `ping` (`hub.downstream.liveness`): no answer
within `restart.ping_timeout_s` and it is stopped and started again; a server that answers is left
alone, however slow its tool. A real hub against a real child (`tests/fixtures/big_server.py`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import FIXTURES, PY

pytestmark = pytest.mark.anyio
BIG = str(FIXTURES / "big_server.py")
PING_S = 0.5


def hub_over(tmp_path: Path, **server: Any) -> Hub:
    return Hub(parse_config({"mcpServers": {"b": {
        "command": PY, "args": [BIG], "timeout_s": 1, "breaker": {"failure_threshold": 50},
        "restart": {"initial_backoff_s": 0.1, "max_backoff_s": 0.5, "ping_timeout_s": PING_S}, **server}}}))


async def text_of(hub: Hub, tool: str, arguments: dict[str, Any] | None = None) -> tuple[bool, str]:
    with anyio.fail_after(30):
        result = await hub.route_call(f"b__{tool}", arguments or {})
    return bool(result.is_error), result.content[0].text  # type: ignore[union-attr]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def logged(caplog: pytest.LogCaptureFixture, words: str) -> str:
    """The first log message holding `words`, once there is one (a state waited for, never a fixed sleep)."""
    with anyio.fail_after(30):
        while not (found := [r.getMessage() for r in caplog.records if words in r.getMessage()]):
            await anyio.sleep(0.02)
    return found[0]


async def test_a_wedged_stdio_server_is_restarted_once_it_does_not_answer_a_ping(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with hub_over(tmp_path) as hub:
        first = int((await text_of(hub, "pid"))[1])
        assert await text_of(hub, "wedge") == (False, "")
        failed, text = await text_of(hub, "echo", {"text": "anyone?"})
        assert failed and '"timeout"' in text, text
        reason = await logged(caplog, "did not answer a ping")
        assert f"did not answer a ping within {PING_S:g}s after a call timed out" in reason, reason
        with anyio.fail_after(30):  # refused (down, restarting) until the new child answers
            while (answer := await text_of(hub, "pid"))[0]:
                await anyio.sleep(0.05)
        assert int(answer[1]) != first and not alive(first)
        assert hub.downstreams["b"].restarts >= 1


async def test_a_slow_server_that_answers_the_ping_is_left_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with hub_over(tmp_path) as hub:
        first = (await text_of(hub, "pid"))[1]
        failed, text = await text_of(hub, "later", {"seconds": 3})  # reads on, answers after the deadline
        assert failed and '"timeout"' in text, text
        await logged(caplog, "answered a ping after a call timed out")
        assert await text_of(hub, "pid") == (False, first)
        assert hub.downstreams["b"].restarts == 0 and hub.downstreams["b"].state == "ready"
    assert not [r for r in caplog.records if "did not answer a ping" in r.getMessage()]


async def test_without_ping_timeout_a_timeout_sends_no_ping(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with hub_over(tmp_path, restart={"ping_timeout_s": None}) as hub:
        assert not hub.downstreams["b"].watches_liveness
        failed, _ = await text_of(hub, "later", {"seconds": 3})
        assert failed
        assert (await text_of(hub, "pid"))[0] is False
    assert not [r for r in caplog.records if "a ping" in r.getMessage()]


async def test_a_one_thread_server_busy_with_a_call_within_its_deadline_is_not_taken_for_hung(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Re-check 16: a short call timing out beside a long one on a one-thread server got it pinged, and
    the ping unanswered while the long call ran (within its deadline) restarted the server, cutting
    that call off. The ping's answer is now waited for while calls are in flight."""
    caplog.set_level(logging.INFO)
    overrides = {"busy": {"timeout_s": 30}, "echo": {"timeout_s": 0.5}}
    async with hub_over(tmp_path, tool_overrides=overrides) as hub:
        first = int((await text_of(hub, "pid"))[1])
        results: dict[str, tuple[bool, str]] = {}

        async def run(tool: str, arguments: dict[str, Any]) -> None:
            results[tool] = await text_of(hub, tool, arguments)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "busy", {"seconds": 4 * PING_S + 1})
            with anyio.fail_after(30):
                while hub.downstreams["b"].stats.in_flight < 1:  # the state "busy is with the server"
                    await anyio.sleep(0.01)
            tg.start_soon(run, "echo", {"text": "queued behind busy"})
        assert results["busy"] == (False, "worked"), results
        assert results["echo"][0] and "timed out" in results["echo"][1], results
        await logged(caplog, "answered a ping after a call timed out")
        assert int((await text_of(hub, "pid"))[1]) == first, "the server was restarted"
