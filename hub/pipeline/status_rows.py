"""The rows a status decision reads (the recorder's I/O for :mod:`hub.pipeline.statuses`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

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
