"""Whose memories a call may reach: the `user` part of a scope is the authenticated caller.

Rules (docs/domains.md, "Memory"):
- `scope.user` omitted, or naming the caller (`alice` or `api_key:alice`) → the caller's qualified
  principal (`api_key:alice`); memories are stored and searched under that, so a JWT subject
  `alice` and an API key named `alice` never share memories.
- naming anyone else → `forbidden`, unless the caller holds `<namespace>:admin` (`memory:admin`);
  an admin's scope is used as written (so another user is named by the qualified principal).
- the local operator (no hub, the hub's stdio, or HTTP with auth off) is one identity and owns the
  user-less scopes, as before callers were told apart: an omitted user stays omitted, and naming a
  user needs `memory:admin` (the operator's default scopes, `*`, include it).
Agent and project narrow a user's memories; they never widen them to another user's.
"""

from __future__ import annotations

from servers.kit.caller import Caller, current_caller
from servers.kit.errors import DomainError
from servers.memory.documents import Writer
from servers.memory.model import Scope


def own_scope(scope: Scope, caller: Caller | None = None) -> Scope:
    """`scope` with its user bound to the caller, or `forbidden` if it names someone else's memories."""
    caller = caller or current_caller()
    if caller.operator:
        if scope.user is None or caller.may_level("admin"):
            return scope
    elif scope.user is None or caller.is_self(scope.user):
        return scope.model_copy(update={"user": caller.principal})
    elif caller.may_level("admin"):
        return scope
    shown = scope.user if len(scope.user) <= 60 else scope.user[:60] + "…"
    raise DomainError(
        "forbidden",
        f"scope.user {shown!r} names another user's memories and you ({caller.principal}) do not hold "
        f"{caller.namespace or 'memory'}:admin; omit scope.user to use your own memories",
        details={"field": "scope.user"},
    )


def document_writer(caller: Caller | None = None) -> Writer:
    """Who is writing a document or graph piece now: the caller's principal (None for the local operator)
    and whether they hold the admin scope (`servers.memory.documents.Writer`, `graph_owner`)."""
    caller = caller or current_caller()
    return Writer(None if caller.operator else caller.principal, caller.operator or caller.may_level("admin"))
