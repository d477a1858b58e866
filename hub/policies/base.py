"""The two-phase shape every call policy shares.

`admit(call)` decides synchronously: a `Permit` (go on), a `HubToolError` (the refusal the caller
gets), or `MUST_WAIT` (this policy can only decide by waiting: the driver then awaits
`wait(call)`, which returns a permit or a refusal). An admit that says `MUST_WAIT` has changed
nothing, so it may be asked again. Every permit granted is settled exactly once with what the call
(or the attempt) came to: `settle(call, permit, outcome)`; the pipeline pops permits as it settles
them (`Pipeline.settle`). Permits that carry nothing are the shared `GRANTED`.

`phase` says when a policy runs: `"call"` once per call, `"attempt"` once per attempt (the retry
loop runs between the two). The order is stated once, in `hub.calls.pipeline`.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from hub.calls.call import Outcome, ToolCall, now
from hub.errors import HubToolError

Phase = Literal["call", "attempt"]


class Permit:
    """What a policy granted a call; settled exactly once. Subclass it to carry state."""

    __slots__ = ()


class MustWait:
    """The verdict of a policy that cannot decide without waiting."""

    __slots__ = ()


GRANTED = Permit()
MUST_WAIT = MustWait()
Admission = Permit | HubToolError | MustWait


@runtime_checkable
class Policy(Protocol):
    """A two-phase call policy (see the module). A policy that waits may also offer
    `refusal_at_deadline(call) -> HubToolError`: what the call gets if its deadline comes while it
    still waits there (else the deadline is a `timeout`)."""

    phase: Phase

    def admit(self, call: ToolCall) -> Admission: ...

    async def wait(self, call: ToolCall) -> Permit | HubToolError: ...

    def settle(self, call: ToolCall, permit: Permit, outcome: Outcome) -> None: ...


class NeverWaits:
    """Base for policies whose `admit` never says `MUST_WAIT` and that settle nothing."""

    phase: Phase = "call"

    async def wait(self, call: ToolCall) -> Permit | HubToolError:
        raise AssertionError(f"{type(self).__name__} never asks to wait")

    def settle(self, call: ToolCall, permit: Permit, outcome: Outcome) -> None:
        return None


__all__ = ["GRANTED", "MUST_WAIT", "Admission", "MustWait", "NeverWaits", "Outcome", "Permit", "Phase", "Policy",
           "ToolCall", "now"]
