"""The console's server actions on a real HTTP hub (outside review console round 7): Disable and Enable
take effect at once while tool search re-indexes (held here by a gated embedder for as long as the
test wants), a Restart of a disabled server is refused and audited so, and every answer says what
happened."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import Proc, echo_stdio, hub_command, write_config
from tests.hub.auth.test_security import create_key

pytestmark = pytest.mark.slow


@pytest.fixture
def hub(tmp_path: Path, procs: list) -> dict[str, Any]:
    """An HTTP hub in search mode with auth on and one stdio server `e`; its tool search embeds with
    `tests.fixtures.gated_embedder` (held while the file `gate` exists)."""
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, {"e": echo_stdio()}, hub={
        "data_dir": str(data_dir), "tools_mode": "search", "auth": {"enabled": True, "admin_for_destructive": False}})
    admin = create_key(data_dir, "ops-admin", "hub:admin")
    agent = create_key(data_dir, "agent-7", "*")
    gate = tmp_path / "gate"
    env = {"MCP_HUB_SEARCH_EMBEDDER": "tests.fixtures.gated_embedder:create", "GATED_EMBEDDER_GATE": str(gate),
           "MCP_HUB_CACHE_DIR": str(tmp_path / "cache")}  # no vector remembered from another test
    proc = Proc(hub_command(config, "--transport", "http", "--port", "0"), env=env)
    procs.append(proc)
    url = proc.wait_for_line(r"mcp-hub listening on (\S+)").group(1)
    return {"url": url, "base": url.removesuffix("/mcp"), "admin": admin, "agent": agent, "gate": gate}


def signed_in(base: str, key: str) -> tuple[httpx.Client, str]:
    """A console client signed in with `key`, and its session's CSRF token."""
    http = httpx.Client(base_url=base, timeout=60)
    token = re.search(r'name="csrf" value="([^"]+)"', http.get("/admin/login").text).group(1)  # type: ignore[union-attr]
    assert http.post("/admin/login", data={"key": key, "csrf": token}).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', http.get("/admin/servers").text).group(1)  # type: ignore[union-attr]
    return http, csrf


