"""Dashboard sessions: the admin's or auditor's API token in an HttpOnly cookie, and CSRF tokens.

- ``hub_session`` holds the bearer token itself (HttpOnly, SameSite=Strict, Path=/admin,
  Secure on https). Every page authenticates it again with :func:`hub.api.users.authenticate`,
  so a revoked token ends its sessions at once.
- Every POST carries a hidden ``csrf`` field: HMAC-SHA256 of the session token under a random
  key of this process. The login form (no session yet) uses the same HMAC over a random nonce
  kept in the ``hub_login`` cookie (double submit), so a foreign site cannot log a browser in.
  After a restart the key is new: open forms fail their check and are shown again.
"""

from __future__ import annotations

import hmac
import re
import secrets
from hashlib import sha256
from urllib.parse import quote, unquote

from aiohttp import web

from hub.api.users import Principal, authenticate

SESSION_COOKIE = "hub_session"
LOGIN_COOKIE = "hub_login"
FLASH_COOKIE = "hub_flash"
DASHBOARD_ROLES = ("admin", "auditor")
SESSION_MAX_AGE = 12 * 3600
_TOKEN_SHAPE = re.compile(r"^hub_[0-9A-Za-z]{1,64}_[0-9A-Za-z_\-]{1,128}$")
_KEY = secrets.token_bytes(32)  # per process


def csrf_for(secret: str, purpose: str = "session") -> str:
    return hmac.new(_KEY, f"{purpose}\0{secret}".encode(), sha256).hexdigest()


def csrf_ok(secret: str | None, submitted, purpose: str = "session") -> bool:
    if not secret or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(csrf_for(secret, purpose), submitted)


def well_formed(token: str | None) -> bool:
    return bool(token) and _TOKEN_SHAPE.match(token) is not None


async def session_user(engine, request: web.Request) -> tuple[Principal | None, str | None]:
    """The admin/auditor behind the session cookie, and the token; (None, token) when it is not valid."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, None
    if not well_formed(token):
        return None, token
    p = await authenticate(engine, token)
    if p is None or p.role not in DASHBOARD_ROLES:
        return None, token
    return p, token


def _cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, path: str,
            max_age: int | None) -> None:
    response.set_cookie(name, value, path=path, httponly=True, samesite="Strict", secure=request.secure,
                        max_age=max_age)


def set_session(response: web.StreamResponse, request: web.Request, token: str) -> None:
    _cookie(response, request, SESSION_COOKIE, token, "/admin", SESSION_MAX_AGE)


def clear_session(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(SESSION_COOKIE, path="/admin", secure=request.secure, httponly=True, samesite="Strict")


def new_login_nonce(response: web.StreamResponse, request: web.Request) -> str:
    nonce = secrets.token_urlsafe(24)
    _cookie(response, request, LOGIN_COOKIE, nonce, "/admin/login", 3600)
    return nonce


def clear_login_nonce(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(LOGIN_COOKIE, path="/admin/login", secure=request.secure, httponly=True, samesite="Strict")


def set_flash(response: web.StreamResponse, request: web.Request, kind: str, text: str) -> None:
    _cookie(response, request, FLASH_COOKIE, quote(f"{kind}|{text[:500]}", safe=""), "/admin", 120)


def take_flash(request: web.Request) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, text = unquote(raw).partition("|")
    return (kind if kind in ("ok", "error") else "error"), text


def drop_flash(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(FLASH_COOKIE, path="/admin", secure=request.secure, httponly=True, samesite="Strict")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path only (never another site), percent-encoded."""
    if (not target or not (target == "/admin" or target.startswith(("/admin/", "/admin?")))
            or target.startswith("/admin/login") or "//" in target or "\\" in target
            or any(ord(c) < 32 or ord(c) == 127 for c in target)):
        return "/admin"
    return quote(target, safe="/?&=%:+,;@!$'()*~.-_")
