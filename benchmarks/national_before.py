"""The queries issue 15 replaced, as they were, for ``national_db.py``'s "before" pass (measured
on the schema as it was, ``0024_blobs``): the overview's counters counting the whole log and
grouping every documents row by sender, and the audit search's recipient filter as correlated
EXISTS evaluated per entry; appends without counting or indexing recipients; the follow-up report's copies read through
the documents join and one status_history probe per copy (before ``0038`` kept them on the copy).
``patched()`` puts them in place of the current ones."""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

from hub.audit import log, query
from hub.followup import query as followup
from hub.followup import sql as rule
from hub.store.tables import agencies, deliveries, documents, records, status_history
from hub.web import data


async def counters(engine, now=None) -> dict:
    now = now or data.now_utc()
    event_of = {e: k for k, events in data.EVENTS.items() for e in events}
    cols = [records.c.event, sa.func.count()]
    cols += [sa.func.sum(sa.case((records.c.at >= now - span, 1), else_=0)) for _, span in data.WINDOWS]
    out = {"total": dict.fromkeys(data.EVENTS, 0), **{w: dict.fromkeys(data.EVENTS, 0) for w, _ in data.WINDOWS}}
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(*cols).where(records.c.event.in_(list(event_of)))
                                   .group_by(records.c.event))).all()
    for event, total, *windows in rows:
        out["total"][event_of[event]] += total
        for (w, _), n in zip(data.WINDOWS, windows):
            out[w][event_of[event]] += int(n or 0)
    return out


async def authentication_by_agency(engine, **_page):
    # the page as it was: every sender grouped from documents, all of them listed
    by = documents.c.authenticated_by
    cols = [documents.c.sender, agencies.c.name, sa.func.count().label("n"),
            sa.func.sum(sa.case((documents.c.legacy_sha1.is_(True), 1), else_=0)).label("sha1"),
            sa.func.sum(sa.case((by == "connection", 1), else_=0)).label("connection")]
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(*cols).select_from(documents.outerjoin(agencies, agencies.c.code == documents.c.sender))
            .group_by(documents.c.sender, agencies.c.name).order_by(documents.c.sender))).mappings().all()
    out = [data.AuthRow(r["sender"], r["name"] or "", r["n"] - int(r["sha1"] or 0) - int(r["connection"] or 0),
                        int(r["sha1"] or 0), int(r["connection"] or 0)) for r in rows]
    total = data.AuthRow("", "", *(sum(getattr(a, k) for a in out) for k in ("signature", "sha1", "connection")))
    return data.AuthTable(len(out), total, out)


def to_recipient(recipient: str):
    """The recipient filter as it was (correlated EXISTS evaluated per entry); also the reference
    ``tests/audit/test_recipient_search.py`` compares the current join with."""
    d, dl = documents.alias("d"), deliveries.alias("dl")
    s, o, odl = documents.alias("s"), documents.alias("o"), deliveries.alias("odl")
    addressed = sa.or_(
        sa.and_(s.c.sender != o.c.sender, o.c.sender == recipient),
        sa.and_(s.c.sender == o.c.sender, sa.exists().where(odl.c.document == o.c.id, odl.c.recipient == recipient)),
    )
    candidates = sa.union_all(
        sa.select(d.c.document_id).join(dl, dl.c.document == d.c.id).where(dl.c.recipient == recipient,
                                                                            d.c.kind == "edoc"),
        sa.select(s.c.document_id).join(o, o.c.id == s.c.refers_to).where(s.c.kind == "status", addressed),
    )
    d2, dl2, s2, o2 = documents.alias("d2"), deliveries.alias("dl2"), documents.alias("s2"), documents.alias("o2")
    odl2 = deliveries.alias("odl2")
    edoc = sa.exists().where(dl2.c.recipient == recipient, dl2.c.document == d2.c.id, d2.c.kind == "edoc",
                             query._same_document(d2))
    addressed2 = sa.or_(
        sa.and_(s2.c.sender != o2.c.sender, o2.c.sender == recipient),
        sa.and_(s2.c.sender == o2.c.sender,
                sa.exists().where(odl2.c.document == o2.c.id, odl2.c.recipient == recipient)),
    )
    status = sa.exists().where(s2.c.kind == "status", s2.c.document_id == records.c.document_id,
                               s2.c.sender == records.c.sender, o2.c.id == s2.c.refers_to, addressed2)
    details = records.c.details
    return sa.and_(
        records.c.document_id.in_(candidates), sa.or_(edoc, status),
        sa.or_(records.c.event != "edoc.delivered", details["recipient"].as_string() == recipient),
        sa.or_(records.c.event != "status.recorded", records.c.sender == recipient,
               records.c.sender == details["original_sender"].as_string()),
    )


async def count_nothing(conn, rows) -> None:
    """Appends (the bundle logs its export) before the counters' table existed."""


async def index_nothing(conn, after, appended, document_ids=()) -> None:
    """Appends before the recipients' index (0040) existed."""


def no_index(recipient: str) -> None:
    """No count from the recipients' index (0040): the search counts the entries themselves."""


def report_copies(f, by: str = "recipient"):
    """The report's copies before 0038: each joined to its document, its first answer probed in
    status_history (fenced with OFFSET 0 so that it is read once per copy)."""
    answered = rule.first_answer(status_history, deliveries.c.id).label("answered_at")
    return (sa.select(deliveries.c.recipient, documents.c.doc_type, deliveries.c.status, documents.c.due_date,
                      documents.c.received_at, answered, documents.c.type_name)
            .select_from(deliveries.join(documents, documents.c.id == deliveries.c.document))
            .where(*followup._conditions(f)).offset(0).subquery("copies"))


@contextmanager
def patched():
    saved = (data.counters, data.authentication_by_agency, query._to_recipient, log.count_records,
             followup.copies, query.COUNT_CAP, query.recipient_index, log.index_recipients, log.FUSED)
    data.counters, data.authentication_by_agency, query._to_recipient = counters, authentication_by_agency, to_recipient
    query.COUNT_CAP = None  # exact totals, as they were
    query.recipient_index = no_index  # the recipients' index (0040) did not exist
    log.count_records = count_nothing
    log.index_recipients = index_nothing
    log.FUSED = False  # the append's one statement writes the counters and the index
    followup.copies = report_copies
    try:
        yield
    finally:
        (data.counters, data.authentication_by_agency, query._to_recipient, log.count_records,
         followup.copies, query.COUNT_CAP, query.recipient_index, log.index_recipients, log.FUSED) = saved
