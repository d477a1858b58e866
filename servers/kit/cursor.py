"""Opaque list cursors: whatever paging a provider uses (offset, page, startAt, nextPageToken,
Link header) travels inside one base64url token the agent passes back unchanged."""

from __future__ import annotations

import base64
import json
from typing import Any

from servers.kit.errors import DomainError


def encode_cursor(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


MAX_CURSOR_CHARS = 8192
MAX_POSITION = 2**53
_NOT_OURS = "cursor is not one this server issued: pass next_cursor from the previous page unchanged"


class CursorState(dict[str, Any]):
    """A decoded cursor, which a caller may have crafted. `get(key, default)` checks the value
    against the default's type: for an int default, a non-negative integer below 2**53 (an
    offset, page or position); for a str default, a string. Anything else is invalid_argument,
    so a crafted cursor never reaches SQL or a provider as a bad type (`internal`)."""

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key, default)
        if isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_POSITION:
                raise DomainError("invalid_argument", _NOT_OURS, details={"field": "cursor"})
        elif isinstance(default, str) and not isinstance(value, str):
            raise DomainError("invalid_argument", _NOT_OURS, details={"field": "cursor"})
        return value


def decode_cursor(cursor: str | None) -> CursorState:
    if not cursor:
        return CursorState()
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(state, dict):
            raise ValueError
        return CursorState(state)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DomainError("invalid_argument", _NOT_OURS, details={"field": "cursor"}) from None


def next_link(state: dict[str, Any], base_url: str) -> str | None:
    """The provider's own next-page URL kept in a cursor (`state["next"]`), accepted only under
    `base_url`, so a crafted cursor cannot send our credentials to another host."""
    link = state.get("next")
    if link is None:
        return None
    if not isinstance(link, str) or not link.startswith(base_url.rstrip("/") + "/"):
        raise DomainError("invalid_argument", "cursor is not one this server issued: pass next_cursor unchanged")
    return link
