"""The one call pipeline: the policies in their order, admission and settlement, each written once.

How a call travels (the order, stated here and only here):

    per call      audit → argument validation → rate limit → deadline → (custom call policies)
      retry loop  ┐ per attempt: breaker → bulkhead → (custom attempt policies) → forward
                  └ the attempt settles; `RetryPolicy.after` says whether (and when) to go again
    the call settles (audit row, metrics); the caller gets the answer with its request id

Access comes first, before the pipeline: a name the caller may not use is refused like an unknown
one (`Hub.route_call`), so nothing here ever sees it. Audit leads the per-call phase so every
refusal after it is audited. Each policy admits synchronously (`Permit`, refusal, or `MUST_WAIT`;
`hub.policies.base`); a refusal at admission is final — nothing was sent, no retry waits on the
hub's own refusal (open breaker, full queue). Every permit granted is settled exactly once, with
what the attempt (per-attempt policies) or the call (per-call policies) came to.

Two drivers run this pipeline (`hub.calls.drivers`): the express driver admits and sends in the
callback that read the request and finishes in the callback that reads the answer; the awaiting
driver `run` awaits whatever must be awaited. Neither has policy logic of its own: both call the
methods below.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hub.calls.call import Outcome, ToolCall, caller_identity, now
from hub.downstream.forwarders import Forwarder
from hub.errors import HubToolError
from hub.policies.audit import with_request_id
from hub.policies.base import MustWait, Permit, Policy
from hub.policies.breaker import RELAY_REFUSED, WIRE_S, answered_with_failure
from hub.policies.crash_blame import LOST_WITH, SENT_ON
from hub.policies.retry import RetryPolicy
from hub.relay.downstream_input import asks_for_input
from hub.wire import ToolResult, from_server, wire_result

logger = logging.getLogger("hub.calls")


REFUSALS_AT_SEND = "relay_refusals_at_send"


class Pipeline:
    """The policies of each phase, the retry loop's policy and the forwarder (see the module)."""

    def __init__(self, call_policies: Sequence[Policy], attempt_policies: Sequence[Policy], retry: RetryPolicy,
                 forwarder: Forwarder) -> None:
        self.call_policies = tuple(call_policies)
        self.attempt_policies = tuple(attempt_policies)
        self.retry = retry
        self.forwarder = forwarder

    # -- admission -------------------------------------------------------------------------

    @staticmethod
    def admit(call: ToolCall, policies: Sequence[Policy], held: list[tuple[Any, Any]]) -> HubToolError | Policy | None:
        """Ask each policy not yet in `held` to admit the call, in order, keeping their permits in
        `held`: None when all did, the refusal of the one that refused, or the policy that must wait."""
        for index in range(len(held), len(policies)):
            policy = policies[index]
            verdict = policy.admit(call)
            if isinstance(verdict, Permit):
                held.append((policy, verdict))
            elif isinstance(verdict, MustWait):
                return policy
            else:
                return verdict
        return None

    def start_attempt(self, call: ToolCall) -> None:
        """Number a new attempt (what the breaker's probe, the audit and the spans see)."""
        call.attempt += 1
        call.attributes["attempt"] = call.attempt
        call.attempt_open = True

    def mark_sent(self, call: ToolCall) -> None:
        """The attempt is on the wire: the server has one more call in flight."""
        call.attempt_sent_at = now()
        downstream = self.forwarder.downstream(call)
        stats = downstream.stats
        stats.start(caller_identity(call))
        call.attributes[REFUSALS_AT_SEND] = stats.relay_refusals
        call.attributes[SENT_ON] = getattr(downstream, "losses", None)  # the losses before: which loss would be its

    # -- settlement ------------------------------------------------------------------------

    @staticmethod
    def settle(call: ToolCall, held: list[tuple[Any, Any]], outcome: Outcome) -> None:
        """Settle every permit in `held`, last granted first, each exactly once (popped as it goes)."""
        while held:
            policy, permit = held.pop()
            try:
                policy.settle(call, permit, outcome)
            except Exception:  # boundary: one policy's bookkeeping must not keep the others from theirs
                logger.exception("settling %s for %s failed", type(policy).__name__, call.route.exposed)

    def end_attempt(self, call: ToolCall, outcome: Outcome) -> None:
        """The attempt is over: the server's stats, then the per-attempt permits."""
        call.attributes.pop(LOST_WITH, None)  # an earlier attempt's
        if call.attempt_sent_at:
            downstream = self.forwarder.downstream(call)
            stats = downstream.stats
            wire_s = call.attributes[WIRE_S] = now() - call.attempt_sent_at  # what the breaker judges a timeout by
            # A failure as the breaker judges one (a call ended without an answer or an error counts too).
            failed = outcome.result is None and (outcome.error is None or answered_with_failure(outcome))
            if outcome.error is not None and outcome.error.lost_in_flight is not None and outcome.error.body.code == "unavailable":
                # the shared connection it was sent on was lost (not a timeout, not a session or a stream of its own):
                # whose calls that loss ended, as the connection saw them at that moment
                loss, sent_on = getattr(downstream, "last_loss", None), call.attributes.get(SENT_ON)
                if loss is not None and sent_on is not None and loss[0] == sent_on + 1:
                    call.attributes[LOST_WITH] = loss
            elif (outcome.cancelled or (outcome.error is not None and outcome.error.body.code == "timeout")) \
                    and (caller := caller_identity(call)) is not None:
                stats.cancelled(caller)  # given up on, but its input may still run on the server (review r40 #1, #2)
            stats.finish(wire_s, failed, caller_identity(call))
            if outcome.error is not None and outcome.error.body.code == "timeout":
                stats.timed_out()  # a stdio server is then pinged: hung, or slow? (`hub.downstream.liveness`)
            if stats.relay_refusals != call.attributes.get(REFUSALS_AT_SEND, stats.relay_refusals):
                call.attributes[RELAY_REFUSED] = True  # the hub refused the server a request meanwhile
            call.attempt_sent_at = 0.0
        call.attempt_open = False
        self.settle(call, call.attempt_held, outcome)

    def end_call(self, call: ToolCall, outcome: Outcome) -> None:
        """The call is over: the per-call permits (the audit row among them)."""
        call.outcome = outcome
        self.settle(call, call.held, outcome)

    @staticmethod
    def answer(call: ToolCall, outcome: Outcome) -> ToolResult:
        """What the caller gets: the result, or the error as an `isError` result; the request id in `_meta`."""
        if outcome.result is not None:
            return with_request_id(outcome.result, call.attributes["request_id"])
        assert outcome.error is not None
        return with_request_id(outcome.error.to_result(call.route.tool.output_schema), call.attributes["request_id"])

    def answered_now(self, call: ToolCall, message: dict[str, Any] | None) -> Outcome | None:
        """The outcome of an answer read in a callback if the call can end with it there: a complete
        result the retry loop does not want to try again. None for anything else (error answers,
        a closed connection, a transient failure): the awaiting driver then reads it."""
        if message is None or "error" in message or asks_for_input(message.get("result")):
            return None  # an input-required answer is relayed by the awaiting driver (`hub.relay.downstream_input`)
        outcome = Outcome(result=from_server(wire_result(message.get("result")), call.route.namespace))
        return None if self.retry.wants(call, outcome) else outcome
