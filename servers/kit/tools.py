"""Registering domain tools on an `MCPServer`: pydantic output, agent-readable errors.

`@domain_tool(server, ...)` registers an async function whose return annotation is a pydantic
model (→ `outputSchema` + `structuredContent`, with the JSON also in a text block). Every tool:
- refuses unknown arguments and reports bad ones as `invalid_argument` (`servers.kit.arguments`);
- turns a `DomainError` raised inside into an `isError` result with the hub's error shape, and any
  other exception into `internal` without leaking its text;
- if it takes an `idempotency_key`, runs at most once per key and caller, with the key bound to the
  call's arguments (`servers.kit.idempotency`), once `configure_domain` gave the server a store; a
  keyed write runs to its end in a task of its own even when its call is cancelled (the hub's
  deadline, the client's cancel), so its answer is recorded for the key and a retry gets that answer
  — before, a write that committed as its call was cancelled lost its record and a retry wrote twice;
  one cut off by the server stopping keeps its claim ("still running", then "outcome unknown": never
  run twice); the records' store out of reach (PostgreSQL down) refuses the call with a retryable
  `unavailable` naming it, before anything is written (`servers.kit.idempotency_pg`), and a release or
  a record that cannot be written when the call ends is retried in the background (`settle_later`);
- watches the provider writes it makes: a failure after one landed is a non-retryable error naming
  the change made (`servers.kit.landed`), recorded for its idempotency key like a result;
- carries the example requests of its domain's `examples.json` (tool name → list of requests as
  users phrase them) in its `_meta`, for the hub's tool search (`hub.search.examples`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp.server import MCPServer
from pydantic import BaseModel

from hub.datadir import shared_store_for_server
from hub.errors import HubToolError, ToolErrorBody, error_result
from hub.search.examples import EXAMPLES_META_KEY, clean_examples
from servers.kit.arguments import INVALID, make_strict
from servers.kit.caller import bind_caller, caller_for_request, current_caller
from servers.kit.errors import DomainError
from servers.kit.idempotency import KEY_ARGUMENT, IdempotencyLedger, fingerprint, keyed_call
from servers.kit.landed import after_landing, landed_rows, watching
from servers.kit.store import Store, close_stores

logger = logging.getLogger("servers")
F = TypeVar("F", bound=Callable[..., Awaitable[BaseModel]])

_LEDGER = "_mcp_hub_idempotency"
_OPEN_WORLD = "_mcp_hub_open_world"
_EXAMPLES = "_mcp_hub_examples"


_DETACHED: set[asyncio.Task[Any]] = set()
"""Keyed writes running on their own (`_detached`), held so they are not collected mid-way."""


async def _detached(work: Awaitable[types.CallToolResult]) -> types.CallToolResult:
    """`work` in a task of its own: cancelling the caller leaves it running to its end (in the caller's
    context: who is calling stays bound)."""
    task = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
    _DETACHED.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


class PartlyApplied(DomainError):
    """A call that failed after one of its provider writes landed (`servers.kit.landed.after_landing`)."""


PARTIAL_RECORD = "mcp-hub/partly-applied"
"""The key under which an idempotency record holds the error of a write that only partly completed."""


async def _watched(name: str, fn: Callable[..., Awaitable[BaseModel]], kwargs: dict[str, Any]) -> BaseModel:
    """`fn(**kwargs)`, its provider writes watched: a failure after one landed is `PartlyApplied`."""
    with watching() as landed:
        try:
            return await fn(**kwargs)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            if not landed:
                raise
            logger.warning("%s failed after a provider write landed (%s)", name, type(exc).__name__,
                           exc_info=not isinstance(exc, HubToolError))
            said = exc.body if isinstance(exc, HubToolError) and (exc.body.details or {}).get("partially_applied") else None
            partial = said or after_landing(name, landed, exc).body  # a connector that said what is left is kept,
            if said is not None and "landed" not in (said.details or {}):  # with the writes that landed added
                partial = said.model_copy(update={"details": {**(said.details or {}), "landed": landed_rows(landed)}})
            # a connector's own answer keeps whether a repeat is the way to finish (outside review cal32 #4)
            raise PartlyApplied(partial.code, partial.message, details=partial.details, retryable=partial.retryable,
                                retry_after_s=partial.retry_after_s) from exc


SETTLE_EVERY_S = 2.0
"""How often a release or a record the idempotency store refused is tried again (`settle_later`)."""
SETTLE_FOR_S = 600.0
"""For how long it is tried: past the 5 minutes a claim is "still running" (then its outcome is
reported unknown; a record that lands later still answers retries with the first result)."""


async def _record(ledger: Any, principal: str, name: str, key: str, payload: dict[str, Any]) -> None:
    """Record a keyed write's answer for its key; if the store refuses, keep trying (`settle_later`)."""
    try:
        await ledger.complete(principal, name, key, payload)
    except Exception as exc:  # noqa: BLE001 — the write happened: its result is the caller's
        # (re-check of round 14: PostgreSQL down at this moment made a written issue an
        # `internal` failure). A retry with the key finds the claim: "still running" — never a
        # second write — until the record lands (round 18: it is retried, not dropped).
        logger.warning("%s wrote, but recording its result for the idempotency key failed (%s); retrying in "
                       "the background: until it lands, a retry with that key is told it is still running",
                       name, type(exc).__name__)
        settle_later(f"recording {name}'s result for its idempotency key",
                     lambda: ledger.complete(principal, name, key, payload))


