"""National size in PostgreSQL: 10 million audit entries and 1 million documents, then the
console's pages, the audit search, the follow-up report, an evidence bundle and an inclusion
proof timed against them (issue 15, "National size").

    .venv/bin/python benchmarks/national_db.py [--scale 1.0] [--requests 50] [--keep]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

``--scale 1`` is 10,000,000 entries / 1,000,000 documents; ``--scale 0.1`` a tenth of that.

Fill (fast, and valid for the hub's own code): a fresh database ``hub_bench_national_<random>``
migrated to the head *before* this issue's indexes (``0024_blobs``); its secondary indexes and
foreign keys are dropped, the rows COPYed (asyncpg ``copy_records_to_table``), then the same
index and constraint definitions restored, as a bulk load would. The documents are edocs from
a few hundred agencies (a hundred of them connected systems), each to two recipients, over the
last 60 days; each recipient answers as agencies do (most "06" handled directly, some "01"
received first, a few returned "02" or never), a tenth carry a DueDate (so some are overdue),
one package in fifty is refused. Every event is an audit entry in time order exactly as the
pipeline writes them (``package.received``/``accepted``, ``edoc.delivered`` per recipient,
``package.received``/``status.recorded``/``status.delivered`` per status, ``package.refused``),
its leaf hash ``hub.audit.entry.entry_leaf``; the Merkle subtree hashes (``merkle_nodes``) are
folded by the sealer's own ``hub.audit.sealer.fold`` and a checkpoint signed every 50,000
entries, as the sealer would. The chain is checked afterwards through ``hub.audit.nodes``
(inclusion proofs of sampled entries verified against the signed root); ``--verify`` also runs
``hub audit verify``'s full check (minutes at full size).

Measure: the real aiohttp app (API + console) in this process on a free port, an admin signed in
through the console's form and by bearer token, ``--requests`` GETs each (p50, p95, max):
the console's overview, documents list, one document, the audit search page (by sender; by
event and date range; by part of a DocumentId), the Quá hạn page (everyone; one agency), the
follow-up report (one agency, this month; everyone, last 7 days; its CSV), the audit search API
(by DocumentId, by a DocumentId prefix, by sender, by event and date range, by recipient), the
follow-up report API, an evidence bundle (the API's: seal, export, log the export) and an inclusion proof
(``hub.audit.query.inclusion``, what ``hub audit prove`` reads). EXPLAIN (ANALYZE, BUFFERS) of
the main queries behind them is printed. Then the schema is upgraded to head (this issue's
``0027_national_indexes``), ANALYZEd, and the same requests timed again: before/after in one run.

The database is dropped at the end (also on failure or Ctrl-C) unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import heapq
import json
import os
import platform
import random
import re
import signal
import statistics
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from hub.audit import checkpoint as cp  # noqa: E402
from hub.audit import merkle, nodes, query  # noqa: E402
from hub.audit.entry import entry_leaf  # noqa: E402
from hub.audit.merkle import CompactRange  # noqa: E402
from hub.audit.sealer import fold, origin_for  # noqa: E402
from hub.followup.rules import VN  # noqa: E402
from hub.pki import devpki  # noqa: E402
from hub.pki.identity import Identity  # noqa: E402
from hub.registry.fold import fold as fold_name  # noqa: E402
from hub.store.engine import make_engine, migrate  # noqa: E402

from benchmarks import national_before  # noqa: E402

HUB = "000.00.99.G22"
BEFORE = "0024_blobs"  # the head before this issue's indexes
ENTRIES, DOCUMENTS = 10_000_000, 1_000_000
AGENCIES, SYSTEMS = 600, 100
DAYS = 60
ONLY: str | None = None  # --only: measure the requests whose name holds one of these words
MIN_REQUESTS, BUDGET = 10, 30.0  # each measured request: at least 10 times, more while under 30 s in all
CHUNK = 50_000  # entries per COPY, and a signed checkpoint after each (the sealer's own chunk)
FILLED = ("records", "merkle_nodes", "checkpoints", "documents", "deliveries", "status_history", "packages",
          "agencies")
PROVINCES = ("Hà Nội", "Hải Phòng", "Đà Nẵng", "Cần Thơ", "Lào Cai", "Nghệ An", "Thanh Hóa", "Huế", "Quảng Ninh",
             "Bình Dương", "Đồng Nai", "Khánh Hòa", "Lâm Đồng", "An Giang", "Cà Mau")
KINDS = (("1", "Công văn"), ("2", "Quyết định"), ("3", "Tờ trình"), ("4", "Báo cáo"), ("5", "Thông báo"))


def log(*a) -> None:
    print(*a, flush=True)


# --- fill -------------------------------------------------------------------------------------

def agency_codes() -> list[str]:
    return [f"000.00.{i // 99:02d}.{'G' if i % 2 else 'H'}{i % 99 + 1:02d}" for i in range(AGENCIES)]


class Filler:
    """Deterministic national-size data, written in time order as the pipeline would have."""

    def __init__(self, documents: int, identity: Identity, now: datetime, seed: int = 15):
        self.n = documents
        self.identity = identity
        self.now = now
        self.start = now - timedelta(days=DAYS)
        self.rng = random.Random(seed)
        self.codes = agency_codes()
        weights = [1 / (k + 1) ** 0.8 for k in range(AGENCIES)]  # a few agencies send and receive most
        self.cum = list(__import__("itertools").accumulate(weights))
        self.heap: list = []
        self.tie = 0
        self.seq = 0
        self.frontier = CompactRange()
        self.status_doc = documents  # status documents get ids after the edocs
        self.delivery = 0
        self.history = 0
        self.rows = {k: [] for k in ("records", "merkle_nodes", "documents", "deliveries", "status_history",
                                     "packages", "checkpoints")}
        self.counts = dict.fromkeys(self.rows, 0)
        self.samples: list[dict] = []  # documents the measurements ask about

    def pick(self, avoid=()) -> str:
        while True:
            code = self.codes[self.rng.choices(range(AGENCIES), cum_weights=self.cum)[0]]
            if code not in avoid:
                return code

    def event(self, at: datetime, event: str, **kw) -> None:
        self.tie += 1
        heapq.heappush(self.heap, (at, self.tie, event, kw))

    def package(self, sha: str, size: int, at: datetime, body: bytes) -> None:
        self.rows["packages"].append((sha, size, body, at))

    def document(self, i: int) -> None:
        rng = self.rng
        t = self.start + timedelta(seconds=(i + rng.random()) * DAYS * 86400 / self.n)
        sender = self.pick()
        r1 = self.pick((sender,))
        r2 = self.pick((sender, r1))
        day = t.astimezone(VN).date()
        doc_id = f"{sender},{day:%Y/%m/%d},{i + 1}"
        body = f"<edXMLEnvelope doc='{doc_id}'/>".encode()
        sha = hashlib.sha256(body).hexdigest()
        kind, type_name = KINDS[i % len(KINDS)]
        priority = 0 if rng.random() < 0.8 else rng.randint(1, 4)
        due = day + timedelta(days=rng.randint(3, 15)) if rng.random() < 0.10 else None
        adapter = f"adapter.{sender}"
        self.package(sha, len(body), t, body)
        self.rows["documents"].append((i + 1, sender, doc_id, "edoc", sha, kind, priority,
                                       f"V/v triển khai nhiệm vụ số {i + 1} tại {PROVINCES[i % len(PROVINCES)]}",
                                       None, None, adapter, False, t, "signature", None, due, f"{i + 1}/{sender[-3:]}",
                                       type_name))
        self.event(t, "package.received", actor=adapter, document_id=doc_id, sender=sender, sha256=sha,
                   details={"size": len(body), "kind": "edoc", "legacy_sha1": False,
                            "authenticated_by": "signature"})
        self.event(t, "package.accepted", actor=adapter, document_id=doc_id, sender=sender, sha256=sha,
                   details={"recipients": [[r1, r1], [r2, r2]], "type": kind, "priority": priority,
                            "authenticated_by": "signature"})
        delivered = t + timedelta(milliseconds=150 + rng.randint(0, 300))
        sample = {"id": doc_id, "sender": sender, "recipients": [r1, r2], "due": due}
        for r in (r1, r2):
            self.event(delivered, "edoc.delivered", actor="relay", document_id=doc_id, sender=sender, sha256=sha,
                       details={"recipient": r, "inbox": f"inbox.{r}"})
            self.delivery += 1
            status, updated = None, delivered
            for code, at in self.answers(t, due):
                if at >= self.now:
                    break
                self.status_doc += 1
                self.history += 1
                sid = f"{r},{at.astimezone(VN).date():%Y/%m/%d},S{self.status_doc}"
                sbody = f"<edXMLEnvelope status='{sid}' code='{code}'/>".encode()
                ssha = hashlib.sha256(sbody).hexdigest()
                self.package(ssha, len(sbody), at, sbody)
                self.rows["documents"].append((self.status_doc, r, sid, "status", ssha, None, 0, None, i + 1, code,
                                               f"adapter.{r}", False, at, "signature", None, None, None, None))
                self.rows["status_history"].append((self.history, self.delivery, code, r, None, self.status_doc, at))
                self.event(at, "package.received", actor=f"adapter.{r}", document_id=sid, sender=r, sha256=ssha,
                           details={"size": len(sbody), "kind": "status", "authenticated_by": "signature"})
                self.event(at, "status.recorded", actor=f"adapter.{r}", document_id=doc_id, sender=r, sha256=ssha,
                           details={"status": code, "original_sender": sender, "recipients": [sender],
                                    "authenticated_by": "signature"})
                self.event(at + timedelta(milliseconds=200), "status.delivered", actor="relay", document_id=sid,
                           sender=r, sha256=ssha, details={"recipient": sender, "inbox": f"inbox.{sender}"})
                status, updated = code, at
            self.rows["deliveries"].append((self.delivery, i + 1, r, r, status, updated))
        if i % 50 == 49:  # a refused package (no document row)
            bad = f"{sender},{day:%Y/%m/%d},R{i + 1}"
            rbody = f"<edXMLEnvelope refused='{bad}'/>".encode()
            rsha = hashlib.sha256(rbody).hexdigest()
            self.package(rsha, len(rbody), t, rbody)
            self.event(t, "package.received", actor=adapter, document_id=bad, sender=sender, sha256=rsha,
                       details={"size": len(rbody), "kind": "edoc", "legacy_sha1": False, "authenticated_by": "signature"})
            self.event(t, "package.refused", actor=adapter, document_id=bad, sender=sender, sha256=rsha,
                       reason=("signature.invalid", "recipient.unknown", "schema.invalid")[i % 3],
                       message="the package was refused", details={"stage": "checks"})
        if i % max(1, self.n // 200) == 0:
            self.samples.append(sample)
        self.emit(t)

    def answers(self, t: datetime, due: date | None) -> list[tuple[str, datetime]]:
        """The statuses one recipient sends back, and when."""
        rng = self.rng
        u = rng.random()
        first = t + timedelta(minutes=rng.uniform(5, 600))
        handled = t + timedelta(hours=rng.expovariate(1 / (36 if due else 72)))
        if u < 0.02:
            return []
        if u < 0.05:
            return [("01", first)]
        if u < 0.17:
            return [("01", first), ("06", max(handled, first + timedelta(minutes=1)))]
        if u < 0.98:
            return [("06", handled)]
        return [("02", handled)]

    def emit(self, upto: datetime) -> None:
        while self.heap and self.heap[0][0] <= upto:
            at, _tie, event, kw = heapq.heappop(self.heap)
            self.seq += 1
            e = {"actor": None, "document_id": None, "sender": None, "sha256": None, "reason": None,
                 "message": None, "details": None, **kw}
            leaf = entry_leaf(self.seq, at, event, e["actor"], e["document_id"], e["sender"], e["sha256"],
                              e["reason"], e["message"], e["details"]).hex()
            self.rows["records"].append((self.seq, at, event, e["actor"], e["document_id"], e["sender"], e["sha256"],
                                         e["reason"], e["message"], json.dumps(e["details"]), leaf))

    def finish(self) -> None:
        self.emit(self.now)

    def seal_chunk(self, rows: list[tuple]) -> None:
        """The sealer's fold over the chunk (its perfect subtrees to store) and a signed checkpoint."""
        done, gap = fold(self.frontier, [(r[0], r[10]) for r in rows])
        assert gap is None, gap
        self.rows["merkle_nodes"] += [(lv, ix, h.hex()) for lv, ix, h in done]
        signed = cp.sign(self.identity.key, origin=origin_for(HUB), size=self.frontier.size,
                         root=self.frontier.root(), at=rows[-1][1] + timedelta(seconds=1),
                         key_id=cp.key_id_for(self.identity.cert))
        self.rows["checkpoints"].append((signed.size, signed.root.hex(), signed.at, signed.key_id, signed.to_text(),
                                         self.frontier.to_json()))


