"""Messages between this deployment's replicas that nobody else can make or read, and which replicas
are alive — for the cross-replica relays that wait for other replicas' answers (`hub.cluster.tasks`,
`hub.cluster.session_state`; `hub.admin.cluster_actions` may use them too).

Outside review, cluster round 26:
- #2: asks were signed but answers were not, so anyone able to publish on Redis answered a client's
  `tasks/result` first (its text became the tool's result), and real results crossed Redis in clear.
  Decided: a reply (and any event that changes what a client sees) travels *sealed*
  (`ReplicaMessages`: AES-256-GCM under a key derived from the shared `hub.cluster.session_secrets`,
  the first sealing and every one opening, as session ids are), so it is both unreadable and
  unforgeable without the secret; it carries when it was made and a random nonce, and one older than
  `MAX_AGE_S` or already opened is ignored (no replay).
- #6: a replica counted PUBLISH's receivers as replicas, so one foreign subscriber of the channel
  (`redis-cli SUBSCRIBE`, another deployment, a replica with another secret) made every `tasks/list`
  wait `hub.timeout_s`. Decided: replicas announce themselves with a sealed heartbeat (`Members`,
  every `BEAT_S`; answered at once by a replica that did not know the sender), and a replica waits
  only for those it knows alive and those that acknowledged its ask — a subscriber that is not one
  of them is never waited for beyond a short bound.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import uuid4

import anyio

from hub.cluster.signing import Sealed

logger = logging.getLogger("hub.cluster")

_PURPOSE = b"mcp-hub replica messages v1"
_PREFIX = "r1."
MAX_AGE_S = 60.0
"""A sealed message older (or further in the future) than this is ignored."""
MAX_SEALED_CHARS = 64 * 1024 * 1024
"""A bound on what is even tried (a task's result may be large)."""
SEEN_NONCES = 8192
BEAT_S = 5.0
"""How often a replica says it is alive."""
ALIVE_S = 3 * BEAT_S
"""A replica not heard of for this long is no longer counted alive."""
ALIVE_EVENT = "replica_alive"


class ReplicaMessages:
    """Seal a message for this deployment's replicas; open one sealed by any of them (once)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._sealed = Sealed(_PURPOSE, secrets, _PREFIX)
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seal(self, payload: dict[str, Any]) -> str:
        return self._sealed.seal(json.dumps({**payload, "at": time.time(), "nonce": uuid4().hex},
                                            separators=(",", ":")).encode())

    def open(self, sealed: object) -> dict[str, Any] | None:
        """What `sealed` carries; None when it is not a fresh message of this deployment's replicas, or
        was opened before (a replay)."""
        plain = self._sealed.open(sealed, MAX_SEALED_CHARS) if isinstance(sealed, str) else None
        if plain is None:
            return None
        try:
            payload = json.loads(plain)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        at, nonce = payload.get("at"), payload.get("nonce")
        if not isinstance(at, int | float) or abs(time.time() - at) > MAX_AGE_S or not isinstance(nonce, str):
            return None
        if nonce in self._seen:
            return None
        self._seen[nonce] = None
        while len(self._seen) > SEEN_NONCES:
            self._seen.popitem(last=False)
        return payload


Publish = Callable[[dict[str, Any]], Awaitable[None]]


class Members:
    """The replicas of this deployment known alive (their sealed heartbeats), this one not included."""

    def __init__(self, messages: ReplicaMessages, replica: str, publish: Publish) -> None:
        self._messages = messages
        self.replica = replica
        self._publish = publish
        self._seen: dict[str, float] = {}
        """Replica id → when it was last heard of (monotonic)."""

    def alive(self) -> set[str]:
        now = time.monotonic()
        for replica in [r for r, at in self._seen.items() if now - at > ALIVE_S]:
            del self._seen[replica]
        return set(self._seen)

    def heard(self, replica: str) -> None:
        """Any sealed message from `replica` shows it alive."""
        if replica != self.replica:
            self._seen[replica] = time.monotonic()

    async def beat(self) -> None:
        await self._publish({"type": ALIVE_EVENT, "sealed": self._messages.seal({"replica": self.replica})})

    async def run(self) -> None:
        """Say this replica is alive every `BEAT_S`, until cancelled."""
        while True:
            await self.beat()
            await anyio.sleep(BEAT_S)

    async def on_beat(self, event: dict[str, Any]) -> None:
        """Another replica's heartbeat: noted; answered at once when it is a replica not known yet (it just
        started, and should know this one without waiting a whole beat)."""
        payload = self._messages.open(event.get("sealed"))
        replica = payload.get("replica") if payload is not None else None
        if not isinstance(replica, str) or replica == self.replica:
            return
        known = replica in self.alive()
        self.heard(replica)
        if not known:
            await self.beat()
