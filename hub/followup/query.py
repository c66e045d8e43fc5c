"""Reading follow-up items from the store: deliveries of documents with their due date, current
status, the time they reached it and their first answer (``status_history``); the per-agency
report aggregated in the database (``hub.followup.sql``: the rules as SQL). Same SQL on
PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.followup import sql as rule
from hub.followup.rules import Group, Item, ReportRow, overdue_groups, vn_day_start
from hub.registry.fold import fold
from hub.store.tables import agencies, deliveries, documents, status_history

MAX_ITEMS = 20_000  # one page of follow-up work is never larger; the rest is counted, not shown


@dataclass(frozen=True)
class Filters:
    """Who and what to follow up. Text filters match a code exactly or a name (accent-insensitive)."""

    agency: str = ""  # the recipient
    sender: str = ""
    received_from: date | None = None  # Vietnam dates, inclusive
    received_until: date | None = None  # inclusive
    doc_type: str = ""
    priority: int | None = None


def _who(column, text: str):
    text = text.strip()
    if not text:
        return None
    like = "%" + fold(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # one IN over (the code typed, the codes of the names that match): a semi-join on the few
    # agencies that match, so the copies are read through an index on the column
    named = sa.union(sa.select(sa.literal(text, sa.String).label("code")),
                     sa.select(agencies.c.code).where(agencies.c.name_folded.like(like, escape="\\")))
    return column.in_(sa.select(named.subquery().c.code))


def _received_and_type(table, f: Filters) -> list:
    """The period received (Vietnam dates, inclusive) and the document type on ``table``'s columns:
    the documents row's, or a copy's own (``deliveries`` keeps its document's, 0038)."""
    where = []
    if f.received_from:
        where.append(table.c.received_at >= vn_day_start(f.received_from))
    if f.received_until:
        where.append(table.c.received_at < vn_day_start(date.fromordinal(f.received_until.toordinal() + 1)))
    if f.doc_type:
        where.append(table.c.doc_type == f.doc_type)
    return where


def _conditions(f: Filters) -> list:
    where = [documents.c.kind == sa.literal("edoc", literal_execute=True)]  # a literal: partial indexes
    for cond in (_who(deliveries.c.recipient, f.agency), _who(documents.c.sender, f.sender)):
        if cond is not None:
            where.append(cond)
    where += _received_and_type(documents, f)
    if f.priority is not None:
        where.append(documents.c.priority == f.priority)
    return where


async def items(engine: AsyncEngine, f: Filters, *, open_due_by: date | None = None,
                limit: int = MAX_ITEMS) -> list[Item]:
    """Every recipient copy matching ``f``; with ``open_due_by``, only open ones due on or before it."""
    # The first answer of each copy selected, read through the status_history.delivery index:
    # a few rows per copy, rather than grouping the whole history (millions of rows at national
    # size) for every page that lists a few hundred copies.
    answered = rule.first_answer(status_history, deliveries.c.id)
    rcpt = agencies.alias("rcpt")
    snd = agencies.alias("snd")
    q = (sa.select(deliveries.c.id.label("delivery_id"), deliveries.c.recipient, deliveries.c.status,
                   deliveries.c.updated_at, documents.c.document_id,
                   documents.c.sender, documents.c.received_at, documents.c.due_date, documents.c.subject,
                   documents.c.code, documents.c.doc_type, documents.c.type_name, documents.c.priority,
                   answered.label("answered_at"), rcpt.c.name.label("recipient_name"),
                   snd.c.name.label("sender_name"))
         .select_from(deliveries.join(documents, documents.c.id == deliveries.c.document)
                      .outerjoin(rcpt, rcpt.c.code == deliveries.c.recipient)
                      .outerjoin(snd, snd.c.code == documents.c.sender))
         .where(*_conditions(f)))
    if open_due_by is not None:
        q = q.where(documents.c.due_date.is_not(None), documents.c.due_date <= open_due_by,
                    rule.is_open(deliveries.c.status))
    q = q.order_by(documents.c.due_date, deliveries.c.id).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).mappings().all()
    return [item_of(r) for r in rows]