COLUMNS = {
    "records": ("seq", "at", "event", "actor", "document_id", "sender", "sha256", "reason", "message", "details",
                "leaf_hash"),
    "merkle_nodes": ("level", "idx", "hash"),
    "checkpoints": ("size", "root", "at", "key_id", "text", "frontier"),
    "documents": ("id", "sender", "document_id", "kind", "sha256", "doc_type", "priority", "subject", "refers_to",
                  "status_code", "adapter_user", "legacy_sha1", "received_at", "authenticated_by", "business_type",
                  "due_date", "code", "type_name"),
    "deliveries": ("id", "document", "recipient", "system", "status", "updated_at"),
    "status_history": ("id", "delivery", "status_code", "actor", "description", "status_document", "at"),
    "packages": ("sha256", "size", "data", "stored_at"),
}


async def drop_for_load(conn) -> list[str]:
    """Drop the filled tables' secondary indexes and foreign keys; return the SQL that restores them."""
    restore = []
    for name, table, definition in await conn.fetch(
            "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::regclass::text = ANY($1)", list(FILLED)):
        restore.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, definition in await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' "
            "AND i.tablename = ANY($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            list(FILLED)):
        restore.insert(0, definition)  # indexes first, constraints after
        await conn.execute(f'DROP INDEX "{name}"')
    return restore


