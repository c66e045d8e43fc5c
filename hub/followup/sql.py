"""The follow-up rules of ``hub.followup.rules`` as SQL expressions, built from the same constants,
so that the database counts what the Python rules would (``tests/followup/test_sql_rules.py``
checks that they agree row by row, edge cases included). Same expressions on PostgreSQL and SQLite.

Status codes are written into the SQL as literals, not bound parameters: PostgreSQL can then
prove that a query's condition implies a partial index's (``0035_followup_indexes``), which it
cannot do for a parameter.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from hub.followup.rules import ANSWERS, CLOSED, VN, WITHDRAWN


def codes(values: tuple[str, ...]) -> list:
    return [sa.literal(v, sa.String, literal_execute=True) for v in values]


def is_open(status):
    """``Item.open``: the copy's current status closes nothing (no status yet is open)."""
    return sa.or_(status.is_(None), status.not_in(codes(CLOSED)))


def is_withdrawn(status):
    """Current status is a recall (``WITHDRAWN``)."""
    return sa.and_(status.is_not(None), status.in_(codes(WITHDRAWN)))


def not_withdrawn(status):
    return sa.or_(status.is_(None), status.not_in(codes(WITHDRAWN)))


def is_answer(status_code):
    """A ``status_history`` row that answers (``ANSWERS``): the first one is the copy's answer."""
    return status_code.in_(codes(ANSWERS))


def first_answer(history, delivery_id):
    """The time of a copy's first answer (NULL: none), a correlated subquery PostgreSQL reads
    through ``ix_status_history_answers`` (delivery, at) one row per copy."""
    return (sa.select(sa.func.min(history.c.at))
            .where(history.c.delivery == delivery_id, is_answer(history.c.status_code))
            .scalar_subquery())


def vn_offset() -> timedelta:
    """Vietnam's UTC offset; it has been fixed (+07:00, no daylight saving) since 1975, which is
    what lets SQLite (no time zones) compute a Vietnam date with a constant shift."""
    offsets = {VN.utcoffset(datetime(y, m, 1)) for y in (1980, 2000, 2026, 2050) for m in (1, 7)}
    if len(offsets) != 1:  # pragma: no cover - only if the zone's rules change
        raise RuntimeError(f"{VN.key} has no fixed UTC offset: {offsets}")
    return offsets.pop()


class vn_date(FunctionElement):  # noqa: N801 - used like a SQL function
    """``rules.vn_date``: the calendar date in Vietnam of a stored (UTC) time."""

    type = sa.Date()
    inherit_cache = True
    name = "vn_date"


@compiles(vn_date, "postgresql")
def _vn_date_pg(element, compiler, **kw):
    return f"CAST(timezone('{VN.key}', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(vn_date)
def _vn_date_sqlite(element, compiler, **kw):
    minutes = int(vn_offset().total_seconds() // 60)
    # SQLite rounds fractions of a second to the millisecond (23:59:59.9999 would become the next
    # day): the date needs whole seconds only, so the fraction is cut off first
    return f"date(substr({compiler.process(element.clauses, **kw)}, 1, 19), '{minutes:+d} minutes')"


class seconds_between(FunctionElement):  # noqa: N801 - used like a SQL function
    """``(later - earlier).total_seconds()`` of two stored times."""

    type = sa.Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "postgresql")
def _seconds_pg(element, compiler, **kw):
    later, earlier = list(element.clauses)
    # date_part is a double; EXTRACT a numeric (since PostgreSQL 14), which costs as much again
    # for the report's median over a week's copies and is turned into a double by percentile_cont
    # anyway. The two agree to the last bit of a double (a few 1e-11 s at most for a week).
    return f"date_part('epoch', {compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(seconds_between)
def _seconds_sqlite(element, compiler, **kw):
    later, earlier = list(element.clauses)
    # julianday is a double of days: rounded to the millisecond, as precise as the stored times
    return (f"round((julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)}))"
            f" * 86400.0, 3)")


def answered_on_time(answered_at, due_date):
    """``rules.answered_on_time`` (for an answered copy): no due date, or answered on or before
    it in Vietnam time."""
    return sa.or_(due_date.is_(None), vn_date(answered_at) <= due_date)


def count_if(condition):
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)
