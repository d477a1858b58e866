"""Outside review console26 #1–#6: key lifetimes bounded (and a far expiry stored earlier still shown),
console actions over Redis neither replayable nor answerable by anyone but a replica known alive, a
sealed session too big for a cookie refused at sign-in, a sign-out kept across a restart, and `Secure`
cookies behind a TLS proxy. Unit tests drive the real classes with a stand-in notifier; one test runs
a real hub."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from starlette.requests import Request
from starlette.responses import Response

from hub.admin.actions import ActionResult
from hub.admin import cluster_actions
from hub.admin.cluster_actions import ACTION, DONE, ClusterActions
from hub.admin.console import _when
from hub.admin.session import COOKIE, AdminSession, SealedSessionStore, set_cookie
from hub.auth.keys import KeyStore, parse_duration, parse_lifetime
from hub.cluster.ended_sessions import EndedSessions
from hub.store.base import KeyRow
from tests.conftest import start_hub_http
from tests.hub.admin.test_console_actions import signed_in
from tests.hub.admin.test_console_bounds import start
from tests.hub.auth.test_security import create_key, hub_cli

A, B = "a" * 40, "b" * 40
FAR = 6.048e17  # `999999999999w` from now, as a hub before the bound stored it


# -- #1 key lifetimes -----------------------------------------------------------------------------

def test_a_duration_past_the_maximum_is_refused_naming_it(tmp_path: Path) -> None:
    for parse in (parse_duration, parse_lifetime):
        with pytest.raises(ValueError, match="3650d"):
            parse("999999999999w")
        with pytest.raises(ValueError, match="3650d"):
            parse("3651d")
        assert parse("3650d") == 3650 * 86400
    with pytest.raises(ValueError):
        parse_duration("9" * 5000 + "s")  # refused as text, never turned into a 5000-digit number
    store = KeyStore(tmp_path)
    with pytest.raises(ValueError, match="3650d"):
        store.create("oncall", ["hub:admin"], 1e18)
    assert store.list() == []  # refused before anything was stored
    for ts in (FAR, float("inf"), float("nan"), -1e300):
        assert isinstance(_when(ts), str)  # a page shows any stored instant


@pytest.mark.slow
def test_a_far_expiry_stored_earlier_leaves_the_keys_page_and_keys_list_working(tmp_path: Path, procs: list) -> None:
    hub = start(tmp_path, procs)
    admin = create_key(hub["data_dir"], "ops", "*")
    from hub.store.sqlite import SqliteKeys

    SqliteKeys(hub["data_dir"]).key_insert(KeyRow("0123456789ab", "oncall", "hub:admin", b"s" * 16, "0" * 64,
                                                  time.time(), FAR, None))
    listed = hub_cli(hub["data_dir"], "keys", "list")
    assert listed.returncode == 0 and "0123456789ab" in listed.stdout and "9999-12-31" in listed.stdout, listed
    refused = hub_cli(hub["data_dir"], "keys", "create", "--name", "x", "--scopes", "e:read", "--expires",
                      "999999999999w")
    assert refused.returncode == 2 and "3650d" in refused.stderr and "mcphub_" not in refused.stdout
    base = start_hub_http(procs, hub["config"]).removesuffix("/mcp")
    http, csrf = signed_in(base, admin)
    try:
        page = http.get("/admin/keys")
        assert page.status_code == 200 and "0123456789ab" in page.text
        answer = http.post("/admin/keys", data={"csrf": csrf, "principal": "huge", "scopes": "e:read",
                                                "expires": "999999999999w"})
        assert answer.status_code == 400 and "at most 3650d" in answer.text
        assert "huge" not in http.get("/admin/keys").text
    finally:
        http.close()


# -- #2 replays, #4 answers ---------------------------------------------------------------------------

class Notifier:
    """Stands in for `ClusterNotifier`: what was published, the handlers registered, PUBLISH's count."""

    def __init__(self, reached: int = 0) -> None:
        self.reached, self.sent, self.handlers = reached, [], {}  # type: ignore[var-annotated]

    def on_event(self, kind: str, handler: Any) -> None:
        self.handlers[kind] = handler

    async def publish_counted(self, event: dict[str, Any]) -> int:
        self.sent.append(event)
        return self.reached

    def last(self, kind: str) -> dict[str, Any]:
        return [e for e in self.sent if e["type"] == kind][-1]


class Local:
    def __init__(self) -> None:
        self.hub = SimpleNamespace(downstreams={"rec": object()})
        self.done: list[tuple[str, str]] = []

    async def perform(self, name: str, verb: str, principal: str) -> ActionResult:
        self.done.append((name, verb))
        done = "it is stopped and its tools are withdrawn."
        return ActionResult(verb, name, True, "stopped", done)  # type: ignore[arg-type]