async def fill(dsn: str, documents: int, identity: Identity) -> Filler:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    f = Filler(documents, identity, now)
    conn = await asyncpg.connect(dsn)
    try:
        codes = f.codes
        await conn.copy_records_to_table("agencies", columns=[
            "code", "name", "name_folded", "active", "connected", "served_by", "profile", "created_at", "updated_at"],
            records=[(c, name, fold_name(name), True, k < SYSTEMS, None, "strict", now, now)
                     for k, c in enumerate(codes)
                     for name in [f"Sở Nội vụ {PROVINCES[k % len(PROVINCES)]} {k + 1}"]])
        restore = await drop_for_load(conn)
        t0 = time.perf_counter()
        last = t0
        pending: list[tuple] = []

        async def flush(final: bool = False) -> None:
            nonlocal pending
            pending += f.rows["records"]
            f.rows["records"] = []
            while len(pending) >= CHUNK or (final and pending):
                chunk, pending = pending[:CHUNK], pending[CHUNK:]
                f.seal_chunk(chunk)
                await conn.copy_records_to_table("records", records=chunk, columns=COLUMNS["records"])
                f.counts["records"] += len(chunk)
            for table in ("merkle_nodes", "checkpoints", "documents", "deliveries", "status_history", "packages"):
                if f.rows[table] and (final or len(f.rows[table]) >= CHUNK or table == "checkpoints"):
                    await conn.copy_records_to_table(table, records=f.rows[table], columns=COLUMNS[table])
                    f.counts[table] += len(f.rows[table])
                    f.rows[table] = []

        for i in range(documents):
            f.document(i)
            if len(f.rows["records"]) >= CHUNK:
                await flush()
                if time.perf_counter() - last >= 15:
                    last = time.perf_counter()
                    rate = f.counts["records"] / (last - t0)
                    log(f"  {i + 1:,}/{documents:,} documents, {f.counts['records']:,} entries "
                        f"({rate:,.0f} entries/s, {last - t0:.0f} s)")
        f.finish()
        await flush(final=True)
        log(f"  COPY done: {f.counts['records']:,} entries, {f.counts['documents']:,} documents rows "
            f"({documents:,} edocs), {f.counts['deliveries']:,} deliveries, {f.counts['status_history']:,} statuses, "
            f"{f.counts['merkle_nodes']:,} subtree hashes, {f.counts['checkpoints']:,} checkpoints in "
            f"{time.perf_counter() - t0:.0f} s")
        t = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for sql in restore:
            await conn.execute(sql)
        for table, column in (("documents", "id"), ("deliveries", "id"), ("status_history", "id")):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                               f"(SELECT max({column}) FROM {table}))")
        log(f"  indexes and foreign keys restored ({len(restore)} statements) in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        log(f"  VACUUM ANALYZE in {time.perf_counter() - t:.0f} s")
    finally:
        await conn.close()
    return f


async def downgrade_to(engine, revision: str) -> None:
    """A kept database measured again starts from the schema before this issue's indexes."""
    from alembic import command

    from hub.store.engine import alembic_config

    def _run(sync_conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, revision)

    async with engine.begin() as conn:
        head = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
        if head != revision:
            await conn.run_sync(_run)
            log(f"  downgraded {head} -> {revision}")


class Kept:
    """What the measurements need of a database filled by an earlier run (``--db``)."""

    def __init__(self, codes, samples, entries, identity):
        self.codes, self.samples, self.counts, self.identity = codes, samples, {"records": entries}, identity


async def kept(engine, identity: Identity) -> Kept:
    async with engine.connect() as conn:
        top = (await conn.exec_driver_sql("SELECT max(seq) FROM records")).scalar()
        n = (await conn.exec_driver_sql("SELECT max(id) FROM documents WHERE kind = 'edoc'")).scalar()
        rows = (await conn.exec_driver_sql(
            "SELECT d.document_id, d.sender, d.due_date, array_agg(dl.recipient ORDER BY dl.id) FROM documents d "
            "JOIN deliveries dl ON dl.document = d.id WHERE d.kind = 'edoc' AND d.id % $1 = 1 "
            "GROUP BY d.id ORDER BY d.id", (max(1, n // 200),))).all()
    return Kept(agency_codes(), [{"id": r[0], "sender": r[1], "due": r[2], "recipients": list(r[3])} for r in rows],
                top, identity)


async def check_chain(engine, f: Filler, verify: bool) -> None:
    """Inclusion proofs of sampled entries through hub.audit.nodes, verified against the signed root."""
    async with engine.connect() as conn:
        latest = await query.get_checkpoint(conn)
    signed = cp.Checkpoint.from_text(latest["text"])
    assert signed.verify(f.identity.cert) and signed.size == f.counts["records"]
    for seq in (1, 2, signed.size // 3, signed.size // 2 + 1, signed.size):
        proof = await query.inclusion(engine, seq)
        ok = merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), seq - 1, signed.size,
                                     [bytes.fromhex(p) for p in proof["path"]], signed.root)
        assert ok, f"inclusion of {seq} does not verify"
    log(f"  chain: checkpoint {signed.size:,} signature OK; inclusion proofs of 5 entries verify against its root")
    if verify:
        from hub.audit.verify import verify_log

        t = time.perf_counter()
        report = await verify_log(engine, f.identity.cert)
        log(f"  hub audit verify: {report} ({time.perf_counter() - t:.0f} s)")


# --- the follow-up query before this issue (measured as "before" in the same run) -------------

async def items_before(engine, f, *, open_due_by=None, limit=20_000):
    """hub.followup.query.items as it was before issue 15: the first answer of every copy from
    a GROUP BY over the whole status_history, joined to the copies selected."""
    from hub.followup import query as fq
    from hub.followup.rules import ANSWERS, CLOSED, Item
    from hub.store.tables import agencies, deliveries, documents, status_history

    answered = (sa.select(status_history.c.delivery, sa.func.min(status_history.c.at).label("at"))
                .where(status_history.c.status_code.in_(ANSWERS)).group_by(status_history.c.delivery).subquery())
    rcpt, snd = agencies.alias("rcpt"), agencies.alias("snd")
    q = (sa.select(deliveries.c.recipient, deliveries.c.status, deliveries.c.updated_at, documents.c.document_id,
                   documents.c.sender, documents.c.received_at, documents.c.due_date, documents.c.subject,
                   documents.c.code, documents.c.doc_type, documents.c.type_name, documents.c.priority,
                   answered.c.at.label("answered_at"), rcpt.c.name.label("recipient_name"),
                   snd.c.name.label("sender_name"))
         .select_from(deliveries.join(documents, documents.c.id == deliveries.c.document)
                      .outerjoin(answered, answered.c.delivery == deliveries.c.id)
                      .outerjoin(rcpt, rcpt.c.code == deliveries.c.recipient)
                      .outerjoin(snd, snd.c.code == documents.c.sender))
         .where(*fq._conditions(f)))
    if open_due_by is not None:
        q = q.where(documents.c.due_date.is_not(None), documents.c.due_date <= open_due_by,
                    sa.or_(deliveries.c.status.is_(None), deliveries.c.status.not_in(CLOSED)))
    q = q.order_by(documents.c.due_date, deliveries.c.id).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).mappings().all()
    return [Item(recipient=r["recipient"], document_id=r["document_id"], sender=r["sender"],
                 received_at=r["received_at"], due_date=fq._date(r["due_date"]), status=r["status"],
                 status_at=r["updated_at"], answered_at=r["answered_at"], subject=r["subject"] or "",
                 code=r["code"] or "", doc_type=r["doc_type"] or "", type_name=r["type_name"] or "",
                 priority=r["priority"] or 0, recipient_name=r["recipient_name"] or "",
                 sender_name=r["sender_name"] or "") for r in rows]


# --- measure ----------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))
    return values[k]


class Bench:
    def __init__(self, base: str, token: str, session: aiohttp.ClientSession, console: aiohttp.ClientSession,
                 requests: int):
        self.base = base
        self.auth = {"Authorization": f"Bearer {token}"}
        self.session = session
        self.console = console
        self.requests = requests
        self.budget = BUDGET
        self.results: dict[str, tuple[float, float, float, str]] = {}

    async def get(self, path: str, console: bool) -> tuple[int, int]:
        s = self.console if console else self.session
        async with s.get(self.base + path, headers=None if console else self.auth, allow_redirects=False) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
            return r.status, len(body)

    async def time(self, name: str, target: float, paths, console: bool = False, call=None) -> None:
        times, size = [], 0
        started = time.perf_counter()
        for k in range(self.requests):
            if k >= MIN_REQUESTS and time.perf_counter() - started > self.budget:
                break  # a slow page: enough requests to show it, not minutes of them
            t = time.perf_counter()
            if call is not None:
                await call(k)
            else:
                _, size = await self.get(paths(k), console)
            times.append((time.perf_counter() - t) * 1000)
        p50, p95 = statistics.median(times), pct(times, 95)
        met = "yes" if p95 <= target else "NO"
        self.results[name] = (p50, p95, max(times), met)
        log(f"  {name:<58} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  max {max(times):8.1f} ms  n={len(times)} "
            f"(≤ {target:.0f}: {met}){f'  {size:,} B' if size else ''}")


def cases(f: Filler, today: date) -> list[tuple]:
    """(name, target ms, path(k), console?) for every request measured."""
    s = f.samples
    some = lambda k: s[k % len(s)]  # noqa: E731
    top_sender, top_recipient = f.codes[0], f.codes[1]
    small = f.codes[AGENCIES // 2]
    month = f"from={today.replace(day=1):%d/%m/%Y}&to={today:%d/%m/%Y}"
    week = f"from={today - timedelta(days=6):%d/%m/%Y}&to={today:%d/%m/%Y}"
    iso_week = f"from={today - timedelta(days=6)}&to={today}"
    day = (today - timedelta(days=1)).strftime("%d/%m/%Y")
    since = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    q = lambda v: quote(v, safe="")  # noqa: E731
    return [
        ("console: overview /admin", 200, lambda k: "/admin", True),
        ("console: documents (latest 25)", 200, lambda k: "/admin/documents", True),
        ("console: one document's timeline", 200, lambda k: f"/admin/documents/{q(some(k)['id'])}", True),
        ("console: audit search, by sender (busiest)", 200, lambda k: f"/admin/audit?sender={q(top_sender)}", True),
        ("console: audit search, by sender (small agency)", 200, lambda k: f"/admin/audit?sender={q(small)}", True),
        ("console: audit search, refusals of one day", 200,
         lambda k: f"/admin/audit?event=package.refused&from={day}&to={day}", True),
        ("console: audit search, by recipient", 200, lambda k: f"/admin/audit?recipient={q(some(k)['recipients'][0])}",
         True),
        ("console: audit search, part of a DocumentId", 200,
         lambda k: f"/admin/audit?document={q(some(k)['id'].rsplit(',', 1)[1])}", True),
        # common parts, which match hundreds of thousands of entries: a day of the past week, an
        # agency code's last part (G02, H41...): the page is a short walk, the total is counted in time
        ("console: audit search, a common part of a DocumentId (a day)", 200,
         lambda k: f"/admin/audit?document={q(f'{today - timedelta(days=k % 7):%Y/%m/%d}')}", True),
        ("console: audit search, a common part of a DocumentId (a code's last part)", 200,
         lambda k: f"/admin/audit?document={q(f.codes[k % 20].rsplit('.', 1)[1])}", True),
        ("console: Quá hạn (overdue), everyone", 200, lambda k: "/admin/overdue", True),
        ("console: Quá hạn (overdue), one recipient", 200,
         lambda k: f"/admin/overdue?agency={q(some(k)['recipients'][1])}", True),
        ("console: Quá hạn (overdue), everyone, CSV of every copy (streamed)", 200,
         lambda k: "/admin/overdue?format=csv", True),
        ("console: follow-up report, one recipient, this month", 200,
         lambda k: f"/admin/report?agency={q(some(k)['recipients'][0])}&{month}", True),
        ("console: follow-up report, everyone, last 7 days", 200, lambda k: f"/admin/report?{week}", True),
        ("console: follow-up report CSV, everyone, last 7 days", 200, lambda k: f"/admin/report?{week}&format=csv",
         True),
        ("API: audit entries by document_id", 200, lambda k: f"/api/v1/audit/entries?document_id={q(some(k)['id'])}",
         False),
        ("API: audit entries by DocumentId prefix (one sender's day, document_id=…*)", 200,
         lambda k: f"/api/v1/audit/entries?document_id={q(some(k)['id'].rsplit(',', 1)[0] + ',*')}", False),
        ("API: audit entries by sender (busiest)", 200, lambda k: f"/api/v1/audit/entries?sender={q(top_sender)}",
         False),
        ("API: audit entries by event and date range (24 h)", 200,
         lambda k: f"/api/v1/audit/entries?event=status.recorded&since={since}&until={until}", False),
        ("API: audit entries by recipient", 200,
         lambda k: f"/api/v1/audit/entries?recipient={q(some(k)['recipients'][0])}", False),
        ("API: audit entries by recipient (busiest)", 200, lambda k: f"/api/v1/audit/entries?recipient={q(top_recipient)}",
         False),
        ("API: follow-up report JSON, one recipient, last 7 days", 200,
         lambda k: f"/api/v1/admin/followup/report?agency={q(some(k)['recipients'][0])}&{iso_week}", False),
        ("API: follow-up report JSON, everyone, last 7 days", 200, lambda k: f"/api/v1/admin/followup/report?{iso_week}",
         False),
        ("API: overdue JSON, everyone", 200, lambda k: "/api/v1/admin/followup/overdue", False),
        ("API: evidence bundle (seal, export, log the export)", 100,
         lambda k: f"/api/v1/audit/documents/{q(some(k)['id'])}/bundle", False),
    ]


async def measure(engine, f: Filler, base: str, token: str, requests: int, label: str) -> dict:
    log(f"\n== {label}: {requests} requests each ==")
    today = datetime.now(VN).date()
    async with aiohttp.ClientSession() as session, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as console:
        await sign_in(console, base, token)
        b = Bench(base, token, session, console, requests)
        only = [w.strip() for w in (ONLY or "").split(",") if w.strip()]
        for name, target, path, is_console in cases(f, today):
            if not only or any(w in name for w in only):
                await b.time(name, target, path, console=is_console)
        size = f.counts["records"]
        rng = random.Random(7)

        async def inclusion(k: int) -> None:
            seq = rng.randint(1, size)
            await query.inclusion(engine, seq)

        await b.time("inclusion proof of a random entry (hub.audit.query.inclusion)", 100, None, call=inclusion)
    return b.results


async def sign_in(console: aiohttp.ClientSession, base: str, token: str) -> None:
    """The console's form, as a person fills it (tests/web/dash.py)."""
    import re
    from html import unescape

    async with console.get(base + "/admin/login") as r:
        text = await r.text()
    csrf = unescape(re.search(r'name="csrf" value="([^"]+)"', text).group(1))
    async with console.post(base + "/admin/login", data={"token": token, "csrf": csrf, "next": "/admin"},
                            allow_redirects=False) as r:
        assert r.status == 303, (r.status, await r.text())


EXPLAINED = [
    ("overview: counters over the whole log", "data.counters"),
    ("overview: packages per minute (last hour)", "data.packages_per_minute"),
    ("overview: last refusals", "data.last_refusals"),
    ("overview: refusals by reason (24 h)", "data.refusals_by_reason"),
    ("overview: authentication by agency", "data.authentication_by_agency"),
    ("audit page: by sender", "audit.sender"),
    ("audit page: part of a DocumentId", "audit.document"),
    ("API search: by document_id", "search.document_id"),
    ("API search: by DocumentId prefix", "search.document_prefix"),
    ("API search: by recipient", "search.recipient"),
    ("API search: by recipient (busiest)", "search.recipient_busiest"),
    ("API search: by sender (busiest)", "search.sender_busiest"),
    ("API search: event + 24 h", "search.event"),
    ("Quá hạn: totals by recipient, everyone", "followup.overdue"),
    ("Quá hạn: first page, everyone", "followup.overdue_page"),
    ("report: everyone, 7 days", "followup.report"),
]


async def explain(engine, f: Filler, label: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the main queries behind the pages, captured as they run."""
    from hub.followup import overdue as od
    from hub.followup import query as fq
    from hub.followup.query import Filters
    from hub.web import audit as web_audit
    from hub.web import data

    log(f"\n== query plans ({label}) ==")
    today = datetime.now(VN).date()
    sample = f.samples[len(f.samples) // 2]
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        # SQLAlchemy writes "\nFROM": a space-only match explained none of its queries
        if statement.lstrip().upper().startswith("SELECT") and re.search(r"\bFROM\b", statement, re.I) \
                and "pg_" not in statement:
            captured.append((statement, parameters))
        elif statement.lstrip().upper().startswith("SET LOCAL"):  # planner settings the query runs with
            captured.append((statement, None))

    sync = engine.sync_engine
    runs = {
        "data.counters": lambda: data.counters(engine),
        "data.packages_per_minute": lambda: data.packages_per_minute(engine),
        "data.last_refusals": lambda: data.last_refusals(engine),
        "data.refusals_by_reason": lambda: data.refusals_by_reason(engine),
        "data.authentication_by_agency": lambda: data.authentication_by_agency(engine),
        "audit.sender": lambda: web_audit.search(engine, {"sender": f.codes[0]}, 50, 0),
        "audit.document": lambda: web_audit.search(engine, {"document": sample["id"].rsplit(",", 1)[1]}, 50, 0),
        "search.document_id": lambda: query.find(engine, document_id=sample["id"], count_cap=query.COUNT_CAP),
        "search.document_prefix": lambda: query.find(engine, document_id=sample["id"].rsplit(",", 1)[0] + ",*",
                                                     count_cap=query.COUNT_CAP),
        "search.recipient": lambda: query.find(engine, recipient=sample["recipients"][0], count_cap=query.COUNT_CAP),
        "search.recipient_busiest": lambda: query.find(engine, recipient=f.codes[1], count_cap=query.COUNT_CAP),
        "search.sender_busiest": lambda: query.find(engine, sender=f.codes[0], count_cap=query.COUNT_CAP),
        "search.event": lambda: query.find(engine, event="status.recorded",
                                             since=datetime.now(timezone.utc) - timedelta(days=1)),
        "followup.overdue": lambda: od.totals(engine, Filters(), today, 3),
        "followup.overdue_page": lambda: od.page(engine, Filters(), today, 3),
        "followup.report": lambda: fq.period_report(engine, today - timedelta(days=6), today, today),
    }
    for title, key in EXPLAINED:
        captured.clear()
        sa.event.listen(sync, "before_cursor_execute", capture)
        try:
            await runs[key]()
        finally:
            sa.event.remove(sync, "before_cursor_execute", capture)
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            async with raw.transaction():  # the SET LOCALs hold for the statements after them
                for statement, params in captured:
                    if statement.lstrip().upper().startswith("SET LOCAL"):
                        await raw.execute(statement)
                        log(f"\n-- {title}: {statement}")
                        continue
                    plan = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *(params or ()))
                    log(f"\n-- {title}\n" + "\n".join(r[0] for r in plan))


def summary(before: dict, after: dict | None) -> None:
    log("\n== summary (ms; p95 against the target) ==")
    head = f"{'request':<60} {'p50':>8} {'p95':>8} {'met':>4}"
    if after:
        head += f"   {'p50 after':>9} {'p95 after':>9} {'met':>4}"
    log(head)
    for name, (p50, p95, _mx, met) in before.items():
        line = f"{name:<60} {p50:8.1f} {p95:8.1f} {met:>4}"
        if after and name in after:
            a = after[name]
            line += f"   {a[0]:9.1f} {a[1]:9.1f} {a[3]:>4}"
        log(line)


async def run(args) -> int:
    from hub.api.app import ApiState, create_app, start_site
    from hub.api.users import add_user
    from hub.backbone.embedded import EmbeddedBroker
    from hub.backbone.factory import connect
    from hub.settings import Settings
    from hub.web import pages
    from tests.apienv import free_port

    documents = max(200, round(DOCUMENTS * args.scale))
    name = args.db or f"hub_bench_national_{uuid.uuid4().hex[:8]}"
    dsn = f"{args.pg.rsplit('/', 1)[0]}/{name}"
    if not args.db:
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    url = "postgresql+asyncpg://" + dsn.split("://", 1)[1]
    engine = make_engine(url)
    log(f"python {platform.python_version()}, {os.cpu_count()} CPU(s), load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; database {name}; scale {args.scale}: "
        f"{documents:,} documents, ~{documents * ENTRIES // DOCUMENTS:,} audit entries")
    runner = None
    # until the upgrade: the overview's counters and the recipient filter as they were, appends
    # without counting (their tables do not exist at 0024)
    old_queries = contextlib.ExitStack()
    old_queries.enter_context(national_before.patched())
    try:
        if args.head_only:
            old_queries.close()  # today's queries, on the schema at head
            await migrate(engine)
        elif not args.db:
            await migrate(engine, BEFORE)
        else:
            await downgrade_to(engine, BEFORE)
        ca_cert, ca_key = devpki.make_ca("benchmark root")
        cert, key = devpki.issue(ca_cert, ca_key, "benchmark hub")
        identity = Identity(HUB, key, cert)
        if args.db:
            f = await kept(engine, identity)
            log(f"  reusing {name}: {f.counts['records']:,} entries (checkpoints signed by another key)")
        else:
            log(f"\n== fill (schema at {BEFORE}) ==")
            t = time.perf_counter()
            f = await fill(dsn, documents, identity)
            log(f"  fill total {time.perf_counter() - t:.0f} s; load average {os.getloadavg()[0]:.1f}")
        async with engine.connect() as conn:
            sizes = (await conn.exec_driver_sql(
                "SELECT pg_size_pretty(pg_database_size(current_database())), "
                "pg_size_pretty(pg_total_relation_size('records'))")).one()
        log(f"  database {sizes[0]} (records with its indexes {sizes[1]})")
        if not args.db:
            await check_chain(engine, f, args.verify)

        token = await add_user(engine, f"bench-admin-{uuid.uuid4().hex[:6]}", "admin", None, actor="bench")
        settings = Settings.from_env({}, database_url=url, hub_organ_id=HUB, data_dir=Path("/tmp") / name)
        broker = EmbeddedBroker()
        backbone = await connect(None, broker=broker)
        state = ApiState(settings, engine, backbone, identity)
        app = create_app(state)
        pages.setup(app)
        port = free_port()
        runner = await start_site(app, "127.0.0.1", port)
        base = f"http://127.0.0.1:{port}"
        if settings.gc_freeze:  # as `hub serve` does once started (hub.heap): what is built so far stays
            from hub import heap

            heap.settle()

        from hub.followup import query as fq

        if args.head_only:
            async with engine.connect() as conn:
                head = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
            raw = await asyncpg.connect(dsn)
            await raw.execute("ANALYZE")
            await raw.close()
            if not args.no_explain:
                await explain(engine, f, f"schema {head}, today's code")
            summary(await measure(engine, f, base, token, args.requests, f"schema {head}, today's code"), None)
            log(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            return 0
        current = fq.items
        if not args.no_upgrade:
            fq.items = items_before  # the follow-up query as it was, with the schema as it was
        try:
            if not args.no_explain:
                await explain(engine, f, f"schema {BEFORE}, follow-up query before issue 15")
            before = await measure(engine, f, base, token, args.requests,
                                   f"before: schema {BEFORE}, follow-up query before issue 15 (API overdue; the "
                                   f"console's Quá hạn and the report run today's code, without 0035's indexes)")
        finally:
            fq.items = current
            old_queries.close()
        after = None
        if not args.no_upgrade:
            t = time.perf_counter()
            await migrate(engine)
            async with engine.connect() as conn:
                head = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
            if head != BEFORE:
                raw = await asyncpg.connect(dsn)
                await raw.execute("ANALYZE")
                await raw.close()
                log(f"\n== upgraded to {head} (+ ANALYZE) in {time.perf_counter() - t:.0f} s ==")
                if not args.no_explain:
                    await explain(engine, f, f"schema {head}, follow-up query of issue 15")
                after = await measure(engine, f, base, token, args.requests,
                                      f"after: schema {head}, follow-up query of issue 15")
        summary(before, after)
        log(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return 0
    finally:
        old_queries.close()
        if runner is not None:
            await runner.cleanup()
        await engine.dispose()
        if args.keep or args.db:
            log(f"kept database {name}")
        else:
            admin = await asyncpg.connect(args.pg)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
            log(f"dropped {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="1 = 10,000,000 entries and 1,000,000 documents")
    ap.add_argument("--requests", type=int, default=50,
                    help="requests per measured page or call (a page slower than 3 s: 10, as 30 s allow)")
    ap.add_argument("--pg", default=os.environ.get("HUB_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="an admin connection that may CREATE/DROP DATABASE")
    ap.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    ap.add_argument("--db", help="measure a database an earlier --keep run filled (kept afterwards)")
    ap.add_argument("--only", help="comma-separated words: measure only the requests whose name holds one")
    ap.add_argument("--no-explain", action="store_true", help="skip the query plans")
    ap.add_argument("--verify", action="store_true", help="also run hub audit verify's full check of the log")
    ap.add_argument("--no-upgrade", action="store_true", help="measure at 0024 only (no before/after)")
    ap.add_argument("--head-only", action="store_true",
                    help="with --db: upgrade it to head and measure today's code once (no 'before' pass)")
    args = ap.parse_args()
    if args.head_only and not args.db:
        ap.error("--head-only needs --db (a database an earlier --keep run filled)")
    if not 0 < args.scale <= 10:
        ap.error("--scale must be in (0, 10]")
    global ONLY
    ONLY = args.only
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
