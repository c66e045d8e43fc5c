"""Per agency, how its accepted packages were authenticated over a period.

``signature`` (XML-DSig or a real SDK signature, SHA-256 or stronger), ``signature-sha1``
(accepted with SHA-1, flagged) or ``connection`` (unsigned or the SDK's skeleton, accepted only
because it came over the sender's own authenticated connection). Operators use it to drive
agencies on the ``sdk`` profile to real signatures. Packages recorded before the hub recorded
this (``authenticated_by`` NULL) count as ``signature``: the only way in then.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit.query import iso
from hub.store.tables import agencies, documents

METHODS = ("signature", "signature-sha1", "connection")


async def auth_report(engine: AsyncEngine, *, since: datetime | None = None, until: datetime | None = None,
                      agency: str | None = None) -> dict:
    """``{"since", "until", "agencies": [{code, name, profile, signature, signature-sha1, connection, total}],
    "totals": {...}}``, agencies by code; only agencies that sent something in the period."""
    method = sa.func.coalesce(documents.c.authenticated_by, "signature").label("method")
    q = sa.select(documents.c.sender, method, sa.func.count().label("n")).group_by(documents.c.sender, method)
    if since is not None:
        q = q.where(documents.c.received_at >= since)
    if until is not None:
        q = q.where(documents.c.received_at < until)
    if agency:
        q = q.where(documents.c.sender == agency)
    async with engine.connect() as conn:
        counts = (await conn.execute(q)).all()
        codes = sorted({c for c, _, _ in counts})
        info = {r.code: r for r in (await conn.execute(
            sa.select(agencies.c.code, agencies.c.name, agencies.c.profile).where(agencies.c.code.in_(codes))
        )).all()} if codes else {}
    rows: dict[str, dict] = {}
    for code, m, n in counts:
        a = info.get(code)
        row = rows.setdefault(code, {"code": code, "name": a.name if a else "", "profile": a.profile if a else None,
                                     **dict.fromkeys(METHODS, 0), "total": 0})
        row[m] = row.get(m, 0) + n
        row["total"] += n
    out = [rows[c] for c in codes]
    totals = {m: sum(r[m] for r in out) for m in (*METHODS, "total")}
    return {"since": iso(since), "until": iso(until), "agencies": out, "totals": totals}