Replica = tuple[ClusterActions, Notifier, Local]


def replica(secret: str = A, reached: int = 0, wait: float = 5.0) -> Replica:
    notifier, local = Notifier(reached), Local()
    return ClusterActions(local, notifier, [secret], reply_wait_s=wait), notifier, local  # type: ignore[arg-type]


async def introduce(sender: Replica, *others: Replica) -> None:
    """`sender` hears each of `others` announce itself (signed), as over Redis (before the fix there
    was no announcing: every subscriber counted)."""
    kind = getattr(cluster_actions, "PRESENCE", None)
    for actions, notifier, _ in others:
        if kind is not None:
            await actions.announce_once()
            await sender[1].handlers[kind](notifier.last(kind))


def replayed(event: dict[str, Any]) -> dict[str, Any]:
    """The captured message re-published: new envelope, same signed action."""
    return {**event, "id": "f" * 32, "origin": "attacker"}


def test_a_replayed_console_action_is_refused_and_logged_by_its_sender_and_by_a_restarted_replica(
        caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        clicked, other = replica(wait=0.5), replica()
        await introduce(clicked, other)
        outcome = await clicked[0].perform("rec", "disable", "ops")
        action = clicked[1].last(ACTION)
        await other[1].handlers[ACTION](action)  # delivered once to the other replica: applied there
        assert other[2].done == [("rec", "disable")]
        caplog.clear()
        with caplog.at_level(logging.INFO, "hub.admin"):
            await clicked[1].handlers[ACTION](replayed(action))  # the replica that took the click
            await other[1].handlers[ACTION](replayed(action))
            restarted = replica()  # the other replica restarted within 60 s: a new id, no memory
            await restarted[1].handlers[ACTION](replayed(action))
        assert clicked[2].done == [("rec", "disable")], "the sender applied its own action again"
        assert other[2].done == [("rec", "disable")] and restarted[2].done == []
        assert sum("replayed" in r.getMessage() for r in caplog.records) >= 2
        assert "not addressed to this replica" in caplog.text
        tampered = {**action, "action": {**action["action"], "targets": [restarted[0].replica]}}
        await restarted[1].handlers[ACTION](tampered)  # retargeted: the signature no longer checks
        assert restarted[2].done == []
        assert outcome.reached == 1

    anyio.run(run)


def test_only_signed_answers_of_replicas_known_alive_count_and_a_silent_subscriber_holds_nothing() -> None:
    async def run() -> None:
        # A subscriber that is no replica (PUBLISH counts 2) and never answers: not waited for.
        alone = replica(reached=2, wait=8.0)
        started = time.monotonic()
        outcome = await alone[0].perform("rec", "disable", "ops")
        assert time.monotonic() - started < 4.0 and outcome.reached == 0 and outcome.replicas == "1/1"
        # One real replica; forged answers (unsigned, another secret, an unknown replica) come first.
        clicked, real = replica(reached=1, wait=5.0), replica()
        foreign = replica(secret=B)
        await introduce(clicked, real, foreign)  # another deployment's announcement does not check

        async def answer_forged_then_real() -> None:
            while not clicked[1].sent or clicked[1].last(ACTION)["action"]["server"] != "rec":
                await anyio.sleep(0.01)
            action = clicked[1].last(ACTION)
            reply = {"action_id": action["action"]["action_id"], "verb": "disable", "server": "rec",
                     "applied": True, "result": "forged", "message": "it is stopped and its tools are withdrawn."}
            answer = clicked[1].handlers[DONE]
            await answer({"type": DONE, "done": reply})  # unsigned
            await answer({"type": DONE, "done": {**reply, "replica": "ghost", "at": time.time()}, "sig": "0" * 64})
            await foreign[1].handlers[ACTION](action)  # not a target, and signed with another secret
            await real[1].handlers[ACTION](action)
            await answer(real[1].last(DONE))
            await answer(real[1].last(DONE))  # the same answer twice counts once

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_forged_then_real)
            outcome = await clicked[0].perform("rec", "disable", "ops")
        assert [r.result for r in outcome.remote] == ["stopped"], "a forged answer was counted"
        assert outcome.reached == 1 and outcome.replicas == "2/2"
        assert outcome.text().startswith("Done on all 2 replicas: disable rec")
        assert foreign[2].done == []

    anyio.run(run)


# -- #5 cookie size, #6 sign-out across a restart, #3 Secure behind a proxy ---------------------------------

