"""A raw JSON-RPC stdio server (no SDK) that logs as the SDKs' servers do, for
`tests/hub/relay/test_relay_logs_unset_level.py`: until a client sends `logging/setLevel` it sends
every level (its own default: no filter); after one, only that level and above.

Tool `note` (`{"text": str}`) writes one `notifications/message` per level in `LEVELS` that passes its
filter, `data` `"<level> <text>"`, logger `levels`, before it answers."""

from __future__ import annotations

import json
import sys
from typing import Any

LEVELS = ("debug", "info", "warning")
ORDER = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
level: str | None = None  # no logging/setLevel yet: the server's own default is every level


def write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict[str, Any]) -> dict[str, Any]:
    global level
    method, params = request.get("method"), request.get("params") or {}
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion", "2025-11-25"),
                "capabilities": {"tools": {}, "logging": {}}, "serverInfo": {"name": "levels", "version": "1"}}
    if method == "tools/list":
        return {"tools": [{"name": "note", "inputSchema": {"type": "object"}}]}
    if method == "logging/setLevel":
        level = params.get("level")
    elif method == "tools/call":
        text = (params.get("arguments") or {}).get("text", "")
        for each in LEVELS:
            if level is None or ORDER.index(each) >= ORDER.index(level):
                write({"jsonrpc": "2.0", "method": "notifications/message",
                       "params": {"level": each, "logger": "levels", "data": f"{each} {text}"}})
        return {"content": [{"type": "text", "text": "noted"}]}
    return {}


for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if isinstance(message, dict) and message.get("id") is not None and "method" in message:
        write({"jsonrpc": "2.0", "id": message["id"], "result": answer(message)})
