"""A console's server action applied on every replica, and answered with what each did.

Behind a round-robin balancer the console a browser reaches is one replica's, and each replica runs
its own connection to every server: a Disable applied there alone left the server serving on every
other replica (outside review, cluster round 18 #3). So, with `hub.cluster.redis_url` and
`hub.cluster.session_secrets` set, an action is published on the replicas' notification channel
(`hub.cluster.notify`, event `admin_action`), signed with a key derived from the shared secret (who
can write to Redis cannot thereby stop or restart servers), and each other replica applies it with its
own `ServerActions` (the same per-server order as its own console's actions) and publishes its answer
(`admin_action_done`). The replica that took the click applies it at the same time, waits for the
answers (at most `REPLY_WAIT_S`, or until every replica it was sent to has answered) and says
truthfully what happened: on how many replicas, which answered what, which did not answer, and — if
Redis did not take the message — that it acted on this replica only.

Decided: a replica that was not listening when the action was sent (Redis down there, or started
later) keeps the state its config gives (as after a restart: the config stays the source of truth).

Who counts as a replica (outside review console26 #4: any subscriber to the channel was counted, and
an unsigned answer from a plain Redis client made the console say "Done on all 2 replicas"): each
replica announces itself on the channel when its listener subscribes and every `PRESENCE_EVERY_S`
(event `admin_replica`, signed, naming its replica id and the time); a replica is alive while its last
signed announcement is under `ALIVE_S` old. An action names the replicas alive when it is sent
(`targets`), the clicked replica waits only for their answers, and an answer counts only when it is
signed, names one of those targets, and is that target's first. A silent subscriber or another
deployment's listener neither counts nor holds the action.

Replays (outside review console26 #2: a captured Disable re-published with a new envelope undid the
operator's Enable on the replica that sent it): what is signed binds the action to one id, its sender
(`origin`), its targets and its time. A replica applies it only if it is one of the targets (a
restarted replica has a new id, so a copy sent before its restart is not for it), not its sender,
within `MAX_SKEW_S`, and the first time it sees that id (the sender records its own id too). Anything
else is refused and logged (a warning for a signed copy: someone who can write to Redis replayed it).
A message whose signature does not check is ignored (another deployment's, or forged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import anyio

from hub.admin.actions import STOP_WAIT_S, VERBS, ActionResult, ServerActions, Verb
from hub.cluster.signing import SharedKeys, canonical

if TYPE_CHECKING:
    from hub.cluster.notify import ClusterNotifier

logger = logging.getLogger("hub.admin")

ACTION = "admin_action"
DONE = "admin_action_done"
REPLY_WAIT_S = STOP_WAIT_S + 10.0
"""How long the clicked replica waits for the others' answers: their Disable may wait `STOP_WAIT_S`
for the server to stop, plus a margin for a loaded machine."""
MAX_SKEW_S = 60.0
PRESENCE = "admin_replica"
PRESENCE_EVERY_S = 5.0
"""How often a replica announces itself to the others' consoles."""
ALIVE_S = 3 * PRESENCE_EVERY_S
"""A replica whose last signed announcement is older is not waited for (it stopped, or lost Redis)."""
MAX_REPLICAS = 1000
"""Replicas remembered (the oldest announcement forgotten first)."""
_SIGN_PURPOSE = b"mcp-hub admin console actions v2"


@dataclass(frozen=True)
class Outcome:
    """What one console action did across the replicas."""

    local: ActionResult
    remote: tuple[ActionResult, ...] = ()
    """The other replicas' answers."""
    reached: int | None = None
    """How many other replicas the action was sent to (those known alive); None: it was not sent."""
    alone_because: str | None = None
    """Why the action stayed on this replica (cluster settings on, but Redis or the secret missing)."""
    waited_s: float = field(default=REPLY_WAIT_S)

    @property
    def applied(self) -> bool:
        """False only when every replica refused it (nothing changed anywhere)."""
        return self.local.applied or any(r.applied for r in self.remote)

    @property
    def replicas(self) -> str:
        """`answered/reached` counting this replica, for the audit row (`1/1` alone)."""
        return f"{1 + len(self.remote)}/{1 + (self.reached or 0)}"

    def text(self) -> str:
        """One sentence for the operator (the single-replica answer is as it always was)."""
        done = self.local
        head = "Nothing to do" if done.result == "unchanged" else "Done"
        verb_server = f"{done.verb} {done.server}"
        if self.reached is None and self.alone_because is None:
            return f"{head}: {verb_server} — {done.message}"
        if self.reached is None:
            return f"{head} on this replica only: {verb_server} — {done.message} {self.alone_because}"
        if self.reached == 0:
            return (f"{head}: {verb_server} — {done.message} No other replica has announced itself on Redis "
                    f"in the last {ALIVE_S:g} s, so this replica is the only one it applied to.")
        answers = [done, *self.remote]
        missing = self.reached - len(self.remote)
        if missing == 0 and len({(r.result, r.message) for r in answers}) == 1:
            return f"{head} on all {len(answers)} replicas: {verb_server} — {done.message}"
        parts = [f"this replica: {done.result} ({done.message})"]
        for (result, message), count in _tally(self.remote).items():
            parts.append(f"{count} other replica{'s' if count > 1 else ''}: {result} ({message})")
        if missing:
            parts.append(f"{missing} other replica{'s' if missing > 1 else ''} did not answer within "
                         f"{self.waited_s:g} s, so what it did there is unknown (its Servers page shows it; "
                         "repeating the action is safe)")
        return f"{verb_server} on {1 + self.reached} replicas — " + "; ".join(parts) + "."


