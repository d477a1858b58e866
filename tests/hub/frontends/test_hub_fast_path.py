"""The hub's `tools/call` fast path on stdio (`hub.frontends.stdio.stdio_calls` + `JsonChannel`): it must answer
exactly like the SDK path, keep every policy, and honour cancellation on the wire."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import PY, ROOT, echo_stdio, start_hub_http, write_config, error_body
from tests.hub.frontends.test_hub_stdio import hub_params

pytestmark = pytest.mark.anyio
REQUEST_ID = "mcp-hub/request_id"


def hub_config(tmp_path: Path, fast: bool) -> Path:
    folder = tmp_path / ("fast" if fast else "sdk")
    folder.mkdir()
    servers = {"e": echo_stdio(), "math": {"module": "tests.fixtures.inproc_server:server"}, "hris": {"builtin": "hris"}}
    return write_config(folder, servers, hub={"fast_calls": fast, "data_dir": str(folder / "data")})


async def session_transcript(config: Path | str, mode: str) -> list[Any]:
    """Every answer a client gets for one fixed sequence of calls, with the per-call request id
    checked and removed."""
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    out: list[Any] = []
    async with Client(hub_params(config) if isinstance(config, Path) else config, mode=mode) as client:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("e__echo", {"text": "héllo ✓"}),
            ("e__add", {"a": 2, "b": 40}),
            ("e__add", {"a": "two", "b": 40}),  # refused by the hub's argument check
            ("e__fail", {"reason": "bad day"}),  # an isError result from the server
            ("e__flaky_read", {"key": "k", "failures": 1}),  # rate limited once, retried by the hub
            ("e__env_has", {"name": "PATH"}),
            ("math__multiply", {"a": 6, "b": 7}),  # in-process servers relay JSON too
            ("math__multiply", {"a": 6}),
            ("math__divide", {"a": 1, "b": 0}),  # a ToolError from an in-process tool
            ("math__root", {"x": -1}),  # an in-process tool crashing
            ("hris__list_departments", {}),
            ("hris__get_employee", {"ref": "nobody"}),
        ]
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            meta = dict(result.meta or {})
            request_id = meta.pop(REQUEST_ID)
            assert isinstance(request_id, str) and len(request_id) == 32
            out.append(result.model_copy(update={"meta": meta or None}).model_dump(mode="json"))
        slow = await client.call_tool("e__slow", {"seconds": 0.1, "steps": 2}, progress_callback=on_progress)
        out.append(slow.structured_content)
        out.append(list(progress))
        counted = await client.call_tool("math__count", {"n": 2}, progress_callback=on_progress)
        out.append((counted.structured_content, progress[-2:]))
        for name in ("e__nope", "nope"):
            unknown = await client.call_tool(name, {})
            out.append((unknown.is_error, error_body(unknown)["code"], error_body(unknown)["details"]))
        out.append(json.loads((await client.call_tool("e__request_id", {})).structured_content["result"]))
    return out


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_fast_path_answers_like_the_sdk_path(tmp_path: Path, mode: str) -> None:
    fast = await session_transcript(hub_config(tmp_path, True), mode)
    sdk = await session_transcript(hub_config(tmp_path, False), mode)
    # The last entry is the id the downstream saw: the fast path sends its own string ids.
    fast_id, sdk_id = fast.pop(), sdk.pop()
    assert isinstance(fast_id, str) and fast_id.startswith("hub-")
    assert str(sdk_id).isdigit()  # the SDK session numbers its requests
    assert fast == sdk
    assert fast[0]["structured_content"] == {"result": "héllo ✓"}
    assert fast[2]["structured_content"] is None and json.loads(fast[2]["content"][0]["text"])["code"] == "invalid_argument"
    assert fast[3]["is_error"] is True and "bad day" in fast[3]["content"][0]["text"]
    assert fast[4]["is_error"] is False  # the retry policy ran on the fast path
    assert fast[6]["structured_content"] == {"result": 42.0}
    assert fast[8]["is_error"] and fast[8]["content"][0]["text"] == "Error executing tool divide: cannot divide by zero"
    assert fast[9]["is_error"] and fast[9]["content"][0]["text"] == "Error executing tool root"
    assert "departments" in fast[10]["structured_content"] and fast[11]["structured_content"]["code"] == "not_found"
    assert fast[-4] == [(1, 2, "step 1"), (2, 2, "step 2")]
    assert fast[-3] == ({"result": 2}, [(1, 2, None), (2, 2, None)])
    assert fast[-2:] == [(True, "not_found", {"tool": "e__nope"}), (True, "not_found", {"tool": "nope"})]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_json_relay_answers_http_clients_like_the_sdk_path(tmp_path: Path, procs: list, mode: str) -> None:
    """Over HTTP the hub hands the SDK's server the relayed JSON as a dict: same answers again."""
    fast = await session_transcript(start_hub_http(procs, hub_config(tmp_path, True)), mode)
    sdk = await session_transcript(start_hub_http(procs, hub_config(tmp_path, False)), mode)
    fast_id, sdk_id = fast.pop(), sdk.pop()
    assert fast_id.startswith("hub-") and str(sdk_id).isdigit()
    assert fast == sdk
    assert fast[6]["structured_content"] == {"result": 42.0}


