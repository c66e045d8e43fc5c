"""The overview's counters (hub.store.counts) say exactly what counting the rows says: after the
real pipeline, after the migration's backfill, and with several processes writing at once on
PostgreSQL (some of their transactions rolled back)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from hub.audit.records import append_rows, record_row
from hub.store import counts
from hub.store.engine import make_engine, migrate
from hub.store.tables import document_counts, documents, packages, record_counts, records
from hub.web import data
from tests.audit.test_query import world  # noqa: F401  (the fixture: entries the real pipeline wrote)


async def recount(conn) -> tuple[dict, dict]:
    """What the counter tables should hold, counted from the rows themselves."""
    kept: Counter = Counter()
    for event, at in (await conn.execute(sa.select(records.c.event, records.c.at))).all():
        kept[(event, counts.WHOLE_LOG)] += 1
        kept[(event, counts.hour_of(at))] += 1
    senders: dict[str, list[int]] = {}
    for sender, sha1, by in (await conn.execute(
            sa.select(documents.c.sender, documents.c.legacy_sha1, documents.c.authenticated_by))).all():
        c = senders.setdefault(sender, [0, 0, 0])
        c[0] += 1
        c[1] += bool(sha1)
        c[2] += by == "connection"
    return dict(kept), {s: tuple(c) for s, c in senders.items()}


async def stored(conn) -> tuple[dict, dict]:
    kept = {(e, h): n for e, h, n in (await conn.execute(sa.select(record_counts))).all()}
    senders = {r[0]: tuple(r[1:]) for r in (await conn.execute(sa.select(document_counts))).all()}
    return kept, senders


async def counted_from_the_log(engine, now: datetime) -> dict:
    """The overview's counters as they were computed before: counting every entry."""
    event_of = {e: k for k, events in data.EVENTS.items() for e in events}
    out = {"total": dict.fromkeys(data.EVENTS, 0), **{w: dict.fromkeys(data.EVENTS, 0) for w, _ in data.WINDOWS}}
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(records.c.event, records.c.at)
                                   .where(records.c.event.in_(list(event_of))))).all()
    for event, at in rows:
        at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        out["total"][event_of[event]] += 1
        for w, span in data.WINDOWS:
            out[w][event_of[event]] += at >= now - span
    return out


async def test_counters_after_the_pipeline_equal_counting_the_rows(world):  # noqa: F811
    e = world.engine
    async with e.connect() as conn:
        expected, senders = await recount(conn)
        assert await stored(conn) == (expected, senders)
        first = (await conn.execute(sa.select(sa.func.min(records.c.at)))).scalar()
    assert senders  # the pipeline wrote documents and statuses
    # the windows from the kept hours and the partial first hour, at times that cut hours anywhere
    first = first if first.tzinfo else first.replace(tzinfo=timezone.utc)
    for now in (datetime.now(timezone.utc), first + timedelta(hours=1), first + timedelta(hours=1, microseconds=1),
                first + timedelta(minutes=59, seconds=59), first + timedelta(hours=24), first + timedelta(days=7),
                first + timedelta(days=7, seconds=1), first.replace(minute=0, second=0, microsecond=0)
                + timedelta(hours=1)):
        got = await data.counters(e, now=now)
        assert got == await counted_from_the_log(e, now), now
    assert got["total"]["accepted"] > 0 and got["total"]["refused"] > 0
    auth = await data.authentication_by_agency(e)
    assert {(a.agency, a.signature + a.sha1 + (a.connection or 0), a.sha1, a.connection) for a in auth.rows} == \
        {(s, *c) for s, c in senders.items()}
    assert auth.agencies == len(senders) and (auth.totals.sha1, auth.totals.connection) == \
        tuple(sum(c[i] for c in senders.values()) for i in (1, 2))
    assert auth.totals.signature + auth.totals.sha1 + auth.totals.connection == sum(c[0] for c in senders.values())


