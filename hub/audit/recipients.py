"""Who each audit entry concerns: the ``audit_recipients`` index, (recipient, seq) pairs.

The search by recipient (``hub.audit.query``) reads a recipient's entries newest first as one
range of this table's primary key, instead of joining its deliveries and statuses to the log on
every request. Which entries a recipient has is the rule of ``hub.audit.query``'s docstring; here
it is applied entry by entry (:func:`pairs`): an entry of a document (DocumentId, sender) concerns
each recipient of its delivery rows (an ``edoc.delivered``, only the one it was delivered to);
a ``status.recorded`` (filed under the original DocumentId, naming the original sender) concerns
its own sender when that is a recipient of the original, or every recipient when the original
sender wrote it (a recall); an entry of a status package concerns the original sender when
another agency sent it, or the original's recipients when its sender sent it (a recall).

The rule reads only ``documents`` and ``deliveries`` rows, which are never deleted and whose
columns it reads never change: an entry's set of recipients only grows, when a documents row
(and its deliveries) is written after the entry (a package refused, then sent again and
accepted: the refused attempt's entries carry the same DocumentId and sender). Statuses written
later about an older document are entries of their own, appended after the documents rows they
name. So the index is kept by applying the rule, in the transaction that appends entries and
under the log's append lock (``hub.audit.log``), to

* the entries appended (their documents and deliveries already written, in this transaction
  or an earlier one), and
* the earlier entries of the DocumentIds whose documents rows this transaction wrote,

adding the pairs that are missing. A transaction that writes documents rows without appending
(``HUB_AUDIT=off``, measuring only) leaves the index as the log: without them.

Whatever wrote first, the other sees it: a documents row written by a transaction that appends
later is indexed with the entries committed before that transaction took the lock (its own
statements read after it), and one committed earlier is seen by the entries appended after.
The index is not part of the entries' hashes: the log's tamper-evidence is the entries alone,
and the index can be rebuilt from them (:func:`rebuild`, what migration 0040 does).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.engine import dialect_insert
from hub.store.tables import audit_recipients, deliveries, documents, records


def pairs(entries) -> sa.CompoundSelect:
    """(recipient, seq) for each entry of ``entries`` (``records`` or a subquery with its columns
    seq, event, document_id, sender and details) and each recipient it is addressed to, without
    repeats: three joins from the entries to the documents rows that make them addressed."""
    r = entries
    details = r.c.details
    original = details["original_sender"].as_string()

    def own(recipient):  # of a document's deliveries, the one to this recipient
        return sa.or_(r.c.event != "edoc.delivered", details["recipient"].as_string() == recipient)

    def statuses(recipient):  # of the statuses filed under a document, the recipient's own and a recall
        return sa.or_(r.c.event != "status.recorded", r.c.sender == recipient, r.c.sender == original)

    d, dl = documents.alias("ar_d"), deliveries.alias("ar_dl")
    s, o, odl = documents.alias("ar_s"), documents.alias("ar_o"), deliveries.alias("ar_odl")
    # a document's entries are filed under its DocumentId by its sender, a status.recorded by the
    # status's sender naming the original sender
    about = sa.case((r.c.event == "status.recorded", original), else_=r.c.sender)
    edoc = (sa.select(dl.c.recipient, r.c.seq).select_from(r)
            .join(d, sa.and_(d.c.document_id == r.c.document_id, d.c.sender == about, d.c.kind == "edoc"))
            .join(dl, dl.c.document == d.c.id)
            .where(own(dl.c.recipient), statuses(dl.c.recipient)))
    # the entries of a status package: (DocumentId, sender) of its documents row
    status = (r.join(s, sa.and_(s.c.document_id == r.c.document_id, s.c.sender == r.c.sender, s.c.kind == "status"))
              .join(o, o.c.id == s.c.refers_to))
    to_sender = (sa.select(o.c.sender, r.c.seq).select_from(status)
                 .where(s.c.sender != o.c.sender, own(o.c.sender), statuses(o.c.sender)))
    recall = (sa.select(odl.c.recipient, r.c.seq).select_from(status.join(odl, odl.c.document == o.c.id))
              .where(s.c.sender == o.c.sender, own(odl.c.recipient), statuses(odl.c.recipient)))
    # an entry is in two of them only in a corner (a status.recorded filed under a DocumentId
    # that is also its status package's own)
    return sa.union(edoc, to_sender, recall)


def _entries(where) -> sa.Subquery:
    return (sa.select(records.c.seq, records.c.event, records.c.document_id, records.c.sender, records.c.details)
            .where(where).subquery("ar_r"))


async def _add(conn: AsyncConnection, where) -> None:
    found = pairs(_entries(where)).subquery("ar_new")
    insert = dialect_insert(conn, audit_recipients).from_select(
        ["recipient", "seq"], sa.select(found.c[0], found.c[1]).where(sa.true()))  # (SQLite: WHERE before ON CONFLICT)
    await conn.execute(insert.on_conflict_do_nothing())


async def index_appended(conn: AsyncConnection, after: int, document_ids: Iterable[str] = ()) -> None:
    """Add the pairs of the entries after seq ``after`` (those just appended) and of the earlier
    entries of ``document_ids`` (documents rows written in this transaction). Called by the
    append (``hub.audit.log.append_entries``) under its lock, in its transaction."""
    where = records.c.seq > after
    ids = sorted({i for i in document_ids if i is not None})
    if ids:
        where = sa.or_(where, records.c.document_id.in_(ids))
    await _add(conn, where)


async def rebuild(conn: AsyncConnection) -> None:
    """Every entry's pairs (what migration 0040 writes, and a check of the index can compare)."""
    await _add(conn, sa.true())