def item_of(r) -> Item:
    return Item(recipient=r["recipient"], document_id=r["document_id"], sender=r["sender"],
                received_at=r["received_at"], due_date=_date(r["due_date"]), status=r["status"],
                status_at=r["updated_at"], answered_at=r.get("answered_at"), subject=r["subject"] or "",
                code=r["code"] or "", doc_type=r["doc_type"] or "", type_name=r["type_name"] or "",
                priority=r["priority"] or 0, recipient_name=r["recipient_name"] or "",
                sender_name=r["sender_name"] or "", key=r.get("delivery_id") or 0)


def _date(value) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


BY = ("recipient", "type")  # what a report row is: a recipient agency, or a document type


def _copy_conditions(f: Filters) -> list:
    """``_conditions`` over the copy's own columns (0038); the sender and priority, which only the
    document holds, through the documents join :func:`copies` then adds."""
    where = [cond for cond in (_who(deliveries.c.recipient, f.agency),) if cond is not None]
    return where + _received_and_type(deliveries, f)


def copies(f: Filters, by: str = "recipient"):
    """One row per recipient copy matching ``f`` with the rules' terms, read from the copy's own
    row (``0038``: its document's time, due date and type, its first answer): the period's copies
    by one range of ``ix_deliveries_received_at``, with no join and no status_history probe. The
    documents row is joined only for what the copy does not keep (a sender or priority filter, the
    type's name). Every delivery is a copy of an edoc (status packages have none)."""
    cols = [deliveries.c.recipient, deliveries.c.doc_type, deliveries.c.status, deliveries.c.due_date,
            deliveries.c.received_at, deliveries.c.answered_at]
    where, source = _copy_conditions(f), deliveries
    if by == "type" or f.sender.strip() or f.priority is not None:
        source = deliveries.join(documents, documents.c.id == deliveries.c.document)
        cols.append(documents.c.type_name)
        sender = _who(documents.c.sender, f.sender)
        where += [c for c in (sender,) if c is not None]
        if f.priority is not None:
            where.append(documents.c.priority == f.priority)
        # the same period on the documents' side (the copy's received_at is its document's): the
        # join then reads the period's edocs by ix_documents_edoc_received, not every documents row
        where += [c for c in _conditions(Filters(received_from=f.received_from, received_until=f.received_until))]
    return sa.select(*cols).select_from(source).where(*where).subquery("copies")


def _terms(c, today: date, by: str) -> dict:
    """The rules' outcomes of one copy, as SQL over the columns of ``copies``."""
    key = c.recipient if by == "recipient" else c.doc_type
    answered = sa.and_(c.answered_at.is_not(None), rule.not_withdrawn(c.status))
    still_open = sa.and_(c.answered_at.is_(None), rule.not_withdrawn(c.status))
    return {"key": sa.func.coalesce(key, ""), "answered": answered, "still_open": still_open,
            "on_time": sa.and_(answered, rule.answered_on_time(c.answered_at, c.due_date)),
            "open_overdue": sa.and_(still_open, c.due_date.is_not(None), c.due_date < today),
            "withdrawn": rule.is_withdrawn(c.status),
            "duration": rule.seconds_between(c.answered_at, c.received_at),  # of an answered copy
            "seconds": sa.case((answered, rule.seconds_between(c.answered_at, c.received_at)))}


