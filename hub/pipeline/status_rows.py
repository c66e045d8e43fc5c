"""The rows a status decision reads (the worker's I/O for :mod:`hub.pipeline.statuses`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.edxml.model import StatusPackage
from hub.errors import HubError
from hub.pipeline.lifecycle import REVOCATION, UPDATE
from hub.pipeline.statuses import StatusDecision, decide_status, is_answer
from hub.registry.model import Registry
from hub.store.tables import deliveries, documents, status_history


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


async def answered_business(conn: AsyncConnection, st: StatusPackage, orig, registry: Registry
                            ) -> tuple[dict, StatusDecision] | None:
    """A 15/16 naming ``orig`` that nothing there waits for answers the latest revocation or
    update acting on ``orig`` that accepts it: (that document's row, the decision); else None."""
    if not is_answer(st.status_code):
        return None
    later = (await conn.execute(sa.select(documents).where(
        documents.c.refers_to == orig["id"], documents.c.kind == "edoc",
        documents.c.business_type.in_([REVOCATION, UPDATE])).order_by(documents.c.id.desc()))).mappings().all()
    for doc in later:
        try:
            return doc, decide_status(st, doc["sender"], doc["business_type"], *await copies(conn, doc["id"]), registry)
        except HubError:
            continue
    return None