class RawClient:
    """A client that writes JSON-RPC lines itself, to see exactly what the hub answers."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.buffer = b""

    @classmethod
    async def initialized(cls, process: Any) -> RawClient:
        """A client on `process` that has done the 2025-11-25 handshake."""
        client = cls(process)
        await client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        with anyio.fail_after(20):
            assert (await client.receive())["id"] == 1
        await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        # `initialize` is answered before the servers connect; the first tools/list waits for them
        # (hub.list_wait_s), so after it every server of the test is up.
        await client.send({"jsonrpc": "2.0", "id": "ready", "method": "tools/list"})
        with anyio.fail_after(40):
            assert (await client.receive())["id"] == "ready"
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def close(self) -> None:
        """Close the hub's stdin and wait for it to exit."""
        await self.process.stdin.aclose()
        with anyio.fail_after(15):
            await self.process.wait()

    async def receive(self) -> dict[str, Any]:
        """The next answer (notifications such as list_changed, which carry no id, are skipped)."""
        while True:
            while b"\n" not in self.buffer:
                self.buffer += await self.process.stdout.receive()
            line, self.buffer = self.buffer.split(b"\n", 1)
            message = json.loads(line)
            if "id" in message:
                return message  # type: ignore[no-any-return]


def audit_outcomes(tmp_path: Path) -> dict[str, str]:
    """`outcome/error_code` per tool from the hub's audit log in `tmp_path/data`."""
    with sqlite3.connect(tmp_path / "data" / "audit.sqlite") as db:
        return dict(db.execute("SELECT tool, outcome || '/' || coalesce(error_code, '') FROM audit").fetchall())


async def test_cancelled_call_gets_no_answer_and_reaches_downstream_and_audit(tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    config = write_config(tmp_path, {"e": echo_stdio(env={"FIXTURE_CANCEL_MARKER": str(marker)})},
                          hub={"data_dir": str(tmp_path / "data")})
    params = hub_params(config)
    async with await anyio.open_process([PY, *params.args], env={**params.env}, cwd=str(ROOT)) as process:
        client = await RawClient.initialized(process)
        await client.send({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "e__slow", "arguments": {"seconds": 10}}})
        await anyio.sleep(0.3)
        await client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow"}})
        await client.send({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "e__echo", "arguments": {"text": "x"}}})
        with anyio.fail_after(10):
            answer = await client.receive()
        assert answer["id"] == 7 and answer["result"]["structuredContent"] == {"result": "x"}
        assert "resultType" not in answer["result"]  # a 2025-11-25 session gets the 2025-11-25 shape
        with anyio.fail_after(5):
            while not marker.exists():
                await anyio.sleep(0.05)
        # Nothing more is said about the cancelled call.
        with anyio.move_on_after(0.5):
            extra = await client.receive()
            pytest.fail(f"unexpected answer after cancellation: {extra}")
        await client.close()
    assert audit_outcomes(tmp_path) == {"e__slow": "cancelled/", "e__echo": "ok/"}


async def test_a_call_line_that_also_holds_error_or_result_is_still_answered(tmp_path: Path) -> None:
    """The stdio front answers such a line as it always did (the HTTP front's check for them, which
    leaves them to the SDK there, once left stdio clients waiting for an answer that never came)."""
    config = write_config(tmp_path, {"e": echo_stdio()}, hub={"data_dir": str(tmp_path / "data")})
    params = hub_params(config)
    async with await anyio.open_process([PY, *params.args], env={**params.env}, cwd=str(ROOT)) as process:
        client = await RawClient.initialized(process)
        call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "e__add", "arguments": {"a": 1, "b": 2}}}
        await client.send({**call, "id": 1, "error": {"code": 1, "message": "x"}})
        await client.send({**call, "id": 2, "result": {}, "error": {"code": 1, "message": "x"}})
        answers: dict[int, dict[str, Any]] = {}
        with anyio.fail_after(20):
            while len(answers) < 2:
                answer = await client.receive()
                answers[answer["id"]] = answer
        assert all(a["result"]["structuredContent"] == {"total": 3} for a in answers.values()), answers
        await client.close()


