"""The idempotency table's retention on PostgreSQL: what the ``recorded_at`` index costs the
hot path and what it saves the sweeper (``hub.pipeline.retention``, migration 0036).

    .venv/bin/python benchmarks/intake_seen.py [--rows 1000000] [--rounds 200] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

A fresh database ``hub_bench_seen_<random>`` migrated to the head holds two copies of
``intake_seen`` (``--rows`` rows each, COPYed, recorded over the last 40 days): the table as
migrated (with ``ix_intake_seen_recorded_at``) and ``seen_noidx`` (the same primary key, no
index). Then:

- insert: ``--rounds`` batches of 200 rows (a worker's batch), alternating between the two
  tables; median and p90 per batch (wall clock; the load average is printed);
- prune, as the sweeper does it hourly once the table is in its steady state: the rows of the
  oldest hour (0.1 %), spread over the table's pages (the rows are loaded in random order: space
  freed by earlier prunes is reused by new rows, so a table's order is not its age), deleted by
  ``prune_seen``'s statements in batches of 5,000 in each table; then the first prune after an
  upgrade (every row older than 30 days, a quarter) likewise.

The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402

from hub.store.engine import make_engine, migrate  # noqa: E402


async def _prune(conn, table: str, cutoff: datetime, batch: int = 5000) -> int:
    total = 0
    while True:
        async with conn.transaction():
            keys = await conn.fetch(f"SELECT sha256, adapter_user FROM {table} WHERE recorded_at < $1 LIMIT {batch}",
                                    cutoff)
            if keys:
                await conn.execute(f"DELETE FROM {table} WHERE (sha256, adapter_user) IN "
                                   f"(SELECT * FROM unnest($1::text[], $2::text[]))",
                                   [k[0] for k in keys], [k[1] for k in keys])
        total += len(keys)
        if len(keys) < batch:
            return total


async def run(pg: str, rows: int, rounds: int) -> None:
    name = f"hub_bench_seen_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = pg.rsplit("/", 1)[0]
    try:
        engine = make_engine(f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1))
        await migrate(engine)
        await engine.dispose()
        conn = await asyncpg.connect(f"{base}/{name}")
        try:
            await conn.execute("CREATE TABLE seen_noidx (sha256 varchar(64), adapter_user varchar(128), "
                               "recorded_at timestamptz NOT NULL, PRIMARY KEY (sha256, adapter_user))")
            now = datetime.now(timezone.utc)
            span = timedelta(days=40).total_seconds()
            records = [(os.urandom(32).hex(), "000.00.00.G22", now - timedelta(seconds=span * (rows - i) / rows))
                       for i in range(rows)]
            random.shuffle(records)
            for table in ("intake_seen", "seen_noidx"):
                await conn.copy_records_to_table(table, records=records,
                                                 columns=["sha256", "adapter_user", "recorded_at"])
                await conn.execute(f"ANALYZE {table}")
            times: dict[str, list[float]] = {"intake_seen": [], "seen_noidx": []}
            for r in range(rounds):
                for table in (("intake_seen", "seen_noidx") if r % 2 == 0 else ("seen_noidx", "intake_seen")):
                    batch = [(os.urandom(32).hex(), "000.00.00.G22", datetime.now(timezone.utc)) for _ in range(200)]
                    t = time.perf_counter()
                    async with conn.transaction():
                        await conn.executemany(f"INSERT INTO {table} (sha256, adapter_user, recorded_at) "
                                               "VALUES ($1, $2, $3)", batch)
                    times[table].append(time.perf_counter() - t)
            print(f"load average {os.getloadavg()[0]:.1f}; {rows:,} rows per table; {rounds} alternating rounds")
            for table, ts in times.items():
                ts.sort()
                print(f"insert 200 rows into {table:12}: median {statistics.median(ts) * 1000:6.2f} ms, "
                      f"p90 {ts[int(len(ts) * 0.9)] * 1000:6.2f} ms")
            for what, cutoff in (("the oldest hour", now - timedelta(days=40) + timedelta(hours=1)),
                                 ("older than 30 days", now - timedelta(days=30))):
                for table in ("intake_seen", "seen_noidx"):
                    t = time.perf_counter()
                    n = await _prune(conn, table, cutoff)
                    print(f"prune {what:18} from {table:12}: {n:7,} rows in {time.perf_counter() - t:6.2f} s")
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    asyncio.run(run(args.pg, args.rows, args.rounds))


if __name__ == "__main__":
    main()
