"""Links between documents made by revocations, updates and replacements (read side).

A revocation, update or replacement is its own document whose ``refers_to`` is the earlier
document it acts on and whose ``business_type`` says how (1, 2, 3). The document views
(trail, dashboard timeline, gateway document) show both directions.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.constants import BUSINESS_DONE as DONE
from hub.edxml.business import BUSINESS_DOC_TYPES as ACTION
from hub.store.tables import documents


async def business_links(conn: AsyncConnection, doc: dict) -> dict:
    """``{"acts_on": {...} | None, "acted_on_by": [...]}`` for the documents row ``doc``."""
    later = (await conn.execute(
        sa.select(documents.c.document_id, documents.c.sender, documents.c.business_type, documents.c.received_at)
        .where(documents.c.refers_to == doc["id"], documents.c.kind == "edoc", documents.c.business_type.isnot(None))
        .order_by(documents.c.id))).mappings().all()
    acts_on = None
    if doc.get("business_type") and doc.get("refers_to"):
        row = (await conn.execute(sa.select(documents.c.document_id, documents.c.sender)
                                  .where(documents.c.id == doc["refers_to"]))).mappings().first()
        if row is not None:
            acts_on = {"document_id": row["document_id"], "sender": row["sender"],
                       "action": ACTION.get(doc["business_type"], str(doc["business_type"]))}
    return {
        "acts_on": acts_on,
        "acted_on_by": [{"document_id": r["document_id"], "sender": r["sender"],
                         "action": DONE.get(r["business_type"], str(r["business_type"])),
                         "at": r["received_at"]} for r in later],
    }
