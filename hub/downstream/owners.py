"""Who a request to a downstream is for: the upstream client connection it came on (its `owner`,
held weakly), the caller's principal, and whether it is one stateless (2026-07-28) request — set by
the front end around each request (`bind_owner`), read by `Downstream.session()` and the relay to
pick and address the caller's own session of a `per_client` server (`hub.downstream.sessions`)."""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from hub.auth.principal import Principal, identity

_current_owner: ContextVar[weakref.ref[Any] | None] = ContextVar("current_owner", default=None)
_current_caller: ContextVar[tuple[Principal | None, bool]] = ContextVar("current_caller", default=(None, False))


def current_owner() -> Any:
    """The upstream client connection the current request came on (`bind_owner`), or None: a library
    call, a CLI command, the stdio front end's single client — those use the shared session."""
    ref = _current_owner.get()
    return ref() if ref is not None else None


def current_caller() -> tuple[Principal | None, bool]:
    """Who the current owner's requests are from (`bind_owner`), and whether the owner is one
    stateless (2026-07-28) request: `SessionPool.using`'s `caller` and `lend_key` come from these."""
    return _current_caller.get()


def counted_caller() -> Hashable | None:
    """The current caller as `SessionPool.using`'s `caller`; None with authentication off (every client
    is the one local principal: no share to keep for others)."""
    principal, _ = current_caller()
    return identity(principal) if principal is not None and principal.kind != "local" else None


@contextmanager
def bind_owner(owner: Any, *, principal: Principal | None = None, stateless: bool = False) -> Iterator[None]:
    """Make `owner` the `current_owner` for the block. Held weakly: tasks started inside copy the
    context and may outlive the request, and must not keep the client's connection alive. `principal`:
    whose requests these are; `stateless`: the owner is one 2026-07-28 request."""
    token = _current_owner.set(weakref.ref(owner) if owner is not None else None)
    caller_token = _current_caller.set((principal, stateless) if owner is not None else (None, False))
    try:
        yield
    finally:
        _current_caller.reset(caller_token)
        _current_owner.reset(token)


class OwnerRef:
    """A weak reference to a session's owner that the pool points at the next owner when it lends
    the session: what `open_session` gets, so the session's callbacks always reach its current owner."""

    __slots__ = ("_ref",)

    def __init__(self, owner: Any) -> None:
        self._ref = weakref.ref(owner)

    def __call__(self) -> Any:
        return self._ref()

    def rebind(self, owner: Any) -> None:
        self._ref = weakref.ref(owner)