async def test_malformed_calls_get_the_sdks_answers_and_the_hub_carries_on(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()}, hub={"data_dir": str(tmp_path / "data")})
    params = hub_params(config)
    async with await anyio.open_process([PY, *params.args], env={**params.env}, cwd=str(ROOT)) as process:
        client = RawClient(process)
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}
        odd = [
            {"name": "e__echo", "arguments": [1, 2], "_meta": meta},  # arguments must be an object
            {"name": ["e__echo"], "arguments": {}, "_meta": meta},
            {"name": "e__echo", "arguments": {"text": "x"}, "_meta": {**meta, "io.modelcontextprotocol/protocolVersion": ["2026-07-28"]}},
            {"name": "e__echo", "arguments": {"text": "x"}, "_meta": {**meta, "progressToken": {"not": "a token"}}},
        ]
        for number, call_params in enumerate(odd, start=1):
            await client.send({"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": call_params})
        await client.send({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "e__echo", "arguments": {"text": "ok"}, "_meta": meta}})
        answers: dict[int, dict[str, Any]] = {}
        with anyio.fail_after(20):
            while len(answers) < len(odd) + 1:
                answer = await client.receive()
                answers[answer["id"]] = answer
        for number in range(1, len(odd) + 1):
            answer = answers[number]
            assert "error" in answer or answer["result"].get("isError"), answer
        assert answers[99]["result"]["structuredContent"] == {"result": "ok"}
        await client.close()


async def test_express_call_past_its_deadline_is_answered_with_timeout_on_the_wire(tmp_path: Path) -> None:
    """A call the express path sent (no task, no cancel scope) still times out: the shared deadline
    timer hands it to the chain, which cancels it downstream and answers `timeout`."""
    marker = tmp_path / "cancelled"
    config = write_config(tmp_path, {"e": echo_stdio(env={"FIXTURE_CANCEL_MARKER": str(marker)},
                                                     tool_overrides={"slow": {"timeout_s": 0.4}})},
                          hub={"data_dir": str(tmp_path / "data")})
    params = hub_params(config)
    async with await anyio.open_process([PY, *params.args], env={**params.env}, cwd=str(ROOT)) as process:
        client = await RawClient.initialized(process)
        # One progress report at the start, then 10 s of silence: the 0.4 s idle deadline ends it.
        await client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "e__slow", "arguments": {"seconds": 10, "steps": 1}}})
        await client.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "e__echo", "arguments": {"text": "meanwhile"}}})
        answers: dict[int, dict[str, Any]] = {}
        with anyio.fail_after(5):
            while len(answers) < 2:
                answer = await client.receive()
                answers[answer["id"]] = answer
        assert answers[3]["result"]["structuredContent"] == {"result": "meanwhile"}
        timed_out = answers[2]["result"]
        assert timed_out["isError"] is True and json.loads(timed_out["content"][0]["text"])["code"] == "timeout"
        assert "structuredContent" not in timed_out, "the tool declares an outputSchema the error does not fit"
        with anyio.fail_after(5):
            while not marker.exists():  # the server heard the call was abandoned
                await anyio.sleep(0.05)
        await client.close()
    assert audit_outcomes(tmp_path) == {"e__slow": "error/timeout", "e__echo": "ok/"}


@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_handshake_era_servers_answer_clients_of_both_eras(tmp_path: Path, procs: list, front: str) -> None:
    """A server that only speaks the handshake era (most servers in the wild) sends results without
    `resultType`, which the 2026-07-28 era requires: the relayed result must still reach a client of
    either era, through either front end."""
    servers = {"e": echo_stdio(protocol="legacy"), "m": {"module": "tests.fixtures.inproc_server:server", "protocol": "legacy"}}
    config = write_config(tmp_path, servers, hub={"data_dir": str(tmp_path / "data")})
    target = hub_params(config) if front == "stdio" else start_hub_http(procs, config)
    for mode in ("auto", "legacy"):
        async with Client(target, mode=mode) as client:
            echoed = await client.call_tool("e__echo", {"text": "old"})
            product = await client.call_tool("m__multiply", {"a": 6, "b": 7})
        assert echoed.structured_content == {"result": "old"} and not echoed.is_error, (mode, echoed)
        assert product.structured_content == {"result": 42.0} and not product.is_error, (mode, product)
