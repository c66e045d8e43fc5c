"""The agency directory as the SDK reads it (``getAgenciesList``, ``getAgenciesListQD20``,
``getSynchronizeUnit``) and the membership calls (``registerAgency``, ``deleteAgency``).

Ids are the agency codes; ``pid`` is the parent (the explicit ``served_by``, else the nearest
registered ancestor). ``version`` counts seconds from 2020-01-01 UTC to the unit's last change:
an int that grows with the changes (the SDK reads it with ``getAsInt``; it fits until 2088). A
client keeps the highest version it saw and may pass it back as ``version`` to get the units
changed at or after it: those of that same second come again (apply by code), so none is
missed. Retired units stay in the feed with ``deleted`` true.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.errors import UsageError
from hub.registry import codes
from hub.registry.model import Registry
from hub.registry.store import add_agency, retire_agency
from hub.store.tables import agencies
from hub.vdxp.wire import VdxpError

EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def version_of(updated_at: datetime) -> int:
    value = updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=timezone.utc)
    return max(0, int((value - EPOCH).total_seconds()))


def level_of(code: str) -> int:
    """1 for ``000.00.00.G22``, 2 for ``000.00.24.H44``, ..."""
    return 1 + sum(1 for g in code.split(".")[:3] if int(g) != 0)


def parent_of(registry: Registry, code: str, served_by: str | None) -> str:
    if served_by:
        return served_by
    entry = registry.entry_for_parent(code)
    return entry.code if entry else ""


def _center(registry: Registry, code: str) -> str:
    """The connected system that serves ``code`` (its nearest registered ancestor's, when the
    snapshot does not know the code yet)."""
    entry = registry.entry_for(code)
    return (registry.system_of(entry.code) if entry is not None else None) or ""


async def _rows(engine: AsyncEngine, *, active_only: bool, since: int | None = None) -> list[dict]:
    q = sa.select(agencies.c.code, agencies.c.name, agencies.c.active, agencies.c.served_by, agencies.c.updated_at)
    if active_only:
        q = q.where(agencies.c.active.is_(True))
    async with engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(q.order_by(agencies.c.code))).mappings().all()]
    if since is not None:
        rows = [r for r in rows if version_of(r["updated_at"]) >= since]
    return [r for r in rows if codes.is_valid(r["code"])]


async def agencies_list(engine: AsyncEngine, registry: Registry) -> list[dict]:
    return [{"id": r["code"], "pid": parent_of(registry, r["code"], r["served_by"]), "code": r["code"],
             "name": r["name"] or "", "mail": "", "oldCode": ""}
            for r in await _rows(engine, active_only=True)]


async def agencies_qd20(engine: AsyncEngine, level: str | None) -> list[dict]:
    want = int(level) if level and level.strip().isascii() and level.strip().isdigit() else None
    return [{"id": r["code"], "code": r["code"], "name": r["name"] or "", "mail": "", "code102": r["code"]}
            for r in await _rows(engine, active_only=True) if want is None or level_of(r["code"]) == want]


async def synchronize(engine: AsyncEngine, registry: Registry, since: str | None) -> list[dict]:
    after = int(since) if since and since.strip().isascii() and since.strip().isdigit() else None
    out = []
    for r in await _rows(engine, active_only=False, since=after):
        at = r["updated_at"] if r["updated_at"].tzinfo else r["updated_at"].replace(tzinfo=timezone.utc)
        out.append({"id": r["code"], "pid": parent_of(registry, r["code"], r["served_by"]), "code": r["code"],
                    "name": r["name"] or "", "mail": "", "centerCode": _center(registry, r["code"]),
                    "modifyDate": at.strftime("%Y-%m-%d %H:%M:%S"), "version": version_of(at),
                    "deleted": not r["active"], "isAgency": True})
    return out


def _below(code: str, own: str, what: str) -> str:
    try:
        code = codes.check(code, what)
    except UsageError as e:
        raise VdxpError(e.message, code="usage.agency_code", element=what) from None
    if own not in codes.ancestors(code):
        raise VdxpError(f"{code} is not below {own}: a system registers and removes only agencies under its own",
                        code="vdxp.out_of_scope", element=what)
    return code


async def _row(engine: AsyncEngine, code: str):
    """The registry row itself (the cached snapshot may lag a change by a moment)."""
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(agencies.c.code, agencies.c.connected, agencies.c.active).where(
            agencies.c.code == code))).first()


async def register(engine: AsyncEngine, own: str, system_id: str, body: dict) -> str:
    """Register or update an agency below the system's own (served by it), audited as the system."""
    code = _below(str(body.get("code") or ""), own, "code")
    pcode = str(body.get("pcode") or "").strip()
    served_by = None
    if pcode and pcode not in (own, system_id):
        served_by = _below(pcode, own, "pcode")
        if await _row(engine, served_by) is None:
            raise VdxpError(f"pcode {served_by} is not registered; register the parent first",
                            code="usage.not_found", element="pcode")
    existing = await _row(engine, code)
    if existing is not None and existing.connected:
        raise VdxpError(f"{code} has its own system; only the hub operator changes it", code="vdxp.out_of_scope",
                        element="code")
    name = str(body.get("name") or "").strip()[:500] or None
    await add_agency(engine, code, name=name, served_by=served_by, connected=False, actor=f"vdxp:{system_id}")
    return code


async def unregister(engine: AsyncEngine, own: str, system_id: str, code: str) -> str:
    code = _below(code, own, "AgencyCode")
    existing = await _row(engine, code)
    if existing is None:
        raise VdxpError(f"agency {code} is not registered", code="usage.not_found", element="AgencyCode")
    if existing.connected:
        raise VdxpError(f"{code} has its own system; only the hub operator retires it", code="vdxp.out_of_scope",
                        element="AgencyCode")
    await retire_agency(engine, code, actor=f"vdxp:{system_id}")
    return code
