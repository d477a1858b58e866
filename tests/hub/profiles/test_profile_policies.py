"""Outside review policies17: a profile's calls meet the same policies as `/mcp`'s.

#1 a task-augmented `tools/call` on a profile is resolved as a plain call is (names outside it are
`not_found`, nothing created; its short names work; its tasks are seen on it only); #2 names a profile
refuses (made up, outside it) are audited `denied`, counted and charged to the rate limit, plainly and
through `call_tool`; #3 `search_tools` is charged and audited like a call. In-process hub, SDK clients
connected in memory to `build_server(hub, view)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from tests.conftest import error_body
from mcp import Client
from mcp.shared.exceptions import MCPError

from hub.audit.log import query
from hub.config import parse_config
from hub.frontends.server import build_server
from hub.hub import Hub
from hub.profiles import profile_view, short_name
from tests.hub.relay.test_relay_tasks import raw

pytestmark = pytest.mark.anyio

SERVERS = {"longtasks": {"module": "tests.fixtures.task_server:server", "protocol": "legacy"},
           "n": {"module": "tests.fixtures.subscribing_server:server", "protocol": "legacy"}}
PROFILES = {"only_n": {"namespaces": ["n"]}, "short_t": {"namespaces": ["longtasks"], "name_budget": 16},
            "all": {"tools_mode": "all"}, "srch": {"tools_mode": "search"}}
BURST = {"per_principal": {"burst": 3, "per_second": 0.001}}


def hub_of(tmp_path: Path, **hub: Any) -> Hub:
    return Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data"), **hub}, "mcpServers": SERVERS,
                             "profiles": PROFILES}))


@asynccontextmanager
async def client_of(hub: Hub, profile: str | None) -> AsyncIterator[Client]:
    view = profile_view(hub, profile) if profile is not None else None
    with anyio.fail_after(30):
        async with Client(build_server(hub, view), mode="legacy") as client:
            yield client


async def call(client: Client, name: str, arguments: dict[str, Any], task: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    return await raw(client, "tools/call", {**params, "task": {"ttl": 60_000}} if task else params)


def refusal(answer: dict[str, Any]) -> tuple[str, str] | None:
    """(code, message) of an `isError` answer, None for anything else."""
    if not answer.get("isError"):
        return None
    body = answer["structuredContent"]
    return body["code"], body["message"]


async def tasks_seen_downstream(hub: Hub) -> str:
    result = await hub.route_call("longtasks__tasks", {})
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_a_task_augmented_call_outside_the_profile_is_the_plain_calls_not_found(tmp_path: Path) -> None:
    async with hub_of(tmp_path) as hub:
        before = await tasks_seen_downstream(hub)
        async with client_of(hub, "only_n") as client:
            for name in ("longtasks__quick", "longtasks__research", "quick", "research"):  # hub-wide and the server's own names
                plain = refusal(await call(client, name, {"topic": "owls"}))
                tasked = await call(client, name, {"topic": "owls"}, task=True)
                assert "task" not in tasked, f"{name}: a task was created outside the profile"
                assert plain is not None and plain[0] == "not_found" and refusal(tasked) == plain, name
            assert (await raw(client, "tasks/list", {}))["tasks"] == []
        assert await tasks_seen_downstream(hub) == before, "nothing reached the tasks server"
    denied = query(tmp_path / "data", principal="local", outcome="denied")
    assert len(denied) == 8 and {r["tool"] for r in denied} == {"longtasks__quick", "longtasks__research", "quick", "research"}


async def test_a_profiles_short_names_take_task_augmented_calls_and_its_tasks_stay_on_it(tmp_path: Path) -> None:
    short = short_name("longtasks__research", 16)
    assert short != "longtasks__research"
    async with hub_of(tmp_path) as hub:
        async with client_of(hub, "short_t") as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert short in listed, "a task-only tool under the profile's short name is listed"
            created = await call(client, short, {"topic": "owls"}, task=True)
            exposed = created["task"]["taskId"]
            assert exposed.startswith("longtasks:")
            assert (await raw(client, "tasks/get", {"taskId": exposed}))["taskId"] == exposed
            assert [t["taskId"] for t in (await raw(client, "tasks/list", {}))["tasks"]] == [exposed]
            assert refusal(await call(client, "longtasks__research", {"topic": "owls"}, task=True))[0] == "not_found", \
                "the hub-wide name is not the profile's"

        class Connection:
            """Stands for one client connection (tasks belong to one)."""

        relay, connection, local = hub.request_relay.tasks, Connection(), hub.access.local
        view = profile_view(hub, "short_t")
        made = await relay.call(connection, local, "longtasks__research", {"topic": "owls"}, {"ttl": 60_000}, view=view)
        task_id = made["task"]["taskId"]
        assert (await relay.forward(connection, local, "tasks/get", task_id, view=view))["taskId"] == task_id
        for other in (None, profile_view(hub, "all")):  # another face than the one it was created on
            with pytest.raises(MCPError) as refused:
                await relay.forward(connection, local, "tasks/get", task_id, view=other)
            assert refused.value.code == types.INVALID_PARAMS and "task not found" in refused.value.error.message
            assert (await relay.list(connection, local, other))["tasks"] == []


@pytest.mark.parametrize("profile", ["all", "only_n", "srch"])
async def test_names_a_profile_refuses_are_audited_counted_and_charged(tmp_path: Path, profile: str) -> None:
    async with hub_of(tmp_path, rate_limit=BURST) as hub:
        async with client_of(hub, profile) as client:
            probes = ["nosuch__name0", "longtasks__quick" if profile == "only_n" else "nosuch__name1", "nosuch__name2"]
            for name in probes:
                if profile == "srch":
                    answer = await client.call_tool("call_tool", {"name": name, "arguments": {}})
                else:
                    answer = await client.call_tool(name, {})
                assert answer.is_error and error_body(answer)["code"] == "not_found", (name, answer)
            after = await client.call_tool("n__subscribed", {})
            assert after.is_error and error_body(after)["code"] == "rate_limited", "the probes cost tokens"
        metrics = hub.metrics.render().decode()
        assert 'mcp_hub_calls_total{outcome="denied",server="",tool="_unknown"} 3.0' in metrics
    rows = query(tmp_path / "data", principal="local")
    assert [(r["outcome"], r["error_code"]) for r in rows] == [("denied", "not_found")] * 3 + [("error", "rate_limited")]


async def test_search_tools_is_charged_and_audited_like_a_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_SEARCH_EMBEDDER", "none")
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    async with hub_of(tmp_path, rate_limit=BURST) as hub:
        async with client_of(hub, "srch") as client:
            bad = await client.call_tool("search_tools", {"query": "owls", "lmit": 2})  # audited, not charged
            assert bad.is_error and error_body(bad)["code"] == "invalid_argument"
            nameless = await client.call_tool("call_tool", {"arguments": {}})
            assert nameless.is_error and error_body(nameless)["code"] == "invalid_argument"
            answers = [await client.call_tool("search_tools", {"query": "research owls secretly"}) for _ in range(5)]
            codes = [error_body(a).get("code") if a.is_error else "ok" for a in answers]
            assert codes == ["ok"] * 3 + ["rate_limited"] * 2
            assert all(a.meta and a.meta.get("mcp-hub/request_id") for a in answers)
        metrics = hub.metrics.render().decode()
        assert 'mcp_hub_calls_total{outcome="ok",server="",tool="search_tools"} 3.0' in metrics
        assert 'mcp_hub_rate_limited_total{tool="search_tools"} 2.0' in metrics
    rows = query(tmp_path / "data", principal="local")
    assert [(r["tool"], r["server"], r["outcome"], r["error_code"]) for r in rows] == [
        ("search_tools", None, "error", "invalid_argument"), ("call_tool", None, "error", "invalid_argument"),
        *[("search_tools", None, "ok", None)] * 3, *[("search_tools", None, "error", "rate_limited")] * 2]
    assert all("secretly" not in (r["args"] or "") and "owls" not in (r["args"] or "") for r in rows), \
        "the query's words are redacted as any argument value"
