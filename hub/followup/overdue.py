"""The Quá hạn list at any size: open copies overdue or due soon, a page at a time (keyset
pagination on (due date, copy), most overdue first or last), their totals by recipient from one
aggregate query, and every one of them in batches for an export.

A page never reads more than its rows: the next page starts after the last (due date, copy) shown,
so a page far down the list costs what the first one does, and a copy that closes or appears
between two pages moves no other copy from one page to another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.followup import sql as rule
from hub.followup.query import Filters, _conditions, _date, _who, item_of
from hub.followup.rules import Item
from hub.store.tables import agencies, deliveries, documents

PAGE = 50  # copies on one page of the console
BATCH = 1000  # copies read at a time for an export
ORDERS = ("late", "soon")  # "late": most overdue first (oldest due date first); "soon": the latest due date first


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after this (due date, copy)."""

    due: date
    key: int

    def text(self) -> str:
        return f"{self.due.isoformat()}.{self.key}"

    @staticmethod
    def parse(text: str | None) -> Cursor | None:
        """``yyyy-mm-dd.N`` as :meth:`text` writes it; anything else is the first page."""
        day, _, key = (text or "").partition(".")
        try:
            return Cursor(date.fromisoformat(day), int(key)) if key.isdigit() else None
        except ValueError:
            return None


@dataclass(frozen=True)
class Totals:
    """One recipient's open copies: overdue, due soon, and the oldest overdue due date."""

    recipient: str
    name: str
    overdue: int
    due_soon: int
    oldest_due: date | None

    def worst_days(self, today: date) -> int:
        return 0 if self.oldest_due is None else (today - self.oldest_due).days


def _open_due(today: date, within_days: int) -> list:
    """Open copies due on or before ``within_days`` days from ``today``, by the copy's own due date
    (its document's, kept on it): ix_deliveries_open_due serves the order and the range."""
    cutoff = date.fromordinal(today.toordinal() + within_days)
    # no "due_date IS NOT NULL": ``<=`` already leaves NULL out, and PostgreSQL would count the
    # two conditions as independent and expect a hundredth of the rows (107 instead of 9,281 at
    # --scale 0.1), then hash every due document for one recipient's page
    return [deliveries.c.due_date <= _lit(cutoff, sa.Date), rule.is_open(deliveries.c.status)]


def _scope(f: Filters, today: date, within_days: int) -> list:
    return [*_conditions(f), *_open_due(today, within_days)]


def _lit(value, type_):
    """A value written into the SQL: PostgreSQL then plans each page for its dates (a generic plan,
    chosen after five runs of a prepared statement, guesses a third of the rows for any date: it
    read the first page in 196 ms instead of 82 ms at --scale 0.1)."""
    return sa.literal(value, type_, literal_execute=True)


def page_query(f: Filters, today: date, within_days: int, cursor: Cursor | None, ascending: bool, limit: int):
    """Copies after ``cursor`` in (due date, copy) order, ascending or descending."""
    rcpt, snd = agencies.alias("rcpt"), agencies.alias("snd")
    place = sa.tuple_(deliveries.c.due_date, deliveries.c.id)
    q = (sa.select(deliveries.c.id.label("delivery_id"), deliveries.c.recipient, deliveries.c.status,
                   deliveries.c.updated_at, documents.c.document_id, documents.c.sender, documents.c.received_at,
                   deliveries.c.due_date, documents.c.subject, documents.c.code, documents.c.doc_type,
                   documents.c.type_name, documents.c.priority, rcpt.c.name.label("recipient_name"),
                   snd.c.name.label("sender_name"))
         .select_from(deliveries.join(documents, documents.c.id == deliveries.c.document)
                      .outerjoin(rcpt, rcpt.c.code == deliveries.c.recipient)
                      .outerjoin(snd, snd.c.code == documents.c.sender))
         .where(*_scope(f, today, within_days)))
    if cursor is not None:
        due = _lit(cursor.due, sa.Date)
        at = sa.tuple_(due, _lit(cursor.key, sa.BigInteger))
        # the date alone too: SQLite's planner seeks the index on it, not on a row comparison
        q = q.where(place > at if ascending else place < at,
                    deliveries.c.due_date >= due if ascending else deliveries.c.due_date <= due)
    if ascending:
        return q.order_by(deliveries.c.due_date, deliveries.c.id).limit(limit)
    return q.order_by(deliveries.c.due_date.desc(), deliveries.c.id.desc()).limit(limit)


@dataclass(frozen=True)
class Page:
    items: list[Item]
    next: Cursor | None  # the page after starts after this (None: this is the last)
    previous: Cursor | None  # the page before ends before this (None: this is the first)


async def page(engine: AsyncEngine, f: Filters, today: date, within_days: int, *, after: Cursor | None = None,
               before: Cursor | None = None, order: str = "late", limit: int = PAGE) -> Page:
    """Up to ``limit`` copies in ``order`` after ``after`` (or the ``limit`` just before ``before``)."""
    forward = before is None
    ascending = (order != "soon") == forward
    q = page_query(f, today, within_days, after if forward else before, ascending, limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).mappings().all()
    got = [item_of(r) for r in rows[:limit]]
    more = len(rows) > limit
    if not forward:
        got.reverse()
    first = Cursor(got[0].due_date, got[0].key) if got else None
    last = Cursor(got[-1].due_date, got[-1].key) if got else None
    if forward:
        return Page(got, last if more else None, first if after is not None else None)
    return Page(got, last, first if more else None)


async def every(engine: AsyncEngine, f: Filters, today: date, within_days: int, order: str = "late",
                batch: int = BATCH) -> AsyncIterator[list[Item]]:
    """Every copy of the list, ``batch`` at a time (an export: never all in memory at once)."""
    after = None
    while True:
        p = await page(engine, f, today, within_days, after=after, order=order, limit=batch)
        if p.items:
            yield p.items
        if p.next is None:
            return
        after = p.next


async def totals(engine: AsyncEngine, f: Filters, today: date, within_days: int) -> list[Totals]:
    """By recipient, in one aggregate query: most overdue first, then the longest late, then the
    most due soon (the order of ``rules.overdue_groups``)."""
    late = deliveries.c.due_date < today
    rcpt = agencies.alias("rcpt")
    q = (sa.select(deliveries.c.recipient, sa.func.max(rcpt.c.name).label("name"),
                   rule.count_if(late).label("overdue"), rule.count_if(sa.not_(late)).label("due_soon"),
                   sa.func.min(sa.case((late, deliveries.c.due_date))).label("oldest"))
         .group_by(deliveries.c.recipient))
    if f.sender or f.received_from or f.received_until or f.doc_type or f.priority is not None:
        q = q.select_from(deliveries.join(documents, documents.c.id == deliveries.c.document)
                          .outerjoin(rcpt, rcpt.c.code == deliveries.c.recipient)).where(*_scope(f, today, within_days))
    else:  # nothing asked of the documents: the open copies' own due dates alone (ix_deliveries_open_due);
        # only edocs have copies
        mine = _who(deliveries.c.recipient, f.agency)
        q = (q.select_from(deliveries.outerjoin(rcpt, rcpt.c.code == deliveries.c.recipient))
             .where(*([mine] if mine is not None else []), *_open_due(today, within_days)))
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).mappings().all()
    out = [Totals(r["recipient"], r["name"] or "", r["overdue"], r["due_soon"], _date(r["oldest"])) for r in rows]
    return sorted(out, key=lambda t: (-t.overdue, -t.worst_days(today), -t.due_soon, t.recipient))