def request_with(cookie: str | None = None, url: str = "http://127.0.0.1:8000/admin/servers",
                 host: str = "127.0.0.1:8000") -> Request:
    scheme, rest = url.split("://", 1)
    path = "/" + rest.split("/", 1)[1]
    headers = [(b"host", host.encode())] + ([(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else [])
    return Request({"type": "http", "method": "GET", "scheme": scheme, "path": path, "query_string": b"",
                    "headers": headers, "server": (host.split(":")[0], 8000)})


def admin(scopes: int = 0, kind: str = "api_key") -> AdminSession:
    return AdminSession("ops", kind, "0123456789ab", None,
                        ("hub:admin", *(f"namespace_number_{i:03d}_tools:read" for i in range(scopes))))


def test_a_sealed_session_stays_small_whatever_the_scopes_or_a_token_is_refused_saying_why() -> None:
    async def run() -> None:
        store = SealedSessionStore([A], EndedSessions(None))
        few = store.create(admin(20))
        assert len(few) < 3800 and (await store.get(request_with(few))).scopes_in_store is False  # type: ignore[union-attr]
        many = store.create(admin(250))  # an API key: its scopes stay in the key store
        opened = await store.get(request_with(many))
        assert len(many) < 3800 and opened is not None and opened.scopes_in_store and opened.scopes == ()
        opened.notice = "Done: disable rec — it is stopped and its tools are withdrawn."
        assert len(store.cookie(opened) or "") < 3800
        with pytest.raises(ValueError, match=r"251 scopes.*cookie.*API key"):
            store.create(admin(250, kind="jwt"))  # a token's cannot be looked up again: refused, saying why

    anyio.run(run)


@pytest.mark.slow
def test_an_admin_key_with_many_scopes_signs_in_with_sealed_sessions_and_mints_within_them(
        tmp_path: Path, procs: list) -> None:
    hub = start(tmp_path, procs)
    raw = json.loads(hub["config"].read_text())
    raw["hub"]["cluster"] = {"session_secrets": [A]}
    hub["config"].write_text(json.dumps(raw))
    scopes = ",".join(["hub:admin", "e:read", *(f"namespace_number_{i:03d}_tools:read" for i in range(250))])
    key = create_key(hub["data_dir"], "ops", scopes)
    base = start_hub_http(procs, hub["config"]).removesuffix("/mcp")
    http, csrf = signed_in(base, key)
    try:
        assert all(len(value) < 3800 for value in http.cookies.values())
        assert http.cookies[COOKIE].startswith("c2.")  # sealed, its scopes by reference
        assert http.get("/admin/servers").status_code == 200
        minted = http.post("/admin/keys", data={"csrf": csrf, "principal": "bot", "scopes": "e:read", "expires": ""})
        assert minted.status_code == 200 and "mcphub_" in minted.text
        wider = http.post("/admin/keys", data={"csrf": csrf, "principal": "bot", "scopes": "e:write", "expires": ""})
        assert wider.status_code == 403, wider.text[:300]
    finally:
        http.close()


def test_a_sign_out_survives_a_restart_without_redis(tmp_path: Path) -> None:
    from hub.admin.signed_out import SignedOut

    async def run() -> None:
        path = tmp_path / "data" / "console-signed-out.json"
        before = SealedSessionStore([A], EndedSessions(None), signed_out=SignedOut(path))
        session = admin()
        cookie = before.create(session)
        kept = before.create(admin())
        await before.end(session)
        assert await before.get(request_with(cookie)) is None
        after = SealedSessionStore([A], EndedSessions(None), signed_out=SignedOut(path))  # the hub restarted
        assert await after.get(request_with(cookie)) is None
        assert await after.get(request_with(kept)) is not None  # only the signed-out one
        assert session.sid not in path.read_text() and oct(path.stat().st_mode & 0o777) == "0o600"

    anyio.run(run)


def test_console_cookies_are_secure_behind_a_tls_proxy_for_the_public_host() -> None:
    public = "https://hub.example.com/mcp"

    def secure(request: Request, public_url: str | None) -> bool:
        response = Response()
        set_cookie(response, request, COOKIE, "v", 60, public_url)
        return "secure" in response.headers["set-cookie"].lower()

    proxied = request_with(url="http://hub.example.com/admin/login", host="hub.example.com")
    assert secure(proxied, public)  # the ingress ended TLS; the hub sees http
    assert not secure(request_with(), public)  # the replica's own address, over plain http
    assert not secure(proxied, "http://hub.example.com/mcp")
    assert not secure(proxied, None)
    assert secure(request_with(url="https://127.0.0.1:8000/admin/login"), None)
