"""HTTP intake: `POST /webhooks/<provider>` on a domain server's HTTP app (and, through the hub, at
`/webhooks/<namespace>/<provider>`). A delivery is verified, written durably to the event log, and
answered at once; processing happens in the background (`Processor`).

Answers: 200 (accepted, or a duplicate of an accepted delivery — providers must stop retrying — or
`ignored`: signed, but about nothing this domain reads, so not logged), 401 (unsigned, forged, stale,
or the provider's secret is not configured), 404 (a provider this domain does not take), 413 (body
over the cap: default 1 MiB, Google 64 KiB), 405 (not POST), 400 (a Graph validation token that is
empty or too long, JSON nested deeper than `MAX_JSON_DEPTH` or over its structure budget), 503 with
`Retry-After` (the event log cannot be written: the delivery is not accepted, the provider retries).
Xero always gets an empty body (its intent-to-receive check); Graph's `validationToken` handshake is
echoed as text/plain. Payloads are never logged. A Graph POST is proven item by item (`verify.graph_collection`):
items of another subscription on the URL are skipped and not logged, lifecycle items are handed to the
push-channel upkeep (`channels.ChannelKeeper.lifecycle`) before the answer, and the rest is logged.

What an unauthenticated request may cost is bounded: the secret is looked up before the body is read,
every HMAC is checked before any parse, and Graph — whose proof is inside the body — parses within
`verify.UNVERIFIED` (outside review, events round 18: a 1 MiB `[{},…]` held the event loop 0.6 s).

Deliveries are keyed by `namespace`: the domain's name on its own server, the hub namespace once the
HTTP hub `bind`s the intake. Rows, dedupe, claims and secrets are that namespace's only, so two
tenants of one domain never process (or open the route of) each other's deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub.redact import mask

from servers.kit.webhooks.log import EventLog
from servers.kit.webhooks.normalize import delivery_alias, delivery_id, kept_headers
from servers.kit.webhooks.processor import Processor
from servers.kit.webhooks.forms import FORM_TYPE, bamboohr_form
from servers.kit.webhooks.readers import Malformed, Mismatched, UnusableId, read
from servers.kit.webhooks.verify import REPLAY_WINDOW_S, VERIFIERS, Rejected, Secrets, graph_collection, parse_json

logger = logging.getLogger("servers.webhooks")
MAX_BODY_BYTES = 1 << 20
PROVIDER_BODY_BYTES = {"google": 64 << 10}
"""Tighter caps where a provider's deliveries are known small: Google's channel messages have no body."""
MAX_VALIDATION_TOKEN = 1024
LOG_RETRY_AFTER_S = 5
REFUSALS_LOGGED = 10
REFUSAL_WINDOW_S = 60.0
IGNORED = object()
"""`Intake._judge`'s answer for a delivery announcing nothing this server reads."""
"""Refused deliveries logged one by one per provider and status in a minute (`Intake._log_refusal`)."""
REFUSED_ALERT = 5
"""Refusals in a row, none accepted, after which a provider's active push channels show as failing."""


