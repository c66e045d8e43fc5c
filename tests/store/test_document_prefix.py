"""The audit log's DocumentId index (``ix_records_document``, ``varchar_pattern_ops`` since 0041)
serves a search by a DocumentId prefix (``document_id=…*``) as well as the exact lookups, on a
PostgreSQL database whose collation is not "C" (this machine's are C.UTF-8: before 0041 the
prefix search read the whole log)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from hub.audit import query
from hub.store.engine import make_engine, one_of
from hub.store.tables import records

pytestmark = pytest.mark.postgres

SENDERS = [f"000.00.{i // 100:02d}.H{i % 100:02d}" for i in range(200)]


async def _plan(conn, stmt) -> str:
    text = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return "\n".join(r[0] for r in (await conn.execute(sa.text("EXPLAIN " + text))).all())


async def test_a_prefix_search_and_the_exact_lookups_use_the_index(pg_url):
    engine = make_engine(pg_url)
    try:
        at = datetime(2026, 11, 30, tzinfo=timezone.utc)
        rows = [dict(seq=i + 1, at=at, event="package.received", sender=SENDERS[i % 200],
                     document_id=f"{SENDERS[i % 200]},2026/11/{1 + i % 28:02d},{i}/VP", leaf_hash="0" * 64)
                for i in range(20_000)]
        async with engine.begin() as conn:
            await conn.execute(records.insert(), rows)
            await conn.execute(sa.text("ANALYZE records"))
        prefix = f"{SENDERS[7]},2026/11/0"
        want = sorted((r["seq"] for r in rows if r["document_id"].startswith(prefix)), reverse=True)
        assert 0 < len(want) < 100
        total, found = await query.search(engine, document_id=prefix + "*", limit=query.MAX_LIMIT)
        assert [r["seq"] for r in found] == want and total == len(want)
        async with engine.connect() as conn:
            where = query.search_conditions(document_id=prefix + "*")
            plan = await _plan(conn, sa.select(records.c.seq).where(*where).order_by(records.c.seq.desc()).limit(50))
            assert "ix_records_document" in plan, plan
            one = rows[1234]["document_id"]
            plan = await _plan(conn, sa.select(records.c.seq).where(records.c.document_id == one))
            assert "ix_records_document" in plan, plan
            some = [rows[i]["document_id"] for i in (5, 50, 500)]
            plan = await _plan(conn, sa.select(records.c.seq).where(one_of(conn, records.c.document_id, some)))
            assert "ix_records_document" in plan, plan
    finally:
        await engine.dispose()
