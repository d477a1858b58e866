"""The hub's fast path for `tools/call` on its own stdio.

Each line from the client is looked at before the SDK sees it. A well-formed `tools/call` (on an
initialised 2025-11-25 session, or stamped with a 2026-07-28 `_meta` envelope) is answered here:
`Hub.route_call(wire=True)` runs the whole policy chain — access, argument validation, audit, rate
limit, deadline, retry, breaker, bulkhead — and a stdio downstream's JSON result is relayed with
only `_meta` rewritten. The matching `notifications/cancelled` is handled here too. Everything
else (the handshake, lists, resources, prompts, any request this path is unsure of) goes to the
SDK's server unchanged, so the protocol stays the SDK's.

The answers are the ones the SDK's server gives for the same request: the result object with the
hub's request id in `_meta`, plus `resultType` and the hub's `serverInfo` stamp on 2026-07-28;
the `not_found` result (`hub.unknown_tool`) for a tool the caller may not use; no answer to a cancelled request.

Every call the hub can route starts on the express driver (`hub.calls.drivers`): admitted and sent
in the callback that read it, answered in the callback that reads the child's answer, with no task
at all. A call that must wait for something escalates to the awaiting driver, an asyncio task of its
own (cancelled by the client's `notifications/cancelled` or when stdin closes): the hub always runs
on asyncio, and anyio's task and scope objects were a tenth of a relayed call's cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
from mcp_types import (CLIENT_CAPABILITIES_META_KEY, INTERNAL_ERROR, INVALID_REQUEST, LOG_LEVEL_META_KEY,
                       PROTOCOL_VERSION_META_KEY)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub import __version__
from hub.calls.drivers import ExpressCall, task_of
from hub.hub import Hub, UnknownTool
from hub.frontends.stdio.line_errors import FrontGuard, duplicate_message, error_line, id_key as _id_key
from hub.search.meta import META_NAMES, search_mode_for
from hub.trace_context import carried_trace
from hub.unknown_tool import unknown_tool_result
from hub.frontends.plain_calls import HANDSHAKE_VERSION, error_reply, offers_server_requests, plain_call, result_reply
from hub.frontends.stdio.json_lines import encode_off_loop, is_big, json_line, json_object
from hub.frontends.stdio.line_pipes import Send, WriteNow
from hub.wire import ToolResult

logger = logging.getLogger("hub.server")


class StdioToolCalls:
    """Answers `tools/call` lines itself; `take(line)` says whether it took a line."""

    def __init__(self, hub: Hub, send: Send, write_now: WriteNow) -> None:
        self._hub = hub
        self._send = send
        self._write_now = write_now
        self._server_info = {"name": hub.config.hub.name, "version": __version__}
        self._handshake_requested: str | None = None
        self._initialized = False
        self._relay_capable = False
        self._in_flight: dict[str, asyncio.Task[None] | ExpressCall] = {}
        self._writing: set[asyncio.Task[None]] = set()
        self.guard = FrontGuard(self._reply_now)
        """Answers what neither this path nor the SDK would: malformed lines, reused ids, overlong lines."""

    async def aclose(self) -> None:
        """Cancel the calls still running (stdin closed) and wait for them to finish."""
        tasks = [task_of(entry) for entry in list(self._in_flight.values())]
        await asyncio.sleep(0)  # tasks just made start first, so each one's cleanup runs when cancelled
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._writing, return_exceptions=True)

    def take(self, line: bytes) -> bool:
        """Handle `line` here (True) or leave it to the SDK (False). Never raises."""
        try:
            message = json_object(line)
            if message is not None:
                if b'"tools/call"' in line and self._take_call(message):
                    return True
                if b'"notifications/cancelled"' in line and self._take_cancel(message):
                    return True
                if not self._initialized:
                    self._watch_handshake(line, message)
            return self.guard.check(line, message, self._in_flight)
        except Exception:  # boundary: whatever this path cannot read, the SDK answers as it would
            logger.debug("leaving a line to the SDK", exc_info=True)
        return False

    def _take_call(self, message: dict[str, Any]) -> bool:
        call = plain_call(message)
        if call is None:
            return False
        request_id, name, arguments, meta, token = call.request_id, call.name, call.arguments, call.meta, call.progress_token
        if name in META_NAMES and search_mode_for(self._hub, self._hub.access.local):
            return False  # search mode's meta-tools are answered by the SDK server (`hub.search.front`)
        if self._hub.memory_servers_for(name):
            return False  # its server is listed from memory, still starting: the SDK path waits for it
        modern = PROTOCOL_VERSION_META_KEY in meta
        if modern:
            if meta[PROTOCOL_VERSION_META_KEY] not in MODERN_PROTOCOL_VERSIONS or CLIENT_CAPABILITIES_META_KEY not in meta:
                return False  # the SDK answers a malformed envelope with the error the spec names
            caps = meta[CLIENT_CAPABILITIES_META_KEY]
            if offers_server_requests(caps):
                return False  # its server requests come back through the input-required flow (`hub.relay.input_required`)
            if LOG_LEVEL_META_KEY in meta:
                return False  # its log opt-in is served on the SDK server's path (`hub.relay.logs`)
        elif not self._initialized or self._relay_capable:
            return False
        key = _id_key(request_id)
        if key in self._in_flight or self.guard.busy(key):
            self._reply_now(error_line(request_id, INVALID_REQUEST, duplicate_message(request_id)))
            return True
        local = self._hub.access.local
        progress = self._progress(token) if token is not None else None
        express = self._hub.start_express(
            name, arguments or {}, local,
            lambda result: self._answer_now(key, request_id, modern, result),
            lambda outcome: self._start(key, request_id, name, modern, outcome), progress)
        if express is not None:
            if not express.finished:  # a refusal at admission is answered before start_express returns
                self._in_flight[key] = express
        else:
            # With tracing on (`hub.telemetry`), the caller's `_meta.traceparent` (and tracestate) parents the call's span.
            traced = carried_trace(meta.get) if self._hub.tracing is not None else None
            self._start(key, request_id, name, modern,
                        self._hub.route_call(name, arguments, progress, traced, principal=local, wire=True))
        return True

    def _start(self, key: str, request_id: int | str, name: str, modern: bool,
               outcome: Coroutine[Any, Any, ToolResult]) -> asyncio.Task[None]:
        task = self._in_flight[key] = asyncio.get_running_loop().create_task(self._call(key, request_id, name, modern, outcome))
        return task

    def _take_cancel(self, message: dict[str, Any]) -> bool:
        if message.get("method") != "notifications/cancelled":
            return False
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        entry = self._in_flight.get(_id_key(request_id)) if isinstance(request_id, (int, str)) else None
        if entry is None:
            self.guard.cancelled(request_id)  # the SDK's, if any: it will not answer it
            return False
        task = task_of(entry)
        # Cancelled once it has started (a task cancelled before its first step would skip the
        # cleanup that tells the server and the audit log); one that finished first is answered.
        asyncio.get_running_loop().call_soon(task.cancel)
        return True

    def _watch_handshake(self, line: bytes, message: dict[str, Any]) -> None:
        """Note the handshake going by: the version the client asked for, then `initialized`."""
        if b'"initialize"' in line:
            params = message.get("params") if message.get("method") == "initialize" else None
            self._handshake_requested = params.get("protocolVersion") if isinstance(params, dict) else None
            caps = params.get("capabilities") if isinstance(params, dict) else None
            # A client that can answer sampling/elicitation/roots gets its calls from the SDK's server,
            # which relays a server's requests to it (`hub.relay`); this path has no way back.
            self._relay_capable = offers_server_requests(caps)
        elif b'"notifications/initialized"' in line and self._handshake_requested == HANDSHAKE_VERSION:
            self._initialized = message.get("method") == "notifications/initialized"

    async def _call(self, key: str, request_id: int | str, name: str, modern: bool,
                    outcome: Coroutine[Any, Any, ToolResult]) -> None:
        data: bytes | list[bytes | memoryview] | None = None
        try:
            reply = self._result_reply(request_id, modern, await outcome)
            if is_big(reply["result"]):
                data = await encode_off_loop(reply)
        except UnknownTool:  # or hidden: the same `not_found` result as the SDK face gives
            reply = self._result_reply(request_id, modern, unknown_tool_result(self._hub, name, self._hub.access.local))
        except asyncio.CancelledError:
            return  # the client cancelled it (or left): a cancelled request gets no answer
        except Exception:  # boundary: like the SDK, internals never reach the wire
            logger.exception("tools/call %s failed inside the hub", name)
            reply = error_reply(request_id, INTERNAL_ERROR, "Internal server error")
        finally:
            self._in_flight.pop(key, None)
        await (self._send_bytes(data) if data is not None else self._write(reply))

    def _answer_now(self, key: str, request_id: int | str, modern: bool, result: ToolResult) -> None:
        """Answer a call the express path finished, from the callback that read its answer."""
        self._in_flight.pop(key, None)
        reply = self._result_reply(request_id, modern, result)
        if is_big(reply["result"]):
            self._later(self._send_big(reply))
            return
        self._reply_now(json_line(reply))

    def _reply_now(self, data: bytes) -> None:
        """Write a line from a callback: at once if the client keeps up, else on a task."""
        if not self._write_now(data):  # the client is not reading: wait for it on a task
            self._later(self._send_bytes(data))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _send_big(self, reply: dict[str, Any]) -> None:
        await self._send_bytes(await encode_off_loop(reply))

    def _result_reply(self, request_id: int | str, modern: bool, result: ToolResult) -> dict[str, Any]:
        return result_reply(request_id, result, self._server_info if modern else None)

    def _progress(self, token: int | str) -> Callable[[float, float | None, str | None], Awaitable[None]]:
        async def report(progress: float, total: float | None, message: str | None) -> None:
            params: dict[str, Any] = {"progressToken": token, "progress": progress}
            if total is not None:
                params["total"] = total
            if message is not None:
                params["message"] = message
            await self._write({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})

        return report

    async def _write(self, message: dict[str, Any]) -> None:
        await self._send_bytes(json_line(message))

    async def _send_bytes(self, data: bytes | list[bytes | memoryview]) -> None:
        try:
            await self._send(data)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            logger.debug("client gone; answer dropped: %s", exc)
