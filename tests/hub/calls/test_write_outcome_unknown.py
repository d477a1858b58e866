"""Outside review faults19 #1: a write cut off in flight (a timeout after it was sent, the server's crash,
a connection lost mid-call, the hub ending the connection) may have taken effect. A write without an
idempotency key is told so — `retryable: false`, `details.outcome: "unknown"`, check before sending it
again — never "try again later"; a keyed write is told to send it again with the same key; a read-only
call and a refusal before anything was sent keep their retryable answer. Same on every call path."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from hub.config import parse_config
from hub.errors import HubToolError
from hub.hub import Hub
from tests.conftest import echo_stdio, error_body
from tests.express_calls import Route, route  # noqa: F401 — `route`: the fixture (both drivers)

pytestmark = pytest.mark.anyio

def assert_outcome_unknown(body: dict[str, Any], code: str, tool: str) -> None:
    assert body["code"] == code and body["retryable"] is False, body
    assert body["details"]["outcome"] == "unknown" and body["details"]["tool"] == tool, body
    assert "may have reached its server and taken effect" in body["message"], body
    assert "Check first" in body["message"] and "try again later" not in body["message"], body
    assert "Retrying later may work" not in body["message"], body


async def test_a_write_that_timed_out_or_whose_server_crashed_is_told_its_outcome_is_unknown(route: Route) -> None:
    servers = {"e": echo_stdio(timeout_s=0.5, tool_overrides={"slow": {"read_only": True}})}
    async with Hub(parse_config({"hub": {}, "mcpServers": servers})) as hub:
        timed_out = await route(hub, "e__hang", {})
        assert_outcome_unknown(error_body(timed_out), "timeout", "hang")
        assert "timed out on hang" in error_body(timed_out)["message"]

        crashed = await route(hub, "e__crash", {})
        assert_outcome_unknown(error_body(crashed), "unavailable", "crash")
        assert "code 7" in error_body(crashed)["message"], crashed.structured_content

        with anyio.fail_after(20):  # the supervisor restarts the server
            while hub.downstreams["e"].ready_now() is None:
                await anyio.sleep(0.02)
        read = await route(hub, "e__slow", {"seconds": 5, "steps": 1})  # read-only: safe to send again
        body = error_body(read)
        assert body["code"] == "timeout" and body["retryable"] is True and "outcome" not in (body.get("details") or {}), body


def test_a_keyed_write_lost_in_flight_is_told_to_send_it_again_with_the_same_key() -> None:
    from hub.errors import in_flight_answer  # noqa: PLC0415 — the test fails, not the module, without the fix

    lost = HubToolError("unavailable", "lost the connection to server 'e' (process exited with code 7); try again later",
                        details={"server": "e"}, lost_in_flight="lost the connection to server 'e' (process exited with code 7)")
    keyed = in_flight_answer(lost, "pay", read_only=False, keyed=True).body
    assert keyed.retryable is True and "same idempotency_key" in keyed.message and "code 7" in keyed.message
    unkeyed = in_flight_answer(lost, "pay", read_only=False, keyed=False).body
    assert unkeyed.retryable is False and unkeyed.details == {"server": "e", "outcome": "unknown", "tool": "pay"}
    assert in_flight_answer(lost, "get", read_only=True, keyed=False) is lost
    refused = HubToolError("unavailable", "server 'e' is down; retry in 1s", retry_after_s=1.0)  # nothing was sent
    assert in_flight_answer(refused, "pay", read_only=False, keyed=False) is refused


async def test_a_write_cut_off_by_the_hubs_own_restart_is_told_its_outcome_is_unknown() -> None:
    async with Hub(parse_config({"hub": {}, "mcpServers": {"e": echo_stdio(timeout_s=20)}})) as hub:
        downstream = hub.downstreams["e"]
        outcomes: list[Any] = []

        async def hang() -> None:
            outcomes.append(await hub.route_call("e__hang", {}))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(hang)
                while downstream.stats.in_flight < 1:
                    await anyio.sleep(0.02)
                assert downstream.restart("restarted by the test")
        body = error_body(outcomes[0])
        assert_outcome_unknown(body, "unavailable", "hang")
        assert body["details"]["reason"] == "restarted_by_hub" and "restarted by the test" in body["message"], body