def report_query(f: Filters, today: date, by: str = "recipient", dialect: str = "postgresql"):
    """``rules.report`` in one GROUP BY: received = on time + late + still open + withdrawn, and
    the median handling time (PostgreSQL's ``percentile_cont`` over each group's array of answers;
    on SQLite, which has none, from the middle rows of each group's answered copies numbered by a
    window function). A recipient's name is joined to its row once counted; a type's is the
    greatest of its documents'."""
    c = copies(f, by).c
    t = _terms(c, today, by)
    pg = dialect == "postgresql"
    # PostgreSQL: each group's answered durations gathered unsorted (array_agg), the median taken
    # from its own array once grouped. percentile_cont in the GROUP BY would make PostgreSQL sort
    # every copy of the period by the key first (an ordered-set aggregate rules out hashing; past
    # work_mem, on disk) and then sort each group again: 200,000 copies for a week at full size.
    # Hashed, the copies are read once in the index's order and only each group's answers sorted.
    durations = sa.func.array_agg(t["duration"]).filter(t["answered"]) if pg else sa.null()
    name = sa.func.max(c.type_name) if by == "type" else sa.null()
    agg = (sa.select(t["key"].label("key"), name.label("name"), sa.func.count().label("received"),
                     *(sa.func.count().filter(t[k]).label(k) for k in ("on_time", "answered", "still_open",
                                                                       "open_overdue", "withdrawn")),
                     durations.label("durations"))
           .group_by(t["key"])).subquery("agg")
    cols = [col for col in agg.c if col.name not in ("name", "durations")]
    if pg:
        each = sa.func.unnest(agg.c.durations).column_valued("s")
        median_col = (sa.select(sa.func.percentile_cont(0.5).within_group(each)).scalar_subquery())
        source = agg
    else:
        m = _terms(copies(f, by).c, today, by)
        ranked = (sa.select(m["key"].label("key"), m["seconds"].label("s"),
                            sa.func.row_number().over(partition_by=m["key"], order_by=m["seconds"]).label("rn"),
                            sa.func.count().over(partition_by=m["key"]).label("n"))
                  .where(m["answered"]).subquery("ranked"))
        middle = (sa.select(ranked.c.key, sa.func.avg(ranked.c.s).label("s"))
                  .where((ranked.c.rn * 2).in_([ranked.c.n, ranked.c.n + 1, ranked.c.n + 2]))
                  .group_by(ranked.c.key).subquery("middle"))
        median_col, source = middle.c.s, agg.outerjoin(middle, middle.c.key == agg.c.key)
    if by == "type":
        name_col = agg.c.name
    else:
        rcpt = agencies.alias("rcpt")
        name_col, source = rcpt.c.name, source.outerjoin(rcpt, rcpt.c.code == agg.c.key)
    return (sa.select(*cols, name_col.label("name"), median_col.label("median_seconds"))
            .select_from(source).order_by(agg.c.key))


async def report_batches(engine: AsyncEngine, first: date, last: date, today: date, f: Filters = Filters(),
                         by: str = "recipient", batch: int = 500) -> AsyncIterator[list[ReportRow]]:
    """The per-agency (or per-type) report for documents received from ``first`` to ``last``
    (Vietnam dates, inclusive), counted by the database and read ``batch`` rows at a time."""
    scoped = Filters(f.agency, f.sender, first, last, f.doc_type, f.priority)
    async with engine.connect() as conn:
        result = await conn.stream(report_query(scoped, today, by, engine.dialect.name))
        async for rows in result.mappings().partitions(batch):
            yield [ReportRow(r["key"], r["name"] or "", r["received"], r["on_time"], r["answered"] - r["on_time"],
                             r["still_open"], r["open_overdue"], r["withdrawn"],
                             None if r["median_seconds"] is None else float(r["median_seconds"])) for r in rows]


async def period_report(engine: AsyncEngine, first: date, last: date, today: date,
                        f: Filters = Filters(), by: str = "recipient") -> list[ReportRow]:
    """All the report's rows (:func:`report_batches`)."""
    return [r async for rows in report_batches(engine, first, last, today, f, by) for r in rows]


async def overdue(engine: AsyncEngine, f: Filters, today: date, within_days: int) -> list[Group]:
    """Open copies past their due date or due within ``within_days`` days, grouped by recipient."""
    cutoff = date.fromordinal(today.toordinal() + within_days)
    return overdue_groups(await items(engine, f, open_due_by=cutoff), today, within_days)


async def overdue_counts(engine: AsyncEngine, today: date) -> dict[str, int]:
    """{recipient: open copies past their due date} (for the Prometheus gauge)."""
    n = sa.func.count().label("n")
    async with engine.connect() as conn:
        rows = (await conn.execute(
            # the copies' own due dates (only edocs have copies): ix_deliveries_open_due alone
            sa.select(deliveries.c.recipient, n)
            .where(deliveries.c.due_date < sa.literal(today, sa.Date, literal_execute=True),
                   rule.is_open(deliveries.c.status))
            .group_by(deliveries.c.recipient))).all()
    return {code: count for code, count in rows}