class Intake:
    """One domain's webhook intake: which providers it takes, its log, its processor."""

    def __init__(self, domain: str, providers: tuple[str, ...], log: EventLog, processor: Processor, *,
                 max_body_bytes: int = MAX_BODY_BYTES, window_s: float = REPLAY_WINDOW_S,
                 secrets: Callable[[str], str | None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.domain = domain
        self.namespace = domain
        """Whose deliveries these are: the domain's name until the HTTP hub `bind`s its namespace."""
        self.providers = providers
        self.log = log
        self.processor = processor
        self.max_body_bytes = max_body_bytes
        self.window_s = window_s
        self.secrets: Callable[[str], str | None] = secrets or Secrets(domain)
        self.clock = clock
        self._refusal_lines: dict[tuple[str, int], tuple[float, int, int]] = {}
        self.counters = {"received": 0, "duplicate": 0, "rejected": 0, "ignored": 0}
        self.by_provider: dict[str, dict[str, int]] = {}
        """The same counters per provider; refusals for a provider this domain does not take count
        under `other` (the path is the sender's choice: no label per made-up name)."""
        self.refused_in_a_row: dict[str, tuple[int, float]] = {}
        """Per provider taken: refusals since its last accepted delivery, and when the first of them
        came (`_count`); shown on its push channels (`channels_now`)."""
        self.started = False
        self.failure: tuple[str, float] | None = None
        """Why the processor stopped (masked) and when, until it runs again (`running`)."""
        self.keepers: list[Any] = []
        """Push-channel upkeep jobs (`channels.ChannelKeeper`) run beside the processor."""

    def bind(self, namespace: str, *, store_url: str | None = None, provider_wide: Callable[[], bool] | None = None,
             namespaces: Callable[[], list[str]] | None = None) -> None:
        """Serve as the hub's `namespace` (the HTTP hub calls it before the processor first starts; a
        no-op after): rows, dedupe and claims are keyed by it, secrets are `Secrets(namespace,
        provider_wide, namespaces=the hub's namespaces)`, push channels carry that secret, and with `store_url` (the hub's
        `hub.store.url`) the log moves to PostgreSQL. Events left pending in the SQLite log stay there
        (see docs/events.md)."""
        if self.started:
            return
        self.namespace = namespace
        if isinstance(self.secrets, Secrets):
            self.secrets = Secrets(namespace, provider_wide or (lambda: True), self.secrets.environ,
                                   namespaces or (lambda: []))
        if store_url is not None and getattr(self.log, "url", None) != store_url:
            from servers.kit.webhooks.log_pg import PgEventLog  # psycopg only when PostgreSQL is configured

            self.log = self.processor.log = PgEventLog(store_url, self.domain, self.log.store, namespace=namespace)
        self.log.namespace = namespace
        if self.processor.feed is not None:  # its webhook changes are this namespace's (`feed`)
            self.processor.feed.scope = namespace
        for keeper in self.keepers:  # a channel's token (Google) or clientState (Graph): what this route checks, when used
            keeper.api.secret = functools.partial(self.secret, keeper.api.provider)

    def secret(self, provider: str) -> str | None:
        """The secret this route checks for `provider` now: the one lookup the push-channel upkeep uses
        too (`channels.keepers_from_env(secrets=)`), so a channel never carries another (outside review,
        events round 26). Read at each use: `bind` may move the route to a hub namespace after the
        keepers are built."""
        return self.secrets(provider)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Intake]:
        """Run the background processor for as long as the block lasts. If it (or a channel's upkeep)
        fails, the failure is kept (`failure`, shown by `status`) and raised out of the block."""
        async with anyio.create_task_group() as group:
            self.started, self.failure = True, None
            group.start_soon(self._supervised, self.processor.run)
            for keeper in self.keepers:
                group.start_soon(self._supervised, keeper.run)
            try:
                yield self
            finally:
                self.started = False
                group.cancel_scope.cancel()

    async def _supervised(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except Exception as exc:
            self.started = False
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self.failure = (mask(f"{type(exc).__name__}: {text}" if text else type(exc).__name__), self.clock())
            logger.error("webhook processor of %s failed (%s): deliveries are still accepted and wait in the event log "
                         "until the server restarts", self.namespace, type(exc).__name__)
            raise

    def routes(self, prefix: str = "/webhooks") -> list[Route]:
        async def endpoint(request: Request) -> Response:
            return await self.handle(request, request.path_params["provider"])

        async def status(request: Request) -> Response:
            return JSONResponse(await self.status())

        return [Route(prefix + "/{provider}", endpoint, methods=["POST"]), Route(prefix, status, methods=["GET"])]

    async def handle(self, request: Request, provider: str) -> Response:
        """Verify, log durably, acknowledge. Never raises for a bad delivery: it answers with a status."""
        try:
            return await self._handle(request, provider)
        except Rejected as refusal:
            self._count(provider, "rejected")
            shown = provider if provider in self.providers else "other"  # a made-up name is the sender's text, any length
            self._log_refusal(shown, refusal)
            headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after is not None else None
            if provider == "xero":
                return Response(status_code=refusal.status, headers=headers)
            return JSONResponse({"error": refusal.reason}, status_code=refusal.status, headers=headers)

    def _log_refusal(self, shown: str, refusal: Rejected) -> None:
        """One log line per refused delivery, up to `REFUSALS_LOGGED` a minute per provider and status; the rest are
        counted and summed up in one line when the next minute's first comes (outside review attack53 F4: anyone could
        write 500 lines a second with forged posts). The metrics count every one."""
        now, key = time.monotonic(), (shown, refusal.status)
        since, logged, quiet = self._refusal_lines.get(key, (now, 0, 0))
        if now - since >= REFUSAL_WINDOW_S:
            self._refusal_summary(key)
            since, logged, quiet = now, 0, 0
        if logged < REFUSALS_LOGGED:
            logger.info("webhook %s/%s refused (%d): %s", self.namespace, shown, refusal.status, refusal.reason)
            logged += 1
        else:
            if not quiet:  # the summary is written when the minute ends, whether or not another refusal comes (atk53b N3)
                with contextlib.suppress(RuntimeError):  # no loop (a synchronous caller): the next refusal writes it
                    asyncio.get_running_loop().call_later(max(0.0, REFUSAL_WINDOW_S - (now - since)),
                                                          self._refusal_summary, key, since)
            quiet += 1
        self._refusal_lines[key] = (since, logged, quiet)

    def _refusal_summary(self, key: tuple[str, int], minute: float | None = None) -> None:
        """The line for the refusals of `key`'s minute (the one begun at `minute`, if given) not logged one by one,
        once; the minute then starts again."""
        since, _, quiet = self._refusal_lines.get(key, (0.0, 0, 0))
        if minute is not None and since != minute:
            return  # that minute was summed up already
        self._refusal_lines.pop(key, None)
        if quiet:
            logger.info("webhook %s/%s: %d more deliveries refused (%d) in the minute from %s, not logged one by one",
                        self.namespace, key[0], quiet, key[1],
                        time.strftime("%H:%M:%S", time.gmtime(time.time() - (time.monotonic() - since))))

    async def _handle(self, request: Request, provider: str) -> Response:
        if provider not in self.providers or provider not in VERIFIERS:
            raise Rejected(404, f"this server takes webhooks from {', '.join(self.providers)} only")
        if request.method != "POST":
            raise Rejected(405, "webhooks are delivered with POST")
        query: Mapping[str, str] = request.query_params
        if provider == "graph" and "validationToken" in query:
            token = query["validationToken"]
            if not token or len(token) > MAX_VALIDATION_TOKEN:
                raise Rejected(400, "validationToken is empty or too long")
            return PlainTextResponse(token, headers={"X-Content-Type-Options": "nosniff"})
        secret = self.secrets(provider)
        if secret is None:  # before the body is read: nothing to verify it with
            missing = getattr(self.secrets, "missing", None)
            raise Rejected(401, missing(provider) if missing else f"no {provider} webhook secret is configured: "
                                                                  "nothing is accepted unsigned")
        body = await self._body(request, PROVIDER_BODY_BYTES.get(provider, self.max_body_bytes))
        headers = {k.lower(): v for k, v in request.headers.items()}
        acted: dict[str, Any] = {}
        if provider == "graph":  # proven per item: only our items are read, lifecycle ones acted on here
            items, _ = graph_collection(body, secret)
            changed = await self._graph_lifecycle(items)
            acted = {"lifecycle": len(items) - len(changed)} if len(changed) < len(items) else {}
            if not changed:
                self._count(provider, "received")
                return JSONResponse({"accepted": True, "duplicate": False, "event": None, **acted})
            # Each of our change items is a delivery of its own, logged as its canonical JSON: the same item
            # re-sent in another batch, beside another app's items or re-serialised is a duplicate (outside
            # review attack53 F1: it was keyed by the POST's bytes and reached the feed again).
            judged = [self._judge(provider, headers, {"value": [item]}) for item in changed]  # all before any is logged
            logged = []  # (atk53b N2: the good items were logged behind a 400)
            for data in judged:
                canonical = b"" if data is IGNORED else json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
                logged.append(await self._log(provider, headers, canonical, data))
            new = [seq for seq, duplicate in logged if not duplicate and seq is not None]
            return JSONResponse({"accepted": True, "duplicate": not new and any(d for _, d in logged),
                                 "event": new[0] if new else next((seq for seq, _ in logged if seq is not None), None),
                                 **({"events": new} if len(new) > 1 else {}), **acted})
        else:
            VERIFIERS[provider](body, headers, query, secret, self.clock(), self.window_s)
        data: Any = None
        if provider == "google":
            if headers.get("x-goog-resource-state", "").lower() == "sync":
                return Response(status_code=200)  # a new channel's first message: it announces no change
        else:
            data = _payload(provider, body, headers.get("content-type", ""))
            if provider == "bamboohr" and not body.lstrip().startswith(b"{"):
                # A Form Post (`forms`), verified and read: logged as its JSON, which the processor reads (its
                # deduplication key is then that JSON's: one form always reads into the same JSON).
                body = json.dumps(data, separators=(",", ":")).encode()
        if provider == "xero" and not data.get("events"):
            return Response(status_code=200)  # intent-to-receive: signature right, nothing to log
        seq, duplicate = await self._log(provider, headers, body, self._judge(provider, headers, data))
        if provider == "xero":
            return Response(status_code=200)
        if seq is None and not duplicate:
            return JSONResponse({"accepted": True, "duplicate": False, "ignored": True, "event": None})
        return JSONResponse({"accepted": True, "duplicate": duplicate, "event": seq, **acted})

    def _judge(self, provider: str, headers: Mapping[str, str], data: Any) -> Any:
        """A verified delivery's parsed `data`, or `IGNORED` when it announces nothing this server reads; `Rejected`
        when it cannot be logged (`_reads_nothing`)."""
        return IGNORED if self._reads_nothing(provider, headers, data) else data

    async def _log(self, provider: str, headers: Mapping[str, str], body: bytes, data: Any) -> tuple[int | None, bool]:
        """Log one verified delivery as `_judge` read it: (its event, duplicate); (None, False) for one announcing
        nothing this server reads (counted `ignored`, not logged)."""
        if data is IGNORED:
            self._count(provider, "ignored")
            return None, False
        seq, duplicate = await self._record(provider, delivery_id(provider, headers, body),
                                            delivery_alias(provider, headers, body), kept_headers(headers), body)
        self._count(provider, "duplicate" if duplicate else "received")
        if not duplicate:
            self.processor.wake()
        return seq, duplicate

    async def _graph_lifecycle(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Hand each verified Graph lifecycle notification (`lifecycleEvent`: subscriptionRemoved,
        reauthorizationRequired, missed) to the push-channel upkeep, which records it before this answers
        (a store that cannot be written is a 503 Graph retries); the change notifications left."""
        changes = []
        for item in items:
            event = item.get("lifecycleEvent")
            if not event:
                changes.append(item)
                continue
            subscription = str(item.get("subscriptionId") or "")
            try:
                known = [await keeper.lifecycle(subscription, str(event)) for keeper in self.keepers
                         if keeper.api.provider == "graph" and hasattr(keeper, "lifecycle")]
            except Exception as exc:  # noqa: BLE001 — not recorded: Graph retries
                logger.warning("graph lifecycle notification on %s not recorded (%s)", self.namespace, type(exc).__name__)
                raise Rejected(503, "the push channel state could not be written, so the lifecycle notification was "
                                    "not accepted: retry shortly", retry_after=LOG_RETRY_AFTER_S) from None
            if not any(known):
                logger.info("graph lifecycle notification %s on %s: no subscription this server keeps",
                            str(event)[:40], self.namespace)
        return changes

    async def _record(self, provider: str, delivery: str, alias: str | None, headers: dict[str, str],
                      body: bytes) -> tuple[int, bool]:
        """Log the delivery; a log that cannot be written (PostgreSQL down, disk full) is a 503 the
        provider retries (the PostgreSQL log waits little for a connection, less while it knows it is down)."""
        try:
            return await self.log.record(provider, delivery, headers, body, alias=alias)
        except Exception as exc:  # noqa: BLE001 — any failure to log means "not accepted", never a 500
            logger.warning("webhook %s/%s not accepted: its event log failed (%s)", self.namespace, provider,
                           type(exc).__name__)
            raise Rejected(503, "the event log is unreachable, so the delivery was not accepted: retry shortly",
                           retry_after=LOG_RETRY_AFTER_S) from None

    def _reads_nothing(self, provider: str, headers: Mapping[str, str], data: Any) -> bool:
        """A verified delivery announcing no change this server reads (`readers`: an event type the domain
        does not take, a pull request, another company of the same app): acknowledged, counted `ignored`,
        never logged — logging it only to dead-letter it made the domain `degraded` (outside review,
        events round 18). One the reader cannot read is logged, and dead-lettered by the processor; one
        whose body is not what its unsigned event header claims (`readers.Mismatched`) is refused (400)."""
        try:
            return not read(provider, headers, data, self.processor.account)
        except Mismatched as exc:  # what an unsigned header claims is not what was signed: refused, never logged
            raise Rejected(400, f"{exc}: the event name is not signed, so a body must be what it claims; this "
                                "delivery was refused and not logged (resend it under its own event name)") from None
        except UnusableId as exc:
            raise Rejected(400, f"{exc}: this delivery was refused and not logged") from None
        except Malformed:
            return False

    def _count(self, provider: str, outcome: str) -> None:
        self.counters[outcome] = self.counters.get(outcome, 0) + 1
        label = provider if provider in self.providers else "other"
        counts = self.by_provider.setdefault(label, {"received": 0, "duplicate": 0, "rejected": 0})
        counts[outcome] = counts.get(outcome, 0) + 1
        if label != "other":
            if outcome == "rejected":
                refused, since = self.refused_in_a_row.get(label, (0, self.clock()))
                self.refused_in_a_row[label] = (refused + 1, since)
            else:
                self.refused_in_a_row.pop(label, None)

    def metrics(self) -> dict[str, dict[str, float]]:
        """Per provider, synchronously (for a Prometheus scrape): received, duplicate and rejected since
        start, and from the log `dead_lettered`, `pending` and `lag_s` (age of the oldest pending event)."""
        out: dict[str, dict[str, float]] = {p: {"received": 0, "duplicate": 0, "rejected": 0, "dead_lettered": 0,
                                                "pending": 0, "lag_s": 0.0} for p in self.providers}
        for provider, counts in self.by_provider.items():
            out.setdefault(provider, {"dead_lettered": 0, "pending": 0, "lag_s": 0.0}).update(counts)
        for provider, stats in self.log.stats_now(self.clock()).items():
            out.setdefault(provider, {"received": 0, "duplicate": 0, "rejected": 0}).update(stats)
        return out

    def channels_now(self) -> list[dict[str, Any]]:
        """Each push channel's state (`channels.ChannelKeeper.status_now`), synchronously, with refusals
        on its route shown (`_refusals_shown`)."""
        return self._refusals_shown([c for keeper in self.keepers for c in keeper.status_now()])

    def _refusals_shown(self, channels: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An active channel whose provider's deliveries have all been refused, at least
        `REFUSED_ALERT` in a row since the last accepted one, shows as `error` (a channel made with a
        secret or address this route no longer takes is refused for ever, and nothing else tells).
        Anyone can post to the route, so forged posts can show it too: it clears at the next accepted
        delivery, and it never stops the server."""
        shown = []
        for channel in channels:
            refused, since = self.refused_in_a_row.get(channel["provider"], (0, 0.0))
            if channel["state"] == "active" and refused >= REFUSED_ALERT:
                at = datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")
                channel = channel | {"state": "error", "last_error": (
                    f"the last {refused} {channel['provider']} deliveries to this route (since {at}) were refused and none "
                    "accepted: if the provider sends them, it holds another secret or address than this server's "
                    f"{channel['provider']} webhook secret and push address (this server's log gives each refusal's reason); "
                    "a channel this server made with other values is replaced by its upkeep")}
            shown.append(channel)
        return shown

    async def _body(self, request: Request, cap: int) -> bytes:
        cap = min(cap, self.max_body_bytes)
        declared = request.headers.get("content-length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > cap:
            raise Rejected(413, f"body is over {cap} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise Rejected(413, f"body is over {cap} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise Rejected(400, "the body did not arrive completely") from None
        return b"".join(chunks)

    async def status(self) -> dict[str, Any]:
        """`GET /webhooks`: counters since start (received, duplicate, rejected), the log's rows per
        state (`dead` is the dead-letter queue) and `lag_s`, the age of the oldest pending event."""
        channels = self._refusals_shown([c for keeper in self.keepers for c in await keeper.status()])
        try:
            counts: dict[str, Any] = await self.log.counts()
        except Exception as exc:  # noqa: BLE001 — the state of everything else is still worth showing
            logger.warning("webhook log of %s unreadable: %s", self.namespace, type(exc).__name__)
            counts = {"error": f"the event log is unreachable ({type(exc).__name__})"}
        return {"domain": self.domain, "namespace": self.namespace, "running": self.started, **self.processor_state(),
                **self.counters, "log": counts, "channels": channels}

    def processor_state(self) -> dict[str, Any]:
        """`processor`: running, stopped (not started yet, or the app is stopping) or failed — with the
        masked `error`, when, and what to do (outside review events round 27: a failed processor looked
        like one still starting)."""
        if self.started:
            return {"processor": "running", **self.processor.store_state()}
        if self.failure is None:
            return {"processor": "stopped"}
        error, at = self.failure
        return {"processor": "failed", "error": error, "failed_at": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"),
                "action": "deliveries are still accepted and wait in the event log, but none is processed: fix the "
                          "cause the error names (the server log has it) and restart the server"}


def _payload(provider: str, body: bytes, content_type: str) -> Any:
    """The verified body, parsed once (within `verify.SIGNED`). Refused before it is logged when this hub
    could never process it: every provider posts a JSON object, but QuickBooks' CloudEvents format (Intuit's
    mandatory one since 2026) posts an array of them, and BambooHR may post a form (`forms`; Google, whose
    messages are headers, is not parsed).
    Answering 2xx and dead-lettering it later would tell the provider all is well; 415/400 makes the
    misconfiguration visible at the provider."""
    try:
        parsed = parse_json(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) or (provider == "quickbooks" and isinstance(parsed, list)):
        return parsed
    if provider == "bamboohr" and content_type.split(";")[0].strip().lower() == FORM_TYPE:
        try:
            return bamboohr_form(body)  # its "Form Post" encoding (`forms`)
        except Malformed as exc:
            raise Rejected(400, f"{exc}; this delivery was refused and not logged") from None
    if "json" not in content_type.lower():
        raise Rejected(415, "the body is not JSON: configure the webhook to send application/json")
    if provider == "quickbooks":
        raise Rejected(400, "the body is neither a QuickBooks notification object nor an array of CloudEvents")
    raise Rejected(400, "the body is not a JSON object")
