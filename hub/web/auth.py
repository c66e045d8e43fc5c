"""Console sessions (kept on the server) and CSRF tokens, the same on every hub instance.

- Signing in with an admin or auditor API token creates a ``console_sessions`` row; the
  ``hub_session`` cookie (HttpOnly, SameSite=Strict, Path=/admin, Secure on https) holds only a
  random session id, stored hashed (SHA-256). The token itself never leaves the sign-in form. A
  session ends when it expires (12 hours after sign-in, checked on the server), when its user
  signs out, or at once when the user's token is revoked.
- Every POST carries a hidden ``csrf`` field: HMAC-SHA256 of the session id under the console's
  CSRF key. The login form (no session yet) uses the same HMAC over a random nonce kept in the
  ``hub_login`` cookie (double submit), so a foreign site cannot log a browser in.
- The CSRF key is derived (HMAC-SHA256 with a fixed label) from a random secret in the
  database (``hub_secrets``, made by the first instance that needs it), so a form one instance
  rendered is accepted by any other behind a plain load balancer, and after a restart. The
  database rather than the data folder: the instances share the database, not a folder, and
  the key alone forges nothing: a token is bound to the session id, which only the browser
  holds (the database keeps its hash), or to the login nonce in the browser's cookie.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from urllib.parse import quote, unquote

import sqlalchemy as sa
from aiohttp import web

from hub.api.state import STATE
from hub.api.users import Principal
from hub.store.secrets import shared_secret
from hub.store.tables import api_users, console_sessions

log = logging.getLogger("hub.web")

SESSION_COOKIE = "hub_session"
LOGIN_COOKIE = "hub_login"
FLASH_COOKIE = "hub_flash"
DASHBOARD_ROLES = ("admin", "auditor")
SESSION_MAX_AGE = 12 * 3600
_TOKEN_SHAPE = re.compile(r"^hub_[0-9A-Za-z]{1,64}_[0-9A-Za-z_\-]{1,128}$")
_SESSION_SHAPE = re.compile(r"^[0-9A-Za-z_\-]{43}$")
CSRF_SECRET = "console"  # the hub_secrets row the CSRF key is derived from
_CSRF_LABEL = b"edxml-hub console csrf v1"


@dataclass
class CsrfKey:
    """The console's CSRF key, read from the database once per application (``load_csrf_key``)."""

    key: bytes | None = None


CSRF_KEY = web.AppKey("console_csrf_key", CsrfKey)


def setup_csrf(app: web.Application) -> None:
    """Read (or make) the shared key when the application starts: pages render forms synchronously.

    A database that is down at that moment must not stop the hub (its workers already take
    packages and ride out the outage): the key is then loaded by the first console request
    (``ensure_csrf_key``, from ``hub.web.pages``' middleware), which says the database is down
    until it can."""
    app[CSRF_KEY] = CsrfKey()

    async def load(app: web.Application) -> None:
        try:
            await ensure_csrf_key(app)
        except Exception as e:  # noqa: BLE001 - the console loads it on its first request
            log.warning("console: the CSRF key is not loaded yet (%s); the first console request loads it",
                        str(e).splitlines()[0] if str(e) else type(e).__name__)

    app.on_startup.append(load)


async def ensure_csrf_key(app: web.Application) -> None:
    """Load the console's CSRF key unless it is loaded (raises what the database raised)."""
    holder = app[CSRF_KEY]
    if holder.key is None:
        holder.key = await load_csrf_key(app[STATE].engine)


async def load_csrf_key(engine) -> bytes:
    return hmac.new(await shared_secret(engine, CSRF_SECRET), _CSRF_LABEL, sha256).digest()


def csrf_key(request: web.Request) -> bytes:
    key = request.app[CSRF_KEY].key
    if key is None:  # only if the application was set up without hub.web.pages' middleware
        raise RuntimeError("the console's CSRF key is not loaded")
    return key


def csrf_for(key: bytes, secret: str, purpose: str = "session") -> str:
    return hmac.new(key, f"{purpose}\0{secret}".encode(), sha256).hexdigest()


def csrf_ok(key: bytes, secret: str | None, submitted, purpose: str = "session") -> bool:
    if not secret or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(csrf_for(key, secret, purpose), submitted)


def well_formed(token: str | None) -> bool:
    return bool(token) and _TOKEN_SHAPE.match(token) is not None


def _hashed(session_id: str) -> str:
    return sha256(session_id.encode()).hexdigest()


async def start_session(engine, user: Principal) -> str:
    """A new session for ``user`` (signed in with its token); returns the id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    async with engine.begin() as conn:
        await conn.execute(console_sessions.insert().values(
            id_hash=_hashed(session_id), user_id=user.user_id, created_at=now,
            expires_at=now + timedelta(seconds=SESSION_MAX_AGE)))
    return session_id


async def end_session(engine, session_id: str | None) -> None:
    if session_id and _SESSION_SHAPE.match(session_id):
        async with engine.begin() as conn:
            await conn.execute(console_sessions.update().where(
                console_sessions.c.id_hash == _hashed(session_id), console_sessions.c.ended_at.is_(None))
                .values(ended_at=datetime.now(timezone.utc)))


async def session_user(engine, request: web.Request) -> tuple[Principal | None, str | None]:
    """The admin/auditor behind the session cookie, and the session id; (None, id) when the session
    is unknown, expired, ended, or its user's token was revoked."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None, None
    if not _SESSION_SHAPE.match(session_id):
        return None, session_id
    async with engine.connect() as conn:
        row = (await conn.execute(
            sa.select(api_users.c.id, api_users.c.name, api_users.c.role, api_users.c.agency)
            .select_from(console_sessions.join(api_users, api_users.c.id == console_sessions.c.user_id))
            .where(console_sessions.c.id_hash == _hashed(session_id), console_sessions.c.ended_at.is_(None),
                   console_sessions.c.expires_at > datetime.now(timezone.utc), api_users.c.revoked_at.is_(None))
        )).mappings().first()
    if row is None or row["role"] not in DASHBOARD_ROLES:
        return None, session_id
    return Principal(row["name"], row["role"], row["agency"], row["id"]), session_id


def _cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, path: str,
            max_age: int | None) -> None:
    response.set_cookie(name, value, path=path, httponly=True, samesite="Strict", secure=request.secure,
                        max_age=max_age)


def set_session(response: web.StreamResponse, request: web.Request, session_id: str) -> None:
    _cookie(response, request, SESSION_COOKIE, session_id, "/admin", SESSION_MAX_AGE)


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
