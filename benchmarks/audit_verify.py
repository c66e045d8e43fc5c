"""How long `hub audit verify` takes on a large log, on real PostgreSQL.

    .venv/bin/python benchmarks/audit_verify.py [--n 1000000] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Creates a throw-away database, migrates it, inserts N realistic audit entries fast (asyncpg
``copy_records_to_table``; sequence numbers 1..N, leaf hashes and the stored details text
computed in Python exactly as ``hub.audit.log`` does: ``entry_leaf(seq, at, ...)``, details as
their canonical text, ``canonical_details``), signs a checkpoint at N/2 and one at N
with a development hub identity (``hub.pki.devpki``), then times:

* ``verify_log`` (what `hub audit verify` runs): every leaf recomputed from its row, every
  checkpoint root rebuilt and its signature checked — entries/s and total seconds;
* one inclusion proof (``hub.audit.query.inclusion``: O(log N) stored subtree hashes, ``hub.audit.nodes``);
* one consistency proof N/2 → N (``hub.audit.query.consistency``) and its verification.

The database is dropped afterwards, also on failure or Ctrl-C, unless ``--keep``: then later runs
time the same data with ``--db NAME`` (``--repeat R``: R verify runs, the median is the result),
and ``--drop NAME`` removes it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import resource
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
from cryptography import x509

from hub.audit import merkle, query
from hub.audit.checkpoint import Checkpoint
from hub.audit.entry import canonical_details, canonical_entry, entry_leaf
from hub.audit.sealer import seal
from hub.audit.verify import verify_log
from hub.pki import devpki
from hub.pki.identity import Identity
from hub.store.engine import make_engine, migrate

G22, H41, H44, HUB = "000.00.00.G22", "000.00.00.H41", "000.00.00.H44", "000.00.99.G22"
START = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)  # the first entry's time
COLUMNS = ("seq", "at", "event", "actor", "document_id", "sender", "sha256", "reason", "message", "details", "leaf_hash")


def documents(n_entries: int, start: datetime, first_doc: int = 1):
    """Audit rows (dicts without seq) as the pipeline writes them, one document after another:
    received, accepted for two recipients, two deliveries, a status 01 and its delivery — and
    one package in twenty refused (with its answer delivered)."""
    i = first_doc - 1
    made = 0
    while made < n_entries:
        i += 1
        at = start + timedelta(milliseconds=7 * i)
        doc_id = f"{G22},2026/11/27,{i}/VPCP-TTĐT"
        sha = hashlib.sha256(b"package %d" % i).hexdigest()
        if i % 20 == 0:
            rows = [
                ("package.refused", G22, doc_id, G22, sha, "authority.not_competent",
                 f"{H44} does not accept document type 9 (Văn bản)",
                 {"size": 12_345, "stage": "authority", "element": "MessageHeader/DocumentType",
                  "adapter_system": G22, "exchange": "edxml.submit", "routing_key": ""}),
                ("refusal.delivered", HUB, f"refusal:{sha[:16]}", HUB, hashlib.sha256(sha.encode()).hexdigest(),
                 "authority.not_competent", None, {"recipient": G22, "inbox": f"inbox.{G22}.urgent"}),
            ]
        else:
            st_id = f"status:{doc_id}:01:20261127090000"
            st_sha = hashlib.sha256(b"status %d" % i).hexdigest()
            rows = [
                ("package.received", G22, doc_id, G22, sha, None, None, {"size": 12_345, "kind": "edoc", "legacy_sha1": False}),
                ("package.accepted", G22, doc_id, G22, sha, None, None,
                 {"recipients": [[H41, H41], [H44, H44]], "type": "1", "priority": i % 3}),
                ("edoc.delivered", HUB, doc_id, G22, sha, None, None, {"recipient": H41, "inbox": f"inbox.{H41}"}),
                ("edoc.delivered", HUB, doc_id, G22, sha, None, None, {"recipient": H44, "inbox": f"inbox.{H44}"}),
                ("package.received", H41, st_id, H41, st_sha, None, None, {"size": 2_100, "kind": "status"}),
                ("status.recorded", H41, doc_id, H41, st_sha, None, None,
                 {"status": "01", "original_sender": G22, "recipients": [G22]}),
                ("status.delivered", HUB, st_id, H41, st_sha, None, None, {"recipient": G22, "inbox": f"inbox.{G22}"}),
            ]
        for r in rows:
            if made == n_entries:
                return
            made += 1
            yield at, r
            at += timedelta(microseconds=1357)


def make_records(first_seq: int, n: int, start: datetime, first_doc: int = 1) -> list[tuple]:
    out = []
    for k, (at, (event, actor, doc_id, sender, sha, reason, message, details)) in enumerate(
            documents(n, start, first_doc)):
        seq = first_seq + k
        leaf = entry_leaf(seq, at, event, actor, doc_id, sender, sha, reason, message, details).hex()
        out.append((seq, at, event, actor, doc_id, sender, sha, reason, message, canonical_details(details), leaf))
    return out


def stored_packages(rows: list[tuple], at: datetime) -> list[tuple]:
    """The packages rows the entries name (``hub audit verify`` re-hashes them): the benchmark's
    package bytes are ``b"package <i>"`` / ``b"status <i>"``, which is what their SHA-256 covers."""
    out, seen = [], set()
    for r in rows:
        if r[2] == "package.received" and r[6] not in seen:
            seen.add(r[6])
            kind = b"status" if r[4].startswith("status:") else b"package"
            i = int(r[4].split(",", 2)[2].split("/", 1)[0])
            data = b"%s %d" % (kind, i)
            assert hashlib.sha256(data).hexdigest() == r[6]
            out.append((r[6], len(data), data, at))
    return out


async def insert(dsn: str, rows: list[tuple], batch: int = 100_000) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(0, len(rows), batch):
            await conn.copy_records_to_table("records", records=rows[i:i + batch], columns=list(COLUMNS))
        pkgs = stored_packages(rows, rows[0][1])
        for i in range(0, len(pkgs), batch):
            await conn.copy_records_to_table("packages", records=pkgs[i:i + batch],
                                             columns=["sha256", "size", "data", "stored_at"])
    finally:
        await conn.close()


async def fill(engine, dsn: str, n: int, name: str):
    """N entries in two halves, each sealed: (hub certificate, checkpoint at N/2, checkpoint at N)."""
    ca_cert, ca_key = devpki.make_ca("benchmark root")
    cert, key = devpki.issue(ca_cert, ca_key, "benchmark hub")
    hub = Identity(HUB, key, cert)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s); "
          f"PostgreSQL database {name}", flush=True)
    half = n // 2
    start = START
    t0 = time.perf_counter()
    first = make_records(1, half, start)
    second = make_records(half + 1, n - half, start + timedelta(days=30), first_doc=half)  # ids past the first half's
    t1 = time.perf_counter()
    sample = [canonical_entry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]))
              for r in first[:1000]]
    print(f"made {n:,} entries with leaf hashes in {t1 - t0:.1f} s "
          f"(canonical entries of ~{sum(map(len, sample)) / len(sample):.0f} bytes)", flush=True)
    await insert(dsn, first)
    t2 = time.perf_counter()
    c1 = await seal(engine, hub)
    t3 = time.perf_counter()
    await insert(dsn, second)
    t4 = time.perf_counter()
    c2 = await seal(engine, hub)
    t5 = time.perf_counter()
    del first, second
    print(f"inserted (COPY) {n:,} entries in {t2 - t1 + t4 - t3:.1f} s; sealed {c1.size:,} in {t3 - t2:.1f} s, "
          f"then {c2.size:,} in {t5 - t4:.1f} s (folding the new half into the stored frontier)", flush=True)
    async with engine.begin() as conn:  # committed: in a transaction rolled back, ANALYZE leaves no statistics
        await conn.exec_driver_sql("ANALYZE records")
        await conn.exec_driver_sql("ANALYZE packages")
    return cert, c1, c2


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


async def run(n: int, admin_dsn: str, db: str | None = None, keep: bool = False, repeat: int = 1) -> int:
    name = db or f"hub_bench_audit_{uuid.uuid4().hex[:8]}"
    base = admin_dsn.rsplit("/", 1)[0]
    dsn = f"{base}/{name}"
    if db is None:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    engine = make_engine("postgresql+asyncpg://" + dsn.split("://", 1)[1], pool_size=2)
    try:
        await migrate(engine)
        pem = Path(tempfile.gettempdir()) / f"{name}.hub.pem"  # a kept database's signing certificate
        if db is None:
            cert, c1, c2 = await fill(engine, dsn, n, name)
            if keep:
                pem.write_bytes(devpki.cert_pem(cert))
        else:
            cert = x509.load_pem_x509_certificate(pem.read_bytes())
            async with engine.connect() as conn:
                texts = (await conn.exec_driver_sql("SELECT text FROM checkpoints ORDER BY size")).scalars().all()
                n = (await conn.exec_driver_sql("SELECT max(seq) FROM records")).scalar()
            c1, c2 = Checkpoint.from_text(texts[0]), Checkpoint.from_text(texts[-1])
            print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s); "
                  f"kept PostgreSQL database {name}: {n:,} entries", flush=True)
        print(f"load average before verify: {_load()}", flush=True)

        def progress(done: int, total: int, stage: str = "entries") -> None:
            if stage == "entries" and (done % 200_000 < 20_000 or done == total):
                print(f"\r  verify: {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

        runs = []
        for _ in range(repeat):
            cpu0, kids0 = time.process_time(), _children_cpu()
            rep = await verify_log(engine, cert, progress=progress)
            cpu, kids = time.process_time() - cpu0, _children_cpu() - kids0
            print(file=sys.stderr)
            runs.append(rep.seconds)
            print(f"hub audit verify: {rep.entries:,} entries, {rep.checkpoints} checkpoints in {rep.seconds:.1f} s "
                  f"= {rep.entries / rep.seconds:,.0f} entries/s, CPU {cpu:.1f} s here + {kids:.1f} s in worker "
                  f"processes (load average {_load()}); {'OK' if rep.ok else rep.problems[0]}", flush=True)
        ok = rep.ok and rep.entries == n and rep.checkpoints == 2
        rep.seconds = statistics.median(runs)
        if repeat > 1:
            print(f"verify over {repeat} runs: median {rep.seconds:.1f} s, min {min(runs):.1f} s, "
                  f"max {max(runs):.1f} s", flush=True)

        # the same through the command an operator runs (process start, migrations check, progress on stderr)
        with tempfile.TemporaryDirectory() as tmp:
            cert_file = Path(tmp) / "hub.pem"
            cert_file.write_bytes(devpki.cert_pem(cert))
            env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
            env.update(HUB_DATA_DIR=tmp, HUB_DATABASE_URL=dsn, HUB_CERT_FILE=str(cert_file), HUB_ORGAN_ID=HUB)
            t = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub.cli", "audit", "verify", env=env,
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            wall = time.perf_counter() - t
        progress_lines = [line for line in err.decode().splitlines() if "verified" in line]
        print(f"`hub audit verify` (CLI): exit {proc.returncode} in {wall:.1f} s wall; it printed: "
              f"{out.decode().splitlines()[0] if out else '(nothing)'}; {len(progress_lines)} progress lines on stderr",
              flush=True)
        ok = ok and proc.returncode == 0

        seq = n * 2 // 3
        t6 = time.perf_counter()
        proof = await query.inclusion(engine, seq)
        t7 = time.perf_counter()
        good = merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), seq - 1, c2.size,
                                       [bytes.fromhex(p) for p in proof["path"]], c2.root)
        print(f"inclusion proof of entry {seq:,} in the tree of {c2.size:,}: {len(proof['path'])} hashes "
              f"in {t7 - t6:.2f} s (from stored subtree hashes), verifies: {good}", flush=True)
        t8 = time.perf_counter()
        cproof = await query.consistency(engine, c1.size, c2.size)
        t9 = time.perf_counter()
        cgood = merkle.verify_consistency(c1.size, c2.size, c1.root, c2.root, cproof)
        print(f"consistency proof {c1.size:,} -> {c2.size:,}: {len(cproof)} hashes in {t9 - t8:.2f} s, "
              f"verifies: {cgood}", flush=True)
        probe = f"{G22},2026/11/27,{n // 20 + 1}/VPCP-TTĐT"
        for label, kw in (("by DocumentId", {"document_id": probe}),
                          ("refusals by reason prefix, newest 50", {"event": "package.refused", "reason": "authority."}),
                          ("one sender, one day", {"sender": H41, "since": START + timedelta(days=30),
                                                   "until": START + timedelta(days=31)})):
            t = time.perf_counter()
            total, rows = await query.search(engine, **kw, limit=50)
            print(f"search {label}: {total:,} matching, {len(rows)} shown, in {time.perf_counter() - t:.3f} s", flush=True)
        assert Checkpoint.from_text(c2.to_text()).verify(cert)
        target = 10.0  # issue 14
        print(f"result: verify {rep.seconds:.1f} s for {n:,} entries (target < {target:.0f} s): "
              f"{'within target' if rep.seconds < target else 'OVER TARGET'}", flush=True)
        return 0 if ok and good and cgood else 1
    finally:
        await engine.dispose()
        if keep or db:
            print(f"kept {name}: run again with --db {name}; drop it with --drop {name}", file=sys.stderr)
        else:
            await drop(admin_dsn, name)


async def drop(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()
    (Path(tempfile.gettempdir()) / f"{name}.hub.pem").unlink(missing_ok=True)
    print(f"dropped {name}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--pg", default=os.environ.get("HUB_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="an admin connection that may CREATE/DROP DATABASE")
    ap.add_argument("--repeat", type=int, default=1, help="run verify this many times; the median is the result")
    ap.add_argument("--keep", action="store_true", help="keep the database (to time later runs on the same data)")
    ap.add_argument("--db", metavar="NAME", help="time a database an earlier --keep run made (kept too)")
    ap.add_argument("--drop", metavar="NAME", help="drop a kept database and stop")
    args = ap.parse_args()
    if args.drop:
        if not args.drop.startswith("hub_bench_audit_"):
            ap.error("--drop only drops this benchmark's databases (hub_bench_audit_…)")
        asyncio.run(drop(args.pg, args.drop))
        return 0
    if args.db and not args.db.startswith("hub_bench_audit_"):
        ap.error("--db takes a database this benchmark kept (hub_bench_audit_…)")
    if args.n < 2:
        ap.error("--n must be at least 2")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: the database is still dropped
    try:
        return asyncio.run(run(args.n, args.pg, args.db, args.keep, args.repeat))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
