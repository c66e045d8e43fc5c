"""API users and bearer tokens. Tokens are shown once and stored hashed.

A token is ``hub_<id>_<secret>``: ``id`` (public, 12 hex) finds the row, ``secret`` (256
random bits, URL-safe base64) is checked against ``token_hash`` = SHA-256(secret) in constant
time. A fast hash is right here: the secret is random, not a password, so there is nothing
to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.errors import ConflictError, UsageError
from hub.registry import codes
from hub.audit import records as rec
from hub.store.tables import agencies, api_users

ROLES = ("agency", "admin", "auditor")
# hub_<12 hex>_<secrets.token_urlsafe(32)>: checked before anything reaches the database, so a
# token that is not even text (non-UTF-8 bytes, controls, megabytes) is simply "malformed".
TOKEN_SHAPE = re.compile(r"hub_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", re.ASCII)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API user (token) or an agency system (TLS client certificate)."""

    name: str
    role: str
    agency: str | None = None
    user_id: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def add_user(engine: AsyncEngine, name: str, role: str, agency: str | None = None,
                   actor: str = "admin") -> str:
    """Create a user; returns the token (the only time it exists in clear)."""
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "agency":
        if not agency:
            raise UsageError("an agency user needs --agency CODE")
        agency = codes.check(agency)
    elif agency:
        raise UsageError(f"only agency users belong to an agency (role {role} does not take --agency)")
    if not name.strip():
        raise UsageError("a user needs a name")
    uid = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        if agency and not (await conn.execute(sa.select(agencies.c.code).where(agencies.c.code == agency))).first():
            raise UsageError(f"agency {agency} is not registered; register it first (`hub agency add`)")
        same = (await conn.execute(sa.select(api_users.c.id).where(
            api_users.c.name == name.strip(), api_users.c.revoked_at.is_(None)))).scalar()
        if same:
            raise ConflictError(f"a user named {name.strip()!r} already exists (id {same}); user names are unique: "
                                "choose another name, or revoke that user first")
        await conn.execute(api_users.insert().values(
            id=uid, name=name.strip(), role=role, agency=agency, token_hash=_hash(secret),
            created_at=rec.utcnow(), created_by=actor))
        await rec.append(conn, "user.added", actor=actor, details={"user": uid, "name": name, "role": role,
                                                                   "agency": agency})
    return f"hub_{uid}_{secret}"


async def revoke_user(engine: AsyncEngine, user_id: str, actor: str = "admin") -> None:
    """Revoke the user with id ``user_id`` (the ID column of ``hub user list``)."""
    async with engine.begin() as conn:
        row = (await conn.execute(sa.select(api_users.c.id, api_users.c.revoked_at)
                                  .where(api_users.c.id == user_id))).first()
        if row is None:
            named = (await conn.execute(sa.select(api_users.c.id).where(api_users.c.name == user_id))).scalars().all()
            hint = f" ({user_id!r} is the name of user {', '.join(named)})" if named else ""
            raise UsageError(f"no user with id {user_id!r}{hint}; give the ID column of `hub user list`",
                             code="usage.not_found")
        if row.revoked_at is not None:
            raise ConflictError(f"user {user_id} is already revoked")
        await conn.execute(api_users.update().where(api_users.c.id == user_id).values(revoked_at=rec.utcnow()))
        await rec.append(conn, "user.revoked", actor=actor, details={"user": user_id})


async def list_users(engine: AsyncEngine) -> list[dict]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(
            api_users.c.id, api_users.c.name, api_users.c.role, api_users.c.agency, api_users.c.created_at,
            api_users.c.created_by, api_users.c.revoked_at, api_users.c.last_used_at,
        ).order_by(api_users.c.created_at))).mappings().all()
    return [dict(r) for r in rows]


async def authenticate(engine: AsyncEngine, token: str) -> Principal | None:
    """The principal behind a bearer token, or None (unknown, malformed or revoked)."""
    shape = TOKEN_SHAPE.fullmatch(token)
    if shape is None:
        return None
    uid, secret = shape.groups()
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(api_users).where(api_users.c.id == uid))).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(row["token_hash"], _hash(secret)):
        return None
    return Principal(row["name"], row["role"], row["agency"], row["id"])


async def agency_active(engine: AsyncEngine, code: str | None) -> bool:
    """Whether ``code`` is registered and not retired, read now (never from a cached snapshot):
    a retired agency's tokens and certificates open nothing from the moment it is retired."""
    if not code:
        return False
    async with engine.connect() as conn:
        active = (await conn.execute(sa.select(agencies.c.active).where(agencies.c.code == code))).scalar()
    return bool(active)
