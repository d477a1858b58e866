"""A raw JSON-RPC stdio server (no SDK) for `tests/hub/relay/test_relay_state_follows_clients.py`: it writes
what the hub sent it, one JSON line per event (`{"pid", "kind", ...}`), to the file named by `EVENTS`.

- `logging/setLevel` is recorded (`kind: setLevel`, `level`);
- `resources/subscribe` / `unsubscribe` are recorded (`kind: subscribe|unsubscribe`, `uri`); its resources
  are the template `file:///{name}` (any name), subscribable;
- `notifications/progress` from the client is recorded (`kind: progress`, the params);
- tool `die` exits with code 3 (the hub restarts it); tool `ask` sends `elicitation/create` with
  `_meta.progressToken` "srv-tok-1" and answers the call with the elicitation's answer.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

EVENTS = os.environ["EVENTS"]
TOOLS = [{"name": name, "inputSchema": {"type": "object"}} for name in ("die", "ask", "hello")]
PENDING: dict[str, Any] = {}


def record(kind: str, **more: Any) -> None:
    with open(EVENTS, "a", encoding="utf-8") as out:
        out.write(json.dumps({"pid": os.getpid(), "kind": kind, **more}) + "\n")


def write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    """The result of `request`, or None when it is answered later (`ask`)."""
    method, params = request.get("method"), request.get("params") or {}
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion", "2025-11-25"),
                "capabilities": {"tools": {}, "logging": {}, "resources": {"subscribe": True}},
                "serverInfo": {"name": "relay26", "version": "1"}}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "resources/list":
        return {"resources": []}
    if method == "resources/templates/list":
        return {"resourceTemplates": [{"uriTemplate": "file:///{name}", "name": "file"}]}
    if method == "logging/setLevel":
        record("setLevel", level=params.get("level"))
    elif method in ("resources/subscribe", "resources/unsubscribe"):
        record(method.split("/")[1], uri=params.get("uri"))
    elif method == "tools/call" and params.get("name") == "die":
        sys.exit(3)
    elif method == "tools/call" and params.get("name") == "ask":
        PENDING["srv-1"] = request["id"]
        write({"jsonrpc": "2.0", "id": "srv-1", "method": "elicitation/create",
               "params": {"message": "go on?", "requestedSchema": {"type": "object", "properties": {}},
                          "_meta": {"progressToken": "srv-tok-1"}}})
        return None
    elif method == "tools/call":
        return {"content": [{"type": "text", "text": "hello"}]}
    return {}


for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if not isinstance(message, dict):
        continue
    if message.get("method") == "notifications/progress":
        record("progress", params=message.get("params"))
    elif "method" not in message and message.get("id") in PENDING:  # the answer to our elicitation
        call = PENDING.pop(message["id"])
        write({"jsonrpc": "2.0", "id": call, "result": {"content": [{"type": "text", "text": json.dumps(message.get("result"))}]}})
    elif message.get("id") is not None and "method" in message:
        result = answer(message)
        if result is not None:
            write({"jsonrpc": "2.0", "id": message["id"], "result": result})
