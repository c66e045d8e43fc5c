"""What one audit proof costs on a large log, on real PostgreSQL: stored subtree hashes vs every leaf.

    .venv/bin/python benchmarks/audit_proofs.py [--n 1000000] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Creates a throw-away database, migrates it, COPYs N audit rows (leaf hashes only need to be
32-byte hashes for proofs; no entry is re-verified here), seals them once with a development
identity (the sealer stores every perfect subtree hash in ``merkle_nodes``), then for a few
leaves and one consistency pair times and counts the rows read:

* before: ``read_leaves`` of the whole tree (what every proof did until issue 10) and the
  proof computed from the leaves (``merkle.inclusion_proof`` / ``consistency_proof``);
* now: ``hub.audit.nodes`` (``query.inclusion`` / ``query.consistency``): O(log N) rows by
  primary key, folded.

Both proofs are compared byte for byte and verified against the signed root. The database
is dropped afterwards, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import signal
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

import sqlalchemy as sa

from hub.audit import merkle, nodes, query
from hub.audit.sealer import seal
from hub.pki import devpki
from hub.pki.identity import Identity
from hub.errors import ConflictError
from hub.store.engine import make_engine, migrate
from hub.store.tables import records

HUB = "000.00.99.G22"
LEAF_CHUNK = 100_000
COLUMNS = ("seq", "at", "event", "actor", "document_id", "sender", "leaf_hash")


async def insert(dsn: str, n: int, batch: int = 200_000) -> None:
    start = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
    conn = await asyncpg.connect(dsn)
    try:
        for lo in range(1, n + 1, batch):
            rows = [(s, start + timedelta(milliseconds=s), "package.accepted", "bench", f"doc {s}", "000.00.00.G22",
                     hashlib.sha256(b"%d" % s).hexdigest()) for s in range(lo, min(n, lo + batch - 1) + 1)]
            await conn.copy_records_to_table("records", records=rows, columns=list(COLUMNS))
    finally:
        await conn.close()


async def read_leaves(conn, size: int, start: int = 0) -> list[bytes]:
    """What every proof did before issue 10: read the stored leaf hashes of entries start+1..size.

    Reads ranges of the primary key; ``seq`` is unique, so a range lo..hi that holds
    hi - lo + 1 rows has no gap. PostgreSQL hands each range back as one concatenated hex
    string (``string_agg``), ten times less work than a row per leaf.
    """
    leaves: list[bytes] = []
    pg = conn.dialect.name == "postgresql"
    while start + len(leaves) < size:
        lo, hi = start + len(leaves) + 1, min(size, start + len(leaves) + LEAF_CHUNK)
        in_range = sa.and_(records.c.seq >= lo, records.c.seq <= hi)
        if pg:
            from sqlalchemy.dialects.postgresql import aggregate_order_by

            count, text = (await conn.execute(sa.select(
                sa.func.count(), sa.func.string_agg(records.c.leaf_hash,
                                                    aggregate_order_by(sa.literal_column("''"), records.c.seq)))
                .where(in_range))).one()
            blob = bytes.fromhex(text or "")
            chunk = [blob[i:i + 32] for i in range(0, len(blob), 32)] if count * 32 == len(blob) else None
        else:
            hexes = (await conn.execute(sa.select(records.c.leaf_hash).where(in_range)
                                        .order_by(records.c.seq))).scalars().all()
            count = len(hexes)
            chunk = [bytes.fromhex(h) for h in hexes]
        if count != hi - lo + 1 or chunk is None or any(len(h) != 32 for h in chunk):
            have = set((await conn.execute(sa.select(records.c.seq).where(in_range))).scalars().all())
            missing = next((s for s in range(lo, hi + 1) if s not in have), None)
            raise ConflictError(f"audit entry {missing} is missing from the log; run `hub audit verify`" if missing
                                else f"a stored leaf hash among entries {lo}..{hi} is malformed; run `hub audit verify`",
                                code="audit.log_damaged")
        leaves.extend(chunk)
    return leaves


def _counting_fetch(counter: list[int]):
    real = nodes.fetch_nodes

    async def fetch(conn, wanted):
        out = await real(conn, wanted)
        counter.append(len(out))
        return out

    return fetch


async def run(n: int, admin_dsn: str) -> int:
    name = f"hub_bench_proofs_{uuid.uuid4().hex[:8]}"
    dsn = f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    engine = make_engine("postgresql+asyncpg://" + dsn.split("://", 1)[1], pool_size=2)
    ok = True
    try:
        await migrate(engine)
        ca_cert, ca_key = devpki.make_ca("benchmark root")
        cert, key = devpki.issue(ca_cert, ca_key, "benchmark hub")
        hub = Identity(HUB, key, cert)
        print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s); N={n:,}", flush=True)
        t = time.perf_counter()
        await insert(dsn, n)
        print(f"COPY {n:,} rows: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        c = await seal(engine, hub)
        async with engine.connect() as conn:
            stored = (await conn.exec_driver_sql("SELECT count(*) FROM merkle_nodes")).scalar()
            await conn.exec_driver_sql("ANALYZE")
        print(f"seal {c.size:,} (fold + store {stored:,} subtree hashes): {time.perf_counter() - t:.1f} s", flush=True)

        counter: list[int] = []
        nodes.fetch_nodes = _counting_fetch(counter)
        print(f"{'proof':<36} {'before: rows':>13} {'s':>7}   {'now: rows':>10} {'s':>8}")
        for seq in (1, n // 3, n * 2 // 3, n):
            t = time.perf_counter()
            async with engine.connect() as conn:
                leaves = await read_leaves(conn, n)
            old = merkle.inclusion_proof(leaves, seq - 1, n)
            t_old = time.perf_counter() - t
            del leaves
            counter.clear()
            t = time.perf_counter()
            new = await query.inclusion(engine, seq, n)
            t_new = time.perf_counter() - t
            path = [bytes.fromhex(p) for p in new["path"]]
            good = path == old and merkle.verify_inclusion(bytes.fromhex(new["leaf_hash"]), seq - 1, n, path, c.root)
            ok = ok and good
            print(f"{'inclusion of entry ' + format(seq, ','):<36} {n:>13,} {t_old:>7.2f}   {sum(counter):>10} "
                  f"{t_new:>8.4f}  {'same, verifies' if good else 'DIFFERENT'}", flush=True)
        for old_size in (n // 2 + 1, n - 1):
            t = time.perf_counter()
            async with engine.connect() as conn:
                leaves = await read_leaves(conn, n)
            before = merkle.consistency_proof(leaves, old_size, n)
            old_root = merkle.root(leaves[:old_size])
            t_old = time.perf_counter() - t
            del leaves
            counter.clear()
            t = time.perf_counter()
            now = await query.consistency(engine, old_size, n)
            t_new = time.perf_counter() - t
            good = now == before and merkle.verify_consistency(old_size, n, old_root, c.root, now)
            ok = ok and good
            print(f"{'consistency ' + format(old_size, ',') + ' -> ' + format(n, ','):<36} {n:>13,} {t_old:>7.2f}   "
                  f"{sum(counter):>10} {t_new:>8.4f}  {'same, verifies' if good else 'DIFFERENT'}", flush=True)
        return 0 if ok else 1
    finally:
        await engine.dispose()
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        print(f"dropped {name}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--pg", default=os.environ.get("HUB_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="an admin connection that may CREATE/DROP DATABASE")
    args = ap.parse_args()
    if args.n < 2:
        ap.error("--n must be at least 2")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(run(args.n, args.pg))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