async def _release(ledger: Any, principal: str, name: str, key: str, failure: BaseException) -> None:
    """Free the key of a write that failed (nothing of it landed), so a retry with it runs again.

    Decided (outside review, cluster round 18): if the store refuses, the caller still gets the
    provider's own error, not the store's; the key stays claimed meanwhile, and the error says so
    (a retry with the same key before the store answers is told "still running"); the release is
    retried in the background until the store answers (`settle_later`)."""
    try:
        await ledger.release(principal, name, key)
    except Exception as exc:  # noqa: BLE001 — the call's own failure is what its caller must see
        logger.warning("%s failed, and its idempotency key could not be freed (%s); retrying in the background",
                       name, type(exc).__name__)
        settle_later(f"freeing the idempotency key of a failed {name}", lambda: ledger.release(principal, name, key))
        if isinstance(failure, HubToolError):
            body = failure.body
            body.message += (" (Its idempotency_key could not be freed yet: the idempotency store is unreachable. "
                             "A retry with the same key is told it is still running until the store answers; "
                             "nothing of this call was written.)")
            body.details = {**(body.details or {}), "idempotency_key_held": True}


def settle_later(what: str, step: Callable[[], Awaitable[Any]]) -> None:
    """Try `step` (a write to the idempotency store it just refused) every `SETTLE_EVERY_S` for
    `SETTLE_FOR_S`, in a task of its own; it is lost if the server stops first."""

    async def again() -> None:
        deadline = anyio.current_time() + SETTLE_FOR_S
        while anyio.current_time() < deadline:
            await anyio.sleep(SETTLE_EVERY_S)
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 — the store is still out of reach: try again
                logger.debug("%s failed again (%s)", what, type(exc).__name__)
                continue
            logger.info("%s succeeded once the idempotency store answered again", what)
            return
        logger.warning("gave up %s after %.0f s: the idempotency store did not answer", what, SETTLE_FOR_S)

    task = asyncio.get_running_loop().create_task(again())
    _DETACHED.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task[Any]) -> None:
    _DETACHED.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None and not isinstance(error, HubToolError):
        logger.debug("a keyed write ended with %s", type(error).__name__)  # its caller, if still there, reports it


def ok(model: BaseModel) -> types.CallToolResult:
    return recorded(model.model_dump(mode="json", by_alias=True))


def recorded(payload: dict[str, Any]) -> types.CallToolResult:
    """A successful result from its structured content (also how a replayed result is answered; a
    write that only partly completed is replayed as the error it answered: `servers.kit.landed`)."""
    if isinstance(payload.get(PARTIAL_RECORD), dict):
        return error_result(ToolErrorBody.model_validate(payload[PARTIAL_RECORD]))
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(payload, ensure_ascii=False))],
        structured_content=payload,
    )


def domain_examples(package: str) -> dict[str, list[str]]:
    """The example requests in `package`'s `examples.json` (tool name → requests); {} without one."""
    path = resources.files(package) / "examples.json"
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return {name: list(clean_examples(requests)) for name, requests in loaded.items()}


def configure_domain(server: MCPServer, *, open_world: bool, idempotency: Store | None,
                     examples: Mapping[str, Sequence[str]] | None = None) -> None:
    """Settings every tool registered afterwards on `server` shares: whether its backend reaches
    a system outside this process (`openWorldHint`; false for the embedded SQLite backends), the
    store that keeps idempotency records, and each tool's example requests (`domain_examples`)."""
    setattr(server, _OPEN_WORLD, open_world)
    setattr(server, _LEDGER, _ledger(server, open_world, idempotency))
    setattr(server, _EXAMPLES, dict(examples or {}))
    server.close_resources = lambda: close_stores(server)  # type: ignore[attr-defined]  # the hub calls it on a restart


def _ledger(server: MCPServer, open_world: bool, store: Store | None) -> Any:
    """Where the server's idempotency records go: the hub's shared PostgreSQL store when its data lives
    at a provider and replicas share that store (a key must hold whichever replica a retry reaches:
    `servers.kit.idempotency_pg`), else `store` beside its data (an embedded backend's records stay
    with the data they name); None: no keyed tools."""
    if store is None:
        return None
    shared = shared_store_for_server(default_scope=server.name) if open_world else None
    if shared is not None:
        from servers.kit.idempotency_pg import PgIdempotencyLedger  # psycopg only when PostgreSQL is configured

        return PgIdempotencyLedger(*shared)
    return IdempotencyLedger(store)


