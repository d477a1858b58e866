"""`/admin`: login and logout, the session and CSRF gate in front of every page, and the routes.

Only principals holding `hub:admin` and pinned to no profile (`profile:<name>`: such a credential
may use only its profiles' URLs, and the console is hub-wide) get a session. The credential (an API key, or a JWT where the
hub accepts them) is POSTed in a form, never put in a URL; every POST must carry the session's
CSRF token. Without `hub.auth.enabled` there is no way to tell an admin from anyone else, so the
console only explains how to turn auth on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from hub.admin import views_activity, views_keys, views_servers, views_tools
from hub.admin.console import ADMIN_SCOPE, HERE, Console, StoreUnavailable
from hub.admin.session import (COOKIE, LOGIN_CSRF_COOKIE, MAX_AGE_S, AdminSession, SessionTooLarge, csrf_ok,
                               set_cookie)
from hub.auth.minting import PIN_PREFIX
from hub.auth.scopes import grants
from hub.hub import Hub

if TYPE_CHECKING:
    from hub.auth.http import HttpAuth

View = Callable[[Console, Request, AdminSession], Awaitable[Response]]


class ConsoleApp(Router):
    """The console's routes, and `aclose()` for the hub's stop (its sessions' shared-store client)."""

    def __init__(self, console: Console, routes: list[BaseRoute]) -> None:
        super().__init__(routes=routes)
        self.console = console

    async def aclose(self) -> None:
        await self.console.sessions.aclose()


def admin_app(hub: Hub, auth: HttpAuth | None) -> ConsoleApp:
    """The console's ASGI app, to be mounted at `/admin`; `aclose()` it when the hub stops."""
    console = Console(hub, auth)

    async def gate(request: Request, touch: bool = True) -> AdminSession | Response | None:
        try:
            return await console.live_session(request, touch)
        except StoreUnavailable:
            return console.render(request, "error.html", None, status=503, title="Key store unreachable",
                                  message="The hub's key store did not answer, so your session's key could not be "
                                          "checked. Nothing was done; try again in a few seconds.")

    def page(view: View, touch: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if console.auth is None:
                return console.render(request, "no_auth.html", None, status=503)
            session = await gate(request, touch)
            if isinstance(session, Response):
                return session
            if session is None:
                return RedirectResponse("/admin/login", status_code=303)
            response = await view(console, request, session)
            return _resealed(console, request, session, response) if touch else response
        return endpoint

    def action(view: View) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if console.auth is None:
                return console.render(request, "no_auth.html", None, status=503)
            session = await gate(request)
            if isinstance(session, Response):
                return session
            if session is None:
                return console.render(request, "error.html", None, status=401, title="Not signed in",
                                      message="Your session has ended. Sign in again, then repeat the action.")
            form = await request.form()
            if not csrf_ok(session.csrf, form.get("csrf")):
                return console.render(request, "error.html", session, status=403, title="Form refused",
                                      message="The form's CSRF token is missing or wrong. Reload the page and "
                                              "submit the form again.")
            return _resealed(console, request, session, await view(console, request, session))
        return endpoint

    async def login_form(request: Request) -> Response:
        if console.auth is None:
            return console.render(request, "no_auth.html", None, status=503)
        return _login_page(console, request, None, 200)

    async def login(request: Request) -> Response:
        if console.auth is None:
            return console.render(request, "no_auth.html", None, status=503)
        form = await request.form()
        issued = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not console.login_tokens.issued(issued) or not csrf_ok(issued, form.get("csrf")):
            return _login_page(console, request, "The sign-in form expired or was not sent from this page. "
                                                 "Try again.", 403)
        credential = str(form.get("key") or "").strip()
        token = await console.auth.verifier.verify_token(credential) if credential else None
        if token is None:
            return _login_page(console, request, "That key or token is not valid (wrong, revoked or expired).", 401)
        if not grants(token.scopes, ADMIN_SCOPE):
            return _login_page(console, request, f"This credential works but lacks the {ADMIN_SCOPE} scope "
                                                 "the console needs.", 403)
        pins = sorted(s for s in token.scopes if s.startswith(PIN_PREFIX))
        if pins:
            return _login_page(console, request, f"This credential is pinned to a profile ({' '.join(pins)}): it may "
                                                 "use only that profile's URL, and the console is hub-wide. Sign in "
                                                 "with a key that holds no profile: scope.", 403)
        claims = token.claims or {}
        kind = str(claims.get("mcp_hub_kind", "jwt"))
        ident = str(claims.get("key_id") if kind == "api_key" else claims.get("iss") or "")
        session = AdminSession(token.client_id, kind, ident, float(token.expires_at) if token.expires_at else None,
                               tuple(token.scopes))
        try:
            sid = console.sessions.create(session)
        except SessionTooLarge as exc:  # too many scopes to seal into a cookie: said, not a silent bounce
            return _login_page(console, request, str(exc), 400)
        console.audit(session, "login", None, {"via": kind})
        response = RedirectResponse("/admin/servers", status_code=303)
        set_cookie(response, request, COOKIE, sid, MAX_AGE_S, console.public_url)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/admin")
        return response

    async def logout(console: Console, request: Request, session: AdminSession) -> Response:
        await console.sessions.end(session)
        session.sid = ""  # ended: `_resealed` sends no new cookie for it
        response = RedirectResponse("/admin/login", status_code=303)
        response.delete_cookie(COOKIE, path="/admin")
        return response

    async def home(request: Request) -> Response:
        return RedirectResponse("/admin/servers", status_code=303)

    return ConsoleApp(console, [
        Route("/", home, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", action(logout), methods=["POST"]),
        Route("/servers", page(views_servers.servers), methods=["GET"]),
        Route("/servers/{name}/{verb:str}", action(views_servers.act), methods=["POST"]),
        Route("/tools", page(views_tools.tools), methods=["GET"]),
        Route("/activity", page(views_activity.activity), methods=["GET"]),
        Route("/activity/stream", page(views_activity.stream, touch=False), methods=["GET"]),
        Route("/charts", page(views_activity.charts), methods=["GET"]),
        Route("/keys", page(views_keys.keys), methods=["GET"]),
        Route("/keys", action(views_keys.create), methods=["POST"]),
        Route("/keys/{key_id}/revoke", action(views_keys.revoke), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ])


def _resealed(console: Console, request: Request, session: AdminSession, response: Response) -> Response:
    """The answer, with the session's cookie sealed anew when the session lives in it (its idle clock,
    its notice); a signed-out session gets none."""
    if session.sid and (value := console.sessions.cookie(session)):
        set_cookie(response, request, COOKIE, value, MAX_AGE_S, console.public_url)
    return response


def _login_page(console: Console, request: Request, error: str | None, status: int) -> Response:
    token = console.login_tokens.issue()
    response = console.render(request, "login.html", None, status=status, error=error, login_csrf=token)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, 3600, console.public_url)
    return response