def row(http: httpx.Client, server: str) -> dict[str, str]:
    """Server `server` as the Servers page shows it: badge (health or `disabled`), state, last error."""
    page = http.get("/admin/servers").text
    cells = re.search(rf'data-server="{server}">.*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    badge, state = re.search(r'badge \w+">(\w+)</span><br><small>(\w+)', cells).groups()  # type: ignore[union-attr]
    error = re.search(r'class="err">(.*?)</td>', cells, re.S).group(1)  # type: ignore[union-attr]
    return {"badge": badge, "state": state, "error": error}


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for a state (bounded generously: a stdio server starts in seconds on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def mcp_calls(url: str, key: str, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    """Tool calls in order, by an MCP SDK client."""

    async def run() -> list[Any]:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
        async with Client(streamable_http_client(url, http_client=http)) as client:
            return [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(run)


def act(http: httpx.Client, csrf: str, server: str, verb: str) -> tuple[httpx.Response, str]:
    """POST an action; the answer and the notice or refusal the page then shows."""
    answer = http.post(f"/admin/servers/{server}/{verb}", data={"csrf": csrf})
    page = http.get("/admin/servers").text if answer.status_code == 303 else answer.text
    shown = re.search(r'role="(?:status|alert)">(.*?)</p>', page, re.S)
    return answer, shown.group(1) if shown else ""


def audit_outcomes(http: httpx.Client, verb: str, count: int) -> list[str]:
    """The outcomes of the `admin:<verb>` audit rows, newest first, once there are `count` (written in batches)."""
    found: list[str] = []

    def enough() -> bool:
        nonlocal found
        found = re.findall(r'<tr class="outcome-(\w+)', http.get("/admin/activity", params={"tool": f"admin:{verb}"}).text)
        return len(found) >= count

    wait_for(f"{count} admin:{verb} audit row(s)", enough, timeout=30)
    return found


def test_disable_and_enable_take_effect_at_once_while_search_reindexes(hub: dict[str, Any]) -> None:
    http, csrf = signed_in(hub["base"], hub["admin"])
    wait_for("e connected", lambda: row(http, "e")["badge"] == "connected")
    gate: Path = hub["gate"]
    waiting = Path(f"{gate}.waiting")
    # The index is built (nothing held), then `grow` announces a list change: its re-index is held.
    found, _ = mcp_calls(hub["url"], hub["agent"], ("search_tools", {"query": "echo text"}),
                         ("call_tool", {"name": "e__add", "arguments": {"a": 1, "b": 2}}))
    assert not found.is_error
    gate.touch()
    try:
        grown = mcp_calls(hub["url"], hub["agent"], ("call_tool", {"name": "e__grow", "arguments": {}}))[0]
        assert not grown.is_error, grown
        wait_for("the re-index to be held", waiting.exists)

        answer, notice = act(http, csrf, "e", "disable")
        assert answer.status_code == 303
        shown = row(http, "e")
        assert (shown["badge"], shown["state"]) == ("disabled", "stopped"), \
            "Disable is answered once the server has stopped, not after the re-index"
        assert notice.startswith("Done: disable e") and "stopped" in notice

        answer, notice = act(http, csrf, "e", "enable")
        assert answer.status_code == 303 and notice.startswith("Done: enable e") and "starting" in notice
        wait_for("e connected again", lambda: row(http, "e")["badge"] == "connected")
        assert waiting.exists(), "all of it happened while the re-index was still held"
    finally:
        gate.unlink(missing_ok=True)
    wait_for("the re-index to end", lambda: not waiting.exists())
    # Nothing from before lands late: the server stays as the last action left it.
    echoed = mcp_calls(hub["url"], hub["agent"], ("call_tool", {"name": "e__echo", "arguments": {"text": "still up"}}))[0]
    assert echoed.structured_content == {"result": "still up"}, echoed
    assert row(http, "e")["badge"] == "connected"
    # Enabling a running server changes nothing and says so.
    answer, notice = act(http, csrf, "e", "enable")
    assert answer.status_code == 303 and notice.startswith("Nothing to do: enable e")
    assert audit_outcomes(http, "disable", 1) == ["ok"] and audit_outcomes(http, "enable", 2) == ["ok", "ok"]


def test_restart_of_a_disabled_server_is_refused_and_keeps_its_last_error(hub: dict[str, Any]) -> None:
    http, csrf = signed_in(hub["base"], hub["admin"])
    wait_for("e connected", lambda: row(http, "e")["badge"] == "connected")
    # A real last error: the server's process exits, and the supervisor starts it again.
    crashed = mcp_calls(hub["url"], hub["agent"], ("call_tool", {"name": "e__crash", "arguments": {}}))[0]
    assert crashed.is_error
    wait_for("e connected again", lambda: row(http, "e")["badge"] == "connected")
    act(http, csrf, "e", "disable")
    wait_for("e stopped", lambda: row(http, "e")["state"] == "stopped")
    before = row(http, "e")
    assert before["badge"] == "disabled" and "exited" in before["error"]

    answer, alert = act(http, csrf, "e", "restart")
    assert answer.status_code == 409
    assert alert.startswith("Not done: restart e") and "Enable" in alert
    assert 'role="status"' not in answer.text, "no success notice beside the refusal"
    assert row(http, "e") == before, "nothing changed: still stopped, the last error kept"
    assert audit_outcomes(http, "restart", 1) == ["denied"]
    assert "conflict" in http.get("/admin/activity", params={"tool": "admin:restart"}).text

    # Enabled again, a Restart is done and says so.
    act(http, csrf, "e", "enable")
    wait_for("e connected once enabled", lambda: row(http, "e")["badge"] == "connected")
    answer, notice = act(http, csrf, "e", "restart")
    assert answer.status_code == 303 and notice.startswith("Done: restart e") and "reconnecting" in notice
    assert audit_outcomes(http, "restart", 2) == ["ok", "denied"]
