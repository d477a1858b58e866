"""Push-channel upkeep: Google Calendar watch channels and Microsoft Graph subscriptions are created,
renewed before they expire and stopped when no longer wanted, by a background job whose state lives
in the domain's event log file (so it survives restarts) and is reported by `GET /healthz`.

- Google: `POST /calendars/{id}/events/watch` {id, type: "web_hook", address, token, params.ttl}
  answers {id, resourceId, expiration (ms)}. A channel cannot be extended: renewal opens a new channel,
  then stops the old one with `POST /channels/stop` {id, resourceId}.
- Graph: `POST /subscriptions` {changeType, notificationUrl, resource, expirationDateTime,
  clientState}; renewal `PATCH /subscriptions/{id}` {expirationDateTime} (a 404 means it is gone: a
  new one is created); cleanup `DELETE /subscriptions/{id}`.
A channel is renewed once less than `margin_s` (default 24 h) is left — or half its granted lifetime,
when the provider grants less than that (Google may grant a shorter expiration than the `ttl` asked;
Graph caps each resource's): renewing at "24 h before expiry" a channel granted 1 h renewed it every
second, forever (outside review, events round 10) — and never sooner than `MIN_RENEWAL_S` after the
last renewal. A grant that ends within `MIN_RENEWAL_S` (a provider's odd answer, or this host's clock
running ahead) is an error. A failure is recorded (`state: error`, `last_error`) and retried with
backoff (1 min doubling to 1 h).

Each channel records what it was made with: `made_with`, a salted, slow fingerprint of (provider, push
address, secret) — never the secret. A renewal only extends a channel (Graph's PATCH changes neither
its clientState nor its notificationUrl), so when the namespace's secret or the push address changes
(rotation, or a standalone server moved behind the hub) the upkeep *replaces* the channel: a new one
with the current values, then the old one stopped (outside review, events round 18: a rotated Graph
secret left the live subscription on the old clientState, every notification refused 401 while
/healthz said `active`). Until it is replaced, `/healthz` shows it as `error`. A channel kept from
before fingerprints were recorded is replaced once.

Graph subscriptions ask for lifecycle notifications (`lifecycleNotificationUrl`, the push address: it
cannot be added later), and the intake hands each verified one to `ChannelKeeper.lifecycle` (outside
review, events round 26: they were neither asked for nor read, so a removed subscription went unseen
for ~1.8 days): `subscriptionRemoved` forgets the subscription and the upkeep creates a new one at once,
`reauthorizationRequired` renews it at once (a renewal reauthorizes), `missed` marks the channel
`resync` in `/healthz` until its next renewal (the notifications lost cannot be fetched again).

The secret a channel carries is read when it is needed, from the callable the intake gives (its
`secrets`), so the upkeep and the route always use one secret (outside review, events round 26: a
standalone server's upkeep read `GRAPH_WEBHOOK_SECRET` while its route checked
`CALENDAR_GRAPH_WEBHOOK_SECRET`). Each distinct resource is kept once (a resource listed twice opened
one more channel every round, never stopped).

The provider calls themselves (`GoogleChannels`, `GraphSubscriptions`) are in `channel_apis`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import anyio

from servers.kit.store import Store
from servers.kit.webhooks.channel_apis import Channel, ChannelAPI, GoogleChannels, GraphSubscriptions, SecretSource

__all__ = ["Channel", "ChannelAPI", "ChannelKeeper", "GoogleChannels", "GraphSubscriptions", "SecretSource", "fingerprint",
           "keepers_from_env"]

logger = logging.getLogger("servers.webhooks")
MIN_RENEWAL_S = 60.0
"""A channel is never renewed sooner than this after its last renewal."""
MAX_WAIT_S = 3600.0
"""The longest the upkeep loop waits between looks (a clock stepped back never stalls it longer)."""
CHANNELS_TABLE = """CREATE TABLE IF NOT EXISTS push_channels (
    provider TEXT NOT NULL, resource TEXT NOT NULL, channel_id TEXT, remote_id TEXT,
    expires_at REAL NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending', last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0, next_try_at REAL NOT NULL DEFAULT 0, renewed_at REAL, made_with TEXT,
    missed_at REAL, PRIMARY KEY (provider, resource))"""
_FIELDS = ("provider", "resource", "channel_id", "remote_id", "expires_at", "state", "last_error", "failures",
           "next_try_at", "renewed_at", "made_with", "missed_at")
_ADDED = {"made_with": "TEXT", "missed_at": "REAL"}
"""Columns added after the table was first made (an older state file gets them at the next upkeep)."""
MISSED = ("Graph could not deliver some change notifications (lifecycle notification `missed`, first at {at}): changes "
          "since then may be missing from the feed and were not announced; re-read the calendar with the tools to catch "
          "up (this clears at the subscription's next renewal)")
REMOVED = ("Graph removed this subscription (lifecycle notification `subscriptionRemoved`, e.g. credentials changed or "
           "access revoked): the upkeep creates a new one now; if that fails, the reason shows here")
STALE = ("it was made with another {provider} webhook secret or push address than this server's now, so the provider "
         "still sends the old one and its deliveries are refused (or, Graph, before lifecycle notifications were asked "
         "for); the upkeep replaces it (next try {when})")


@functools.lru_cache(maxsize=64)
def fingerprint(provider: str, address: str, secret: str) -> str:
    """What a channel was made with, as stored beside it: PBKDF2 of the secret salted with the provider
    and address, so the state file never holds (nor cheaply reveals) the secret, yet a changed secret or
    address shows. Cached: computed once per value, not per upkeep round or /healthz."""
    salt = f"mcp-hub push channel\0{provider}\0{address}".encode()
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, 20_000).hex()[:32]


def _row(r: sqlite3.Row) -> Channel:
    return Channel(**{k: r[k] for k in _FIELDS if k in r.keys()})


def _ensure_table(db: sqlite3.Connection) -> None:
    """The channels table, with the columns added since (`_ADDED`) added to one made before them."""
    db.execute(CHANNELS_TABLE)
    present = {r[1] for r in db.execute("PRAGMA table_info(push_channels)")}
    for column, kind in _ADDED.items():
        if column not in present:
            db.execute(f"ALTER TABLE push_channels ADD COLUMN {column} {kind}")


class ChannelKeeper:
    """Keeps one channel open per wanted (provider, resource), renewing ahead of expiry."""

    def __init__(self, store: Store, api: ChannelAPI, resources: list[str], margin_s: float = 86400.0) -> None:
        self.store, self.api, self.margin_s = store, api, margin_s
        self.resources = list(dict.fromkeys(resources))
        """Each resource once: one listed twice was handled twice a round, the second pass opening a new
        channel over the first's row, which was then never stopped (outside review, events round 26)."""
        self._warned = False
        self._urgent: set[str] = set()
        """Resources to renew at the next round whatever their expiry (Graph `reauthorizationRequired`)."""
        self._wake = anyio.Event()

    async def _all(self) -> list[Channel]:
        def work(db: sqlite3.Connection) -> list[Channel]:
            _ensure_table(db)
            return [_row(r) for r in db.execute("SELECT * FROM push_channels WHERE provider = ?", (self.api.provider,))]

        return await self.store.run(work)

    async def _save(self, channel: Channel) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(f"INSERT OR REPLACE INTO push_channels ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})",
                       tuple(getattr(channel, k) for k in _FIELDS))

        await self.store.run(work)

    async def _drop(self, channel: Channel) -> None:
        await self.store.run(lambda db: db.execute("DELETE FROM push_channels WHERE provider = ? AND resource = ?",
                                                   (channel.provider, channel.resource)))

    async def tick(self, now: float | None = None) -> float:
        """Open, renew or stop what is due; when the next check is due (a unix time)."""
        now = time.time() if now is None else now
        if not self.api.secret:  # a channel would carry a token (clientState) the route refuses
            if not self._warned:
                logger.warning("%s push channels not kept: this namespace has no %s webhook secret", self.api.provider,
                               self.api.provider)
                self._warned = True
            return now + 3600.0
        known = {c.resource: c for c in await self._all()}
        wanted = await anyio.to_thread.run_sync(self.made_with)
        for resource in self.resources:
            channel = known.pop(resource, None) or Channel(self.api.provider, resource)
            stale = channel.channel_id is not None and channel.made_with != wanted
            urgent = resource in self._urgent and channel.channel_id is not None
            due = channel.channel_id is None or stale or urgent or now >= self._renew_at(channel)
            if not due or channel.next_try_at > now:
                continue
            try:
                if channel.channel_id is None:
                    opened = await self.api.open(resource, now)
                elif stale:  # a renewal would keep the old secret (clientState, token) and address
                    logger.info("%s channel on %s was made with another secret or address: replacing it",
                                self.api.provider, resource)
                    opened = await self.api.replace(channel, now)
                else:
                    opened = await self.api.renew(channel, now)
            except Exception as exc:  # recorded and retried; the reason shows in /healthz
                self._urgent.discard(resource)
                self._failed(channel, now, f"{type(exc).__name__}: {str(exc)[:200]}")
            else:
                self._urgent.discard(resource)
                channel.channel_id, channel.remote_id, channel.expires_at = opened
                channel.renewed_at, channel.made_with, channel.missed_at = now, wanted, None
                if channel.expires_at - now < MIN_RENEWAL_S:
                    self._failed(channel, now, f"the provider granted a channel that ends in {channel.expires_at - now:.0f}s; "
                                 "check this host's clock (it may run ahead) and the resource's maximum lifetime")
                else:
                    channel.state, channel.last_error, channel.failures, channel.next_try_at = "active", None, 0, 0.0
            await self._save(channel)
        for stale in known.values():  # no longer configured: stop it
            try:
                await self.api.close(stale)
            except Exception as exc:
                logger.info("could not stop %s channel on %s: %s", stale.provider, stale.resource, type(exc).__name__)
            await self._drop(stale)
        channels = await self._all()
        times = [c.next_try_at if c.state == "error" else self._renew_at(c) for c in channels]
        return min([now + 3600.0, *times])

    async def lifecycle(self, remote_id: str, event: str, now: float | None = None) -> bool:
        """Act on a verified Graph lifecycle notification about subscription `remote_id`; False when it
        is none of this keeper's (an old, replaced subscription's, or another app's on the same URL).
        The state is written before the intake answers, so a restart keeps what it was told."""
        now = time.time() if now is None else now
        channel = next((c for c in await self._all() if c.remote_id == remote_id and c.channel_id is not None), None)
        if channel is None or channel.resource not in self.resources:
            return False
        if event == "subscriptionRemoved":  # gone at Graph: create a new one at once
            channel.channel_id = channel.remote_id = None
            channel.state, channel.last_error, channel.failures, channel.next_try_at = "error", REMOVED, 0, 0.0
        elif event == "reauthorizationRequired":  # a renewal reauthorizes it
            self._urgent.add(channel.resource)
        elif event == "missed":
            channel.missed_at = channel.missed_at or now
        else:
            logger.info("graph lifecycle notification %r on %s not acted on: not one Graph documents", event[:40],
                        channel.resource)
            return True
        logger.info("graph lifecycle notification %s on %s", event, channel.resource)
        await self._save(channel)
        self._wake.set()
        return True

    def made_with(self) -> str:
        """The fingerprint of what a channel opened now is made with (the current address and secret)."""
        made_as = getattr(self.api, "made_as", "")
        return fingerprint(f"{self.api.provider}\0{made_as}" if made_as else self.api.provider, self.api.address,
                           self.api.secret)

    def _public(self, channel: Channel) -> dict[str, Any]:
        """`_public`, with a kept channel made with another secret or address shown as an error, and one
        Graph missed notifications on shown as `resync`."""
        shown = _public(channel)
        if channel.missed_at is not None and channel.state == "active":
            at = datetime.fromtimestamp(channel.missed_at, UTC).isoformat(timespec="seconds")
            shown |= {"state": "resync", "last_error": MISSED.format(at=at)}
        if channel.channel_id is not None and channel.state == "active" and self.api.secret \
                and channel.made_with != self.made_with():
            when = datetime.fromtimestamp(max(channel.next_try_at, time.time()), UTC).isoformat(timespec="seconds")
            shown |= {"state": "error", "last_error": STALE.format(provider=self.api.provider, when=when)}
        return shown

    def _renew_at(self, channel: Channel) -> float:
        """When an open channel is renewed: `margin_s` before it expires, or halfway through a shorter
        grant; never sooner than `MIN_RENEWAL_S` after its last renewal."""
        if channel.renewed_at is None:  # kept from before renewals were dated: as before
            return channel.expires_at - self.margin_s
        margin = min(self.margin_s, max(0.0, channel.expires_at - channel.renewed_at) / 2)
        return max(channel.expires_at - margin, channel.renewed_at + MIN_RENEWAL_S)

    def _failed(self, channel: Channel, now: float, reason: str) -> None:
        channel.failures += 1
        channel.state, channel.last_error = "error", reason
        channel.next_try_at = now + min(3600.0, 60.0 * 2 ** (channel.failures - 1))
        logger.warning("%s channel on %s: %s", self.api.provider, channel.resource, reason)

    async def run(self) -> None:
        """Tick when due, or at once when a lifecycle notification asks (`lifecycle` wakes it)."""
        while True:
            self._wake = anyio.Event()
            try:
                next_at = await self.tick()
            except Exception:
                logger.exception("%s channel upkeep failed; retrying in 60s", self.api.provider)
                next_at = time.time() + 60
            # never longer than an hour: `next_at` is a wall-clock instant, and after the clock steps back a wait
            # for the whole step would let channels lapse (outside review s28 #7's sibling); a look is cheap
            with anyio.move_on_after(min(MAX_WAIT_S, max(1.0, next_at - time.time()))):
                await self._wake.wait()

    async def status(self) -> list[dict[str, Any]]:
        return [self._public(c) for c in await self._all()]

    def status_now(self) -> list[dict[str, Any]]:
        """`status`, read synchronously on a short-lived read-only connection (the hub's `/healthz`
        cannot await; WAL readers never block the writer). Empty before the first upkeep."""
        path = self.store.path
        if not path.exists():
            return []
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute("SELECT * FROM push_channels WHERE provider = ?", (self.api.provider,)).fetchall()
        except sqlite3.OperationalError:  # no table yet: no upkeep has run
            return []
        finally:
            db.close()
        return [self._public(_row(r)) for r in rows]


