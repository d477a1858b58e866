"""A server's request never reaches a caller other than the one whose call caused it (outside
review: on a shared session the hub sent alice's password prompt to bob, whose call had started
last, and fed bob's answer into alice's call). With calls of several principals in flight on one
shared session the hub cannot tell whose call asked, so it refuses the request; with one
principal's calls only, that principal gets it."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import FIXTURES, ROOT, start_hub_http, write_config
from tests.relay_support import Asked, Heard, create_key

pytestmark = pytest.mark.anyio


def text_of(result: Any) -> Any:
    return json.loads(result.content[0].text)


@asynccontextmanager
async def alice_asking(alice: Client, bob: Client) -> AsyncIterator[dict[str, object]]:
    """Alice's `ask` in flight, waiting inside the server for bob's `hold` (which bob must call in the
    block); yields the dict her answer lands in (`alice`)."""
    results: dict[str, object] = {}

    async def alice_asks() -> None:
        results["alice"] = text_of(await alice.call_tool("x__ask", {"wait": True}))

    async with anyio.create_task_group() as group:
        group.start_soon(alice_asks)
        assert text_of(await bob.call_tool("x__entered", {})) == "entered"  # her call is in flight
        yield results


def two_callers(tmp_path: Path, procs: list, namespace: str, server: dict[str, Any]) -> tuple[str, str, str]:
    """A hub with auth serving `server` as `namespace`; its URL and the API keys of alice and bob (`<namespace>:write`)."""
    data_dir = tmp_path / "hub"
    config = write_config(tmp_path, {namespace: server}, {"data_dir": str(data_dir), "auth": {"enabled": True}})
    keys = [create_key(data_dir, who, f"{namespace}:write") for who in ("alice", "bob")]
    return start_hub_http(procs, config), keys[0], keys[1]


def client(url: str, token: str, asked: Asked, heard: Heard | None = None) -> Client:
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}))
    return Client(transport, mode="legacy", elicitation_callback=asked.elicitation,
                  **({"logging_callback": heard.on_log, "message_handler": heard.on_message} if heard else {}))


async def test_a_shared_servers_request_never_crosses_to_another_caller(tmp_path: Path, procs: list) -> None:
    url, alice_key, bob_key = two_callers(tmp_path, procs, "x", {"module": "tests.fixtures.crossing_server:server", "protocol": "legacy"})
    alice_asked, bob_asked = Asked("alice"), Asked("bob")
    with anyio.fail_after(120):
        async with client(url, alice_key, alice_asked) as alice, client(url, bob_key, bob_asked) as bob:
            # Alone in flight, alice gets her server's question and her answer goes back.
            alone = text_of(await alice.call_tool("x__ask", {}))
            assert alone == {"action": "accept", "content": {"pick": "alice"}}
            assert alice_asked.kinds == ["elicitation"]

            # Alice's call asks while bob's (started after hers, the most recent) is in flight: it reaches neither.
            async with alice_asking(alice, bob) as results:
                results["bob"] = text_of(await bob.call_tool("x__hold", {}))
            assert bob_asked.kinds == [], "bob was asked alice's question"
            assert results["bob"] == "held"
            refused = results["alice"]
            assert isinstance(refused, dict) and "per_client" in str(refused.get("refused")), refused
            assert alice_asked.kinds == ["elicitation"]


@pytest.mark.parametrize("beside", ["another window", "a client offering nothing"])
async def test_one_callers_request_never_crosses_to_their_other_connection(tmp_path: Path, procs: list, beside: str) -> None:
    """Outside review (relay round 7): with auth off every client is one principal, and a server's
    question during client A's call went to client B (whose call started last) and B's answer went
    into A's call. Two connections of one caller are two places to ask: refused like two callers.
    Here one key on two connections (two windows of one agent), or beside a client of that key
    offering nothing (its call is on the wire, untracked)."""
    url, alice_key, _ = two_callers(tmp_path, procs, "x", {"module": "tests.fixtures.crossing_server:server", "protocol": "legacy"})
    first, second = Asked("first window"), Asked("second window")
    other = client(url, alice_key, second) if beside == "another window" else Client(
        streamable_http_client(url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {alice_key}"})), mode="legacy")
    with anyio.fail_after(120):
        async with client(url, alice_key, first) as one, other:
            assert text_of(await one.call_tool("x__ask", {})) == {"action": "accept", "content": {"pick": "first window"}}
            async with alice_asking(one, other) as results:
                results["other"] = text_of(await other.call_tool("x__hold", {}))
            assert second.kinds == [], "the other connection was asked the first one's question"
            assert "per_client" in str(results["alice"]), results
            assert first.kinds == ["elicitation"]


async def test_a_shared_servers_log_line_during_a_call_reaches_only_that_caller(tmp_path: Path, procs: list) -> None:
    """Outside review: with both listening (`logging/setLevel`), bob received the line a shared server
    wrote during alice's call ("alice's private diary entry")."""
    url, alice_key, bob_key = two_callers(tmp_path, procs, "x", {"module": "tests.fixtures.crossing_server:server", "protocol": "legacy"})
    alice_heard, bob_heard = Heard(), Heard()
    with anyio.fail_after(120):
        async with client(url, alice_key, Asked("alice"), alice_heard) as alice, client(url, bob_key, Asked("bob"), bob_heard) as bob:
            await alice.set_logging_level("debug")
            await bob.set_logging_level("debug")
            await alice.call_tool("x__note", {"text": "alice's diary"})
            await alice_heard.until(lambda: ("x/crossing", "note: alice's diary") in alice_heard.logs)
            await bob.call_tool("x__note", {"text": "bob's list"})  # bob's own line reaches him, after alice's
            await bob_heard.until(lambda: ("x/crossing", "note: bob's list") in bob_heard.logs)
            assert ("x/crossing", "note: alice's diary") not in bob_heard.logs
            assert ("x/crossing", "note: bob's list") not in alice_heard.logs


