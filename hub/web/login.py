"""Signing in and out of the console, and choosing its language (kept for the browser session)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from aiohttp import web

from hub.api.state import STATE
from hub.api.users import authenticate
from hub.web import auth, i18n
from hub.web.i18n import _
from hub.web.render import LANG_COOKIE, explain, language_of, message_page, page_response, redirect

log = logging.getLogger("hub.web")
routes = web.RouteTableDef()


def _notes(reason: str) -> dict | None:
    if reason == "expired":
        return {"kind": "error", "title": _("Your session has ended (the token was revoked or is unknown). "
                                            "Sign in again."), "detail": ""}
    if reason == "signedout":
        return {"kind": "ok", "title": _("You are signed out."), "detail": ""}
    return None


def _login_page(request: web.Request, *, status: int = 200, note: dict | None = None,
                nxt: str | None = None) -> web.Response:
    state = request.app[STATE]
    probe = web.Response()
    nonce = auth.new_login_nonce(probe, request)
    login_csrf = auth.csrf_for(auth.csrf_key(request), nonce, "login")
    resp = page_response(request, "login.html", {
        "title": _("Sign in"), "user": None, "flashes": [], "organ_id": state.settings.hub_organ_id,
        "active": "", "path": request.path_qs, "refresh": None, "can_refresh": False,
        "now": datetime.now(timezone.utc), "note": note, "login_csrf": login_csrf,
        "next": auth.safe_next(nxt)}, status)
    for name, morsel in probe.cookies.items():
        resp.cookies[name] = morsel
    return resp


def _error(title: str, detail: str = "") -> dict:
    return {"kind": "error", "title": title, "detail": detail}


@routes.get("/admin/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    language_of(request)
    state = request.app[STATE]
    try:
        user, _token = await auth.session_user(state.engine, request)
    except Exception:  # noqa: BLE001 - show the form anyway; signing in will say what fails
        user = None
    if user is not None:
        return redirect(auth.safe_next(request.query.get("next")))
    return _login_page(request, note=_notes(request.query.get("reason", "")), nxt=request.query.get("next"))


@routes.post("/admin/login")
async def login(request: web.Request) -> web.StreamResponse:
    language_of(request)
    state = request.app[STATE]
    form = await request.post()
    nxt = form.get("next") if isinstance(form.get("next"), str) else None
    nonce = request.cookies.get(auth.LOGIN_COOKIE)
    if not auth.csrf_ok(auth.csrf_key(request), nonce, form.get("csrf"), "login"):
        return _login_page(request, status=403, nxt=nxt, note=_error(
            _("The sign-in form expired or did not come from this hub: please sign in again.")))
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    try:
        user = await authenticate(state.engine, token) if auth.well_formed(token) else None
    except Exception as e:  # noqa: BLE001 - the database is down, say so
        status, title, detail = explain(e, state)
        return _login_page(request, status=status, nxt=nxt, note=_error(title, detail))
    if user is None:
        return _login_page(request, status=401, nxt=nxt, note=_error(
            _("This token is unknown or revoked. Ask an admin for a new one (%(cmd)s).", cmd="hub user add")))
    if user.role not in auth.DASHBOARD_ROLES:
        return _login_page(request, status=403, nxt=nxt, note=_error(
            _("This is an agency token: agency systems use the HTTP API (/api/v1, header %(h)s). The console is "
              "for admins and auditors.", h="Authorization: Bearer <token>")))
    try:
        session_id = await auth.start_session(state.engine, user)
    except Exception as e:  # noqa: BLE001 - the database is down, say so
        status, title, detail = explain(e, state)
        return _login_page(request, status=status, nxt=nxt, note=_error(title, detail))
    resp = redirect(auth.safe_next(nxt))
    auth.set_session(resp, request, session_id)
    auth.clear_login_nonce(resp, request)
    log.info("console sign-in by %s", user.actor, extra={"actor": user.actor})
    return resp


@routes.post("/admin/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    language_of(request)
    form = await request.post()
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token and not auth.csrf_ok(auth.csrf_key(request), token, form.get("csrf")):
        return message_page(request, None, _("Not allowed"), _error(_(
            "The form's security token is missing or out of date: reload the page and try again.")), 403)
    await auth.end_session(request.app[STATE].engine, token)
    resp = redirect("/admin/login?reason=signedout")
    auth.clear_session(resp, request)
    return resp


@routes.get("/admin/lang")
async def choose_language(request: web.Request) -> web.StreamResponse:
    """Switch the console's language for this browser session (a session cookie: no expiry date)."""
    lang = request.query.get("to")
    resp = redirect(auth.safe_next(request.query.get("next")) if request.query.get("next") != "/admin/login"
                    else "/admin/login")
    if lang in i18n.LANGUAGES:
        resp.set_cookie(LANG_COOKIE, lang, path="/admin", httponly=True, samesite="Lax", secure=request.secure)
    return resp
