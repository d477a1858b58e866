"""The provider side of push channels (`channels`): what a Google watch channel and a Graph subscription
are asked to open, renew, replace and stop, and the `Channel` record the upkeep keeps of each. No state
and no schedule here: `channels.ChannelKeeper` decides when, and stores what these answer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from servers.kit.errors import DomainError

logger = logging.getLogger("servers.webhooks")


@dataclass
class Channel:
    provider: str
    resource: str
    channel_id: str | None = None
    remote_id: str | None = None
    expires_at: float = 0.0
    state: str = "pending"
    last_error: str | None = None
    failures: int = 0
    next_try_at: float = 0.0
    renewed_at: float | None = None
    """When it was last opened or renewed (so its granted lifetime is `expires_at - renewed_at`)."""
    made_with: str | None = None
    """`fingerprint` of the provider, push address and secret it was opened with (None: from before they were kept)."""
    missed_at: float | None = None
    """When Graph first said it missed notifications on it (lifecycle `missed`) since its last renewal."""


SecretSource = str | Callable[[], str | None]
"""A channel's secret: a fixed value, or (the intake's) lookup read at each use."""


class _LiveSecret:
    """`secret` read when used: the intake's lookup (`Intake.secrets`), so the upkeep carries exactly the
    secret the route checks, also after `Intake.bind` moved the route to a hub namespace."""

    _secret: SecretSource = ""

    @property
    def secret(self) -> str:
        return (self._secret() if callable(self._secret) else self._secret) or ""

    @secret.setter
    def secret(self, value: SecretSource) -> None:
        self._secret = value


class ChannelAPI(Protocol):
    provider: str
    address: str

    @property
    def secret(self) -> str: ...

    async def open(self, resource: str, now: float) -> tuple[str, str, float]:
        """A new channel on `resource`: (channel id, provider's id for it, expires at)."""

    async def renew(self, channel: Channel, now: float) -> tuple[str, str, float]: ...

    async def replace(self, channel: Channel, now: float) -> tuple[str, str, float]:
        """A new channel with the current address and secret, then the old one stopped."""

    async def close(self, channel: Channel) -> None: ...


async def _replace(api: ChannelAPI, channel: Channel, now: float) -> tuple[str, str, float]:
    """Open anew, then stop the old channel (overlap: nothing is missed); a stop that fails is logged,
    the old channel ends at its expiry (its deliveries, with the old secret, are refused meanwhile)."""
    fresh = await api.open(channel.resource, now)
    try:
        await api.close(channel)
    except Exception as exc:  # noqa: BLE001 — the new channel is open; the old one expires by itself
        code = exc.body.code if isinstance(exc, DomainError) else type(exc).__name__
        logger.warning("could not stop the old %s channel on %s (%s): it ends at its expiry", api.provider,
                       channel.resource, code)
    return fresh


class GoogleChannels(_LiveSecret):
    provider = "google"

    def __init__(self, http: Any, address: str, token: SecretSource, ttl_s: int = 7 * 86400) -> None:
        self.http, self.address, self.secret, self.ttl_s = http, address, token, ttl_s
        """`secret`: the channel token, which the intake checks (its namespace's, read at each use)."""

    async def open(self, resource: str, now: float) -> tuple[str, str, float]:
        channel_id = str(uuid.uuid4())
        body = await self.http.json("POST", f"/calendars/{quote(resource, safe='')}/events/watch", idempotent=True, json={
            "id": channel_id, "type": "web_hook", "address": self.address, "token": self.secret,
            "params": {"ttl": str(self.ttl_s)}})
        return channel_id, str(body["resourceId"]), int(body["expiration"]) / 1000

    async def renew(self, channel: Channel, now: float) -> tuple[str, str, float]:
        """A Google channel cannot be extended: a new one (current address and token), then the old stopped."""
        return await _replace(self, channel, now)

    async def replace(self, channel: Channel, now: float) -> tuple[str, str, float]:
        return await _replace(self, channel, now)

    async def close(self, channel: Channel) -> None:
        if channel.channel_id and channel.remote_id:
            await self.http.request("POST", "/channels/stop", json={"id": channel.channel_id, "resourceId": channel.remote_id},
                                    idempotent=True)


class GraphSubscriptions(_LiveSecret):
    provider = "graph"
    made_as = "lifecycle"
    """Part of what a subscription is made with (`ChannelKeeper.made_with`): one made before it asked for
    lifecycle notifications cannot get them by PATCH, so the upkeep replaces it once."""

    def __init__(self, http: Any, address: str, client_state: SecretSource, lifetime_s: int = 4000 * 60) -> None:
        self.http, self.address, self.secret, self.lifetime_s = http, address, client_state, lifetime_s
        """`secret`: the clientState, which the intake checks (its namespace's, read at each use)."""

    def _expiry(self, now: float) -> str:
        return datetime.fromtimestamp(now + self.lifetime_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    @staticmethod
    def _instant(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    async def open(self, resource: str, now: float) -> tuple[str, str, float]:
        body = await self.http.json("POST", "/subscriptions", idempotent=True, json={
            "changeType": "created,updated,deleted", "notificationUrl": self.address, "resource": resource,
            "lifecycleNotificationUrl": self.address,  # subscriptionRemoved / reauthorizationRequired / missed
            "expirationDateTime": self._expiry(now), "clientState": self.secret})
        return str(body["id"]), str(body["id"]), self._instant(body["expirationDateTime"])

    async def renew(self, channel: Channel, now: float) -> tuple[str, str, float]:
        try:
            body = await self.http.json("PATCH", f"/subscriptions/{channel.remote_id}", idempotent=True,
                                        json={"expirationDateTime": self._expiry(now)})
        except DomainError as exc:
            if exc.body.code != "not_found":
                raise
            return await self.open(channel.resource, now)
        return str(body["id"]), str(body["id"]), self._instant(body["expirationDateTime"])

    async def replace(self, channel: Channel, now: float) -> tuple[str, str, float]:
        """PATCH cannot change a subscription's clientState or notificationUrl: a new one, then DELETE the old."""
        return await _replace(self, channel, now)

    async def close(self, channel: Channel) -> None:
        if channel.remote_id:
            await self.http.request("DELETE", f"/subscriptions/{channel.remote_id}")