@pytest.mark.parametrize("transport", ["inprocess", "stdio"])
async def test_a_line_logged_just_before_the_answer_reaches_only_its_caller(tmp_path: Path, procs: list,
                                                                             transport: str) -> None:
    """Re-check of round 13: a stdio server's line logged right before it answers is handled by the SDK in
    a task of its own, often after the answer ended the call: then it seemed nobody's call's, and bob,
    only listening, got 22 of alice's 25 lines. Its audience is judged as the line is read."""
    server: dict[str, Any] = ({"module": "tests.fixtures.crossing_server:server"} if transport == "inprocess" else
                              {"command": sys.executable, "args": [str(FIXTURES / "crossing_server.py")],
                               "env": {"PYTHONPATH": str(ROOT)}, "session": "shared"})
    url, alice_key, bob_key = two_callers(tmp_path, procs, "x", {**server, "protocol": "legacy"})
    alice_heard, bob_heard = Heard(), Heard()
    lines = [f"alice's line {n}" for n in range(15)]
    with anyio.fail_after(120):
        async with client(url, alice_key, Asked("alice"), alice_heard) as alice, client(url, bob_key, Asked("bob"), bob_heard) as bob:
            await alice.set_logging_level("debug")
            await bob.set_logging_level("debug")
            for line in lines:
                await alice.call_tool("x__note", {"text": line})
            await alice_heard.until(lambda: all(("x/crossing", f"note: {line}") in alice_heard.logs for line in lines))
            await bob.call_tool("x__note", {"text": "bob's own"})  # his own line, after all of hers
            await bob_heard.until(lambda: ("x/crossing", "note: bob's own") in bob_heard.logs)
            assert [entry for entry in bob_heard.logs if "alice" in str(entry[1])] == []

async def test_a_line_written_as_other_json_writers_write_it_reaches_only_its_caller(tmp_path: Path, procs: list) -> None:
    """Re-check of round 14: the read-time judgement missed lines with escaped slashes
    (`notifications\\/message`) or NaN in their data, and those reached bob as before."""
    server = {"command": sys.executable, "args": [str(FIXTURES / "raw_log_server.py")], "session": "shared",
              "protocol": "legacy"}
    url, alice_key, bob_key = two_callers(tmp_path, procs, "x", server)
    alice_heard, bob_heard = Heard(), Heard()
    with anyio.fail_after(120):
        async with client(url, alice_key, Asked("alice"), alice_heard) as alice, client(url, bob_key, Asked("bob"), bob_heard) as bob:
            await alice.set_logging_level("debug")
            await bob.set_logging_level("debug")
            for n in range(8):
                await alice.call_tool("x__note", {"text": f"alice {n}"})
                await alice.call_tool("x__note_nan", {"text": f"alice {n}"})
            await alice_heard.until(lambda: len(alice_heard.logs) >= 16)
            await bob.call_tool("x__note", {"text": "bob's own"})
            await bob_heard.until(lambda: ("x/crossing", "note: bob's own") in bob_heard.logs)
            assert [entry for entry in bob_heard.logs if "alice" in str(entry[1])] == []

async def test_a_caller_who_never_answers_does_not_open_the_breaker_for_others(tmp_path: Path, procs: list) -> None:
    """Outside review: bob left a server's elicitations unanswered until his calls timed out, the
    server's breaker counted them as the server failing, and alice was refused for the cool-down."""
    server = {"module": "tests.fixtures.crossing_server:server", "protocol": "legacy", "timeout_s": 1, "max_timeout_s": 1,
              "breaker": {"failure_threshold": 1, "cooldown_s": 60}}
    url, alice_key, bob_key = two_callers(tmp_path, procs, "x", server)

    class Silent(Asked):
        async def elicitation(self, ctx: object, params: object) -> object:  # type: ignore[override]
            self.kinds.append("elicitation")
            await anyio.sleep_forever()

    bob_asked = Silent("bob")
    with anyio.fail_after(120):
        async with client(url, alice_key, Asked("alice")) as alice, client(url, bob_key, bob_asked) as bob:
            answers: list[Any] = []

            async def ask() -> None:
                answers.append(await bob.call_tool("x__ask", {}))

            async with anyio.create_task_group() as tg:  # several at once (second outside review: only the
                for _ in range(3):  # newest call was excused, the others counted)
                    tg.start_soon(ask)
            assert all(a.is_error and "timed out" in a.content[0].text for a in answers), answers  # type: ignore[union-attr]
            assert bob_asked.kinds == ["elicitation"] * 3
            for who, session in (("bob", bob), ("alice", alice)):  # neither the server nor bob was paused
                noted = await session.call_tool("x__note", {"text": f"{who} still here"})
                assert not noted.is_error, (who, noted.content)


