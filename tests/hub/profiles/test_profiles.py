"""Profiles (issue #20 item 3): named views over the catalog at `/mcp/<profile>` and `serve --profile`.

Real hub processes and the SDK client: listing per profile over HTTP (both protocol eras) and stdio,
the read-only filter, `max_tools`, the name budget (short names listed and callable), tools outside
the profile refused exactly like unknown ones, keys pinned to profiles refused elsewhere (403), search
ranking only the profile's tools (meta-tool and CLI), unknown profile names listing the defined ones.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import PY, ROOT, start_hub_http, write_config, error_body

pytestmark = pytest.mark.anyio

EMBEDDER = "tests.fixtures.word_embedder:create"
SERVERS = {"desk": {"module": "tests.fixtures.search_catalog:desk"},
           "rooms": {"module": "tests.fixtures.search_catalog:rooms"}}
PROFILES = {
    "reader": {"read_only": True},
    "desk": {"namespaces": ["desk"], "exclude": ["desk__grow"], "name_budget": 16, "tools_mode": "search"},
    "tiny": {"include": ["rooms__*", "desk__get_*"], "max_tools": 2},
}
ENV = {"MCP_HUB_SEARCH_EMBEDDER": EMBEDDER}


def config_file(tmp_path: Path, hub: dict[str, Any] | None = None) -> Path:
    path = write_config(tmp_path, SERVERS, hub)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "profiles": PROFILES}))
    return path


def env(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "MCP_HUB_DATA_DIR": str(tmp_path), "MCP_HUB_CACHE_DIR": str(tmp_path / "cache"),
            "PATH": "/usr/bin:/bin", **ENV}


async def outcome(client: Client, name: str, arguments: dict[str, Any]) -> str:
    """`ok`, or how the call was refused with the name masked (a JSON-RPC error, or the isError code and text)."""
    try:
        result = await client.call_tool(name, arguments)
    except MCPError as exc:
        return f"{exc.code}: {exc.message.replace(name, 'X')}"
    if not result.is_error:
        return "ok"
    return f"{result.structured_content['code']}: {result.structured_content['message'].replace(name, 'X')}"


def authed(url: str, token: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"}
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)))


async def test_http_profiles_list_and_call_only_their_tools_in_both_eras(tmp_path: Path, procs: list[Any],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_SEARCH_EMBEDDER", EMBEDDER)
    url = start_hub_http(procs, config_file(tmp_path))
    for mode in ("legacy", "auto"):
        async with Client(url, mode=mode) as client:
            assert len((await client.list_tools()).tools) == 6, "plain /mcp is the whole catalog"
        async with Client(f"{url}/reader", mode=mode) as client:
            listed = (await client.list_tools()).tools
            assert [t.name for t in listed] == ["desk__get_ticket", "desk__search_tickets", "rooms__list_rooms"]
            assert all(t.annotations and t.annotations.read_only_hint for t in listed)
            assert await outcome(client, "desk__get_ticket", {"ticket_id": "T-3"}) == "ok"
            outside = await outcome(client, "desk__delete_ticket", {"ticket_id": "T-3"})
            assert outside.startswith("not_found") and outside == await outcome(client, "desk__nope", {}), \
                "a tool outside the profile reads exactly like one that does not exist"
        async with Client(f"{url}/tiny", mode=mode) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["desk__get_ticket", "rooms__book_room"]
    async with httpx.AsyncClient() as http:
        missing = await http.post(f"{url}/nope", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert missing.status_code == 404
    assert "unknown profile 'nope'; defined profiles: desk, reader, tiny" in missing.json()["error_description"]


async def test_name_budget_search_mode_and_search_within_profile_over_stdio(tmp_path: Path) -> None:
    params = StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--config", str(config_file(tmp_path)),
                                                     "--profile", "desk", "--log-level", "warning"],
                                   env=env(tmp_path), cwd=str(ROOT))
    async with Client(params, mode="legacy") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["search_tools", "call_tool"]
        found = (await client.call_tool("search_tools", {"query": "reserve a meeting room for a ticket", "limit": 10}))
        names = [t["name"] for t in found.structured_content["tools"]]
        assert len(names) == 3 and all(len(n) <= 16 for n in names) and len(set(names)) == 3
        assert not any(n.startswith("rooms") for n in names), "search ranks only the profile's tools"
        assert "desk__get_ticket" in names, "a name within the budget is kept"
        relisted = [t.name for t in (await client.list_tools()).tools]
        assert set(relisted[2:]) == set(names)
        from hub.profiles import short_name

        short = next(n for n in names if n.startswith("desk__s"))
        assert short == short_name("desk__search_tickets", 16)
        direct = await client.call_tool(short, {"text": "printer"})
        assert direct.is_error is False and direct.structured_content == {"ids": ["T-7"]}
        via = await client.call_tool("call_tool", {"name": short, "arguments": {"text": "printer"}})
        assert via.structured_content == direct.structured_content
        for name in ("desk__search_tickets", "rooms__book_room", "desk__nope"):
            refused = await client.call_tool("call_tool", {"name": name, "arguments": {}})
            assert error_body(refused)["code"] == "not_found"
            assert error_body(refused)["message"].replace(name, "X") == \
                "no tool named 'X' that you may call; find tools with search_tools and pass a name it returned"
        outside = await outcome(client, "rooms__book_room", {"room": "Ada", "start": "9"})
        assert outside.startswith("not_found") and outside == await outcome(client, "rooms__nope", {})
    bad = subprocess.run([PY, "-m", "hub.cli", "serve", "--config", str(config_file(tmp_path)), "--profile", "nope"],
                         capture_output=True, text=True, env=env(tmp_path), cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "unknown profile 'nope'; defined profiles: desk, reader, tiny" in bad.stderr


async def test_keys_pinned_to_a_profile_are_refused_elsewhere(tmp_path: Path, procs: list[Any]) -> None:
    data_dir = tmp_path / "hub"
    config = config_file(tmp_path, hub={"data_dir": str(data_dir), "auth": {"enabled": True}})

    def key(name: str, scopes: str) -> str:
        done = subprocess.run([PY, "-m", "hub.cli", "keys", "create", "--data-dir", str(data_dir), "--name", name,
                               "--scopes", scopes], capture_output=True, text=True, cwd=ROOT, check=True)
        return done.stdout.strip()

    pinned, free = key("cursor", "* profile:reader"), key("ops", "*")
    url = start_hub_http(procs, config)
    async with authed(f"{url}/reader", pinned) as client:
        assert len((await client.list_tools()).tools) == 3
    async with httpx.AsyncClient() as http:
        for where in (url, f"{url}/desk"):
            refused = await http.post(where, headers={"Authorization": f"Bearer {pinned}", "Accept":
                                                      "application/json, text/event-stream"},
                                      json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert refused.status_code == 403, (where, refused.text)
            assert "pinned to /mcp/reader" in refused.json()["error_description"]
    for where in (url, f"{url}/desk"):
        async with authed(where, free) as client:
            assert (await client.list_tools()).tools, "an unpinned key may use every profile"


def test_cli_search_ranks_within_the_profile(tmp_path: Path) -> None:
    config = config_file(tmp_path)

    def search(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, "-m", "hub.cli", "tools", "search", "delete a ticket", "--config", str(config),
                               "--json", *extra], capture_output=True, text=True, env=env(tmp_path), cwd=ROOT, timeout=120)

    reader = search("--profile", "reader")  # (without --profile desk__delete_ticket ranks first: test_tool_search)
    assert reader.returncode == 0, reader.stderr
    names = [r["name"] for r in json.loads(reader.stdout)]
    assert set(names) == {"desk__get_ticket", "desk__search_tickets", "rooms__list_rooms"}
    unknown = search("--profile", "nope")
    assert unknown.returncode == 2 and "defined profiles: desk, reader, tiny" in unknown.stderr


@settings(max_examples=40, deadline=None)
@given(st.lists(st.from_regex(r"[a-z]{1,6}__[a-z_]{1,70}", fullmatch=True), min_size=1, max_size=20, unique=True),
       st.integers(min_value=16, max_value=64))
def test_short_names_fit_the_budget_and_are_stable(names: list[str], budget: int) -> None:
    from hub.profiles import short_name

    shortened = [short_name(n, budget) for n in names]
    assert all(len(s) <= budget for s in shortened)
    assert shortened == [short_name(n, budget) for n in names], "deterministic"
    assert all(s == n for s, n in zip(shortened, names) if len(n) <= budget)
