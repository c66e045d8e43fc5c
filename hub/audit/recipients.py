"""Who each audit entry concerns: the ``audit_recipients`` index, (recipient, seq) pairs.

The search by recipient (``hub.audit.query``) reads a recipient's entries newest first as one
range of this table's primary key, instead of joining its deliveries and statuses to the log on
every request. Which entries a recipient has is the rule of ``hub.audit.query``'s docstring; here
it is applied entry by entry (:func:`pairs`, in Python over the rows it reads: a few cheap
queries per append rather than one join the database would plan every time): an entry of a document (DocumentId, sender) concerns
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
and the index can be rebuilt from them and the documents rows (migration 0040's backfill).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.engine import dialect_insert, one_of
from hub.store.tables import audit_recipients, deliveries, documents, records


def _text(details: Any, key: str) -> str | None:
    """A text value of an entry's details (what ``details ->> key`` compares in the rule's SQL)."""
    value = details.get(key) if isinstance(details, dict) else None
    return value if isinstance(value, str) else None


def _read(conn, document_ids: list[str], earlier: list[str], after: int | None = None):
    """One query for what :func:`pairs` needs: the documents rows of ``document_ids``, each with
    its deliveries (an edoc's) or its original and the original's deliveries (a status
    package's), tagged "d"; and the entries filed under ``earlier`` up to seq ``after`` (by
    ix_records_document), tagged "e". (Those past ``after`` are the ones just appended, which
    the caller has: read back, their details would be decoded from JSON for nothing.)"""
    parts = []
    if document_ids:
        s, o = documents.alias("ar_s"), documents.alias("ar_o")
        own, orig = deliveries.alias("ar_dl"), deliveries.alias("ar_odl")
        parts.append(
            sa.select(sa.literal("d").label("tag"), s.c.id.label("seq"), s.c.kind.label("event"), s.c.document_id,
                      s.c.sender, sa.cast(sa.null(), sa.JSON).label("details"), o.c.id.label("o_id"),
                      o.c.sender.label("o_sender"), sa.func.coalesce(own.c.recipient, orig.c.recipient).label("recipient"))
            .select_from(s.outerjoin(own, sa.and_(own.c.document == s.c.id, s.c.kind == "edoc"))
                         .outerjoin(o, sa.and_(o.c.id == s.c.refers_to, s.c.kind == "status"))
                         .outerjoin(orig, orig.c.document == o.c.id))
            .where(one_of(conn, s.c.document_id, document_ids)))
    if earlier:
        entries = sa.select(sa.literal("e").label("tag"), records.c.seq, records.c.event, records.c.document_id,
                            records.c.sender, records.c.details, sa.cast(sa.null(), sa.BigInteger).label("o_id"),
                            sa.cast(sa.null(), sa.String).label("o_sender"),
                            sa.cast(sa.null(), sa.String).label("recipient")).where(
            one_of(conn, records.c.document_id, earlier))
        parts.append(entries if after is None else entries.where(records.c.seq <= after))
    return parts[0] if len(parts) == 1 else sa.union_all(*parts)


def _plan(entries: list, earlier: Iterable[str]) -> tuple[list, list[str], list[str]]:
    """(the entries the rule must read for: those without ``recipients``, their DocumentIds, the
    DocumentIds whose earlier entries it reads)."""
    rest = [e for e in entries if e.get("recipients") is None]
    return (rest, sorted({e["document_id"] for e in rest if e.get("document_id") is not None}),
            sorted({i for i in earlier if i is not None}))


def read_with_head(conn, entries: list, earlier: Iterable[str]):
    """One query for the append: the log's last entry (tagged "h": its seq, and its time as ``at``)
    and, when the rule needs any, what :func:`pairs` reads for ``entries`` and the earlier entries
    of ``earlier`` (every entry in the log is earlier: run it before the append inserts any); the
    rows tagged "d" and "e" go to :func:`pairs` as its ``rows``."""
    last = sa.select(records.c.seq, records.c.at).order_by(records.c.seq.desc()).limit(1).subquery("head")
    head = sa.select(sa.literal("h").label("tag"), last.c.seq, sa.cast(sa.null(), sa.String).label("event"),
                     sa.cast(sa.null(), sa.String).label("document_id"), sa.cast(sa.null(), sa.String).label("sender"),
                     sa.cast(sa.null(), sa.JSON).label("details"), sa.cast(sa.null(), sa.BigInteger).label("o_id"),
                     sa.cast(sa.null(), sa.String).label("o_sender"), sa.cast(sa.null(), sa.String).label("recipient"),
                     last.c.at)
    _, ids, earlier = _plan(entries, earlier)
    if not ids and not earlier:
        return head
    rule = _read(conn, ids, earlier)
    parts = list(rule.selects) if isinstance(rule, sa.CompoundSelect) else [rule]
    at = sa.cast(sa.null(), records.c.at.type).label("at")  # the rule's parts first: they type the columns
    return sa.union_all(*(p.add_columns(at) for p in parts), head)


async def pairs(conn: AsyncConnection, entries: list, earlier: Iterable[str] = (),
                after: int | None = None, rows: list | None = None) -> set[tuple[str, int]]:
    """(recipient, seq) for each of ``entries`` (mappings with seq, event, document_id, sender and
    details), and of the entries up to seq ``after`` (every entry in the log, without it) filed
    under the DocumentIds ``earlier``, and each recipient it is addressed to; one query reads the documents rows they name (by
    DocumentId, ix_documents_document_id: a few senders use one at most) and the earlier entries
    (a second reads the documents rows those name, when there are any: a refused attempt).
    An entry whose writer already knows whom it concerns by the rule carries them as
    ``recipients`` and costs no read (see :func:`append_entries`'s callers). ``rows``: what
    :func:`read_with_head` read for them before they were inserted (its "d" and "e" rows), instead
    of reading here."""
    found = {(r, e["seq"]) for e in entries if e.get("recipients") is not None and e.get("document_id") is not None
             for r in e["recipients"]}  # (an entry without a DocumentId concerns nobody)
    entries, ids, earlier = _plan(entries, earlier)
    if not ids and not earlier:
        return found
    if rows is None:
        rows = (await conn.execute(_read(conn, ids, earlier, after))).all()
    else:
        rows = list(rows)
    before = [{"seq": r.seq, "event": r.event, "document_id": r.document_id, "sender": r.sender,
               "details": r.details} for r in rows if r.tag == "e"]  # (all earlier than ``entries``)
    entries += before
    more = sorted({e["document_id"] for e in before if e["document_id"] is not None} - set(ids))
    if more:
        rows += (await conn.execute(_read(conn, more, []))).all()
    keys = set()
    for e in entries:
        if e["document_id"] is None:
            continue
        about = _text(e["details"], "original_sender") if e["event"] == "status.recorded" else e["sender"]
        keys |= {(e["document_id"], k) for k in (about, e["sender"]) if k is not None}
    docs = {}
    to: dict[int, set[str]] = {}
    for r in rows:
        if r.tag != "d" or (r.document_id, r.sender) not in keys:
            continue
        docs[(r.document_id, r.sender)] = r
        if r.recipient is not None:
            to.setdefault(r.seq if r.event == "edoc" else r.o_id, set()).add(r.recipient)
    out = set()
    for e in entries:
        seq, event, doc_id, sender, details = e["seq"], e["event"], e["document_id"], e["sender"], e["details"]
        if doc_id is None:
            continue
        rcpt, original = _text(details, "recipient"), _text(details, "original_sender")

        def addressed(recipient: str) -> bool:
            # of a document's deliveries, the one to this recipient; of the statuses filed under
            # it, the recipient's own and a recall (its original sender's)
            return ((event != "edoc.delivered" or rcpt == recipient)
                    and (event != "status.recorded" or sender == recipient
                         or (sender is not None and sender == original)))

        # a document's entries are filed under its DocumentId by its sender, a status.recorded by
        # the status's sender naming the original sender
        d = docs.get((doc_id, original if event == "status.recorded" else sender))
        if d is not None and d.event == "edoc":  # (a documents row: id as seq, kind as event)
            out |= {(r, seq) for r in to.get(d.seq, ()) if addressed(r)}
        # the entries of a status package: to the original sender when another agency sent it,
        # to the original's recipients when its sender did (a recall)
        st = docs.get((doc_id, sender))
        if st is not None and st.event == "status" and st.o_id is not None:
            targets = [st.o_sender] if sender != st.o_sender else to.get(st.o_id, ())
            out |= {(r, seq) for r in targets if addressed(r)}
    return out | found


async def index_appended(conn: AsyncConnection, after: int, appended: list[dict[str, Any]],
                         document_ids: Iterable[str] = ()) -> None:
    """Add the pairs of the entries ``appended`` (seqs after ``after``) and of the earlier entries
    of ``document_ids`` (documents rows written in this transaction). Called by the append
    (``hub.audit.log.append_entries``) under its lock, in its transaction."""
    found = await pairs(conn, appended, document_ids, after)
    if found:
        await conn.execute(dialect_insert(conn, audit_recipients).on_conflict_do_nothing(),
                           [{"recipient": r, "seq": q} for r, q in sorted(found)])
