"""A server's JSON-RPC error -32042 (URL elicitation required) through the hub.

A server answers a `tools/call` with -32042 and `data.elicitations` when the user must first open a
URL (an OAuth sign-in, a payment) — server-everything's `trigger-url-elicitation` with `errorPath`,
any SDK tool raising `UrlElicitationRequiredError`. The hub used to turn it into an `upstream_error`
result that dropped the elicitation (its URL and id), counted it against the server's breaker, and
never routed the flow's `notifications/elicitation/complete`. Now a client that declared URL-mode
elicitation gets the error as the server sent it and, later, its completion notice; any other client
gets an `isError` result that names the URL to open; and the answer counts as the server working.

The hub runs over Streamable HTTP; the downstream is `tests/fixtures/relay_fx_server.py` over stdio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client, MCPError

from hub.calls.errors import MAX_REQUIRED_ELICITATIONS, forward_error
from hub.errors import UrlElicitationRequired
from hub.auth.principal import Principal
from hub.relay.url_elicitations import UrlElicitations
from tests.conftest import FIXTURES, PY, start_hub_http, write_config
from tests.relay_support import Completions

pytestmark = pytest.mark.anyio

FX = str(FIXTURES / "relay_fx_server.py")


def hub_url(tmp_path: Path, procs: list, **server: Any) -> str:
    servers = {"fxs": {"command": PY, "args": [FX, "stdio"], "namespace": "fx", "protocol": "legacy",
                       "breaker": {"failure_threshold": 2}, **server}}
    return start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data")}))


async def never_asked(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    raise AssertionError(f"no elicitation/create was expected: {params}")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_url_required_error_reaches_a_capable_client_whole_then_its_completion(
        tmp_path: Path, procs: list, mode: str, session: str) -> None:
    url = hub_url(tmp_path, procs, session=session)
    completions = Completions()
    with anyio.fail_after(60):
        async with Client(url, mode=mode, elicitation_callback=never_asked, message_handler=completions) as client:
            for _ in range(3):  # more than the breaker's threshold: an answer, not a failure of the server
                with pytest.raises(MCPError) as raised:
                    await client.call_tool("fx__needs_sign_in", {"elicitation_id": "cal-9"})
                error = raised.value.error
                assert error.code == types.URL_ELICITATION_REQUIRED, error
                assert error.data == {"elicitations": [{"mode": "url", "message": "Sign in to the calendar first",
                                                        "url": "https://example.com/auth?flow=cal-9&state=s3cr3t",
                                                        "elicitationId": "cal-9"}]}, error
            if mode == "legacy":  # a 2026-07-28 client has no stream for a notice outside a call (docs/protocol.md)
                finished = await client.call_tool("fx__finish_sign_in", {"elicitation_id": "cal-9"})
                assert not finished.is_error, finished
                await completions.done.wait()
                assert completions.ids == ["cal-9"]
            else:
                await client.call_tool("fx__finish_sign_in", {"elicitation_id": "cal-9"})
            # (A 2026-07-28 client's requests to a `per_client` stdio server share the child lent to its principal.)
            again = await client.call_tool("fx__needs_sign_in", {"elicitation_id": "cal-9"})
            assert again.content[0].text == "SIGNED_IN:cal-9", again  # type: ignore[union-attr]


async def test_a_client_without_url_elicitation_is_told_which_url_to_open(tmp_path: Path, procs: list) -> None:
    url = hub_url(tmp_path, procs)
    with anyio.fail_after(60):
        async with Client(url, mode="legacy") as plain, Client(url, mode="legacy", elicitation_callback=never_asked) as capable:
            for _ in range(3):
                result = await plain.call_tool("fx__needs_sign_in", {"elicitation_id": "pay-1"})
                assert result.is_error, result
                body = result.structured_content or json.loads(result.content[0].text)  # type: ignore[union-attr]
                assert body["code"] == "unauthorized" and body["retryable"] is False, body
                assert "https://example.com/auth?flow=pay-1&state=s3cr3t" in body["message"], body
                assert "Sign in to the calendar first" in body["message"], body
                assert body["details"]["reason"] == "url_elicitation_required", body
                assert body["details"]["elicitations"][0]["elicitationId"] == "pay-1", body
            # the server's breaker stayed closed: another caller's call is answered by the server
            with pytest.raises(MCPError) as raised:
                await capable.call_tool("fx__needs_sign_in", {"elicitation_id": "pay-2"})
            assert raised.value.error.code == types.URL_ELICITATION_REQUIRED
        async with httpx.AsyncClient(timeout=30) as http:  # nor does /healthz count the answers as failures
            stats = (await http.get(url.replace("/mcp", "/healthz"))).json()["servers"]["fxs"]
        assert stats["calls"] == 4 and stats["failures"] == 0, stats


@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_read_or_a_prompt_that_needs_a_sign_in_routes_its_completion_too(tmp_path: Path, procs: list,
                                                                                 session: str) -> None:
    """A -32042 to `resources/read` or `prompts/get` passed through as it came (every elicitation it
    named) and its completion notice went nowhere; now as for a call: the first 16, and the notice to
    the client that got the error."""
    url = hub_url(tmp_path, procs, session=session)
    completions = Completions()
    with anyio.fail_after(60):
        async with Client(url, mode="legacy", elicitation_callback=never_asked, message_handler=completions) as client:
            with pytest.raises(MCPError) as raised:
                await client.read_resource("mcphub://fx/private://read-1")
            assert raised.value.error.code == types.URL_ELICITATION_REQUIRED
            assert raised.value.error.data["elicitations"][0]["elicitationId"] == "read-1"  # type: ignore[index]
            with pytest.raises(MCPError) as raised:
                await client.get_prompt("fx__private_prompt", {"elicitation_id": "prompt-1"})
            assert raised.value.error.code == types.URL_ELICITATION_REQUIRED
            for flow in ("read-1", "prompt-1"):
                await client.call_tool("fx__finish_sign_in", {"elicitation_id": flow})
            with anyio.fail_after(10):
                while sorted(completions.ids) != ["prompt-1", "read-1"]:
                    await anyio.sleep(0.05)  # waiting for the state "both notices heard"
            read = await client.read_resource("mcphub://fx/private://read-1")
            assert read.contents[0].text == "SIGNED_IN:read-1"  # type: ignore[union-attr]

@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_completion_after_the_call_ended_still_reaches_its_client(tmp_path: Path, procs: list, session: str) -> None:
    """The browser flow of a URL-mode elicitation usually ends after the call that asked for it: its
    notice went nowhere once the call's request had ended (only the per-request session was kept)."""
    url = hub_url(tmp_path, procs, session=session)  # explicit: a stdio default turns per-client at the first ask
    completions = Completions()

    async def accept(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept")

    with anyio.fail_after(60):
        async with Client(url, mode="legacy", elicitation_callback=accept, message_handler=completions) as client:
            asked = await client.call_tool("fx__elicit_url_only", {"elicitation_id": "oauth-3"})
            assert asked.content[0].text == "URL:accept", asked  # type: ignore[union-attr]
            assert completions.ids == []
            await client.call_tool("fx__finish_sign_in", {"elicitation_id": "oauth-3"})
            await completions.done.wait()
    assert completions.ids == ["oauth-3"]


class _Connection:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        self.sent.append(params["elicitationId"])


class _Session:
    def __init__(self) -> None:
        self._connection = _Connection()


ALICE, BOB = Principal("alice", ("*",), "api_key"), Principal("bob", ("*",), "api_key")


class _Downstream:
    def __init__(self, name: str) -> None:
        self.name = name


async def test_one_servers_flood_of_ids_never_crowds_out_another_servers_completion() -> None:
    """Re-check of round 8: a -32042 naming 1,200 elicitations pushed every other server's pending
    completion out of the hub-wide table (1,000), and a client without URL elicitation got all of them
    in one message. One error gives at most 16; one server keeps at most 100 pending."""
    kept = UrlElicitations(lambda server: (), lambda server: False)
    waiting, flooding = _Session(), _Session()
    kept.required("fxs", ["cal-9"], waiting, ALICE)  # type: ignore[arg-type]
    for batch in range(30):
        kept.required("x", [f"id-{batch}-{n}" for n in range(50)], flooding, ALICE)  # type: ignore[arg-type]
    await kept.completed(_Downstream("fxs"), types.ElicitCompleteNotificationParams(elicitation_id="cal-9"))
    assert waiting._connection.sent == ["cal-9"]
    await kept.completed(_Downstream("x"), types.ElicitCompleteNotificationParams(elicitation_id="id-29-49"))
    assert flooding._connection.sent == ["id-29-49"]  # the newest of the flooding server's are kept

    many = [{"mode": "url", "url": f"https://example.com/{n}", "message": "m", "elicitationId": f"e{n}"} for n in range(3000)]
    required = await forward_error(MCPError(types.URL_ELICITATION_REQUIRED, "sign in", {"elicitations": many}),
                                   _Downstream("x"))  # type: ignore[arg-type]
    assert isinstance(required, UrlElicitationRequired) and len(required.elicitations) == MAX_REQUIRED_ELICITATIONS
    assert len(required.body.message) < 4000 and len(required.as_mcp_error().error.data["elicitations"]) == 16


async def test_one_callers_flood_on_a_shared_server_never_crowds_out_another_callers_completion() -> None:
    """Outside review, isolation round 10: 100 URL elicitations of caller B's calls to a shared server
    pushed out caller A's pending one (the bound was per server), and A never learned its flow ended."""
    kept = UrlElicitations(lambda server: (), lambda server: False)
    alice, bob = _Session(), _Session()
    kept.required("shared", ["alice-login"], alice, ALICE)  # type: ignore[arg-type]
    for n in range(1500):
        kept.required("shared", [f"bob-{n}"], bob, BOB)  # type: ignore[arg-type]
    await kept.completed(_Downstream("shared"), types.ElicitCompleteNotificationParams(elicitation_id="alice-login"))
    assert alice._connection.sent == ["alice-login"]
    await kept.completed(_Downstream("shared"), types.ElicitCompleteNotificationParams(elicitation_id="bob-1499"))
    await kept.completed(_Downstream("shared"), types.ElicitCompleteNotificationParams(elicitation_id="bob-0"))
    assert bob._connection.sent == ["bob-1499"]  # bob's own oldest went to make room for his newest
