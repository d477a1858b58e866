"""Outside review (relay round 7): what a client declared of sampling and elicitation, in detail.

- A server's sampling request offering tools worked directly but failed through the hub: every
  downstream session declared `sampling: {}` (the SDK's default), so the server refused to offer
  tools. The hub now declares `sampling.tools` and `sampling.context` downstream and checks each
  request against what the client it goes to declared.
- A URL-mode elicitation went to a client that declared form mode only.
- `notifications/elicitation/complete` was never relayed, so a client never learned that the
  out-of-band flow (OAuth, a payment) had finished.

The hub runs over Streamable HTTP; the downstream is `tests/fixtures/relay_fx_server.py` over stdio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from hub.relay.capabilities import lacks
from tests.conftest import FIXTURES, PY, start_hub_http, write_config
from tests.relay_support import Completions

pytestmark = pytest.mark.anyio

FX = str(FIXTURES / "relay_fx_server.py")


def hub_url(tmp_path: Path, procs: list, **server: Any) -> str:
    servers = {"fxs": {"command": PY, "args": [FX, "stdio"], "namespace": "fx", "protocol": "legacy", **server}}
    return start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data")}))


class ToolSampler:
    def __init__(self) -> None:
        self.asked: list[types.CreateMessageRequestParams] = []

    async def __call__(self, ctx: Any, params: types.CreateMessageRequestParams) -> Any:
        self.asked.append(params)
        return types.CreateMessageResultWithTools(
            role="assistant", model="m", stop_reason="toolUse",
            content=[types.ToolUseContent(type="tool_use", id="u1", name="lookup", input={"q": "owls"})])


async def test_sampling_with_tools_reaches_a_client_that_declared_them_and_no_other(tmp_path: Path, procs: list) -> None:
    url = hub_url(tmp_path, procs)
    declared, undeclared = ToolSampler(), ToolSampler()
    with anyio.fail_after(60):
        async with Client(url, mode="legacy", sampling_callback=declared,
                          sampling_capabilities=types.SamplingCapability(tools=types.SamplingToolsCapability())) as client:
            result = await client.call_tool("fx__sample_tools", {})
        assert not result.is_error, result
        text = result.content[0].text  # type: ignore[union-attr]
        assert text.startswith("SAMPLED_WITH_TOOLS:") and json.loads(text.split(":", 1)[1])[0]["name"] == "lookup"
        assert [tool.name for tool in declared.asked[0].tools or []] == ["lookup"]

        async with Client(url, mode="legacy", sampling_callback=undeclared) as client:
            refused = await client.call_tool("fx__sample_tools", {})
        assert refused.is_error and "sampling.tools" in refused.content[0].text, refused  # type: ignore[union-attr]
        assert undeclared.asked == []


async def test_a_url_elicitations_completion_reaches_the_client_it_went_to(tmp_path: Path, procs: list) -> None:
    url = hub_url(tmp_path, procs)
    completions = Completions()

    async def accept(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert getattr(params, "mode", None) == "url"
        return types.ElicitResult(action="accept")

    with anyio.fail_after(60):
        async with Client(url, mode="legacy", elicitation_callback=accept, message_handler=completions) as client:
            result = await client.call_tool("fx__elicit_url", {"elicitation_id": "sign-in-7"})
            assert result.content[0].text == "URL:accept", result  # type: ignore[union-attr]
            await completions.done.wait()
    assert completions.ids == ["sign-in-7"]


async def test_two_clients_own_sessions_completions_never_cross(tmp_path: Path, procs: list) -> None:
    """Re-check: on a `per_client` server each client's session chose the same elicitation id, and
    client B got A's completion while its own flow was open (kept by server and id only)."""
    url = hub_url(tmp_path, procs, session="per_client")
    completed: dict[str, list[str]] = {"A": [], "B": []}
    asked = {"A": anyio.Event(), "B": anyio.Event()}

    def client(who: str) -> Client:
        async def accept(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            asked[who].set()
            await asked["A"].wait()
            await asked["B"].wait()  # both flows open before either completes
            return types.ElicitResult(action="accept")

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ElicitCompleteNotification):
                completed[who].append(message.params.elicitation_id)

        return Client(url, mode="legacy", elicitation_callback=accept, message_handler=on_message)

    with anyio.fail_after(60):
        async with client("A") as a, client("B") as b:
            async with anyio.create_task_group() as group:
                for session in (a, b):
                    group.start_soon(session.call_tool, "fx__elicit_url", {"elicitation_id": "flow-1"})
            while len(completed["A"]) + len(completed["B"]) < 2:
                await anyio.sleep(0.05)
    assert completed == {"A": ["flow-1"], "B": ["flow-1"]}


def test_each_request_is_checked_against_what_its_client_declared() -> None:
    form_only = types.ClientCapabilities(elicitation=types.ElicitationCapability(form=types.FormElicitationCapability()))
    legacy = types.ClientCapabilities(elicitation=types.ElicitationCapability())  # `{}`: form, as the spec keeps
    url_only = types.ClientCapabilities(elicitation=types.ElicitationCapability(url=types.UrlElicitationCapability()))
    url_request = types.ElicitRequest(params=types.ElicitRequestURLParams(message="m", url="https://example.com", elicitation_id="e"))
    form_request = types.ElicitRequest(params=types.ElicitRequestFormParams(message="m", requested_schema={"type": "object", "properties": {}}))
    assert "elicitation.url" in (lacks(form_only, url_request) or "")
    assert "elicitation.url" in (lacks(legacy, url_request) or "")
    assert lacks(url_only, url_request) is None
    assert lacks(form_only, form_request) is None and lacks(legacy, form_request) is None
    assert "elicitation.form" in (lacks(url_only, form_request) or "")
    assert "the elicitation capability" in (lacks(types.ClientCapabilities(), form_request) or "")

    plain = types.ClientCapabilities(sampling=types.SamplingCapability())
    messages = [types.SamplingMessage(role="user", content=types.TextContent(type="text", text="hi"))]
    with_context = types.CreateMessageRequest(params=types.CreateMessageRequestParams(messages=messages, max_tokens=5, include_context="thisServer"))
    bare = types.CreateMessageRequest(params=types.CreateMessageRequestParams(messages=messages, max_tokens=5, include_context="none"))
    assert lacks(plain, with_context) is None and lacks(plain, bare) is None  # a client may ignore includeContext
    full = types.ClientCapabilities(sampling=types.SamplingCapability(context=types.SamplingContextCapability()))
    assert lacks(full, with_context) is None
