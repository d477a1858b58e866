"""The admin console (`/admin`) of a real HTTP hub: its login gate and CSRF checks over httpx, and
an operator's session in real headless Chromium (Debian's `chromium`, driven by Playwright).

Screenshots of each page go to test-output/admin/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import PY, ROOT, echo_stdio, start_hub_http, write_config
from tests.hub.auth.test_security import create_key, post_initialize

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "admin"


@pytest.fixture
def console(tmp_path: Path, procs: list) -> dict[str, Any]:
    """An HTTP hub with API-key auth, a working stdio server `e` and one (`broken`) that cannot start;
    an admin key and an agent key."""
    data_dir = tmp_path / "data"
    config = write_config(
        tmp_path,
        {"e": echo_stdio(), "broken": {"command": PY, "args": ["-c", "import sys; sys.exit(3)"]}},
        hub={"data_dir": str(data_dir), "auth": {"enabled": True, "admin_for_destructive": False}},
    )
    admin = create_key(data_dir, "ops-admin", "hub:admin e:*")  # e:*: it creates e:read keys (no key mints a broader one)
    agent = create_key(data_dir, "agent-7", "e:write")
    url = start_hub_http(procs, config)
    return {"url": url, "base": url.removesuffix("/mcp"), "admin": admin, "agent": agent, "data_dir": data_dir}


def _login_csrf(http: httpx.Client) -> str:
    page = http.get("/admin/login")
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def _form_csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_console_refuses_anonymous_non_admin_and_forms_without_csrf(console: dict[str, Any]) -> None:
    with httpx.Client(base_url=console["base"]) as http:
        # No session: every page sends the browser to the login form; an action is refused outright.
        assert http.get("/admin/servers").headers["location"] == "/admin/login"
        assert http.post("/admin/keys", data={"principal": "x", "scopes": "hub:admin"}).status_code == 401
        # A valid key without hub:admin, a wrong key, and a login form not sent from the page are refused.
        for key, status in ((console["agent"], 403), ("mcphub_000000000000_" + "A" * 43, 401)):
            response = http.post("/admin/login", data={"key": key, "csrf": _login_csrf(http)})
            assert response.status_code == status
            assert "mcphub_admin" not in response.cookies
        http.cookies.clear()
        assert http.post("/admin/login", data={"key": console["admin"]}).status_code == 403
        # The admin key opens a session: HttpOnly, SameSite=Strict, path /admin; the key is in no URL.
        forged = httpx.Client(base_url=http.base_url, cookies={"mcphub_admin_login": "x"})  # any matching pair
        with forged:
            assert forged.post("/admin/login", data={"key": console["admin"], "csrf": "x"}).status_code == 403
        response = http.post("/admin/login", data={"key": console["admin"], "csrf": _login_csrf(http)})
        assert response.status_code == 303
        cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("mcphub_admin="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/admin" in cookie
        assert "Secure" not in cookie  # plain http on loopback; https sets Secure
        keys_page = http.get("/admin/keys")
        assert keys_page.status_code == 200 and "agent-7" in keys_page.text
        # Forms without the session's CSRF token, or with another one, change nothing.
        for data in ({"principal": "evil", "scopes": "hub:admin"}, {"principal": "evil", "scopes": "hub:admin", "csrf": "x" * 43}):
            refused = http.post("/admin/keys", data=data)
            assert refused.status_code == 403 and "CSRF" in refused.text
        assert "evil" not in http.get("/admin/keys").text
        # A cross-site POST is stopped by the Origin check before the console sees it.
        csrf = _form_csrf(http.get("/admin/keys").text)
        foreign = http.post("/admin/keys", data={"principal": "evil", "scopes": "hub:admin", "csrf": csrf},
                            headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert "evil" not in http.get("/admin/keys").text
        # Logging out ends the session on the server, not only in this browser.
        sid = http.cookies.get("mcphub_admin")
        assert http.post("/admin/logout", data={"csrf": csrf}).status_code == 303
        replay = httpx.get(f"{console['base']}/admin/servers", cookies={"mcphub_admin": sid})
        assert replay.status_code == 303 and replay.headers["location"] == "/admin/login"


def _sdk_call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    """One call by an MCP SDK client, run in a thread of its own (Playwright's sync API owns this one)."""
    outcome: dict[str, Any] = {}

    async def call() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))) as client:
            outcome["result"] = await client.call_tool(tool, arguments)

    def run() -> None:
        try:
            anyio.run(call)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    import threading

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the SDK call did not finish"
    return outcome


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (tools/setup.sh --test)")
def test_operator_session_in_chromium(console: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    base = console["base"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 820})
        page.set_default_timeout(20_000)

        # Signing in: the form, never the URL.
        page.goto(f"{base}/admin")
        expect(page).to_have_url(f"{base}/admin/login")
        page.screenshot(path=str(SHOTS / "login.png"))
        page.get_by_label("Admin key or token").fill(console["admin"])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{base}/admin/servers")
        assert console["admin"] not in page.url

        # Every server and its state (wait for the broken one's first attempt to have failed).
        for _ in range(100):
            if page.locator('tr[data-server="broken"] .badge').first.inner_text() == "down":
                break
            page.wait_for_timeout(200)  # polling a page that only changes on reload
            page.reload()
        expect(page.locator('tr[data-server="e"] .badge').first).to_have_text("connected")
        expect(page.locator('tr[data-server="broken"] .badge').first).to_have_text("down")
        expect(page.locator('tr[data-server="broken"] .err')).to_contain_text("exit")
        page.screenshot(path=str(SHOTS / "servers.png"), full_page=True)

        # Tools: the search box filters the catalog; each tool shows the scope it needs.
        page.get_by_role("link", name="Tools").click()
        page.get_by_label("Search").fill("integers")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("li.tool")).to_have_count(1)
        expect(page.locator('li[data-tool="e__add"]')).to_contain_text("e:read")
        page.get_by_label("Search").fill("")
        page.get_by_label("Annotation").select_option("read_only")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator('li[data-tool="e__echo"]')).to_have_count(0)
        expect(page.locator('li[data-tool="e__flaky_read"]')).to_have_count(1)
        page.screenshot(path=str(SHOTS / "tools.png"), full_page=True)

        # Activity: a call by an SDK client appears live, without a reload.
        page.get_by_role("link", name="Activity").click()
        expect(page.locator("#live-status")).to_contain_text("on")
        done = _sdk_call(console["url"], console["agent"], "e__echo", {"text": "hello from the agent"})
        assert "error" not in done, done
        row = page.locator("#activity-rows tr.fresh", has_text="agent-7")
        expect(row).to_contain_text("e__echo")
        expect(row).to_contain_text("ok")
        row.get_by_role("link").click()
        detail = page.locator("#detail")
        expect(detail).to_contain_text("agent-7")
        expect(detail).to_contain_text("[redacted]")  # arguments as the audit log keeps them
        assert "hello from the agent" not in detail.inner_text()
        page.screenshot(path=str(SHOTS / "activity.png"), full_page=True)

        page.get_by_role("link", name="Charts").click()
        expect(page.locator("section.chart-panel", has_text="e")).to_have_count(1)
        expect(page.locator("section.chart-panel svg")).to_have_count(3)
        page.screenshot(path=str(SHOTS / "charts.png"), full_page=True)

        # Keys: revoke the agent's key; its next call is refused.
        page.get_by_role("link", name="Keys").click()
        agent_id = console["agent"].split("_")[1]
        page.get_by_role("button", name=f"Revoke key {agent_id} of agent-7").click()
        expect(page.locator(f'tr[data-key="{agent_id}"] .badge')).to_have_text("revoked")
        refused = _sdk_call(console["url"], console["agent"], "e__echo", {"text": "again"})
        assert "error" in refused and "result" not in refused, refused
        assert post_initialize(console["url"], {"Authorization": f"Bearer {console['agent']}"}).status_code == 401
        # A new key is shown once, then only its id.
        page.get_by_label("Principal").fill("ci-bot")
        page.get_by_label("Scopes (space separated)").fill("e:read")
        page.get_by_label("Expires in (blank = never)").fill("30d")
        page.get_by_role("button", name="Create key").click()
        secret = page.get_by_label("New key").input_value()
        assert secret.startswith("mcphub_")
        page.screenshot(path=str(SHOTS / "keys.png"), full_page=True)
        page.reload()
        assert secret not in page.content()
        assert _sdk_call(console["url"], secret, "e__add", {"a": 2, "b": 3})["result"].structured_content == {"total": 5}

        # A server action is audited.
        page.get_by_role("link", name="Servers").click()
        page.get_by_role("button", name="Restart e").click()
        expect(page.get_by_role("status")).to_contain_text("restart e")
        page.goto(f"{base}/admin/activity?tool=admin:restart")
        expect(page.locator("#activity-rows tr", has_text="ops-admin")).to_have_count(1)
        browser.close()
