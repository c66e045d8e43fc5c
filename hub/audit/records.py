"""Decision records (who, what, when, package SHA-256, outcome, reason): build and append.

``record_row`` builds one row of the ``records`` table; ``append`` / ``append_rows`` add rows
to the audit log through :func:`hub.audit.log.append_entries`, in the caller's transaction
(the audit package owns appends; the store below it only defines the tables).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.log import append_entries


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what records are stamped with)."""
    return datetime.now(timezone.utc)


def record_row(event: str, *, actor: str | None = None, document_id: str | None = None, sender: str | None = None,
               sha256: str | None = None, reason: str | None = None, message: str | None = None,
               details: dict[str, Any] | None = None, at: datetime | None = None,
               recipients: Iterable[str] | None = None) -> dict[str, Any]:
    """One ``records`` row as ``append_rows`` takes it (``at`` defaults to now). ``recipients``:
    whom the entry concerns (``hub.audit.recipients``' rule), when the writer knows them for
    certain; not part of the entry, only of the index the search by recipient reads."""
    row = {
        "at": at or utcnow(), "event": event, "actor": actor, "document_id": document_id, "sender": sender,
        "sha256": sha256, "reason": reason, "message": message, "details": details,
    }
    if recipients is not None:
        row["recipients"] = tuple(sorted(set(recipients)))
    return row


async def append(conn: AsyncConnection, event: str, **kw: Any) -> None:
    """Append one audit entry inside the caller's transaction."""
    await append_rows(conn, [record_row(event, **kw)])


async def append_rows(conn: AsyncConnection, rows: list[dict[str, Any]], document_ids: Iterable[str] = ()) -> None:
    """Append audit entries (``record_row`` dicts) inside the caller's transaction; ``document_ids``:
    the DocumentIds of the documents rows it wrote (``hub.audit.log.append_entries``)."""
    await append_entries(conn, rows, document_ids)
