"""Opaque list cursors: whatever paging a provider uses (offset, page, startAt, nextPageToken,
Link header) travels inside one base64url token the agent passes back unchanged."""

from __future__ import annotations

import base64
import json
from typing import Any

from servers.kit.errors import DomainError


def encode_cursor(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(state, dict):
            raise ValueError
        return state
    except (ValueError, UnicodeDecodeError):
        raise DomainError(
            "invalid_argument", "cursor is not one this server issued: pass next_cursor from the previous page unchanged"
        ) from None


def next_link(state: dict[str, Any], base_url: str) -> str | None:
    """The provider's own next-page URL kept in a cursor (`state["next"]`), accepted only under
    `base_url`, so a crafted cursor cannot send our credentials to another host."""
    link = state.get("next")
    if link is None:
        return None
    if not isinstance(link, str) or not link.startswith(base_url.rstrip("/") + "/"):
        raise DomainError("invalid_argument", "cursor is not one this server issued: pass next_cursor unchanged")
    return link
