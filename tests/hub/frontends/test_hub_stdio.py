"""The hub as a real subprocess over stdio, aggregating real subprocess servers."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import PY, ROOT, echo_stdio, processes_with, write_config, error_body

pytestmark = pytest.mark.anyio
ANTHROPIC = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def hub_params(config: Path, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=PY,
        args=["-m", "hub.cli", "serve", "--config", str(config), "--log-level", "warning"],
        env={"PYTHONPATH": str(ROOT), **(env or {})},
        cwd=str(ROOT),
    )


async def all_tools(client: Client) -> list[str]:
    names: list[str] = []
    cursor = None
    while True:
        page = await client.list_tools(cursor=cursor)
        names += [t.name for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return names


async def test_aggregates_namespaces_and_routes(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {
            "alpha": echo_stdio("--name", "alpha"),
            "beta": echo_stdio("--name", "beta", namespace="b", tools={"deny": ["crash", "grow"]}),
            "ro": echo_stdio("--name", "ro", read_only=True),
            "broken": {"command": PY, "args": ["-c", "import sys; sys.exit(4)"]},
            "garbage": echo_stdio("--garbage", "--name", "garbage"),
            "missing": {"command": "definitely-not-a-command-xyz"},
        },
    )
    async with Client(hub_params(config)) as client:
        names = await all_tools(client)
        assert names == sorted(names), "tools/list must be in a deterministic (sorted) order"
        assert all(ANTHROPIC.match(n) for n in names)
        assert "alpha__echo" in names and "b__echo" in names and "garbage__echo" in names
        assert "b__crash" not in names and "b__grow" not in names
        assert [n for n in names if n.startswith("ro__")] == ["ro__add", "ro__flaky_read"]
        assert not any(n.startswith(("broken__", "missing__")) for n in names)

        tools = {t.name: t for t in (await client.list_tools()).tools}
        add = tools["alpha__add"]
        assert add.description == "Add two integers."
        assert add.annotations is not None and add.annotations.read_only_hint is True
        assert add.input_schema["properties"]["a"]["type"] == "integer"
        assert add.output_schema is not None and "total" in add.output_schema["properties"]

        result = await client.call_tool("b__add", {"a": 2, "b": 40})
        assert result.is_error is False and result.structured_content == {"total": 42}

        failed = await client.call_tool("alpha__fail", {"reason": "x"})
        assert failed.is_error is True
        assert "failed on purpose: x" in failed.content[0].text  # the downstream's own tool error, unchanged

        dotted = [n for n in names if n.startswith("alpha__get_thing_")]
        assert len(dotted) == 1
        assert (await client.call_tool(dotted[0], {})).structured_content == {"result": "thing"}
        long_name = [n for n in names if n.startswith("alpha__xxx")][0]
        assert len(long_name) <= 64
        assert (await client.call_tool(long_name, {})).structured_content == {"result": "long"}


async def test_bad_arguments_and_unknown_tools(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio(tools={"deny": ["fail"]})})
    async with Client(hub_params(config)) as client:
        bad = await client.call_tool("e__add", {"a": "one", "b": 2})
        assert bad.is_error is True
        assert error_body(bad)["code"] == "invalid_argument"
        assert error_body(bad)["details"]["errors"][0]["field"] == "a"
        missing = await client.call_tool("e__add", {"a": 1})
        assert error_body(missing)["code"] == "invalid_argument" and "'b'" in error_body(missing)["message"]

        # unknown, filtered, and the same two by their server's own names: one not_found answer (a server's
        # own name reaches only a tool the hub exposes: MCP Apps call by it, `hub.own_names`)
        for name in ("e__nope", "e__fail", "nope", "fail"):
            unknown = await client.call_tool(name, {})
            assert unknown.is_error and error_body(unknown)["code"] == "not_found"
            assert error_body(unknown)["details"] == {"tool": name}
        assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {"total": 3}
        # The hub keeps serving after all of that.
        assert (await client.call_tool("e__echo", {"text": "still here"})).structured_content == {"result": "still here"}


async def test_child_env_is_its_own(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio(env={"CONFIGURED": "${HUB_TEST_VALUE}"})})
    async with Client(hub_params(config, {"HUB_TEST_VALUE": "v", "HUB_ONLY_SECRET": "s3cret"})) as client:
        has = lambda n: client.call_tool("e__env_has", {"name": n})  # noqa: E731
        assert (await has("CONFIGURED")).structured_content == {"result": True}
        assert (await has("HUB_ONLY_SECRET")).structured_content == {"result": False}


async def test_progress_resources_and_prompts(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio(), "plain": echo_stdio("--name", "plain", namespace="")})
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(hub_params(config)) as client:
        result = await client.call_tool("e__slow", {"seconds": 0.2, "steps": 3}, progress_callback=on_progress)
        assert result.structured_content == {"result": "done"}
        assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]

        uris = sorted(r.uri for r in (await client.list_resources()).resources)
        assert uris == ["fixture://readme", "mcphub://e/fixture://readme"]
        read = await client.read_resource("mcphub://e/fixture://readme")
        assert read.contents[0].text == "readme of echo" and read.contents[0].uri == "mcphub://e/fixture://readme"
        assert (await client.read_resource("fixture://readme")).contents[0].text == "readme of plain"
        templates = sorted(t.uri_template for t in (await client.list_resource_templates()).resource_templates)
        assert "mcphub://e/fixture://items/{item}" in templates
        item = await client.read_resource("mcphub://e/fixture://items/7")
        assert item.contents[0].text == "item 7"
        with pytest.raises(MCPError) as caught:
            await client.read_resource("mcphub://nobody/x://y")
        assert caught.value.code == -32002

        prompts = sorted(p.name for p in (await client.list_prompts()).prompts)
        assert prompts == ["e__greet", "greet"]
        got = await client.get_prompt("e__greet", {"who": "Ada"})
        assert got.messages[0].content.text == "Hello, Ada!"


async def test_pagination_both_sides(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"many": echo_stdio("--many", "230")}, hub={"page_size": 50})
    async with Client(hub_params(config)) as client:
        first = await client.list_tools()
        assert len(first.tools) == 50 and first.next_cursor
        names = await all_tools(client)
        assert len(names) == len(set(names)) == 230 + 15  # 15 fixture tools
        with pytest.raises(MCPError) as caught:
            await client.list_tools(cursor="not-a-cursor")
        assert caught.value.code == -32602


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_list_change_reaches_clients_of_both_eras(tmp_path: Path, mode: str) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if type(message).__name__ == "ToolListChangedNotification":
            changed.set()

    async with Client(hub_params(config), mode=mode, message_handler=on_message) as client:
        assert "e__extra" not in await all_tools(client)
        if mode == "legacy":
            await client.call_tool("e__grow", {})
            with anyio.fail_after(10):
                await changed.wait()
        else:
            assert client.protocol_version == "2026-07-28"
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("e__grow", {})
                with anyio.fail_after(10):
                    await subscription.__anext__()
        assert "e__extra" in await all_tools(client)
        assert (await client.call_tool("e__extra", {})).content[0].text == "extra!"


async def test_timeout_and_cancellation_reach_the_downstream(tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    config = write_config(
        tmp_path,
        {
            "e": echo_stdio(env={"FIXTURE_CANCEL_MARKER": str(marker)}),
            "fast": echo_stdio("--name", "fast", timeout_s=0.5, env={"FIXTURE_CANCEL_MARKER": str(marker) + "2"}),
        },
    )
    async with Client(hub_params(config)) as client:
        await all_tools(client)  # the hub answers before its servers are up: time the call, not their start
        started = time.monotonic()
        timed_out = await client.call_tool("fast__slow", {"seconds": 5})
        assert time.monotonic() - started < 4  # timeout_s is 0.5 s: well before the 5 s call would end
        assert timed_out.is_error and error_body(timed_out)["code"] == "timeout"
        # a write with no idempotency key, sent and then timed out: its outcome is unknown (faults19 #1)
        assert error_body(timed_out)["retryable"] is False
        assert error_body(timed_out)["details"]["outcome"] == "unknown"
        with anyio.fail_after(5):
            while not Path(str(marker) + "2").exists():
                await anyio.sleep(0.05)

        with anyio.move_on_after(0.6):
            await client.call_tool("e__slow", {"seconds": 10})
        with anyio.fail_after(5):
            while not marker.exists():
                await anyio.sleep(0.05)
        assert (await client.call_tool("e__echo", {"text": "ok"})).structured_content == {"result": "ok"}


async def test_crashed_child_fails_fast(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio(), "other": echo_stdio("--name", "other")})
    async with Client(hub_params(config)) as client:
        crashed = await client.call_tool("e__crash", {})
        assert crashed.is_error and error_body(crashed)["code"] == "unavailable"
        started = time.monotonic()
        again = await client.call_tool("e__echo", {"text": "x"})
        assert error_body(again)["code"] == "unavailable" and "exited with code 7" in error_body(again)["message"]
        # Fail fast = no wait for a restart or a reconnect (connect_timeout_s is 20 s); the bound is
        # generous because a round trip through two processes can take a second on a loaded 2-core machine.
        assert time.monotonic() - started < 5
        assert (await client.call_tool("other__echo", {"text": "y"})).structured_content == {"result": "y"}


def _children_with(marker: str) -> list[int]:
    return processes_with(marker)


@pytest.mark.parametrize("how", ["stdin-closed", "sigterm", "sigint", "sigkill"])
def test_no_orphan_children(tmp_path: Path, how: str) -> None:
    import subprocess

    marker = f"orphan-check-{how}-{os.getpid()}"
    config = write_config(tmp_path, {"a": echo_stdio("--name", marker), "b": echo_stdio("--name", marker + "b")})
    log = (tmp_path / "hub.log").open("w")
    # stdout to /dev/null, not a pipe: the stop must still be the clean one, not the watchdog's.
    hub = subprocess.Popen(
        [PY, "-m", "hub.cli", "serve", "--config", str(config)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT,
    )
    try:
        # A state wait with a generous bound: starting the hub and two Python servers (each importing
        # the SDK) took over 20 s on a 2-core machine under load; when they are up sooner, no time is lost.
        deadline = time.monotonic() + 60
        while len(_children_with(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_children_with(marker)) == 2, "the hub never started both servers"
        if how == "stdin-closed":
            hub.stdin.close()
        else:
            hub.send_signal({"sigterm": signal.SIGTERM, "sigint": signal.SIGINT, "sigkill": signal.SIGKILL}[how])
        hub.wait(15)
        deadline = time.monotonic() + 10
        while _children_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _children_with(marker) == []
        assert "forcing the exit" not in (tmp_path / "hub.log").read_text()
    finally:
        log.close()
        if hub.poll() is None:
            hub.kill()
        for pid in _children_with(marker):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("how", ["stdin-closed", "sigterm"])
def test_a_helper_that_left_its_servers_group_does_not_outlive_the_hub(tmp_path: Path, how: str) -> None:
    """A stdio server whose helper `setsid`s away from its process group and ignores SIGTERM (a
    daemon): the hub, the helper's subreaper, kills it on the way out."""
    import subprocess

    marker = f"setsid-helper-{how}-{os.getpid()}"
    helper = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    server = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
              "start_new_session=True); time.sleep(300)")
    config = write_config(tmp_path, {"d": {"command": PY, "args": ["-c", server, helper, marker]}})
    hub = subprocess.Popen([PY, "-m", "hub.cli", "serve", "--config", str(config)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while len(_children_with(marker)) < 2 and time.monotonic() < deadline:  # the server and its helper
            time.sleep(0.05)
        assert len(_children_with(marker)) == 2
        assert hub.stdin is not None
        if how == "stdin-closed":
            hub.stdin.close()
        else:
            hub.send_signal(signal.SIGTERM)
        hub.wait(60)
        deadline = time.monotonic() + 15
        while _children_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _children_with(marker) == []
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
        for pid in _children_with(marker):
            os.kill(pid, signal.SIGKILL)


async def test_stdio_identity_from_env(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    async with Client(hub_params(config, {"MCP_HUB_PRINCIPAL": "desk", "MCP_HUB_SCOPES": "e:read"})) as client:
        assert sorted(await all_tools(client)) == ["e__add", "e__flaky_read"]
        hidden = await client.call_tool("e__echo", {"text": "x"})  # out of its scopes: answered as unknown
        assert hidden.is_error and error_body(hidden)["code"] == "not_found"
