"""The admin console behind a round-robin balancer (outside review, cluster round 18 #3): a login form
from one replica is accepted by another, a console session works on every replica and its sign-out
ends it on every replica, and a server action applies on every replica — or says it did not. Two real
hub processes sharing `hub.cluster.session_secrets` and a real Redis; consecutive requests are sent to
alternating replicas, as the balancer would."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.haproxy_cluster import Redis
from tests.hub.admin.test_console_actions import wait_for
from tests.hub.auth.test_security import create_key
from tests.hub.cluster.test_cluster_sessions import SECRET_A, SECRET_B, initialize, result_of, rpc, two_replicas

pytestmark = [pytest.mark.slow]


def console(url: str) -> httpx.Client:
    return httpx.Client(base_url=url.removesuffix("/mcp"), timeout=90, follow_redirects=False)


def csrf_of(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def shown(page: httpx.Response) -> str:
    found = re.search(r'role="(?:status|alert)">(.*?)</p>', page.text, re.S)
    return found.group(1) if found else ""


def e_tools(url: str, key: str) -> list[str]:
    session = initialize(url, key)
    return sorted(t["name"] for t in result_of(rpc(url, "tools/list", {}, key, session))["tools"] if t["name"].startswith("e__"))


def test_the_console_works_on_any_replica_and_its_actions_apply_on_every_replica(tmp_path: Path, procs: list) -> None:
    redis = Redis()
    try:
        url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B], redis.url)
        admin, agent = create_key(data_dir, "ops", "hub:admin"), create_key(data_dir, "agent", "e:write")
        wait_for("e's tools on both replicas", lambda: bool(e_tools(url_a, agent) and e_tools(url_b, agent)))
        a, b = console(url_a), console(url_b)
        # 1. The login form A served is accepted by B; the session B made works on A, and back.
        form = a.get("/admin/login")
        signed = b.post("/admin/login", data={"key": admin, "csrf": csrf_of(form)}, cookies=form.cookies)
        assert signed.status_code == 303, signed.text[:300]
        a.cookies.update(signed.cookies)
        b.cookies.update(signed.cookies)
        page_a = a.get("/admin/servers")
        assert page_a.status_code == 200 and 'data-server="e"' in page_a.text
        csrf = csrf_of(page_a)
        page_b = b.get("/admin/servers")
        assert page_b.status_code == 200 and csrf_of(page_b) == csrf  # one session, one CSRF token
        # 2. A Disable clicked on A stops the server on B too, and the page says on how many replicas.
        done = a.post("/admin/servers/e/disable", data={"csrf": csrf})
        assert done.status_code == 303, done.text[:500]
        b.cookies.update(done.cookies)  # the notice travels in the session, shown by whichever replica
        notice = shown(b.get("/admin/servers"))
        assert notice.startswith("Done on all 2 replicas: disable e"), notice
        assert e_tools(url_a, agent) == [] and e_tools(url_b, agent) == []
        # An Enable clicked on B starts it on both.
        done = b.post("/admin/servers/e/enable", data={"csrf": csrf})
        assert done.status_code == 303
        a.cookies.update(done.cookies)
        assert "on all 2 replicas: enable e" in shown(a.get("/admin/servers"))
        wait_for("e back on both replicas", lambda: bool(e_tools(url_a, agent) and e_tools(url_b, agent)))
        # 3. Redis down: the action applies here only, and the page says so.
        redis.stop()
        done = a.post("/admin/servers/e/disable", data={"csrf": csrf})
        assert done.status_code == 303
        a.cookies.update(done.cookies)
        notice = shown(a.get("/admin/servers"))
        assert notice.startswith("Done on this replica only: disable e") and "Redis" in notice, notice
        assert e_tools(url_a, agent) == [] and e_tools(url_b, agent)
    finally:
        redis.stop()


def test_sign_out_on_one_replica_ends_the_console_session_on_every_replica(tmp_path: Path, procs: list) -> None:
    redis = Redis()
    try:
        url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B], redis.url)
        admin = create_key(data_dir, "ops", "hub:admin")
        a, b = console(url_a), console(url_b)
        form = b.get("/admin/login")
        signed = a.post("/admin/login", data={"key": admin, "csrf": csrf_of(form)}, cookies=form.cookies)
        assert signed.status_code == 303
        cookie = dict(signed.cookies)
        assert b.get("/admin/keys", cookies=cookie).status_code == 200
        csrf = csrf_of(a.get("/admin/servers", cookies=cookie))
        # A copied cookie (an attacker's, or the browser's before sign-out) is refused everywhere after.
        assert b.post("/admin/logout", data={"csrf": csrf}, cookies=cookie).status_code == 303
        for replica in (a, b):
            assert replica.get("/admin/servers", cookies=cookie).headers.get("location") == "/admin/login"
            refused = replica.post("/admin/servers/e/disable", data={"csrf": csrf}, cookies=cookie)
            assert refused.status_code == 401
        # A revoked key ends its sessions on every replica (checked in the shared key store per request).
        signed = b.post("/admin/login", data={"key": admin, "csrf": csrf_of(form)}, cookies=form.cookies)
        other = dict(signed.cookies)
        assert a.get("/admin/servers", cookies=other).status_code == 200
        keys_page = a.get("/admin/keys", cookies=other).text
        ids = re.findall(r'/admin/keys/([^/"]+)/revoke', keys_page)
        assert ids, keys_page[:500]
        revoked = a.post(f"/admin/keys/{ids[0]}/revoke", data={"csrf": csrf_of(a.get("/admin/servers", cookies=other))},
                         cookies=other)
        assert revoked.status_code == 303, revoked.text[:300]
        wait_for("the revoked key's session refused on B",
                 lambda: b.get("/admin/servers", cookies=other).headers.get("location") == "/admin/login", timeout=30)
    finally:
        redis.stop()
