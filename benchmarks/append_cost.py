"""What issue 15's additions cost each audit append on PostgreSQL: the overview's counters
(``hub.store.counts``, one UPSERT per transaction) and the trigram index on
``lower(document_id)`` (``ix_records_document_trgm``, GIN).

    .venv/bin/python benchmarks/append_cost.py [--entries 4000] [--per 10] [--rounds 3]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

A fresh database migrated to head; ``--entries`` entries appended through
``hub.audit.records.append_rows`` in transactions of ``--per`` (the entries the pipeline writes
for one document with two recipients and its statuses: DocumentIds like ``000.00.00.G22,
2026/11/30,123``), in four variants alternated ``--rounds`` times (A/B on a shared machine):
neither, counters only, trigram index only, both (each table written by a statement of its own:
``hub.audit.log.FUSED`` off, so the figures are of the per-table append, not PostgreSQL's one
statement). Prints entries/s (wall clock: state the
load) and the time per entry against "neither". The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from hub.audit import log  # noqa: E402
from hub.audit.records import append_rows, record_row  # noqa: E402
from hub.store.engine import make_engine, migrate  # noqa: E402

TRGM = "CREATE INDEX ix_records_document_trgm ON records USING gin (lower(document_id) gin_trgm_ops)"
EVENTS = ("package.received", "package.accepted", "edoc.delivered", "edoc.delivered", "status.recorded")


async def skip_counts(conn, rows) -> None:
    pass


async def append(engine, entries: int, per: int, start: int) -> float:
    t = time.perf_counter()
    for k in range(start, start + entries, per):
        rows = [record_row(EVENTS[i % len(EVENTS)], sender="000.00.00.G22",
                           document_id=f"000.00.00.G22,2026/11/30,{(k + i) // len(EVENTS)}") for i in range(per)]
        async with engine.begin() as conn:
            await append_rows(conn, rows)
    return entries / (time.perf_counter() - t)


async def run(args) -> None:
    name = f"hub_bench_append_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    engine = make_engine("postgresql+asyncpg://" + f"{args.pg.rsplit('/', 1)[0]}/{name}".split("://", 1)[1])
    rates: dict[str, list[float]] = {}
    counted, fused = log.count_records, log.FUSED
    log.FUSED = False  # the counters as a statement of their own, so that leaving them out measures them
    try:
        await migrate(engine)
        print(f"database {name}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        done = 0
        for r in range(args.rounds):
            for variant in ("neither", "counters", "trigram", "both"):
                trigram, counters = variant in ("trigram", "both"), variant in ("counters", "both")
                async with engine.begin() as conn:
                    await conn.execute(sa.text("DROP INDEX IF EXISTS ix_records_document_trgm"))
                    if trigram:
                        await conn.execute(sa.text(TRGM))
                log.count_records = counted if counters else skip_counts
                rate = await append(engine, args.entries, args.per, done)
                done += args.entries
                rates.setdefault(variant, []).append(rate)
                print(f"  round {r + 1} {variant:<9} {rate:8.0f} entries/s")
        print(f"\nentries/s, median of {args.rounds} rounds of {args.entries:,} ({args.per} per transaction); "
              f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        base = statistics.median(rates["neither"])
        for variant, rs in rates.items():
            m = statistics.median(rs)
            print(f"  {variant:<9} {m:8.0f}   {1e6 / m:7.0f} µs/entry   {100 * (base / m - 1):+6.1f}% time per entry")
    finally:
        log.count_records = counted
        log.FUSED = fused
        await engine.dispose()
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=4000)
    ap.add_argument("--per", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", default=os.environ.get("HUB_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    asyncio.run(run(ap.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