def _tally(results: Sequence[ActionResult]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for r in results:
        counts[(r.result, r.message)] = counts.get((r.result, r.message), 0) + 1
    return counts


class ClusterActions:
    """`ServerActions` of this replica, broadcast to the others when the cluster is set up."""

    def __init__(self, local: ServerActions, notifier: ClusterNotifier | None, secrets: Sequence[str],
                 reply_wait_s: float = REPLY_WAIT_S) -> None:
        self.local = local
        self.notifier = notifier
        self._keys = SharedKeys(_SIGN_PURPOSE, secrets)
        self.reply_wait_s = reply_wait_s
        self.replica: str = str(getattr(notifier, "replica", "") or uuid4().hex)
        self._waiting: dict[str, _Waiting] = {}
        self._done_ids: dict[str, float] = {}
        self._alive: dict[str, float] = {}
        """Replica id → the signed time of its last announcement."""
        self._announcing = False
        if notifier is not None and self._keys:
            notifier.on_event(ACTION, self._apply_remote)
            notifier.on_event(DONE, self._answer)
            notifier.on_event(PRESENCE, self._presence)
            on_subscribed = getattr(notifier, "on_subscribed", None)
            if on_subscribed is not None:
                on_subscribed(self.announce)

    @property
    def clustered(self) -> bool:
        return self.notifier is not None or bool(self._keys)

    def alive(self) -> list[str]:
        """The other replicas whose last signed announcement is under `ALIVE_S` old."""
        cutoff = time.time() - ALIVE_S
        return sorted(r for r, at in self._alive.items() if at > cutoff)

    async def perform(self, name: str, verb: Verb, principal: str) -> Outcome:
        """Apply `verb` to `name` here and, when the cluster is set up, on every replica known alive."""
        if self.notifier is None or not self._keys:
            done = await self.local.perform(name, verb, principal)
            if not self.clustered:
                return Outcome(done)
            missing = "hub.cluster.redis_url" if self.notifier is None else "hub.cluster.session_secrets"
            return Outcome(done, alone_because=f"Console actions reach the other replicas only with {missing} set "
                                               "(docs/deploy.md), so they still run it as before.")
        action_id = uuid4().hex
        self._done_ids[action_id] = time.time()  # a copy of it coming back is a replay, here too
        targets = self.alive()
        waiting = _Waiting(frozenset(targets))
        self._waiting[action_id] = waiting
        try:
            payload = {"action_id": action_id, "server": name, "verb": verb, "principal": principal,
                       "at": time.time(), "origin": self.replica, "targets": targets}
            try:
                await self.notifier.publish_counted({"type": ACTION, "action": payload, "sig": self._sign(payload)})
            except Exception as exc:  # noqa: BLE001 — said to the operator: acted here only
                logger.warning("could not send a console %s of %s to the other replicas (Redis: %s)", verb, name,
                               type(exc).__name__)
                done = await self.local.perform(name, verb, principal)
                return Outcome(done, alone_because=f"Redis (hub.cluster.redis_url) did not take the message "
                                                   f"({type(exc).__name__}), so the other replicas did not get it "
                                                   "and still run it as before: repeat the action once Redis "
                                                   "answers again.")
            done = await self.local.perform(name, verb, principal)
            with anyio.move_on_after(self.reply_wait_s):
                while len(waiting.answers) < len(targets):
                    await waiting.arrived.wait()
                    waiting.arrived = anyio.Event()
            return Outcome(done, tuple(waiting.answers.values()), len(targets), waited_s=self.reply_wait_s)
        finally:
            self._waiting.pop(action_id, None)
            self._forget_old()

    # -- who is a replica ------------------------------------------------------------------------

    async def announce(self) -> None:
        """Run each time this replica's listener (re)subscribes: say so at once, asking the others to
        answer with theirs, then every `PRESENCE_EVERY_S` (one loop, until the listener stops)."""
        await self.announce_once()
        if self._announcing:
            return
        self._announcing = True
        try:
            while True:
                await anyio.sleep(PRESENCE_EVERY_S)
                await self._send_presence(hello=False)
        finally:
            self._announcing = False

    async def announce_once(self) -> None:
        """Say this replica is alive, asking the others to answer with theirs."""
        await self._send_presence(hello=True)

    async def _send_presence(self, hello: bool) -> None:
        assert self.notifier is not None
        payload = {"replica": self.replica, "at": time.time(), "hello": hello}
        try:
            await self.notifier.publish_counted({"type": PRESENCE, "presence": payload, "sig": self._sign(payload)})
        except Exception as exc:  # noqa: BLE001 — the next announcement tries again
            logger.debug("could not announce this replica to the others' consoles (Redis: %s)", type(exc).__name__)

    async def _presence(self, event: dict[str, Any]) -> None:
        payload = event.get("presence")
        if not isinstance(payload, dict) or not self._verified(payload, event.get("sig"), {"replica", "at"}):
            return  # not a replica of this deployment
        replica, at = str(payload["replica"]), float(payload["at"])
        if replica == self.replica:
            return
        self._alive[replica] = max(at, self._alive.get(replica, 0.0))
        while len(self._alive) > MAX_REPLICAS:
            del self._alive[min(self._alive, key=self._alive.__getitem__)]
        if payload.get("hello") is True:
            await self._send_presence(hello=False)  # a replica that just started learns of this one now

    # -- the other replicas' side ---------------------------------------------------------------

    async def _apply_remote(self, event: dict[str, Any]) -> None:
        payload = event.get("action")
        if not isinstance(payload, dict) or not self._verified(payload, event.get("sig"), _ACTION_FIELDS):
            logger.warning("ignored a console action from Redis that is unsigned, altered, or too old")
            return
        action_id, name, verb = str(payload["action_id"]), str(payload["server"]), str(payload["verb"])
        targets = payload["targets"]
        if payload["origin"] == self.replica or action_id in self._done_ids:
            logger.warning("refused a replayed console action (%s of %s, action %s): a signed copy of an action "
                           "already applied here was sent again on Redis by someone who can write to it",
                           verb, name, action_id[:12])
            return
        self._done_ids[action_id] = time.time()
        self._forget_old()
        if not isinstance(targets, list) or self.replica not in targets:
            logger.info("a console %s of %s was not addressed to this replica (it started or reached Redis after "
                        "the action was sent, or it is a replay): not applied, it keeps its own state", verb, name)
            return
        if verb not in VERBS:
            return
        if name not in self.local.hub.downstreams:
            done = ActionResult(verb, name, False, "refused", "this replica has no such server (another config).")  # type: ignore[arg-type]
        else:
            done = await self.local.perform(name, verb, str(payload.get("principal") or "?"))  # type: ignore[arg-type]
        logger.info("console %s of %s sent by another replica: %s", verb, name, done.result)
        assert self.notifier is not None
        reply = {"action_id": action_id, "replica": self.replica, "verb": verb, "server": name,
                 "applied": done.applied, "result": done.result, "message": done.message, "at": time.time()}
        try:
            await self.notifier.publish_counted({"type": DONE, "done": reply, "sig": self._sign(reply)})
        except Exception as exc:  # noqa: BLE001 — the clicked replica then says this one did not answer
            logger.warning("could not answer a console action of another replica (Redis: %s)", type(exc).__name__)

    async def _answer(self, event: dict[str, Any]) -> None:
        reply = event.get("done")
        if not isinstance(reply, dict):
            return
        waiting = self._waiting.get(str(reply.get("action_id")))
        if waiting is None:
            return  # another replica's action, or one this replica stopped waiting for
        if not self._verified(reply, event.get("sig"), {"action_id", "replica", "at"}):
            logger.warning("ignored an answer to a console action that is unsigned, altered, or too old (not "
                           "from a replica of this hub)")
            return
        replica = str(reply["replica"])
        if replica not in waiting.targets or replica in waiting.answers:
            return
        waiting.answers[replica] = ActionResult(
            str(reply.get("verb")), str(reply.get("server")), bool(reply.get("applied")),  # type: ignore[arg-type]
            str(reply.get("result"))[:40], str(reply.get("message"))[:500])
        waiting.arrived.set()

    # -- signing --------------------------------------------------------------------------------

    def _sign(self, payload: dict[str, Any]) -> str:
        return self._keys.sign(canonical(payload))

    def _verified(self, payload: dict[str, Any], sig: object, fields: set[str] | frozenset[str]) -> bool:
        if not isinstance(sig, str) or not fields <= payload.keys():
            return False
        try:
            fresh = abs(time.time() - float(payload["at"])) <= MAX_SKEW_S
        except (TypeError, ValueError):
            return False
        return fresh and self._keys.verify(canonical(payload), sig)

    def _forget_old(self) -> None:
        cutoff = time.time() - 2 * MAX_SKEW_S
        for action_id in [a for a, at in self._done_ids.items() if at < cutoff]:
            del self._done_ids[action_id]
        for replica in [r for r, at in self._alive.items() if at < cutoff]:
            del self._alive[replica]


_ACTION_FIELDS = frozenset({"action_id", "server", "verb", "at", "origin", "targets"})


@dataclass
class _Waiting:
    """One action's wait for the answers of the replicas it was sent to."""

    targets: frozenset[str]
    answers: dict[str, ActionResult] = field(default_factory=dict)
    """Replica id → its answer (the first signed one only)."""
    arrived: anyio.Event = field(default_factory=anyio.Event)
