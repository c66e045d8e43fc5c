"""Appending to the audit log: sequence numbers and leaf hashes, in the caller's transaction.

Entries are written in the same transaction as the state they describe. Sequence numbers
are gapless and assigned under a lock held until commit, so sequence order is commit order:
the sealer can fold entries 1..N into the Merkle tree knowing none below N will appear later.
On PostgreSQL the lock is a transaction-scoped advisory lock; on SQLite, the database's own
single writer lock (taken by a no-op write before reading the last sequence number).
The per-event counters (``hub.store.counts``) and the recipients each entry concerns
(``hub.audit.recipients``, what the search by recipient reads) are added in the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timezone
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.entry import leaf_and_details
from hub.audit.recipients import index_appended, pairs, read_with_head
from hub.store.counts import count_records, record_count_rows, upsert_conflict
from hub.store.engine import unnest_insert, unnest_params
from hub.store.tables import JSONText, audit_recipients, record_counts, records, settings_kv

APPEND_LOCK = 7310022  # pg_advisory_xact_lock key of the audit log's append order
index_recipients = index_appended  # (benchmarks.national_before: a no-op on the schema before 0040)
# On PostgreSQL the append holds its lock for three statements and the commit: the lock; the log's
# head with what the recipients' rule reads (hub.audit.recipients.read_with_head; a second read
# only when earlier entries name other DocumentIds); the entries, their counters and their
# recipients in one statement (_FUSED). Elsewhere, and with FUSED off (benchmarks.national_before
# and tests on schemas without the counters or the index), one statement per table.
FUSED = True
_FUSED = sa.text(
    f"WITH r AS ({unnest_insert(records, 'r_')}), "
    f"c AS ({unnest_insert(record_counts, 'c_', upsert_conflict(record_counts, ['event', 'hour']))}), "
    f"p AS ({unnest_insert(audit_recipients, 'p_', 'ON CONFLICT DO NOTHING')}) SELECT 1")


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})"))
    else:  # SQLite: a write statement takes the database's write lock until commit
        await conn.execute(settings_kv.update().where(settings_kv.c.key == "audit.lock").values(value="1"))


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


async def append_entries(conn: AsyncConnection, rows: list[dict[str, Any]],
                         document_ids: Iterable[str] = ()) -> list[int]:
    """Append ``rows`` (``hub.audit.records.record_row`` dicts) in order; returns their seqs.
    ``document_ids``: the DocumentIds of the documents rows this transaction wrote, whose
    earlier entries may now concern more recipients (``hub.audit.recipients``). A row may carry
    ``recipients``, whom it concerns by that module's rule when its writer knows them for
    certain (a document's deliveries written in this transaction; the one recipient of an
    ``edoc.delivered``): the index takes them without reading them back."""
    document_ids = list(document_ids)
    if not rows and not document_ids:
        return []
    await _lock(conn)
    # the last entry's seq and time, under the lock: an entry stamped before its transaction got
    # the lock may follow one stamped later by a transaction that got it first; its time is
    # raised to that entry's, so times never go backwards along the log (the trail's
    # "seconds since the previous step" stays >= 0)
    fused = FUSED and conn.dialect.name == "postgresql"
    if fused:  # with what the recipients' rule reads, in the same round trip
        got = (await conn.execute(read_with_head(conn, rows, document_ids))).all()
        head = next(((r.seq, r.at) for r in got if r.tag == "h"), None)
        rule_rows = [r for r in got if r.tag != "h"]
    else:
        head = (await conn.execute(sa.select(records.c.seq, records.c.at).order_by(records.c.seq.desc())
                                   .limit(1))).first()
    last, floor = (head[0], _utc(head[1])) if head is not None else (0, None)
    out, stored = [], []
    for i, row in enumerate(rows, start=1):
        seq = last + i
        at = _utc(row["at"])
        if floor is not None and at < floor:
            at = floor
        floor = at
        row = {**row, "seq": seq, "at": at}
        leaf, text = leaf_and_details(seq, at, row["event"], row.get("actor"), row.get("document_id"),
                                      row.get("sender"), row.get("sha256"), row.get("reason"), row.get("message"),
                                      row.get("details"))
        row["leaf_hash"] = leaf.hex()
        out.append(row)
        # stored: the details as the very text the leaf covers (hub audit verify hashes it as it
        # is); without ``recipients`` (whom an entry concerns is the index's, not the entry's)
        kept = {k: v for k, v in row.items() if k != "recipients"}
        kept["details"] = None if row.get("details") is None else JSONText(text)
        stored.append(kept)
    if fused:
        found = await pairs(conn, out, document_ids, rows=rule_rows)
        if not out and not found:
            return []
        await conn.execute(_FUSED, {
            **unnest_params(records, "r_", stored), **unnest_params(record_counts, "c_", record_count_rows(out)),
            **unnest_params(audit_recipients, "p_", [{"recipient": r, "seq": q} for r, q in sorted(found)])})
        return [r["seq"] for r in out]
    if out:
        await conn.execute(records.insert(), stored)
        await count_records(conn, out)  # the overview's counters, in the same transaction (hub.store.counts)
    # who each new entry concerns (read from its details as a mapping), and the earlier entries of
    # documents written now (under the lock); an entry without a DocumentId (a registry or user
    # change, an export) concerns nobody
    if document_ids or any(r.get("document_id") is not None for r in out):
        await index_recipients(conn, last, out, document_ids)
    return [r["seq"] for r in out]