async def test_the_migration_backfills_the_counters_from_rows_already_written(db_url_empty):
    engine = make_engine(db_url_empty)
    try:
        await migrate(engine, "0037_registry_changes")  # the head before the counters
        start = datetime(2026, 3, 1, 9, 59, 59, 999999, tzinfo=timezone.utc)  # rows on both sides of an hour
        rows = [record_row(ev, sender="000.00.00.G22", at=start + timedelta(microseconds=i * 1_000_013))
                for i, ev in enumerate(["package.received", "package.accepted", "edoc.delivered"] * 5)]
        async with engine.begin() as conn:  # written as a hub of the previous version did: no counters
            await conn.execute(records.insert(), [{**r, "seq": i, "leaf_hash": "0" * 64}
                                                  for i, r in enumerate(rows, start=1)])
            await conn.execute(packages.insert(), [{"sha256": f"{i:064x}", "size": 1, "data": b"", "stored_at": start}
                                                   for i in range(4)])
            await conn.execute(documents.insert(), [
                {"sender": s, "document_id": f"d{i}", "kind": "edoc", "sha256": f"{i:064x}", "received_at": start,
                 "legacy_sha1": i == 1, "authenticated_by": by}
                for i, (s, by) in enumerate([("000.00.00.G22", "signature"), ("000.00.00.G22", "signature-sha1"),
                                             ("000.00.00.H41", "connection"), ("000.00.00.H41", None)])])
        await migrate(engine)
        async with engine.connect() as conn:
            expected, senders = await recount(conn)
            assert await stored(conn) == (expected, senders)
        assert senders == {"000.00.00.G22": (2, 1, 0), "000.00.00.H41": (2, 0, 1)}
        assert {h for (_e, h) in expected} == {counts.WHOLE_LOG, counts.hour_of(start), counts.hour_of(start) + 1}
        # appends after the upgrade add to what the backfill counted
        async with engine.begin() as conn:
            await append_rows(conn, [record_row("package.accepted", at=start)])
        async with engine.connect() as conn:
            assert (await stored(conn))[0][("package.accepted", counts.WHOLE_LOG)] == 6
    finally:
        await engine.dispose()


WRITER = textwrap.dedent("""
    import asyncio, os, random, sys, time
    from datetime import datetime, timedelta, timezone
    from hub.store.engine import make_engine
    from hub.store.counts import count_documents
    from hub.store.tables import documents, packages
    from hub.audit.records import append_rows, record_row

    SENDERS = ["000.00.00.G22", "000.00.00.H41", "000.00.00.H44"]

    class Undo(Exception):
        pass

    async def main(url, name, go, txs):
        e = make_engine(url)
        async with e.connect() as c:
            await c.close()
        open(go + "." + name, "w").close()
        while not os.path.exists(go):
            time.sleep(0.01)
        rnd = random.Random(name)
        base = datetime.now(timezone.utc)
        for t in range(txs):
            try:
                async with e.begin() as conn:
                    n = rnd.randint(1, 4)
                    docs = [{"sender": rnd.choice(SENDERS), "document_id": f"{name}-{t}-{i}", "kind": "edoc",
                             "sha256": f"{name}-{t}-{i}".encode().hex().ljust(64, "0")[:64], "received_at": base,
                             "legacy_sha1": rnd.random() < 0.3,
                             "authenticated_by": rnd.choice(["signature", "connection", None])} for i in range(n)]
                    await conn.execute(packages.insert(), [{"sha256": d["sha256"], "size": 1, "data": b"",
                                                            "stored_at": base}
                                                           for d in docs])
                    await conn.execute(documents.insert(), docs)
                    await count_documents(conn, docs)
                    await asyncio.sleep(rnd.random() / 500)  # the others queue on the counter rows
                    await append_rows(conn, [record_row(rnd.choice(["package.accepted", "package.refused"]),
                                                        actor=name,
                                                        # moving forward over ~3 hours: the log raises an
                                                        # entry stamped before the last one to its time
                                                        at=base - timedelta(minutes=200 - 5 * t - rnd.randint(0, 4)))
                                             for _ in range(n)])
                    if t % 7 == 3:
                        raise Undo  # rolled back: neither the rows nor their counts remain
            except Undo:
                pass
        await e.dispose()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
""")


@pytest.mark.postgres
async def test_concurrent_writers_keep_the_counters_exact(pg_url, tmp_path):
    engine = make_engine(pg_url)
    await migrate(engine)
    writers, transactions = 3, 40
    go = str(tmp_path / "go")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_url, f"w{i}", go, str(transactions)], env=env)
             for i in range(writers)]
    try:
        for _ in range(6000):  # wait (bounded in polls) until all are connected, then start them together
            if all(os.path.exists(f"{go}.w{i}") for i in range(writers)) or any(p.poll() for p in procs):
                break
            await asyncio.sleep(0.01)
        open(go, "w").close()
        codes = [await asyncio.to_thread(p.wait, 120) for p in procs]
        assert codes == [0] * writers
        async with engine.connect() as conn:
            expected, senders = await recount(conn)
            assert await stored(conn) == (expected, senders)
            written = (await conn.execute(sa.select(sa.func.count()).select_from(documents))).scalar()
        rolled_back = sum(1 for t in range(transactions) if t % 7 == 3)
        assert 0 < written and sum(c[0] for c in senders.values()) == written
        assert len({h for (_e, h) in expected}) > 2  # several hours, each counted apart
        assert expected[("package.accepted", counts.WHOLE_LOG)] + expected.get(
            ("package.refused", counts.WHOLE_LOG), 0) == written
        assert rolled_back > 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        await engine.dispose()
