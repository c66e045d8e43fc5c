"""Counters kept as audit entries and documents are written, in the writer's transaction.

The console's overview shows how many entries of each kind the whole log holds (and in the
last hour, day and week) and how each sender's documents were authenticated. Counting those
rows on every page view reads the whole log (10 million entries: seconds); these tables hold
the counts instead, updated by the statement that appends the rows' counts in the same
transaction, so they are exactly what a ``count(*)`` would say after every commit.

``record_counts``
    One row per (event, hour of the entry's time, as whole hours since 1970 UTC), and one per
    event with ``hour = WHOLE_LOG`` (-1) for the whole log. A time window's count is the sum of
    its whole hours plus an exact count of the entries in the window's first, partial hour
    (``ix_records_event_at``): bounded by one hour of entries, whatever the log's size.
``document_counts``
    One row per sender: its ``documents`` rows, those with ``legacy_sha1``, those with
    ``authenticated_by = 'connection'``.

Concurrent writers: each increment is an UPSERT (``INSERT … ON CONFLICT DO UPDATE SET n = n +
excluded.n``), which PostgreSQL serializes on the counter row until the writer commits; a
rolled-back transaction takes its increments with it. Rows are written in key order so two
writers never wait on each other's rows in opposite orders. Audit appends already run under
the log's append lock (``hub.audit.log``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from hub.store.engine import dialect_insert
from hub.store.tables import document_counts, record_counts

WHOLE_LOG = -1  # record_counts.hour of an event's count over the whole log


EPOCH, HOUR = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(hours=1)


def hour_of(at: datetime) -> int:
    """The hour an aware time (naive: UTC) falls in, as whole hours since 1970-01-01 UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return (at - EPOCH) // HOUR


def first_whole_hour(at: datetime) -> int:
    """The first hour that starts at or after ``at``."""
    return -((EPOCH - (at if at.tzinfo else at.replace(tzinfo=timezone.utc))) // HOUR)


def hour_start(hour: int) -> datetime:
    return EPOCH + hour * HOUR


_UPSERTS: dict[tuple[str, str], sa.Insert] = {}


def _upsert(conn, table: sa.Table, keys: list[str]) -> sa.Insert:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET c = c + excluded.c`` for the other columns, one
    statement object per dialect and table, executed with a list of rows (executemany): its
    compiled form is cached (a multi-row ``VALUES`` with ON CONFLICT has no cache key, so it was
    compiled again for every batch)."""
    key = (conn.dialect.name, table.name)
    stmt = _UPSERTS.get(key)
    if stmt is None:
        ins = dialect_insert(conn, table)
        stmt = _UPSERTS[key] = ins.on_conflict_do_update(
            index_elements=keys, set_={c: table.c[c] + getattr(ins.excluded, c) for c in _counted(table, keys)})
    return stmt


def upsert_conflict(table: sa.Table, keys: list[str]) -> str:
    """:func:`_upsert`'s ON CONFLICT clause as SQL text (for ``hub.store.engine.unnest_insert``)."""
    return (f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            + ", ".join(f"{c} = {table.name}.{c} + excluded.{c}" for c in _counted(table, keys)))


def _counted(table: sa.Table, keys: list[str]) -> list[str]:
    """The columns an upsert adds to: every one but the keys."""
    return [c.name for c in table.c if c.name not in keys]


def record_count_rows(rows: Iterable[Mapping]) -> list[dict]:
    """The ``record_counts`` increments of the audit entries ``rows`` (each with ``event`` and an
    aware ``at``), in key order."""
    n: Counter = Counter()
    for r in rows:
        n[(r["event"], WHOLE_LOG)] += 1
        n[(r["event"], hour_of(r["at"]))] += 1
    return [{"event": e, "hour": h, "n": c} for (e, h), c in sorted(n.items())]


async def count_records(conn, rows: Iterable[Mapping]) -> None:
    """Add the audit entries ``rows`` (each with ``event`` and an aware ``at``) to ``record_counts``."""
    values = record_count_rows(rows)
    if values:
        await conn.execute(_upsert(conn, record_counts, ["event", "hour"]), values)


def document_count_rows(rows: Iterable[Mapping]) -> list[dict]:
    """The ``document_counts`` increments of the ``documents`` rows ``rows`` (as inserted), in key order."""
    by: dict[str, list[int]] = {}
    for r in rows:
        c = by.setdefault(r["sender"], [0, 0, 0])
        c[0] += 1
        c[1] += 1 if r.get("legacy_sha1") else 0
        c[2] += 1 if r.get("authenticated_by") == "connection" else 0
    return [{"sender": s, "n": c[0], "sha1": c[1], "connection": c[2]} for s, c in sorted(by.items())]


async def count_documents(conn, rows: Iterable[Mapping]) -> None:
    """Add the ``documents`` rows ``rows`` (as inserted) to ``document_counts``."""
    values = document_count_rows(rows)
    if values:
        await conn.execute(_upsert(conn, document_counts, ["sender"]), values)


async def event_totals(conn, events: list[str], since_hour: int | None = None) -> dict[tuple[str, int], int]:
    """{(event, hour): n} of ``events``: the whole-log rows, and the hours from ``since_hour`` on."""
    cond = record_counts.c.hour == WHOLE_LOG
    if since_hour is not None:
        cond = sa.or_(cond, record_counts.c.hour >= since_hour)
    rows = (await conn.execute(sa.select(record_counts.c.event, record_counts.c.hour, record_counts.c.n)
                               .where(record_counts.c.event.in_(events), cond))).all()
    return {(e, h): n for e, h, n in rows}