def _public(c: Channel) -> dict[str, Any]:
    """What `/healthz` shows of a channel (no channel ids or tokens)."""
    return {"provider": c.provider, "resource": c.resource, "state": c.state, "expires_at": c.expires_at,
            "last_error": c.last_error}


def _listed(text: str, strip: str = "") -> list[str]:
    """A comma-separated resource list, each resource once, in order (`strip`: characters that do not
    make another resource, e.g. Graph's leading `/`)."""
    return list(dict.fromkeys(item.strip().strip(strip) for item in text.split(",") if item.strip().strip(strip)))


def keepers_from_env(backend: Any, store: Store, environ: Mapping[str, str] | None = None,
                     secrets: Callable[[str], str | None] | None = None) -> list[ChannelKeeper]:
    """Keepers for a calendar backend, when configured: GOOGLE_PUSH_ADDRESS (the public URL of
    `/webhooks/google`) + GOOGLE_PUSH_CALENDARS (comma-separated ids, default `primary`) with the Google
    secret as the channel token; GRAPH_PUSH_ADDRESS + GRAPH_PUSH_RESOURCES (default `me/events`) with the
    Graph secret as the clientState. `secrets` is the intake's lookup (`Intake.secret`: the namespace's
    `<NAMESPACE>_<PROVIDER>_WEBHOOK_SECRET`, else the provider-wide one), read at each use, so the upkeep
    and the route check one secret; without it, `<PROVIDER>_WEBHOOK_SECRET`. With none, no channel is opened."""
    env = os.environ if environ is None else environ
    http, name = getattr(backend, "http", None), getattr(backend, "name", "")

    def secret(provider: str) -> SecretSource:
        return (lambda: secrets(provider)) if secrets is not None else env.get(f"{provider.upper()}_WEBHOOK_SECRET", "")

    keepers: list[ChannelKeeper] = []
    if name == "google" and env.get("GOOGLE_PUSH_ADDRESS"):
        api: ChannelAPI = GoogleChannels(http, env["GOOGLE_PUSH_ADDRESS"], secret("google"))
        keepers.append(ChannelKeeper(store, api, _listed(env.get("GOOGLE_PUSH_CALENDARS", "primary"))))
    if name == "graph" and env.get("GRAPH_PUSH_ADDRESS"):
        api = GraphSubscriptions(http, env["GRAPH_PUSH_ADDRESS"], secret("graph"))
        keepers.append(ChannelKeeper(store, api, _listed(env.get("GRAPH_PUSH_RESOURCES", "me/events"), "/")))
    return keepers