async def test_a_callers_request_never_reaches_a_caller_who_can_answer_it_instead(tmp_path: Path, procs: list) -> None:
    """Outside re-check: bob's client offers no elicitation, so his calls were not tracked, and his
    call's question went to alice, whose call was the only one tracked. Refused now (several callers
    in flight), and the refusal does not count against the server's breaker either: bob's call fails
    of it, and alice is not then refused for the cool-down."""
    server = {"module": "tests.fixtures.crossing_server:server", "protocol": "legacy",
              "breaker": {"failure_threshold": 1, "cooldown_s": 60}}
    url, alice_key, bob_key = two_callers(tmp_path, procs, "x", server)
    alice_asked = Asked("alice")
    bob_transport = streamable_http_client(url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {bob_key}"}))
    with anyio.fail_after(120):
        async with client(url, alice_key, alice_asked) as alice, Client(bob_transport, mode="legacy") as bob:
            async with alice_asking(alice, bob):
                failed = await bob.call_tool("x__ask", {"strict": True})  # bob offers no elicitation
                assert failed.is_error and "per_client" in failed.content[0].text, failed  # type: ignore[union-attr]
                assert alice_asked.kinds == [], "alice was asked bob's question"
                assert text_of(await bob.call_tool("x__hold", {})) == "held"
            assert not (await alice.call_tool("x__note", {"text": "after"})).is_error, "the breaker opened for everyone"


async def test_a_request_caused_by_a_prompt_of_one_caller_never_reaches_another(tmp_path: Path, procs: list) -> None:
    """Outside review: while alice's call ran, a question (and a log line) caused by bob's `prompts/get`
    went to alice — only tool calls counted as a caller's requests in flight — and her answer went
    into bob's prompt. A prompt, a resource read or a completion counts now: the question is refused."""
    url, alice_key, bob_key = two_callers(tmp_path, procs, "x", {"module": "tests.fixtures.crossing_server:server", "protocol": "legacy"})
    alice_asked, alice_heard, bob_heard = Asked("alice"), Heard(), Heard()
    with anyio.fail_after(120):
        async with client(url, alice_key, alice_asked, alice_heard) as alice, \
                client(url, bob_key, Asked("bob"), bob_heard) as bob:
            await alice.set_logging_level("debug")
            await bob.set_logging_level("debug")
            results: dict[str, Any] = {}

            async def alice_holds() -> None:
                results["alice"] = text_of(await alice.call_tool("x__hold", {}))

            async with anyio.create_task_group() as group:
                group.start_soon(alice_holds)
                prompt = await bob.get_prompt("x__summarize", {"topic": "bob's layoff list"})
            answer = prompt.messages[0].content.text  # type: ignore[union-attr]
            assert answer.startswith("refused:") and "per_client" in answer, answer
            assert alice_asked.kinds == [], "alice was asked about bob's prompt"
            assert results["alice"] == "held"
            await alice.call_tool("x__note", {"text": "after"})  # her own line arrives, bob's prompt's never did
            await alice_heard.until(lambda: ("x/crossing", "note: after") in alice_heard.logs)
            assert not any("layoff" in line for _, line in alice_heard.logs), alice_heard.logs


async def test_a_tasks_question_goes_to_its_creator_or_to_no_one(tmp_path: Path, procs: list) -> None:
    """Review round 5: a request marked with alice's task (`related-task`) was sent to bob, whose call
    was the one in flight, and bob's answer went into alice's task. It is the task creator's: while she
    does not wait on the task, nobody gets it."""
    from tests.hub.relay.test_relay_tasks import raw, start_task

    url, alice_key, bob_key = two_callers(tmp_path, procs, "t", {"module": "tests.fixtures.task_server:server", "protocol": "legacy"})
    alice_asked, bob_asked = Asked("alice"), Asked("bob")
    with anyio.fail_after(120):
        async with client(url, alice_key, alice_asked) as alice, client(url, bob_key, bob_asked) as bob:
            created = await start_task(alice, topic="alice: Project Falcon")
            assert created["task"]["taskId"] == "t:t1"
            answer = await bob.call_tool("t__ask_for", {"task": "t1"})
            said = answer.content[0].text  # type: ignore[union-attr]
            assert said.startswith("refused:") and "task" in said, said
            assert bob_asked.kinds == [] and alice_asked.kinds == []
            assert (await raw(alice, "tasks/get", {"taskId": "t:t1"}))["status"] == "working"
