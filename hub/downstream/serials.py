"""Which downstream session is which, across reconnects.

`id()` of a session names it only while it lives: CPython often gives a reconnect's new session the
address of the one just freed, so "is this the session that made the task / holds the subscription
/ got the log level" answered yes for a different session (outside review, isolation round 10). A
serial is never reused."""

from __future__ import annotations

import itertools
import weakref
from typing import Any

_serials: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_next = itertools.count(1)


def session_serial(session: Any) -> int:
    """A number for `session` that no other session of this process ever gets."""
    serial = _serials.get(session)
    if serial is None:
        serial = _serials[session] = next(_next)
    return serial
