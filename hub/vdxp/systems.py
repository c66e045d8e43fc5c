"""VDXP systems: a system id, the agency it acts for, and its HMAC secret (encrypted at rest).

A system acts for its agency and every agency that agency serves. Its secret is printed once
when the hub generates it and is never shown again, logged or returned by a listing. Every
change is an audit entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.errors import ConflictError, UsageError
from hub.registry import codes
from hub.store import records as rec
from hub.store.tables import agencies, vdxp_systems
from hub.vdxp.keys import SecretBox, new_secret

SYSTEM_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_SECRET = 16


@dataclass(frozen=True)
class System:
    id: str
    agency: str
    secret: str  # in memory only, for the HMAC check

    def __repr__(self) -> str:  # never print the secret by accident
        return f"System(id={self.id!r}, agency={self.agency!r})"


def check_id(system_id: str) -> str:
    system_id = (system_id or "").strip()
    if not SYSTEM_ID_RE.match(system_id):
        raise UsageError(f"system id {system_id!r} is not acceptable: 1-64 characters of letters, digits, '.', '_' "
                         "or '-', e.g. 000.00.00.H41 or vxp.saas.02")
    return system_id


async def add_system(engine: AsyncEngine, box: SecretBox, system_id: str, agency: str, secret: str | None = None,
                     actor: str = "admin") -> str:
    """Register a system; returns its secret (the only time the hub shows it)."""
    system_id = check_id(system_id)
    agency = codes.check(agency)
    if secret is not None and (len(secret) < MIN_SECRET or not secret.isascii() or not secret.isprintable()):
        raise UsageError(f"a secret must be at least {MIN_SECRET} printable ASCII characters; "
                         "leave it out and the hub generates one")
    secret = secret or new_secret()
    now = rec.utcnow()
    async with engine.begin() as conn:
        row = (await conn.execute(sa.select(agencies.c.connected, agencies.c.active).where(
            agencies.c.code == agency))).first()
        if row is None:
            raise UsageError(f"agency {agency} is not registered; register it first (`hub agency add`)",
                             code="usage.not_found")
        if not row.connected or not row.active:
            raise UsageError(f"agency {agency} has no own active system (it is served by another or retired), "
                             "so it has no inbox a VDXP system could read")
        old = (await conn.execute(sa.select(vdxp_systems.c.revoked_at).where(vdxp_systems.c.id == system_id))).first()
        if old is not None and old.revoked_at is None:
            raise ConflictError(f"system {system_id} is already registered; revoke it first to issue a new secret",
                                code="state.conflict")
        values = dict(agency=agency, secret_enc=box.seal(system_id, secret), created_at=now, created_by=actor,
                      revoked_at=None)
        if old is None:
            await conn.execute(vdxp_systems.insert().values(id=system_id, **values))
        else:
            await conn.execute(vdxp_systems.update().where(vdxp_systems.c.id == system_id).values(**values))
        await rec.append(conn, "vdxp.system_added", actor=actor, details={"system": system_id, "agency": agency})
    return secret


async def revoke_system(engine: AsyncEngine, system_id: str, actor: str = "admin") -> None:
    async with engine.begin() as conn:
        res = await conn.execute(vdxp_systems.update().where(
            vdxp_systems.c.id == system_id, vdxp_systems.c.revoked_at.is_(None)).values(revoked_at=rec.utcnow()))
        if res.rowcount == 0:
            raise UsageError(f"no active VDXP system {system_id!r}", code="usage.not_found")
        await rec.append(conn, "vdxp.system_revoked", actor=actor, details={"system": system_id})


async def list_systems(engine: AsyncEngine) -> list[dict]:
    """Every system, never its secret."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(
            vdxp_systems.c.id, vdxp_systems.c.agency, vdxp_systems.c.created_at, vdxp_systems.c.created_by,
            vdxp_systems.c.revoked_at).order_by(vdxp_systems.c.id))).mappings().all()
    return [dict(r) for r in rows]


async def find_system(conn: AsyncConnection, box: SecretBox, system_id: str) -> System | None:
    """The active system with this id and its secret, or None (unknown, revoked, or not ours to decrypt)."""
    if not SYSTEM_ID_RE.match(system_id or ""):
        return None
    row = (await conn.execute(sa.select(vdxp_systems).where(vdxp_systems.c.id == system_id))).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    secret = box.open(system_id, row["secret_enc"])
    return System(row["id"], row["agency"], secret) if secret is not None else None
