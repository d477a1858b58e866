"""Reads, prompts and completions forwarded to a server are admitted as tool calls are (outside review
isolation21 #2: they took no bulkhead slot and no rate-limit token, so one read-only caller flooded a
shared server and another caller's tool call timed out): each holds a slot of the server's bulkhead by
the same per-caller share, and is charged to the caller's overall and the server's rate-limit buckets —
never to a tool rule, as it names no tool. Refused with the same `unavailable` / `rate_limited` body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from hub.auth.principal import Principal
from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import FIXTURES, PY

pytestmark = pytest.mark.anyio

HUNG = str(FIXTURES / "hung_requests_server.py")
MALLORY = Principal("mallory", ("h:read",), "api_key", "k1")
ALICE = Principal("alice", ("h:read", "h:write"), "api_key", "k2")


def hung_hub(tmp_path: Path, hub: dict[str, Any], server: dict[str, Any]) -> Hub:
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data"), **hub},
                           "mcpServers": {"h": {"command": PY, "args": [HUNG, str(tmp_path / "cancels")], **server}}})
    return Hub(config)


def requests(hub: Hub, principal: Principal) -> dict[str, Any]:
    return {
        "resources/read": lambda: hub.read_resource("mcphub://h/h://x", principal),
        "prompts/get": lambda: hub.get_prompt("h__p", {}, principal),
        "completion/complete": lambda: hub.complete(types.PromptReference(type="ref/prompt", name="h__p"),
                                                   {"name": "a", "value": ""}, None, principal),
    }


async def refused(request: Any) -> dict[str, Any]:
    """The hub's error body `request` was refused with, at once (not after a deadline)."""
    with anyio.fail_after(2), pytest.raises(MCPError) as caught:
        await request()
    data = caught.value.error.data
    assert isinstance(data, dict), caught.value.error
    return data


async def until(check: Any) -> None:
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.01)


@pytest.mark.parametrize("method", ["resources/read", "prompts/get", "completion/complete"])
async def test_one_callers_reads_hold_at_most_its_share_of_the_bulkhead_and_the_rest_is_refused(
        tmp_path: Path, method: str) -> None:
    server = {"timeout_s": 8, "max_concurrency": 4, "max_queue": 0}
    async with hung_hub(tmp_path, {"auth": {"enabled": True}}, server) as hub:
        await hub.await_first_listing()
        bulkhead = hub.bulkheads.bulkhead("h")
        async with anyio.create_task_group() as group:
            async def hang(principal: Principal) -> None:
                with pytest.raises(MCPError):
                    await requests(hub, principal)[method]()

            for _ in range(3):
                group.start_soon(hang, MALLORY)
            await until(lambda: bulkhead.held[("api_key", "mallory")] == 3)
            body = await refused(requests(hub, MALLORY)[method])  # a 4th: past her share, no queue
            assert body["code"] == "unavailable" and body["retry_after_s"] > 0, body
            assert body["details"] == {"server": "h", "reason": "saturated"}, body
            group.start_soon(hang, ALICE)  # the slot kept back lets another caller in at once
            await until(lambda: bulkhead.held[("api_key", "alice")] == 1)
            group.cancel_scope.cancel()
        assert bulkhead.free == 4 and not bulkhead.held, "every slot given back"


async def test_reads_are_charged_to_the_callers_overall_bucket_not_to_a_tool_rule(tmp_path: Path) -> None:
    limits = {"rate_limit": {"per_principal": {"burst": 3, "per_second": 0.01},
                             "rules": [{"tools": "*", "burst": 1, "per_second": 0.01}]}}
    async with hung_hub(tmp_path, {"timeout_s": 0.3, "max_timeout_s": 0.5, **limits}, {}) as hub:
        await hub.await_first_listing()
        for method in ("resources/read", "prompts/get", "completion/complete"):  # 3 tokens: each reaches the server
            with anyio.fail_after(5), pytest.raises(MCPError) as caught:
                await requests(hub, MALLORY)[method]()
            assert caught.value.code == types.REQUEST_TIMEOUT, caught.value.error  # not the tool rule's burst of 1
        for method in ("resources/read", "prompts/get", "completion/complete"):
            body = await refused(requests(hub, MALLORY)[method])
            assert body["code"] == "rate_limited" and body["details"] == {"limit": "p"}, body
            assert body["retry_after_s"] > 0 and method in body["message"], body
        with anyio.fail_after(5), pytest.raises(MCPError) as caught:  # another caller's bucket is her own
            await requests(hub, ALICE)["resources/read"]()
        assert caught.value.code == types.REQUEST_TIMEOUT, caught.value.error


class Connection:
    """A client connection, as the task relay keys its tasks (any object that can be weakly referenced)."""


async def test_task_polling_is_charged_to_the_rate_limit_and_tasks_get_holds_a_slot(tmp_path: Path) -> None:
    limits = {"rate_limit": {"per_principal": {"burst": 3, "per_second": 0.01}}}
    async with hung_hub(tmp_path, {"timeout_s": 0.3, "max_timeout_s": 0.5, **limits},
                        {"max_concurrency": 1, "max_queue": 0}) as hub:
        await hub.await_first_listing()
        tasks, connection, local = hub.request_relay.tasks, Connection(), hub.access.local
        exposed = (await tasks.call(connection, local, "h__job", {}, {"ttl": 60_000}))["task"]["taskId"]  # token 1
        async with anyio.create_task_group() as group:
            async def hang() -> None:
                with pytest.raises(MCPError):
                    await tasks.forward(connection, local, "tasks/get", exposed)  # token 2, holds the one slot

            group.start_soon(hang)
            await until(lambda: hub.bulkheads.bulkhead("h").free == 0)
            body = await refused(lambda: tasks.forward(connection, local, "tasks/cancel", exposed))  # token 3
            assert body["code"] == "unavailable" and body["details"]["reason"] == "saturated", body
            group.cancel_scope.cancel()
        body = await refused(lambda: tasks.forward(connection, local, "tasks/get", exposed))
        assert body["code"] == "rate_limited" and "tasks/get" in body["message"], body