def domain_tool(
    server: MCPServer,
    *,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool | None = None,
    title: str | None = None,
    not_here: dict[str, str] | None = None,
) -> Callable[[F], F]:
    """Register a tool with annotations on every tool (hints the hub uses for retries and scopes).
    `open_world` defaults to what `configure_domain` said of the server's backend; `not_here` maps
    arguments the tool does not take to advice given when a caller passes one anyway."""
    annotations = types.ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive if not read_only else None,
        idempotent_hint=idempotent or read_only,
        open_world_hint=getattr(server, _OPEN_WORLD, True) if open_world is None else open_world,
    )
    ledger: Any = getattr(server, _LEDGER, None)  # IdempotencyLedger or PgIdempotencyLedger

    def register(fn: F) -> F:
        keyed = KEY_ARGUMENT in inspect.signature(fn).parameters and ledger is not None
        name = fn.__name__

        async def run(kwargs: dict[str, Any]) -> types.CallToolResult:
            # A dry run writes nothing, so it neither uses nor spends the key.
            key = kwargs.get(KEY_ARGUMENT) if keyed and not kwargs.get("dry_run") else None
            if key is None or ledger is None:
                return ok(await _watched(name, fn, kwargs))
            if not key.strip():
                raise HubToolError("invalid_argument", f"{KEY_ARGUMENT} is empty: leave it out, or give a key unique to this request")
            principal = current_caller().principal
            print_ = fingerprint(kwargs)
            earlier = await ledger.claim(principal, name, key, print_)
            if earlier is not None:
                return recorded(earlier)

            async def write() -> types.CallToolResult:
                try:
                    # Provider keys fold in the arguments and the ledger's scope (`provider_key`): two namespaces
                    # of a domain on one provider account never share a replay entry or a create marker.
                    with keyed_call(f"{getattr(ledger, 'scope', '')}|{print_}"):
                        result = ok(await _watched(name, fn, kwargs))
                except PartlyApplied as exc:  # the provider holds a change: a retry with the key must not redo it
                    result = exc.to_result()
                    with anyio.CancelScope(shield=True):
                        await _record(ledger, principal, name, key, {PARTIAL_RECORD: exc.body.model_dump(exclude_none=True)})
                    return result
                except anyio.get_cancelled_exc_class():
                    # Only a stop of the server cancels this task, and the write may have committed meanwhile
                    # (its database work runs on in a thread): the claim stays, so a retry is told "still
                    # running" rather than writing again (re-check: a hub stopped mid-write released the key
                    # after the commit, and the retry paid twice). Later its outcome is reported unknown.
                    raise
                except BaseException as failure:
                    with anyio.CancelScope(shield=True):  # a failed write must still free its key
                        await _release(ledger, principal, name, key, failure)
                    raise
                with anyio.CancelScope(shield=True):
                    await _record(ledger, principal, name, key, result.structured_content or {})
                return result

            return await _detached(write())

        @functools.wraps(fn)
        async def wrapper(**kwargs: Any) -> Any:
            invalid = kwargs.pop(INVALID, None)
            if invalid is not None:
                return invalid.to_result()
            try:
                with bind_caller(caller_for_request()):  # who is calling (servers.kit.caller), or unauthorized
                    return await run(kwargs)
            except HubToolError as exc:
                return exc.to_result()
            except Exception:  # boundary: the agent gets a code, the log gets the traceback
                logger.exception("tool %s failed", name)
                return HubToolError("internal", f"{name} failed unexpectedly; the server log has details").to_result()

        examples = getattr(server, _EXAMPLES, {}).get(name)
        server.add_tool(wrapper, name=name, description=(fn.__doc__ or "").strip(), annotations=annotations,
                        meta={EXAMPLES_META_KEY: list(examples)} if examples else None)
        make_strict(server._tool_manager.get_tool(name), not_here)  # noqa: SLF001 — the SDK returns no Tool from add_tool
        return fn

    return register


async def deleted_lately(server: MCPServer, record_id: str) -> bool:
    """Whether this server deleted `record_id` within the idempotency TTL (`forget_deleted` was told)."""
    ledger: Any = getattr(server, _LEDGER, None)  # IdempotencyLedger or PgIdempotencyLedger
    return ledger is not None and await ledger.was_deleted(record_id)


async def forget_deleted(server: MCPServer, record_id: str) -> None:
    """Tell the idempotency records that `record_id` was deleted (its keys answer `not_found`)."""
    ledger: Any = getattr(server, _LEDGER, None)  # IdempotencyLedger or PgIdempotencyLedger
    if ledger is None:
        return
    try:
        await ledger.record_deleted(record_id)
    except Exception as exc:  # noqa: BLE001 — the delete happened: its answer must say so, not "unavailable"
        logger.warning("recording that %s was deleted failed (%s); retrying in the background", record_id,
                       type(exc).__name__)
        settle_later(f"recording that {record_id} was deleted", lambda: ledger.record_deleted(record_id))
