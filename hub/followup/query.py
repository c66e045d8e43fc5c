"""Reading follow-up items from the store: deliveries of documents with their due date, current
status, the time they reached it and their first answer (``status_history``). Same SQL on
PostgreSQL and SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.followup.rules import (
    ANSWERS,
    CLOSED,
    Group,
    Item,
    ReportRow,
    overdue_groups,
    report,
    vn_day_start,
)
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
    named = sa.select(agencies.c.code).where(agencies.c.name_folded.like(like, escape="\\"))
    return sa.or_(column == text, column.in_(named))


def _conditions(f: Filters) -> list:
    where = [documents.c.kind == "edoc"]
    for cond in (_who(deliveries.c.recipient, f.agency), _who(documents.c.sender, f.sender)):
        if cond is not None:
            where.append(cond)
    if f.received_from:
        where.append(documents.c.received_at >= vn_day_start(f.received_from))
    if f.received_until:
        where.append(documents.c.received_at < vn_day_start(date.fromordinal(f.received_until.toordinal() + 1)))
    if f.doc_type:
        where.append(documents.c.doc_type == f.doc_type)
    if f.priority is not None:
        where.append(documents.c.priority == f.priority)
    return where


async def items(engine: AsyncEngine, f: Filters, *, open_due_by: date | None = None,
                limit: int = MAX_ITEMS) -> list[Item]:
    """Every recipient copy matching ``f``; with ``open_due_by``, only open ones due on or before it."""
    # The first answer of each copy selected, read through the status_history.delivery index:
    # a few rows per copy, rather than grouping the whole history (millions of rows at national
    # size) for every page that lists a few hundred copies.
    answered = (sa.select(sa.func.min(status_history.c.at))
                .where(status_history.c.delivery == deliveries.c.id, status_history.c.status_code.in_(ANSWERS))
                .scalar_subquery())
    rcpt = agencies.alias("rcpt")
    snd = agencies.alias("snd")
    q = (sa.select(deliveries.c.recipient, deliveries.c.status, deliveries.c.updated_at, documents.c.document_id,
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
                    sa.or_(deliveries.c.status.is_(None), deliveries.c.status.not_in(CLOSED)))
    q = q.order_by(documents.c.due_date, deliveries.c.id).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).mappings().all()
    return [Item(recipient=r["recipient"], document_id=r["document_id"], sender=r["sender"],
                 received_at=r["received_at"], due_date=_date(r["due_date"]), status=r["status"],
                 status_at=r["updated_at"], answered_at=r["answered_at"], subject=r["subject"] or "",
                 code=r["code"] or "", doc_type=r["doc_type"] or "", type_name=r["type_name"] or "",
                 priority=r["priority"] or 0, recipient_name=r["recipient_name"] or "",
                 sender_name=r["sender_name"] or "") for r in rows]


def _date(value) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


async def period_report(engine: AsyncEngine, first: date, last: date, today: date,
                        f: Filters = Filters()) -> list[ReportRow]:
    """The per-agency report for documents received from ``first`` to ``last`` (Vietnam dates, inclusive)."""
    scoped = Filters(f.agency, f.sender, first, last, f.doc_type, f.priority)
    return report(await items(engine, scoped, limit=10**9), today)


async def overdue(engine: AsyncEngine, f: Filters, today: date, within_days: int) -> list[Group]:
    """Open copies past their due date or due within ``within_days`` days, grouped by recipient."""
    cutoff = date.fromordinal(today.toordinal() + within_days)
    return overdue_groups(await items(engine, f, open_due_by=cutoff), today, within_days)


async def overdue_counts(engine: AsyncEngine, today: date) -> dict[str, int]:
    """{recipient: open copies past their due date} (for the Prometheus gauge)."""
    n = sa.func.count().label("n")
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(deliveries.c.recipient, n)
            .select_from(deliveries.join(documents, documents.c.id == deliveries.c.document))
            .where(documents.c.kind == "edoc", documents.c.due_date.is_not(None), documents.c.due_date < today,
                   sa.or_(deliveries.c.status.is_(None), deliveries.c.status.not_in(CLOSED)))
            .group_by(deliveries.c.recipient))).all()
    return {code: count for code, count in rows}
