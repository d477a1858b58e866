"""Server→client messages across replicas through Redis pub/sub (`hub.cluster.redis_url`).

A client's stream (the GET SSE stream of a 2025-11-25 session, or a 2026-07-28
`subscriptions/listen` stream) lives on one replica, while the downstream event that should reach
it may happen on another. So each replica publishes, on one Redis channel, what it sends to its own
clients, and delivers what the other replicas published to its own streams.

Rules (docs/deploy.md, "Server→client messages"):
- Published: `list_changed` (tools/resources/prompts, after this replica's catalog changed), every
  downstream `notifications/resources/updated` and `notifications/message` (log) this replica
  received on a shared session — a log message with the audience judged here (while calls are in
  flight to the server, only their caller's; nobody's when several callers' are, and then it is not
  published): the delivering replica has no calls in flight to judge by (outside review, cluster
  round 12: a line written during alice's call reached bob on another replica). A per-client
  session's message is its client's only: published only when that client's session is sealed (it
  may have its stream on another replica), naming the session (`session`, the digest of its id), and
  delivered there to that session's copy only (`hub.cluster.session_state`) — not when it went on the
  client's call stream here. Each event carries a random event id and the publishing replica's id.
- Delivered: an event from another replica goes through the same local fan-out as a local one
  (`hub.frontends.server` broadcast and listen bus, `hub.relay.subscriptions`, `hub.relay.logs`), so scopes,
  log levels and subscriptions are checked on the delivering replica, for its own clients (a session's
  level and subscriptions are held by every replica holding a copy of it: `hub.cluster.session_state`).
  A log message the publishing replica sent on a session's call stream names that session (`on_call`,
  the digest of its id), and is not sent on its stream elsewhere again. A replica
  never delivers its own event twice, nor any event id twice (a bounded memory of recent ids).
- Events of a server the delivering replica does not have (another config) are dropped.
- Best effort, like every notification: Redis down → this replica's clients still get its own
  events, the others' are lost until Redis is back; publish failures are logged (once per outage),
  never raised; the listener reconnects by itself (backoff up to 5 s). `health()` reports it.
- Replicas connected to the same shared downstream each receive its notification and each publish
  it, so a client may get the same `list_changed` once per replica: harmless (it only re-lists).
- Other kinds (a console's server action and its replies, `hub.admin.cluster_actions`) go to the
  handler registered for them (`on_event`), run apart from the listener so a slow one (a Disable
  waits for its server to stop) holds no other event up; `publish_counted` says how many replicas
  a message reached. Hooks registered with `on_subscribed` run the same way each time the listener
  (re)subscribes (a console announces its replica then, and while it listens).
- A server whose resource updates are `published_at_source` (an in-process domain's change feed,
  `hub.webhooks`) publishes every change it makes, whether or not a client of this replica
  subscribed: the webhook a replica processes is news for subscribers on every replica. Its
  updates are then not published again from the downstream relay, so each reaches the others once.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import anyio
import mcp_types as types
from anyio.abc import TaskStatus

from hub.cluster.replies import ReplicaMessages
from hub.cluster.ended_sessions import restore_ends
from hub.cluster.session_state import session_digest
from hub.redact import mask

if TYPE_CHECKING:
    from hub.cluster.session_state import SessionState
    from hub.cluster.tasks import RemoteTasks
    from hub.downstream.connection import Downstream
    from hub.downstream.listing import ListKind
    from hub.hub import Hub

logger = logging.getLogger("hub.cluster.notify")

CHANNEL = "mcp-hub:notify"
"""The prefix of the channel names (`channels`)."""


def channels(url: str, secrets: Sequence[str]) -> list[str]:
    """The Redis channels of this deployment: `mcp-hub:notify:<db>:<digest of a key derived from a session
    secret>`, one per secret (published on each, listened to on each: a replica with the new secret first
    and one with only the old still hear each other during a rotation); `mcp-hub:notify:<db>` without
    secrets. Pub/sub ignores the db number, so one fixed name mixed every deployment sharing a Redis
    server (outside review, cluster round 26 #4: deployment X's log line reached deployment Y's client)."""
    import hashlib

    import redis.asyncio as redis

    from hub.cluster.signing import derive_key

    try:
        db = redis.connection.parse_url(url).get("db", 0)
    except ValueError:
        db = 0
    base = f"{CHANNEL}:{db}"
    named = [f"{base}:{hashlib.sha256(derive_key(b'mcp-hub channel v1', secret)).hexdigest()[:16]}" for secret in secrets]
    return list(dict.fromkeys(named)) or [base]
SEEN_IDS = 4096
"""Event ids remembered for dedupe (own and delivered)."""
MAX_BACKOFF_S = 5.0

ListSink = Callable[["ListKind"], Awaitable[None]]
EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class ClusterNotifier:
    """Publishes this replica's client-bound events; delivers the other replicas' to local clients."""

    def __init__(self, hub: Hub, url: str, channel: str | Sequence[str] = CHANNEL, secrets: Sequence[str] = ()) -> None:
        """`secrets`: the deployment's session secrets; with them every event crosses Redis sealed
        (`hub.cluster.replies.ReplicaMessages`) and one not sealed by this deployment's replicas is
        dropped (outside review recheck26 N2: a `log`, `resource_updated` or `list_changed` anyone could
        publish reached clients as a server's own; log lines crossed in clear)."""
        import redis.asyncio as redis

        self._hub = hub
        self._redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._channels = [channel] if isinstance(channel, str) else list(channel)
        """Published on each, listened to on each (one per session secret: `channels`)."""
        self._channel = self._channels[0]
        self._messages = ReplicaMessages(secrets) if secrets else None
        self._background: list[Callable[[], Awaitable[None]]] = []
        self.replica = uuid4().hex
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._list_sinks: list[ListSink] = []
        self._at_source: dict[str, weakref.ref[Any]] = {}
        """Server name -> the server object that publishes its updates itself (`published_at_source`)."""
        self.connected = False
        self._publish_failing = False
        self.delivered = 0
        self.published = 0
        self._scope = anyio.CancelScope()
        self._handlers: dict[str, EventHandler] = {}
        self._on_subscribed: list[Callable[[], Awaitable[None]]] = []
        self._handling: anyio.abc.TaskGroup | None = None
        self.sessions: SessionState | None = None
        """Sessions' log levels and subscriptions, carried between replicas (`hub.cluster.session_state`)."""
        self.tasks: RemoteTasks | None = None
        """Asks about tasks another replica holds (`hub.cluster.tasks`; with session secrets only)."""

    # -- wiring ------------------------------------------------------------------------------

    def install(self) -> None:
        """Publish this replica's list changes, logs and resource updates (call before servers connect)."""
        self._hub.add_change_listener(self.publish_list_changed)
        for downstream in self._hub.downstreams.values():
            downstream.on_log = self._publishing(downstream.on_log, "log")
            downstream.on_resource_updated = self._publishing(downstream.on_resource_updated, "resource_updated")

    def on_list_changed(self, sink: ListSink) -> None:
        """Where another replica's `list_changed` goes: the local fan-out only (`hub.frontends.server`)."""
        self._list_sinks.append(sink)

    def in_background(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` while this replica listens (a heartbeat: `hub.cluster.replies.Members`)."""
        self._background.append(work)

    def on_event(self, kind: str, handler: EventHandler) -> None:
        """Where another replica's event of type `kind` goes (run apart from the listener; errors logged)."""
        self._handlers[kind] = handler

    def on_subscribed(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` apart from the listener each time it (re)subscribes (errors logged); at once too when
        it is subscribed already (the HTTP app, and its console, is built after the listener starts)."""
        self._on_subscribed.append(hook)
        if self.connected and self._handling is not None:
            self._handling.start_soon(self._run_hook, hook)

    def published_at_source(self, server: str, source: Any) -> Callable[[list[str]], Awaitable[None]]:
        """How `server`'s in-process object `source` publishes its own resource updates (original URIs,
        as it names them): while `source` is the server's object, the only path its updates take to the
        other replicas; never raises."""
        self._at_source[server] = weakref.ref(source)

        async def publish(uris: list[str]) -> None:
            for uri in uris:
                await self.publish({"type": "resource_updated", "server": server, "params": {"uri": uri}})
        return publish

    def _publishing(self, local: Callable[..., Awaitable[None]] | None, kind: str) -> Callable[..., Awaitable[None]]:
        async def relay(downstream: Downstream, params: Any, owner: Any = None) -> None:
            # Judged before anything awaits: the call the message belongs to may end meanwhile.
            audience = self._hub.log_relay.audience(downstream, params) if kind == "log" and owner is None else None
            sent = None
            if local is not None:
                sent = await (local(downstream, params) if owner is None else local(downstream, params, owner))
            params_json = params.model_dump(by_alias=True, mode="json", exclude_none=True)
            if owner is not None:  # a per-client session's: its client's only, wherever its stream is
                digest = session_digest(owner)
                if digest is not None and not (kind == "log" and sent):  # not when it went on its call's stream
                    await self.publish({"type": kind, "server": downstream.name, "params": params_json, "session": digest})
                return
            source = self._at_source.get(downstream.name)
            if kind == "resource_updated" and source is not None and source() is getattr(downstream, "server_object", None):
                return  # already published where it happened (`published_at_source`)
            event: dict[str, Any] = {"type": kind, "server": downstream.name, "params": params_json}
            if kind == "log":
                if audience is not None and not audience:
                    return  # several callers' calls in flight: nobody's
                event["callers"] = sorted(audience) if audience is not None else None
                if sent:  # sessions that got it on their call's stream here: not again on their stream elsewhere
                    event["on_call"] = sorted(sent)
            await self.publish(event)
        return relay

    # -- publishing ----------------------------------------------------------------------------

    async def publish_list_changed(self, kind: ListKind) -> None:
        await self.publish({"type": "list_changed", "kind": kind})

    def _body(self, event: dict[str, Any]) -> str:
        """`event` as it crosses Redis, with a new id and this replica as its origin (remembered: never
        delivered back here); sealed when the deployment has secrets."""
        event_id = uuid4().hex
        self._remember(event_id)
        stamped = {**event, "id": event_id, "origin": self.replica}
        return json.dumps({"sealed": self._messages.seal(stamped)} if self._messages is not None else stamped)

    async def publish(self, event: dict[str, Any]) -> None:
        """Send `event` to the other replicas; never raises."""
        body = self._body(event)
        try:
            for channel in self._channels:
                await self._redis.publish(channel, body)
        except Exception as exc:  # noqa: BLE001 — best effort: local clients already got it
            if not self._publish_failing:
                logger.warning("could not publish a %s to the other replicas (Redis: %s); their clients miss "
                               "it until Redis answers again", event.get("type"), type(exc).__name__)
            self._publish_failing = True
            return
        self._publish_failing = False
        self.published += 1

    async def publish_counted(self, event: dict[str, Any]) -> int:
        """Send `event` to the other replicas; how many replicas' listeners received it (this one's
        not counted). Raises what Redis raised: the caller must tell its user the message went nowhere."""
        body = self._body(event)
        with anyio.fail_after(2.0):
            received = sum([int(await self._redis.publish(channel, body)) for channel in self._channels])
        self.published += 1
        return max(0, received - (len(self._channels) if self.connected else 0))

    def _remember(self, event_id: str) -> bool:
        """Record `event_id`; False when it was already known."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        while len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        return True

    # -- delivering ----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until `aclose`, reconnecting with backoff; `started` after the first attempt."""
        with self._scope:
            async with anyio.create_task_group() as handling:
                self._handling = handling
                for work in self._background:
                    handling.start_soon(work)
                await self._listen(task_status)

    async def _listen(self, task_status: TaskStatus[None]) -> None:
        started = False
        backoff = 0.2
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(*self._channels)
                    await restore_ends()  # Redis may have restarted empty: ends it lost, written back first
                    self.connected, backoff = True, 0.2
                    for hook in self._on_subscribed if self._handling is not None else ():
                        self._handling.start_soon(self._run_hook, hook)
                    logger.info("listening for other replicas' notifications on Redis")
                    if not started:
                        started = True
                        task_status.started()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self.deliver(message["data"])
            except Exception as exc:  # noqa: BLE001 — Redis gone: retry; local delivery is unaffected
                if self.connected:
                    logger.warning("lost Redis pub/sub (%s); other replicas' notifications pause until it is back",
                                   type(exc).__name__)
                elif not started:  # never connected (down, a wrong password): said once, not only in /healthz
                    logger.warning("cannot reach Redis for the other replicas' notifications (%s: %s); retrying",
                                   type(exc).__name__, mask(str(exc))[:200])
                self.connected = False
            if not started:
                started = True
                task_status.started()
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def deliver(self, raw: bytes | str) -> None:
        """Deliver one published event to this replica's clients (unless its own or a repeat)."""
        try:
            event = json.loads(raw)
            if self._messages is not None:
                event = self._messages.open(event.get("sealed") if isinstance(event, dict) else None)
                if event is None:
                    logger.debug("ignored a cluster notification not sealed by a replica of this deployment")
                    return
            event_id, origin = str(event["id"]), event["origin"]
        except (ValueError, KeyError, TypeError):
            logger.debug("ignored a malformed cluster notification")
            return
        if origin == self.replica or not self._remember(event_id):
            return
        try:
            await self._deliver(event)
            self.delivered += 1
        except Exception as exc:  # noqa: BLE001 — one bad event must not stop the listener
            logger.warning("could not deliver a %s from another replica: %s", event.get("type"), type(exc).__name__)

    async def _deliver(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        handler = self._handlers.get(str(kind))
        if handler is not None:
            if self._handling is not None:
                self._handling.start_soon(self._handle, handler, event)
            else:
                await self._handle(handler, event)
            return
        if kind == "list_changed":
            if event.get("kind") in ("tools", "resources", "prompts"):
                for sink in list(self._list_sinks):
                    await sink(event["kind"])
            return
        downstream = self._hub.downstreams.get(str(event.get("server")))
        if downstream is None:
            return
        if "session" in event:  # a per-client session's: to that session's copy here only
            await self._deliver_to_session(downstream, event)
            return
        if kind == "log":
            callers = event.get("callers")
            audience = (frozenset(tuple(c) for c in callers if isinstance(c, list) and len(c) == 2)
                        if isinstance(callers, list) else None)
            on_call = event.get("on_call")
            skip = frozenset(d for d in on_call if isinstance(d, str)) if isinstance(on_call, list) else frozenset()
            await self._hub.log_relay.relay(downstream, types.LoggingMessageNotificationParams.model_validate(event["params"]),
                                            remote=audience, skip=skip)
        elif kind == "resource_updated":
            await self._hub.subscriptions.relay(downstream,
                                                types.ResourceUpdatedNotificationParams.model_validate(event["params"]))

    async def _deliver_to_session(self, downstream: Downstream, event: dict[str, Any]) -> None:
        digest = event.get("session")
        held = self.sessions.held(digest) if self.sessions is not None and isinstance(digest, str) else None
        if held is None:
            return
        owner = held[0]
        if event.get("type") == "log":
            await self._hub.log_relay.relay(downstream, types.LoggingMessageNotificationParams.model_validate(event["params"]),
                                            owner, remote=None)
        elif event.get("type") == "resource_updated":
            await self._hub.subscriptions.relay(downstream,
                                                types.ResourceUpdatedNotificationParams.model_validate(event["params"]), owner)

    async def _handle(self, handler: EventHandler, event: dict[str, Any]) -> None:
        try:
            await handler(event)
        except Exception as exc:  # noqa: BLE001 — one bad event must not end the listener's task group
            logger.warning("could not handle a %s from another replica: %s", event.get("type"), type(exc).__name__)

    async def _run_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        try:
            await hook()
        except Exception as exc:  # noqa: BLE001 — one failing hook must not end the listener's task group
            logger.warning("an on_subscribed hook failed: %s", type(exc).__name__)

    def health(self) -> dict[str, Any]:
        """`{"backend": "redis", "state": "ok" | "unreachable"}` for `/healthz`."""
        return {"backend": "redis", "state": "ok" if self.connected else "unreachable",
                "published": self.published, "delivered": self.delivered}

    async def aclose(self) -> None:
        """Stop listening and close the Redis connections."""
        self._scope.cancel()
        await self._redis.aclose()


def cluster_notifier(hub: Hub) -> ClusterNotifier | None:
    """A `ClusterNotifier` wired into `hub` when `hub.cluster.redis_url` is set, else None."""
    url = hub.config.hub.cluster.redis_url
    if url is None:
        return None
    from hub.cluster.signing import configured_secrets

    secrets = configured_secrets(hub.config)
    notifier = ClusterNotifier(hub, url, channels(url, secrets), secrets)
    notifier.install()
    from hub.cluster.session_state import SessionState
    from hub.cluster.tasks import remote_tasks

    notifier.sessions = SessionState(hub, notifier, hub.config.hub.cluster.session_max_age_s)
    notifier.tasks = remote_tasks(hub, notifier)
    return notifier
