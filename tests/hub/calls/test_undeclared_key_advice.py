"""Outside review recheck21h #2: the outcome-unknown advice said "a call with an idempotency_key may be
sent again with the same key: it never runs twice" to every write, also to one carrying a key its tool
does not declare (the tool ignores it: a resend runs twice). A key is mentioned only where the tool's
input schema declares `idempotency_key`; the drain (which does not know the schema) never mentions one."""

from __future__ import annotations

from hub.config import parse_config
from hub.errors import HubToolError, outcome_unknown_body
from hub.hub import Hub
from hub.policies.retry import answer_of
from tests.conftest import echo_stdio, error_body
from tests.policy_support import make_call

import pytest

LOST = "lost the connection to server 's' (process exited with code 3)"


def lost() -> HubToolError:
    return HubToolError("unavailable", f"{LOST}; try again later", details={"server": "s"}, lost_in_flight=LOST)


def test_a_write_whose_tool_declares_no_key_is_never_told_a_key_makes_a_resend_safe() -> None:
    undeclared = answer_of(make_call(read_only=False, arguments={"idempotency_key": "pay-7"}, keyed=False), lost()).body
    assert undeclared.retryable is False and undeclared.details and undeclared.details["outcome"] == "unknown"
    assert "idempotency_key" not in undeclared.message and "never runs twice" not in undeclared.message, undeclared
    assert "Check first" in undeclared.message


def test_a_write_sent_without_the_key_its_tool_declares_is_told_to_give_one_when_sending_it_again() -> None:
    declared = answer_of(make_call(read_only=False, keyed=True), lost()).body  # the tool takes a key; none was sent
    assert declared.retryable is False and declared.details and declared.details["outcome"] == "unknown"
    assert "this tool takes an idempotency_key" in declared.message, declared
    keyed = answer_of(make_call(read_only=False, arguments={"idempotency_key": "k"}, keyed=True), lost()).body
    assert keyed.retryable is True and "same idempotency_key" in keyed.message, keyed


def test_the_drains_answer_mentions_no_key() -> None:
    body = outcome_unknown_body("the hub stopped while pay was running", "pay")
    assert "idempotency_key" not in body.message and "never runs twice" not in body.message, body


@pytest.mark.anyio
async def test_a_crashed_write_carrying_an_undeclared_key_is_not_told_to_resend_it() -> None:
    async with Hub(parse_config({"hub": {}, "mcpServers": {"e": echo_stdio()}})) as hub:
        crashed = await hub.route_call("e__crash", {"idempotency_key": "pay-7"})
    body = error_body(crashed)
    assert crashed.is_error and isinstance(body, dict), crashed
    assert body["details"]["outcome"] == "unknown" and body["retryable"] is False, body
    assert "never runs twice" not in body["message"] and "idempotency_key" not in body["message"], body
