"""The console's bounds on a real HTTP hub (outside review console 15): a profile-pinned key cannot
sign in and no session mints a key broader than its own credential (#1); a live Activity stream
ends when its key is revoked outside the console or its session idles (#2); Activity pages back
with a keyset cursor and takes a time range (#4); the Tools page is paged (#6)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import echo_stdio, start_hub_http, write_config
from tests.hub.admin.test_console_actions import mcp_calls, signed_in, wait_for
from tests.hub.auth.test_security import create_key, hub_cli, post_initialize

pytestmark = pytest.mark.slow


def start(tmp_path: Path, procs: list, *, many: int = 0, **auth: Any) -> dict[str, Any]:
    """An HTTP hub with auth on, a stdio server `e` (with `many` extra tools) and a profile `p` over it."""
    data_dir = tmp_path / "data"
    args = ("--many", str(many)) if many else ()
    config = write_config(tmp_path, {"e": echo_stdio(*args)}, hub={
        "data_dir": str(data_dir), "auth": {"enabled": True, "admin_for_destructive": False, **auth}})
    raw = json.loads(config.read_text())
    config.write_text(json.dumps({**raw, "profiles": {"p": {"namespaces": ["e"]}}}))
    return {"data_dir": data_dir, "config": config, "procs": procs}


def serve(hub: dict[str, Any]) -> dict[str, Any]:
    url = start_hub_http(hub["procs"], hub["config"])
    return {**hub, "url": url, "base": url.removesuffix("/mcp")}


def login_status(base: str, key: str) -> httpx.Response:
    with httpx.Client(base_url=base) as http:
        token = re.search(r'name="csrf" value="([^"]+)"', http.get("/admin/login").text).group(1)  # type: ignore[union-attr]
        return http.post("/admin/login", data={"key": key, "csrf": token})


def new_key(http: httpx.Client, csrf: str, scopes: str) -> tuple[int, str | None, str]:
    answer = http.post("/admin/keys", data={"csrf": csrf, "principal": "minted", "scopes": scopes, "expires": ""})
    secret = re.search(r'value="(mcphub_[^"]+)"', answer.text)
    return answer.status_code, secret.group(1) if secret else None, answer.text


def test_a_pinned_key_cannot_sign_in_and_no_session_mints_a_key_broader_than_its_own(tmp_path: Path, procs: list) -> None:
    hub = start(tmp_path, procs)
    pinned = create_key(hub["data_dir"], "cursor", "* profile:p")
    pinned_admin = create_key(hub["data_dir"], "cursor-ops", "hub:admin profile:p")
    narrow = create_key(hub["data_dir"], "ops", "hub:admin e:read")
    hub = serve(hub)
    assert post_initialize(hub["url"], {"Authorization": f"Bearer {pinned}"}).status_code == 403  # the pin on /mcp
    for key in (pinned, pinned_admin):
        refused = login_status(hub["base"], key)
        assert refused.status_code == 403 and "pinned to a profile (profile:p)" in refused.text
        assert "mcphub_admin" not in refused.cookies
    http, csrf = signed_in(hub["base"], narrow)
    try:
        for scopes in ("*", "e:write", "e:*", "hub:* e:read", "e:read other:read"):
            status, secret, text = new_key(http, csrf, scopes)
            assert (status, secret) == (403, None), scopes
            assert "no broader than your own" in text
        assert "minted" not in http.get("/admin/keys").text
        status, secret, _ = new_key(http, csrf, "e:read")
        assert status == 200 and secret is not None
        assert post_initialize(hub["url"], {"Authorization": f"Bearer {secret}"}).status_code == 200
        status, secret, _ = new_key(http, csrf, "e:read profile:p")  # a pin only narrows: allowed
        assert status == 200 and secret is not None
        assert post_initialize(hub["url"], {"Authorization": f"Bearer {secret}"}).status_code == 403
        wait_for("the create_key audit rows", lambda: len(re.findall(
            r'<tr class="outcome-(\w+)', http.get("/admin/activity?tool=admin:create_key").text)) >= 7, timeout=30)
        denied = re.findall(r'<tr class="outcome-(\w+)', http.get("/admin/activity?tool=admin:create_key").text)
        assert sorted(denied) == ["denied"] * 5 + ["ok"] * 2
    finally:
        http.close()


class Stream:
    """`/admin/activity/stream` read in a thread, with the session cookie of `http`."""

    def __init__(self, base: str, http: httpx.Client) -> None:
        self.lines: list[str] = []
        self.ended = threading.Event()
        self.client = httpx.Client(base_url=base, cookies=dict(http.cookies))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            with self.client.stream("GET", "/admin/activity/stream?after=0", timeout=httpx.Timeout(60, read=None)) as r:
                for line in r.iter_lines():
                    self.lines.append(line)
        except httpx.HTTPError:
            pass
        self.ended.set()

    def events(self, name: str) -> int:
        return sum(line == f"event: {name}" for line in list(self.lines))


def test_a_live_stream_ends_when_its_key_is_revoked_outside_the_console(tmp_path: Path, procs: list) -> None:
    hub = start(tmp_path, procs)
    admin = create_key(hub["data_dir"], "ops", "hub:admin")
    agent = create_key(hub["data_dir"], "agent", "e:write")
    hub = serve(hub)
    http, _ = signed_in(hub["base"], admin)
    stream = Stream(hub["base"], http)
    mcp_calls(hub["url"], agent, ("e__echo", {"text": "before"}))
    wait_for("the stream's first rows", lambda: stream.events("row") >= 2, timeout=30)  # the login and the call
    revoked = hub_cli(hub["data_dir"], "keys", "revoke", admin.split("_")[1])
    assert revoked.returncode == 0, revoked.stderr
    wait_for("the stream to end", stream.ended.is_set, timeout=30)
    assert stream.events("end") == 1
    rows = stream.events("row")
    mcp_calls(hub["url"], agent, ("e__echo", {"text": "after"}))
    assert stream.events("row") == rows
    assert http.get("/admin/servers").headers["location"] == "/admin/login"


def test_a_live_stream_does_not_keep_an_idle_session_alive(tmp_path: Path, procs: list) -> None:
    hub = serve(start(tmp_path, procs, console_idle_s=3))
    admin = create_key(hub["data_dir"], "ops", "hub:admin")
    http, _ = signed_in(hub["base"], admin)
    stream = Stream(hub["base"], http)
    wait_for("the stream to open", lambda: stream.events("row") >= 1, timeout=30)  # the login row
    opened = time.monotonic()
    wait_for("the idle session's stream to end", stream.ended.is_set, timeout=30)
    assert time.monotonic() - opened < 25 and stream.events("end") == 1
    assert http.get("/admin/servers").headers["location"] == "/admin/login"


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr[^>]*data-id="(\d+)"', html)]


def _link(html: str, text: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)"[^>]*>{text}', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_activity_pages_back_with_a_cursor_and_takes_a_time_range(tmp_path: Path, procs: list) -> None:
    hub = start(tmp_path, procs)
    admin = create_key(hub["data_dir"], "ops", "hub:admin")
    agent = create_key(hub["data_dir"], "agent", "e:write")
    hub = serve(hub)
    mcp_calls(hub["url"], agent, *[("e__echo", {"text": f"early {i}"}) for i in range(5)])
    boundary = int(time.time()) + 1
    wait_for("the next second", lambda: time.time() >= boundary, timeout=5)
    mcp_calls(hub["url"], agent, *[("e__echo", {"text": f"late {i}"}) for i in range(130)])
    http, _ = signed_in(hub["base"], admin)
    everything = "/admin/activity?principal=agent&tool=e__echo"
    # Audit rows are written in batches: wait until the second page holds the oldest ones.
    wait_for("135 audit rows", lambda: (lambda p: len(_ids(p)) == 100 and (o := _link(p, "Older rows")) is not None
                                        and len(_ids(http.get(o).text)) == 35)(http.get(everything).text), timeout=30)
    first = http.get(everything).text
    assert "older rows are left out" in first and 'data-stream="' in first  # the newest page is live
    older = _link(first, "Older rows")
    assert older is not None and "principal=agent" in older and "tool=e__echo" in older
    second = http.get(urljoin(everything, older)).text
    assert "No older matching rows" in second and _link(second, "Older rows") is None
    assert 'data-stream="' not in second and _link(second, "← Newest rows") is not None
    ids = _ids(first) + _ids(second)
    assert len(set(ids)) == 135 and ids == sorted(ids, reverse=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(boundary))
    before = http.get(f"{everything}&to={stamp}").text  # a range that has ended: the early calls only
    assert _ids(before) == ids[-5:] and 'data-stream="' not in before and 'value="' + stamp + '"' in before
    after = http.get(f"{everything}&from={stamp}").text
    assert _ids(after) == ids[:100] and _link(after, "Older rows") is not None
    rest = http.get(urljoin(everything, _link(after, "Older rows"))).text  # type: ignore[arg-type]
    assert _ids(rest) == ids[100:130] and "from=" in (_link(after, "Older rows") or "")
    for odd in ("id=%C2%B2", "before=%C2%B2", "id=" + "9" * 23):  # "²" reads as a digit to str.isdigit, not to int
        assert http.get(f"/admin/activity?{odd}").status_code == 200, odd  # ignored as any bad filter is (review events18 #11)
    with http.stream("GET", "/admin/activity/stream?after=%C2%B2") as stream:
        assert stream.status_code == 200


def test_the_tools_page_is_paged_and_filtered(tmp_path: Path, procs: list) -> None:
    hub = start(tmp_path, procs, many=240)
    admin = create_key(hub["data_dir"], "ops", "hub:admin")
    hub = serve(hub)
    http, _ = signed_in(hub["base"], admin)
    count = re.compile(r"of (\d+) matching \((\d+) in the catalog\)")
    wait_for("the server's tools", lambda: (m := count.search(http.get("/admin/tools").text)) is not None
             and int(m.group(2)) > 240, timeout=60)
    total = int(count.search(http.get("/admin/tools").text).group(2))  # type: ignore[union-attr]
    seen: list[str] = []
    url: str | None = "/admin/tools"
    while url is not None:
        page = http.get(url).text
        names = re.findall(r'data-tool="([^"]+)"', page)
        assert 0 < len(names) <= 50 and len(page) < 200_000
        seen += names
        url = _link(page, "Next tools")
        assert len(seen) <= total
    assert len(seen) == total == len(set(seen)) and seen == sorted(seen)
    found = http.get("/admin/tools", params={"q": "t23", "ns": "e"}).text
    assert re.findall(r'data-tool="([^"]+)"', found) == [f"e__t{i}" for i in range(230, 240)]
    assert _link(found, "Next tools") is None and "0 of 0" not in found
    assert re.findall(r'data-tool="', http.get("/admin/tools", params={"ns": "nope"}).text) == []


def test_a_minted_key_expires_no_later_than_its_minter(tmp_path: Path) -> None:
    """Re-check 16: a 2-minute `hub:admin seq:*` key minted a key that never expired."""
    from hub.auth.keys import KeyStore

    store = KeyStore(tmp_path)
    soon = time.time() + 120
    _, unlimited = store.create("contractor", ["seq:read"], None, minter=["hub:admin", "seq:*"], minter_expires_at=soon)
    _, longer = store.create("contractor", ["seq:read"], 86_400, minter=["hub:admin", "seq:*"], minter_expires_at=soon)
    _, shorter = store.create("contractor", ["seq:read"], 60, minter=["hub:admin", "seq:*"], minter_expires_at=soon)
    assert unlimited.expires_at == longer.expires_at == soon
    assert shorter.expires_at is not None and shorter.expires_at < soon
    _, operators = store.create("ops", ["seq:read"], None)  # the local operator (the CLI): as asked
    assert operators.expires_at is None


def test_a_live_stream_sends_every_row_of_a_burst(tmp_path: Path, procs: list) -> None:
    """Re-check 16: each tick of the live view sent the newest 100 rows and skipped the rest (151 of a
    300-call burst reached it). Rows that are there when it opens are one burst of its first tick."""
    hub = start(tmp_path, procs)
    admin = create_key(hub["data_dir"], "ops", "hub:admin")
    agent = create_key(hub["data_dir"], "agent", "e:write")
    hub = serve(hub)
    mcp_calls(hub["url"], agent, *[("e__echo", {"text": f"burst {i}"}) for i in range(150)])
    http, _ = signed_in(hub["base"], admin)
    stream = Stream(hub["base"], http)
    wait_for("every row of the burst", lambda: stream.events("row") >= 151, timeout=60)  # the calls and the login
    assert stream.events("gap") == 0
