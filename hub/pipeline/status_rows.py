"""The rows a status decision reads and the history it writes (the recorder's I/O for
:mod:`hub.pipeline.statuses`)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.followup.rules import ANSWERS
from hub.store.tables import deliveries, status_history


async def copies(conn: AsyncConnection, doc_pk: int) -> tuple[list, dict[int, list[str]]]:
    """A document's deliveries and, per delivery, its recorded status codes (oldest first)."""
    dels = (await conn.execute(sa.select(deliveries).where(deliveries.c.document == doc_pk)
                               .order_by(deliveries.c.id))).mappings().all()
    history: dict[int, list[str]] = {}
    for d_id, code in (await conn.execute(
            sa.select(status_history.c.delivery, status_history.c.status_code)
            .where(status_history.c.delivery.in_([d["id"] for d in dels])).order_by(status_history.c.id))).all():
        history.setdefault(d_id, []).append(code)
    return dels, history


async def write_history(conn: AsyncConnection, rows: Sequence[dict]) -> None:
    """Insert status_history rows (``delivery``, ``status_code``, ``at``, …) and, for those that
    answer (``rules.ANSWERS``), keep the copy's first answer on its row (``deliveries.answered_at``,
    the earliest answer's time: a later answer leaves it, an earlier-stamped one committed later
    lowers it). In the caller's transaction, so the report never sees one without the other."""
    if not rows:
        return
    await conn.execute(status_history.insert(), list(rows))
    first: dict = {}
    for r in rows:
        if r["status_code"] in ANSWERS and (r["delivery"] not in first or r["at"] < first[r["delivery"]]):
            first[r["delivery"]] = r["at"]
    for delivery, at in first.items():
        await conn.execute(deliveries.update()
                           .where(deliveries.c.id == delivery,
                                  sa.or_(deliveries.c.answered_at.is_(None), deliveries.c.answered_at > at))
                           .values(answered_at=at))