BOB = Principal("bob", ("h:read", "h:write"), "api_key", "k3")


@pytest.mark.parametrize("method", ["resources/read", "tasks/get"])
async def test_a_request_waiting_for_a_slot_counts_its_wait_toward_its_deadline(tmp_path: Path, method: str) -> None:
    """As a tool call's deadline does: a read (or a task poll) queued behind another caller's hung one for
    most of its deadline ends once that deadline from its start has passed — not after the wait and a
    whole deadline more (it ran 1.2 s + 2 s before)."""
    deadline = 2.0
    async with hung_hub(tmp_path, {"auth": {"enabled": True}, "timeout_s": deadline, "max_timeout_s": deadline},
                        {"max_concurrency": 1, "max_queue": 1}) as hub:
        await hub.await_first_listing()
        bulkhead, tasks = hub.bulkheads.bulkhead("h"), hub.request_relay.tasks

        async def asker(principal: Principal) -> Any:
            if method == "resources/read":
                return requests(hub, principal)[method]
            connection = Connection()
            exposed = (await tasks.call(connection, principal, "h__job", {}, {"ttl": 60_000}))["task"]["taskId"]
            return lambda: tasks.forward(connection, principal, method, exposed)

        first, second = await asker(BOB), await asker(ALICE)
        async with anyio.create_task_group() as group:
            async def hang(scope: anyio.CancelScope) -> None:
                with scope, pytest.raises(MCPError):
                    await first()

            held = anyio.CancelScope()
            group.start_soon(hang, held)  # holds the one slot
            await until(lambda: bulkhead.free == 0)
            started = anyio.current_time()

            async def free_the_slot_later() -> None:
                await until(lambda: bulkhead.waiting == 1)
                await anyio.sleep(0.6 * deadline)  # the time passing is what is tested: the second waits this long
                held.cancel()

            group.start_soon(free_the_slot_later)
            with anyio.fail_after(4 * deadline), pytest.raises(MCPError) as caught:
                await second()
            waited = anyio.current_time() - started
        assert caught.value.code == types.REQUEST_TIMEOUT, caught.value.error
        assert waited < 1.3 * deadline, f"the queued {method} ran {waited:.2f}s: its wait for the slot was not counted"


async def test_tasks_list_is_charged_once_and_each_task_it_asks_about_holds_a_slot(tmp_path: Path) -> None:
    """`tasks/list` asks each of the caller's tasks of its server: a caller polling it was a flood no limit
    saw. The listing is charged to the caller's overall bucket; each `tasks/get` it makes holds a slot."""
    limits = {"rate_limit": {"per_principal": {"burst": 3, "per_second": 0.01}}}
    async with hung_hub(tmp_path, {"timeout_s": 2, "max_timeout_s": 2, **limits},
                        {"max_concurrency": 2, "max_queue": 0}) as hub:
        await hub.await_first_listing()
        tasks, connection, local, bulkhead = hub.request_relay.tasks, Connection(), hub.access.local, hub.bulkheads.bulkhead("h")
        await tasks.call(connection, local, "h__job", {}, {"ttl": 60_000})  # token 1
        async with anyio.create_task_group() as group:
            group.start_soon(tasks.list, connection, local)  # token 2; its tasks/get hangs
            await until(lambda: bulkhead.free == 1)  # ... holding a slot of the server's bulkhead
            group.cancel_scope.cancel()
        assert bulkhead.free == 2 and not bulkhead.held, "every slot given back"
        assert (await tasks.list(Connection(), local)) == {"tasks": []}  # token 3
        body = await refused(lambda: tasks.list(connection, local))
        assert body["code"] == "rate_limited" and "tasks/list" in body["message"], body


async def test_resources_subscribe_is_charged_and_holds_a_slot_while_the_server_is_asked(tmp_path: Path) -> None:
    limits = {"rate_limit": {"per_principal": {"burst": 1, "per_second": 0.01}}}
    async with hung_hub(tmp_path, {"timeout_s": 2, "max_timeout_s": 2, **limits},
                        {"max_concurrency": 2, "max_queue": 0}) as hub:
        await hub.await_first_listing()
        local, bulkhead = hub.access.local, hub.bulkheads.bulkhead("h")
        async with anyio.create_task_group() as group:
            group.start_soon(hub.subscriptions.subscribe, Connection(), "mcphub://h/h://x", local)  # token 1; hangs
            await until(lambda: bulkhead.free == 1)
            group.cancel_scope.cancel()
        assert bulkhead.free == 2 and not bulkhead.held, "every slot given back"
        body = await refused(lambda: hub.subscriptions.subscribe(Connection(), "mcphub://h/h://x", local))
        assert body["code"] == "rate_limited" and "resources/subscribe" in body["message"], body
