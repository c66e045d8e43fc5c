"""``one_of`` / ``rows_of`` (hub.store.engine): the IN lists of the hot path, written on PostgreSQL
as array parameters (one statement text whatever the number of values), select exactly what the
plain IN selects, on SQLite and PostgreSQL; a value longer than the column matches nothing (a cast
of the array to the column's varchar(n) would cut it and match its prefix)."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from hub.store.engine import one_of, rows_of
from hub.store.tables import records

LONG = "A" * 255  # records.document_id is varchar(255)


async def test_same_rows_as_the_plain_in_and_no_prefix_match(migrated_engine):
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    rows = [dict(seq=i, at=at, event="package.received", document_id=d, sender=s, leaf_hash="0" * 64)
            for i, (d, s) in enumerate([("a,1", "000.00.00.G22"), ("a,2", "000.00.00.H41"), (LONG, "000.00.00.G22"),
                                        ("b,1", None)], start=1)]
    async with migrated_engine.begin() as conn:
        await conn.execute(records.insert(), rows)
    async with migrated_engine.connect() as conn:
        async def seqs(cond) -> list[int]:
            return list((await conn.execute(sa.select(records.c.seq).where(cond).order_by(records.c.seq))).scalars())

        for values in (["a,1"], ["a,1", "a,2", "zzz"], [LONG], []):
            assert await seqs(one_of(conn, records.c.document_id, values)) == \
                await seqs(records.c.document_id.in_(values)), values
        assert await seqs(one_of(conn, records.c.document_id, [LONG + "B"])) == []  # not its first 255 characters
        assert await seqs(one_of(conn, records.c.seq, {2, 4, 9})) == [2, 4]
        cols = (records.c.document_id, records.c.sender)
        for pairs in ([("a,1", "000.00.00.G22")], [("a,1", "000.00.00.H41"), ("a,2", "000.00.00.H41")],
                      [(LONG, "000.00.00.G22")], [("b,1", None)], []):
            assert await seqs(rows_of(conn, cols, pairs)) == await seqs(sa.tuple_(*cols).in_(pairs)), pairs
        assert await seqs(rows_of(conn, cols, [(LONG + "B", "000.00.00.G22")])) == []
        assert await seqs(rows_of(conn, cols, [("a,1", "000.00.00.G22"), ("a,2", "000.00.00.H41")])) == [1, 2]
