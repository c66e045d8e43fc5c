"""The hub worker: intake → checks → one transaction (records, documents, outbox) → publish → ack.

Exactly-once recording, at-least-once delivery: the document, its deliveries, its records
and its outgoing messages (the outbox) commit in one transaction; the intake message is
acked only after that commit and after RabbitMQ confirmed every outgoing message. A
redelivered package finds its rows and only finishes its outbox.

Messages are processed in batches (one transaction and one round of confirms per batch),
in two overlapping stages: the checks of batch N+1 run in the check process while batch N
is recorded, published and acked. That is what makes the hub fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub import constants as C
from hub.backbone.base import Backbone, Incoming, Outgoing, inbox_key
from hub.edxml.model import Edoc, StatusPackage, format_timestamp, parse_timestamp
from hub.edxml.parser import parse_xml
from hub.errors import HubError
from hub.pipeline.checks import CheckContext, Verdict, relay_copy
from hub.pipeline.business import EVENTS, business_link, target_ids
from hub.pipeline.gate import IntakeGate
from hub.pipeline.intake import IntakeMessage
from hub.pipeline import large
from hub.store.blobs import BlobRef
from hub.pipeline.outage import backoff, is_transient
from hub.pipeline.status_rows import answered_business, copies
from hub.pipeline.statuses import decide_status, document_keys, saw_document
from hub.pipeline.refusal import build_refusal, sha256_hex
from hub.pipeline.runner import CheckRunner
from hub.pki.identity import Identity
from hub.registry.store import load_registry, load_trust, registry_version
from hub.settings import Settings
from hub.store import leader
from hub.store.engine import dialect_insert
from hub.audit.records import append_rows, record_row, utcnow
from hub.store.tables import deliveries, documents, outbox, packages, records, status_history

log = logging.getLogger("hub.worker")
UNRECORDABLE = "hub.unrecordable"


@dataclass
class Stats:
    accepted: int = 0
    refused: int = 0
    duplicates: int = 0
    dead: int = 0
    delivered: int = 0
    batches: int = 0
    retries: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_auth: dict[str, int] = field(default_factory=dict)  # accepted packages by authenticated_by
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("check", "record", "publish", "mark_sent", "ack"), 0.0))
    check_hist: dict = field(default_factory=lambda: {
        "bounds": [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, float("inf")],
        "counts": [0] * 10, "sum": 0.0})

    def outcomes(self) -> tuple:
        """The outcome counters, to take back what a batch counted if its transaction does not commit."""
        return self.accepted, self.refused, self.duplicates, self.dead, dict(self.by_reason), dict(self.by_auth)

    def restore(self, outcomes: tuple) -> None:
        self.accepted, self.refused, self.duplicates, self.dead, self.by_reason, self.by_auth = outcomes

    def observe_check(self, seconds: float) -> None:
        h = self.check_hist
        h["sum"] += seconds
        for i, b in enumerate(h["bounds"]):
            if seconds <= b:
                h["counts"][i] += 1
                break


@dataclass
class _Writes:
    """Rows one batch writes, flushed table by table (executemany), in FK order."""

    packages: dict[str, dict] = field(default_factory=dict)  # sha256 -> row
    outbox: list[tuple[dict, Outgoing]] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    pending: list[tuple[int, Outgoing]] = field(default_factory=list)  # earlier outbox rows to finish
    blobs: large.ByReference | None = None  # large outgoing bodies, stored by reference

    def package(self, data: bytes, sha: str, now: datetime) -> None:
        if sha not in self.packages:
            self.packages[sha] = {"sha256": sha, "size": len(data), "data": data, "stored_at": now}


class _NotTheMessage(Exception):
    """Recording failed for a reason that is not the package's own (its refusal fails too)."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:300] if str(e) else ""


def _message_id(h: dict) -> str:
    """Stable per copy; an AMQP message_id is a short string (255 bytes): longer ones are hashed."""
    text = f"{h.get(C.H_KIND)}:{h.get(C.H_SENDER)}:{h.get(C.H_DOCUMENT_ID)}:{h.get(C.H_RECIPIENT)}"
    if len(text.encode()) <= 255:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Worker:
    """One hub worker. Many may run against the same broker and database."""

    def __init__(self, settings: Settings, engine: AsyncEngine, backbone: Backbone, hub: Identity, *,
                 runner: CheckRunner | None = None, batch_size: int = 200, batch_wait: float = 0.005,
                 reload_interval: float = 2.0):
        self.settings = settings
        self.engine = engine
        self.backbone = backbone
        self.hub = hub
        self.runner = runner or CheckRunner(settings.check_processes)
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.reload_interval = reload_interval
        self.stats = Stats()
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._checked: asyncio.Queue[tuple[list[Incoming], list[Verdict]]] = asyncio.Queue(maxsize=1)
        self._sent: asyncio.Queue[list[tuple[int | None, Outgoing]]] = asyncio.Queue()
        self._marking = False
        self._tasks: list[asyncio.Task] = []
        self._version = -1
        self._last_reload = 0.0
        self._inboxes: set[str] = set()
        self._in_flight = 0
        self.sweeper = leader.Leadership(engine, leader.SWEEPER, "outbox sweeper")
        self.gate = IntakeGate(backbone, settings.prefetch, self._take, self._probe_database,
                               held=lambda: self._in_flight)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.backbone.declare_topology()
        await self.reload(force=True)
        await self.relay_pending(older_than=0)
        self._tasks = [
            asyncio.create_task(self._check_stage(), name="hub-check-stage"),
            asyncio.create_task(self._commit_stage(), name="hub-commit-stage"),
            asyncio.create_task(self._sent_stage(), name="hub-sent-stage"),
            asyncio.create_task(self._sweep_loop(), name="hub-outbox-sweeper"),
        ]
        await self.gate.apply()

    async def _take(self, m: IntakeMessage) -> None:
        self._in_flight += 1
        await self._queue.put(m)

    async def _probe_database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    @property
    def consuming(self) -> bool:
        """Subscribed to hub.intake now (not paused by an outage, stopped by maintenance or stopping)."""
        return self.gate.consuming

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work, finish in-flight batches within ``timeout``, then close.

        Every broker call here is bounded (``hub.backbone.base.bounded``): with the broker in
        trouble the worker still stops, leaving unsettled packages to RabbitMQ's redelivery."""
        log.info("stop: cancelling the intake subscription")
        self.gate.stopping = True
        await self.gate.apply()
        log.info("stop: waiting up to %.0f s for %d in-flight package(s)", timeout, self._in_flight)
        try:
            await asyncio.wait_for(self._drain(), timeout)
        except asyncio.TimeoutError:
            log.warning("stop: %d package(s) not finished in %.0f s; RabbitMQ will redeliver them",
                        self._in_flight, timeout)
        await self.gate.close_retired(force=True)
        for t in self._tasks:
            t.cancel()
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        await self.sweeper.release()
        log.info("stop: closing the check process(es)")
        self.runner.close()
        s = self.stats
        log.info("worker stopped: accepted=%d refused=%d duplicates=%d dead=%d delivered=%d batches=%d retries=%d "
                 "seconds=%s", s.accepted, s.refused, s.duplicates, s.dead, s.delivered, s.batches, s.retries,
                 {k: round(v, 2) for k, v in s.seconds.items()})

    async def _drain(self) -> None:
        while self._in_flight > 0 or not self._sent.empty() or self._marking:
            await asyncio.sleep(0.01)

    async def _reload_until_done(self) -> None:
        """Reload the snapshot, waiting out an outage; a failure that is no outage keeps the old one."""
        while True:
            try:
                await self.reload()
                return
            except Exception as e:  # noqa: BLE001 - classified below
                if not is_transient(e) or self.gate.stopping:
                    log.exception("registry reload failed; checking with the snapshot of version %d", self._version)
                    return
                await self.gate.outage("reloading the registry", e)

    async def reload(self, force: bool = False) -> None:
        """Reload the registry/trust snapshot when its version changed; declare new inboxes."""
        now = time.monotonic()
        if not force and now - self._last_reload < self.reload_interval:
            return
        self._last_reload = now
        async with self.engine.connect() as conn:
            version = await registry_version(conn)
        if version == self._version and not force:
            return
        from hub.context import schema_validator

        registry = await load_registry(self.engine)
        trust = await load_trust(self.engine)
        self.runner.set_context(CheckContext(
            registry, trust, schema_validator(), self.settings.max_package_bytes, self.settings.allow_sha1,
            relay_id=self.hub.organ_id,
        ))
        for a in registry.systems():
            if a.code not in self._inboxes:
                await self.backbone.declare_inbox(a.code)
                self._inboxes.add(a.code)
        self._version = version

    # --- stage 1: batch and check ---------------------------------------------------------

    def adapter_user(self, msg) -> str:
        """The broker-validated publisher, as the checks see it.

        The HTTP gateway publishes as the hub's own user with the calling agency in a header
        (it authenticated the caller); only the hub's connection can publish with that
        user_id, so no adapter can forge it. ``""`` = no user_id (refused).
        """
        user = msg.user_id or ""
        agency = (msg.headers or {}).get(C.H_GATEWAY_AGENCY)
        if agency and user == self.backbone.user:
            a = self.runner.context.registry.get(agency)
            return (a.amqp_user or a.code) if a is not None and a.connected else ""
        return user

    async def _next_batch(self) -> list[Incoming]:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
        return batch

    async def _check_stage(self) -> None:
        while True:
            batch = await self._next_batch()
            await self._reload_until_done()
            try:
                t0 = time.perf_counter()
                verdicts = await self._check(batch)
                self.stats.seconds["check"] += time.perf_counter() - t0
                for v in verdicts:
                    self.stats.observe_check(v.seconds)
            except Exception:  # noqa: BLE001 - a bug: the delivery limit dead-letters a poison batch
                log.exception("checks of a batch of %d failed; requeueing", len(batch))
                await self._requeue(batch)
                continue
            await self._checked.put((batch, verdicts))

    async def _check(self, batch: list[Incoming]) -> list[Verdict]:
        await large.resolve_intake(self.engine, batch)  # by-reference packages get their bytes
        items = [(m.message.body, self.adapter_user(m.message)) for m in batch]
        for attempt in range(1, 4):
            try:
                return await self.runner.check_many(items)
            except BrokenProcessPool:  # a check process died (OOM killer...): a new pool, same batch
                log.warning("the check process pool broke; starting a new one (attempt %d)", attempt)
                self.runner.set_context(self.runner.context)
        return await self.runner.check_many(items)

    # --- stage 2: record, publish, ack ----------------------------------------------------

    async def _commit_stage(self) -> None:
        while True:
            batch, verdicts = await self._checked.get()
            try:
                await self.commit(batch, verdicts)
            except Exception:  # noqa: BLE001 - a bug: one bad batch must not kill the worker
                log.exception("batch of %d failed; requeueing", len(batch))
                await self._requeue(batch)

    async def commit(self, batch: list[Incoming], verdicts: list[Verdict]) -> None:
        """Record (one transaction), publish (confirmed), ack.

        An outage (database or broker) is waited out with the batch held: nothing is requeued,
        so no outage counts towards the delivery limit. A redone transaction first looks for
        what an attempt that may have committed recorded, so nothing is recorded twice. A
        failure that is no outage belongs to a message: the batch is split and that message
        alone is refused (``hub.unrecordable``)."""
        sec = self.stats.seconds
        t1 = time.perf_counter()
        outgoing = await self._record_held(batch, verdicts)
        if outgoing is None:  # stopping during an outage: RabbitMQ redelivers what we held
            self._in_flight -= len(batch)
            return
        t2 = time.perf_counter()
        if outgoing and not await self._publish_held([o for _, o in outgoing]):
            self._in_flight -= len(batch)  # stopping: the redelivery (or the sweeper) finishes the outbox
            return
        t3 = time.perf_counter()
        for m in batch:
            try:
                await m.ack()
            except Exception as e:  # noqa: BLE001 - the connection is gone: RabbitMQ redelivers, we finish
                log.warning("ack failed (%s); the redelivery will find the package recorded", e)
        t4 = time.perf_counter()
        if outgoing:
            # Marking the outbox sent (and logging the deliveries) is off the critical path:
            # if the worker dies first, the rows are simply published again on restart.
            self._sent.put_nowait(outgoing)
        sec["record"] += t2 - t1
        sec["publish"] += t3 - t2
        sec["ack"] += t4 - t3
        self.stats.delivered += len(outgoing)
        self.stats.batches += 1
        self._in_flight -= len(batch)

    async def _record_held(self, batch: list[Incoming], verdicts: list[Verdict], *, retry: bool = False):
        """The batch's transaction, retried through outages; None only when stopping meanwhile."""
        systemic = 0
        while True:
            try:
                out = await self._record(batch, verdicts, retry=retry)
                if systemic:
                    await self.gate.held_back(False)
                return out
            except Exception as e:  # noqa: BLE001 - classified below
                if self.gate.stopping:
                    return None
                retry = True  # the failed attempt may have committed (a lost COMMIT reply)
                self.stats.retries += 1
                if is_transient(e):
                    await self.gate.outage(f"recording a batch of {len(batch)}", e)
                    continue
                if len(batch) > 1:
                    log.warning("recording a batch of %d failed (%s: %s); recording its packages one by one",
                                len(batch), type(e).__name__, _first_line(e))
                    out: list[tuple[int | None, Outgoing]] = []
                    for m, v in zip(batch, verdicts):
                        one = await self._record_held([m], [v], retry=retry)
                        if one is None:
                            return None
                        out += one
                    return out
                try:
                    return await self._record_unrecordable(batch[0], verdicts[0], e)
                except _NotTheMessage as failed:
                    # even its refusal cannot be recorded: the fault is the store's, not this
                    # package's (a trigger, a permission, a migration): hold it and take no more
                    systemic += 1
                    await self.gate.held_back(True, f"recording ({failed.cause})", systemic)

    async def _record_unrecordable(self, m: Incoming, v: Verdict, exc: BaseException):
        """One package whose own content fails the transaction: refuse it alone (audited, status 02).
        Raises ``_NotTheMessage`` when the refusal fails too; None when stopping during an outage."""
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        sender = v.sender if v.sender and len(v.sender) <= 13 else None
        refusal = replace(v, accepted=False, reason=UNRECORDABLE, stage="record", element=None, package=None,
                          routes=(), claimed_sender=sender, claimed_document_id=(v.document_id or "")[:255] or None,
                          message=f"the hub cannot record this package ({detail}); only this package is refused")
        while True:
            try:
                out = await self._record([m], [refusal], retry=True)
            except Exception as e:  # noqa: BLE001 - classified below
                if is_transient(e):
                    if self.gate.stopping:
                        return None
                    await self.gate.outage("recording a refusal", e)
                    continue
                raise _NotTheMessage(f"{type(e).__name__}: {_first_line(e)}") from e
            log.error("package %s from %s cannot be recorded (%s: %s); refused it alone",
                      v.document_id or v.sha256[:16], v.sender or m.message.user_id or "?", type(exc).__name__, detail)
            return out

    async def _publish_held(self, items: list[Outgoing]) -> bool:
        """Publish (confirmed), retrying with backoff while the broker is away; False only when stopping."""
        attempt = 0
        while True:
            try:
                await self.backbone.publish_many(items)
                return True
            except Exception as e:  # noqa: BLE001 - classified below
                if not is_transient(e):
                    raise
                attempt += 1
                self.stats.retries += 1
                if self.gate.stopping:
                    return False
                if attempt in (1, 5) or attempt % 20 == 0:
                    log.warning("publishing %d message(s) failed (attempt %d): %s; retrying", len(items), attempt, e)
                await asyncio.sleep(backoff(attempt, first=0.2))

    async def _requeue(self, batch: list[Incoming]) -> None:
        self.stats.retries += 1
        await asyncio.sleep(1.0)  # back off before the broker redelivers (delivery limit then dead-letters)
        for m in batch:
            try:
                await m.reject(requeue=True)
            except Exception:  # noqa: BLE001 - connection gone: RabbitMQ redelivers anyway
                pass
        self._in_flight -= len(batch)

    # --- recording ------------------------------------------------------------------------

    async def _record(self, batch: list[Incoming], verdicts: list[Verdict], *,
                      retry: bool = False) -> list[tuple[int | None, Outgoing]]:
        """Packages count as accepted/refused/... only once their batch's transaction committed.
        ``retry``: an earlier attempt may have committed; look for what it recorded first."""
        counted = self.stats.outcomes()
        try:
            return await self._record_batch(batch, verdicts, retry=retry)
        except BaseException:
            self.stats.restore(counted)
            raise

    async def _record_batch(self, batch: list[Incoming], verdicts: list[Verdict], *,
                            retry: bool = False) -> list[tuple[int | None, Outgoing]]:
        w = _Writes(blobs=large.ByReference(self.settings.by_reference_bytes))
        now = utcnow()
        async with self.engine.begin() as conn:
            existing = await self._existing(conn, verdicts)
            known = await self._known_refs(conn, verdicts)
            acts_on = await self._acts_on(conn, verdicts)
            accepted: list[tuple[Incoming, Verdict, dict]] = []
            statuses: list[tuple[Incoming, Verdict]] = []
            pending_for: list[str] = []
            for m, v in zip(batch, verdicts):
                if (retry or m.message.redelivered) and await self._already_recorded(conn, v, self.adapter_user(m.message), existing):
                    pending_for.append(v.sha256)
                elif v.accepted and isinstance(v.package, StatusPackage):
                    statuses.append((m, v))
                elif v.accepted:
                    row = self._edoc(m, v, existing, known, acts_on, w, now)
                    if row is not None:
                        accepted.append((m, v, row))
                else:
                    self._refuse(m, v, w, now)
            await self._flush_packages(conn, w)
            if accepted:
                ids = (await conn.execute(
                    documents.insert().returning(documents.c.id, sort_by_parameter_order=True),
                    [row for _, _, row in accepted])).scalars().all()
                self._deliveries_and_outbox(conn, accepted, ids, existing, w, now)
                await conn.execute(deliveries.insert(), [
                    {"document": doc_id, "recipient": r.recipient, "system": r.system, "status": None,
                     "updated_at": now}
                    for doc_id, (_, v, _) in zip(ids, accepted) for r in v.routes])
            for m, v in statuses:
                await self._status(conn, m, v, existing, w, now)
            await self._flush_packages(conn, w)
            if pending_for:
                await self._pending(conn, outbox.c.intake_sha256.in_(pending_for), w)
            out: list[tuple[int | None, Outgoing]] = list(w.pending)
            rows = [r for r, _ in w.outbox if r is not None]
            await w.blobs.flush(conn)
            if rows:
                oids = (await conn.execute(outbox.insert().returning(outbox.c.id, sort_by_parameter_order=True),
                                           rows)).scalars().all()
                it = iter(oids)
                out += [(next(it) if r is not None else None, o) for r, o in w.outbox]
            else:
                out += [(None, o) for _, o in w.outbox]
            if self.settings.audit:
                await append_rows(conn, w.records)
        return out

    async def _flush_packages(self, conn: AsyncConnection, w: _Writes) -> None:
        if w.packages:
            await large.store_packages(conn, w.packages.values(), self.settings.by_reference_bytes)
            await conn.execute(dialect_insert(conn, packages).on_conflict_do_nothing(), list(w.packages.values()))
            w.packages.clear()

    async def _existing(self, conn: AsyncConnection, verdicts: list[Verdict]) -> dict[tuple[str, str], dict]:
        keys = {(v.package.sender.organ_id, v.package.document_id) for v in verdicts if v.accepted}
        if not keys:
            return {}
        rows = (await conn.execute(
            sa.select(documents.c.id, documents.c.sender, documents.c.document_id, documents.c.sha256)
            .where(sa.tuple_(documents.c.sender, documents.c.document_id).in_(list(keys)))
        )).mappings().all()
        return {(r["sender"], r["document_id"]): dict(r) for r in rows}

    async def _known_refs(self, conn: AsyncConnection, verdicts: list[Verdict]) -> set[tuple[str, str, str]]:
        """(sender, DocumentId, who) for each ResponseFor that names a document ``who`` sent or received:
        a document someone never saw is as unknown to them as one that does not exist."""
        refs = {(rf.organ_id, rf.document_id, v.package.sender.organ_id) for v in verdicts
                if v.accepted and isinstance(v.package, Edoc) for rf in v.package.response_for}
        if not refs:
            return set()
        rows = (await conn.execute(sa.select(documents.c.id, documents.c.sender, documents.c.document_id).where(
            sa.tuple_(documents.c.sender, documents.c.document_id).in_([(o, d) for o, d, _ in refs])))).all()
        seen_by = {(r.sender, r.document_id): {r.sender} for r in rows}
        ids = {r.id: (r.sender, r.document_id) for r in rows}
        if ids:
            for doc, recipient, system in (await conn.execute(sa.select(
                    deliveries.c.document, deliveries.c.recipient, deliveries.c.system).where(
                    deliveries.c.document.in_(list(ids))))).all():
                seen_by[ids[doc]] |= {recipient, system}
        return {(o, d, who) for o, d, who in refs if who in seen_by.get((o, d), ())}

    async def _acts_on(self, conn: AsyncConnection, verdicts: list[Verdict]) -> dict[tuple[str, str], int]:
        """(sender, DocumentId) -> documents.id of the earlier documents the batch's revocations,
        updates and replacements act on (no query when there are none)."""
        refs = {(v.package.sender.organ_id, t) for v in verdicts if v.accepted and isinstance(v.package, Edoc)
                for t in target_ids(v.package)}
        if not refs:
            return {}
        rows = (await conn.execute(sa.select(documents.c.sender, documents.c.document_id, documents.c.id).where(
            sa.tuple_(documents.c.sender, documents.c.document_id).in_(list(refs)),
            documents.c.kind == "edoc"))).all()
        return {(r[0], r[1]): r[2] for r in rows}

    async def _already_recorded(self, conn: AsyncConnection, v: Verdict, user: str | None, existing: dict) -> bool:
        """A redelivered message whose outcome was committed before a crash."""
        if v.accepted:
            row = existing.get((v.package.sender.organ_id, v.package.document_id))
            if row is not None and row["sha256"] == v.sha256:
                return True
        # refused before the crash: by the checks, or by a stateful rule (conflict, transition...)
        hit = (await conn.execute(
            sa.select(records.c.seq).where(
                records.c.sha256 == v.sha256, records.c.event.in_(["package.refused", "package.dead"]),
                records.c.actor == user,
            ).limit(1)
        )).first()
        return hit is not None

    async def _pending(self, conn: AsyncConnection, where, w: _Writes) -> None:
        rows = (await conn.execute(
            sa.select(outbox, packages.c.data).join(packages, packages.c.sha256 == outbox.c.sha256)
            .where(where, outbox.c.sent_at.is_(None)))).mappings().all()
        w.pending.extend(self._rows_to_outgoing(rows))

    def _queue_out(self, w: _Writes, *, document: int | None, exchange: str, routing_key: str, body: bytes,
                   body_sha: str, intake_sha: str, headers: dict, priority: int, now: datetime,
                   store: bool = True, source: bytes | None = None) -> None:
        if store:
            w.package(body, body_sha, now)
        if w.blobs is not None:  # a large body goes by reference (``source``: the original of a relayed copy)
            body, headers = w.blobs.outgoing(body, source, headers, routing_key)
        row = {"document": document, "exchange": exchange, "routing_key": routing_key, "sha256": body_sha,
               "intake_sha256": intake_sha, "headers": headers, "priority": priority, "created_at": now}
        w.outbox.append((row, Outgoing(exchange, routing_key, body, headers=headers, priority=priority,
                                       message_id=_message_id(headers), user_id=self.backbone.user)))

    def _edoc(self, m: Incoming, v: Verdict, existing: dict, known: set, acts_on: dict, w: _Writes,
              now: datetime) -> dict | None:
        """Decide one edoc; returns its documents row when accepted."""
        doc: Edoc = v.package
        key = (doc.sender.organ_id, doc.document_id)
        if self._seen_before(m, v, existing, w, now,
                             f"DocumentId {doc.document_id} was already used by {doc.sender.organ_id} for a "
                             "different package; give a new document its own DocumentId", "MessageHeader/DocumentId"):
            return None
        for rf in doc.response_for:
            if (rf.organ_id, rf.document_id, doc.sender.organ_id) not in known:
                self._refuse(m, v, w, now, reason="state.unknown_document",
                             message=f"ResponseFor names {rf.document_id} from {rf.organ_id}, which is not a "
                                     f"document {doc.sender.organ_id} sent or received through the hub",
                             element="MessageHeader/ResponseFor/DocumentId")
                return None
        try:
            link = business_link(doc, acts_on)
        except HubError as e:
            self._refuse(m, v, w, now, reason=e.code, message=e.message, element=e.element)
            return None
        existing[key] = {"id": None, "sha256": v.sha256}  # in-batch duplicates see it
        w.package(m.message.body, v.sha256, now)
        w.records += [
            record_row("package.received", actor=self.adapter_user(m.message), document_id=doc.document_id,
                       sender=doc.sender.organ_id, sha256=v.sha256, at=now,
                       details={"size": v.size, "kind": "edoc", "legacy_sha1": v.legacy_sha1,
                                "authenticated_by": v.authenticated_by}),
            record_row("package.accepted", actor=self.adapter_user(m.message), document_id=doc.document_id,
                       sender=doc.sender.organ_id, sha256=v.sha256, at=now,
                       details={"recipients": [[r.recipient, r.system] for r in v.routes],
                                "type": doc.document_type.type, "priority": doc.priority,
                                "authenticated_by": v.authenticated_by}),
        ]
        if link is not None:
            w.records += [record_row(EVENTS[link.doc_type], actor=self.adapter_user(m.message), document_id=target,
                                     sender=doc.sender.organ_id, sha256=v.sha256, at=now,
                                     details=link.record_details(doc.document_id)) for target, _ in link.targets]
        self._count_accepted(v)
        log.debug("accepted %s from %s", doc.document_id, doc.sender.organ_id,
                  extra={"document_id": doc.document_id, "sender": doc.sender.organ_id})
        return {"sender": doc.sender.organ_id, "document_id": doc.document_id, "kind": "edoc", "sha256": v.sha256,
                "doc_type": doc.document_type.type, "priority": doc.priority, "subject": doc.subject[:2000],
                "refers_to": link.refers_to if link else None, "business_type": link.doc_type if link else None,
                "status_code": None, "adapter_user": self.adapter_user(m.message),
                "legacy_sha1": v.legacy_sha1, "received_at": now, "authenticated_by": v.authenticated_by,
                "due_date": doc.due_date, "code": str(doc.code)[:255] or None,
                "type_name": doc.document_type.type_name[:255] or None}

    def _deliveries_and_outbox(self, conn, accepted, ids, existing, w: _Writes, now: datetime) -> None:
        for doc_id, (m, v, _row) in zip(ids, accepted):
            doc: Edoc = v.package
            existing[(doc.sender.organ_id, doc.document_id)]["id"] = doc_id
            # The outbox row points at the original package (stored once); the delivered copy
            # (with the hub's TraceHeader) is re-derived from it if it must be published again.
            body = v.relayed or m.message.body
            for r in v.routes:
                headers = self._headers(m, v, r.recipient, "edoc")
                if v.relayed_at is not None:
                    headers[C.H_TRACE_AT] = format_timestamp(v.relayed_at)
                self._queue_out(w, document=doc_id, exchange=C.EXCHANGE_DELIVER,
                                routing_key=inbox_key(r.system, doc.priority >= 1), body=body, body_sha=v.sha256,
                                intake_sha=v.sha256, headers=headers, priority=min(doc.priority, 9), now=now,
                                store=False, source=m.message.body)

    def _seen_before(self, m: Incoming, v: Verdict, existing: dict, w: _Writes, now: datetime, conflict: str,
                     element: str) -> bool:
        """(sender, DocumentId) is recorded once: the same bytes again are a duplicate, other bytes a
        conflict. True when the package was handled here."""
        prior = existing.get((v.package.sender.organ_id, v.package.document_id))
        if prior is None:
            return False
        if prior["sha256"] == v.sha256:
            self._duplicate(m, v, prior, w, now)
        else:
            self._refuse(m, v, w, now, reason="state.duplicate_conflict", message=conflict, element=element)
        return True

    def _duplicate(self, m: Incoming, v: Verdict, prior: dict, w: _Writes, now: datetime) -> None:
        """The same bytes again: acknowledged, recorded as a duplicate, not re-delivered
        (unfinished outbox rows of the original are finished by the redelivery path/sweeper)."""
        w.records.append(record_row(
            "package.duplicate", actor=self.adapter_user(m.message), document_id=v.package.document_id,
            sender=v.package.sender.organ_id, sha256=v.sha256, at=now))
        self.stats.duplicates += 1

    async def _status(self, conn, m: Incoming, v: Verdict, existing: dict, w: _Writes, now: datetime) -> None:
        st: StatusPackage = v.package
        key = (st.sender.organ_id, st.document_id)
        if self._seen_before(m, v, existing, w, now,
                             f"a different status {st.status_code} for {st.response_for.document_id} with the same "
                             "timestamp was already recorded", "Status/Timestamp"):
            return
        rf = st.response_for
        sender = st.sender.organ_id
        keys = document_keys(st)
        found = {(r["sender"], r["document_id"]): r for r in (await conn.execute(sa.select(documents).where(
            documents.c.sender.in_([k[0] for k in keys]), documents.c.document_id == rf.document_id,
            documents.c.kind == "edoc"))).mappings().all()}
        orig = next((found[k] for k in keys if k in found), None)
        dels, history = ([], {}) if orig is None else await copies(conn, orig["id"])
        registry = self.runner.context.registry
        if orig is None or not saw_document(sender, orig["sender"], dels, registry):
            # never seen = unknown: nothing tells the two apart
            self._refuse(m, v, w, now, reason="state.unknown_document",
                         message=f"the status refers to {rf.document_id} from {keys[0][0]}, which is not a "
                                 f"document {sender} sent or received through the hub",
                         element=f"{st.container}/ResponseFor/DocumentId")
            return
        try:
            decision = decide_status(st, orig["sender"], orig["business_type"], dels, history, registry)
        except HubError as e:
            # 15/16 naming the earlier document answer the revocation or update acting on it
            later = (await answered_business(conn, st, orig, registry)
                     if e.code == "state.invalid_transition" else None)
            if later is None:
                self._refuse(m, v, w, now, reason=e.code, message=e.message, element=e.element)
                return
            orig, decision = later
        targets = decision.targets
        w.package(m.message.body, v.sha256, now)
        await self._flush_packages(conn, w)
        doc_pk = (await conn.execute(documents.insert().returning(documents.c.id).values(
            sender=sender, document_id=st.document_id, kind="status", sha256=v.sha256, priority=0,
            refers_to=orig["id"], status_code=st.status_code, adapter_user=self.adapter_user(m.message),
            legacy_sha1=v.legacy_sha1, received_at=now, subject=st.description[:2000] or None,
            authenticated_by=v.authenticated_by,
        ))).scalar_one()
        existing[key] = {"id": doc_pk, "sha256": v.sha256}
        for d in targets:
            await conn.execute(deliveries.update().where(deliveries.c.id == d["id"]).values(
                status=decision.shown[d["id"]], updated_at=now))
        await conn.execute(status_history.insert(), [
            {"delivery": d["id"], "status_code": st.status_code, "actor": sender,
             "description": st.description or None, "status_document": doc_pk, "at": now} for d in targets])
        if decision.recall:
            dests = [(d["recipient"], d["system"]) for d in targets]
        else:
            dests = [(r.recipient, r.system) for r in v.routes]
        for recipient, system in dests:
            self._queue_out(w, document=doc_pk, exchange=C.EXCHANGE_DELIVER,
                            routing_key=inbox_key(system, st.status_code in {"02", "13"}),
                            body=m.message.body, body_sha=v.sha256, intake_sha=v.sha256,
                            headers=self._headers(m, v, recipient, "status"), priority=0, now=now)
        w.records += [
            record_row("package.received", actor=self.adapter_user(m.message), document_id=st.document_id, sender=sender,
                       sha256=v.sha256, at=now, details={"size": v.size, "kind": "status",
                                                         "authenticated_by": v.authenticated_by}),
            record_row("status.recorded", actor=self.adapter_user(m.message), document_id=rf.document_id, sender=sender,
                       sha256=v.sha256, at=now,
                       details={"status": st.status_code, "original_sender": orig["sender"],
                                "recipients": [t[0] for t in dests], "authenticated_by": v.authenticated_by}),
        ]
        self._count_accepted(v)

    def _count_accepted(self, v: Verdict) -> None:
        self.stats.accepted += 1
        key = v.authenticated_by or "signature"
        self.stats.by_auth[key] = self.stats.by_auth.get(key, 0) + 1

    def _refuse(self, m: Incoming, v: Verdict, w: _Writes, now: datetime, *, reason: str | None = None,
                message: str | None = None, element: str | None = None) -> None:
        """Record the refusal; answer the publishing system with a hub-signed status 02; dead-letter
        what cannot be parsed or cannot be answered."""
        reason = reason or v.reason or "hub.error"
        message = message or v.message or ""
        element = element or v.element
        msg = m.message
        user = self.adapter_user(msg)
        registry = self.runner.context.registry
        system = registry.agency_for_user(user) if user else None
        self.stats.refused += 1
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        log.info("refused %s from %s: %s", v.document_id or v.sha256[:16], v.sender or user or "?", reason,
                 extra={"document_id": v.document_id, "sender": v.sender, "reason": reason, "agency": system})
        stage = v.stage if reason == v.reason else "state"
        details = {"size": v.size, "stage": stage, "element": element, "adapter_system": system,
                   "exchange": msg.exchange, "routing_key": msg.routing_key}
        keep = reason != "parse.too_large"  # the cap exists so that we do not store such bytes
        if keep:
            w.package(msg.body, v.sha256, now)
        w.records.append(record_row(
            "package.refused", actor=user, document_id=v.document_id, sender=v.sender, sha256=v.sha256,
            reason=reason, message=message, details=details, at=now))
        if stage == "parse" or system is None:
            headers = {C.H_REASON: reason, C.H_MESSAGE: message[:1000], C.H_ORIGINAL_EXCHANGE: msg.exchange,
                       C.H_ORIGINAL_ROUTING_KEY: msg.routing_key, C.H_ORIGINAL_USER: user or "",
                       C.H_SHA256: v.sha256, C.H_KIND: "dead"}
            if keep:
                self._queue_out(w, document=None, exchange=C.EXCHANGE_DEAD, routing_key="", body=msg.body,
                                body_sha=v.sha256, intake_sha=v.sha256, headers=headers, priority=0, now=now)
            else:
                w.outbox.append((None, Outgoing(C.EXCHANGE_DEAD, "", b"", headers=headers, user_id=self.backbone.user)))
            w.records.append(record_row("package.dead", actor=user, sha256=v.sha256, reason=reason,
                                        message=message, at=now))
            self.stats.dead += 1
        if system is None:
            return
        answer_to = v.sender if v.sender and registry.system_of(v.sender) == system else system
        body, doc_id = build_refusal(self.hub, to_sender=answer_to, document_id=v.document_id, sha256=v.sha256,
                                     reason=reason, message=message)
        headers = {C.H_KIND: "status", C.H_SENDER: self.hub.organ_id, C.H_RECIPIENT: answer_to,
                   C.H_DOCUMENT_ID: doc_id, C.H_SHA256: sha256_hex(body), C.H_REASON: reason,
                   C.H_MESSAGE: message[:1000], "x-edxml-refused-sha256": v.sha256}
        self._queue_out(w, document=None, exchange=C.EXCHANGE_DELIVER, routing_key=inbox_key(system, True),
                        body=body, body_sha=headers[C.H_SHA256], intake_sha=v.sha256, headers=headers,
                        priority=0, now=now)

    def _headers(self, m: Incoming, v: Verdict, recipient: str, kind: str) -> dict:
        h = {C.H_KIND: kind, C.H_SENDER: v.package.sender.organ_id, C.H_RECIPIENT: recipient,
             C.H_DOCUMENT_ID: v.package.document_id, C.H_SHA256: v.sha256}
        sub = (m.message.headers or {}).get(C.H_SUBMITTED_AT)
        if sub is not None:
            h[C.H_SUBMITTED_AT] = sub
        return h

    # --- outbox ---------------------------------------------------------------------------

    def _rows_to_outgoing(self, rows) -> list[tuple[int, Outgoing]]:
        """Outbox rows as messages; a row that cannot be rebuilt is logged and skipped, never
        allowed to hold back the others."""
        out = []
        for r in rows:
            try:
                out.append((r["id"], self._outgoing_from_row(r)))
            except Exception:  # noqa: BLE001 - one bad row must not stop recovery
                log.exception("outbox row %s cannot be rebuilt; left unsent for an operator", r["id"])
        return out

    def _outgoing_from_row(self, r) -> Outgoing:
        """An outbox row as a message again (after a crash): re-derive the relayed copy."""
        h = dict(r["headers"] or {})
        body = r["data"]
        if BlobRef.of(h) is not None:  # delivered by reference: the stored blob is the copy
            body = b""
        elif h.get(C.H_TRACE_AT):
            # No size cap here: these bytes were checked when they arrived (the cap may have changed).
            body = relay_copy(parse_xml(body, max_bytes=len(body)), self.hub.organ_id,
                              parse_timestamp(h[C.H_TRACE_AT]))
        return Outgoing(r["exchange"], r["routing_key"], body, headers=h, priority=r["priority"],
                        message_id=_message_id(h), user_id=self.backbone.user)

    async def _sent_stage(self) -> None:
        """Stage 3: mark confirmed outbox rows sent and log the deliveries, several batches at once."""
        while True:
            sent = await self._sent.get()
            self._marking = True
            try:
                while not self._sent.empty():
                    sent += self._sent.get_nowait()
                t0 = time.perf_counter()
                for attempt in range(1, 4):
                    try:
                        await self._mark_sent(sent)
                        break
                    except Exception as e:  # noqa: BLE001 - the sweeper republishes what stays unmarked
                        if not is_transient(e):
                            raise
                        log.warning("marking the outbox sent failed (attempt %d): %s", attempt, e)
                        await asyncio.sleep(backoff(attempt, first=0.4))
                self.stats.seconds["mark_sent"] += time.perf_counter() - t0
            except Exception:  # noqa: BLE001 - the sweeper republishes what stayed unmarked
                log.exception("marking %d outbox rows sent failed", len(sent))
            finally:
                self._marking = False

    async def _mark_sent(self, sent: list[tuple[int | None, Outgoing]]) -> None:
        """After the broker confirmed: mark the outbox rows sent and log each delivery."""
        ids = [i for i, _ in sent if i is not None]
        if not ids:
            return
        now = utcnow()
        entries = []
        for _, o in sent:
            h = o.headers or {}
            if o.exchange != C.EXCHANGE_DELIVER:
                continue
            event = "refusal.delivered" if h.get(C.H_REASON) else f"{h.get(C.H_KIND, 'package')}.delivered"
            entries.append(record_row(
                event, actor=self.hub.organ_id, document_id=h.get(C.H_DOCUMENT_ID), sender=h.get(C.H_SENDER),
                sha256=h.get(C.H_SHA256), reason=h.get(C.H_REASON), at=now,
                details={"recipient": h.get(C.H_RECIPIENT), "inbox": o.routing_key}))
        async with self.engine.begin() as conn:
            await conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(sent_at=now))
            if self.settings.audit:
                await append_rows(conn, entries)

    async def relay_pending(self, older_than: float = 30.0, limit: int = 1000) -> int:
        """Publish outbox rows left unsent (a worker died between commit and confirm)."""
        cutoff = datetime.now(timezone.utc).timestamp() - older_than
        total = 0
        last_id = 0
        while True:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(
                    sa.select(outbox, packages.c.data).join(packages, packages.c.sha256 == outbox.c.sha256)
                    .where(outbox.c.sent_at.is_(None), outbox.c.id > last_id).order_by(outbox.c.id).limit(limit)
                )).mappings().all()
            rows = [r for r in rows if _ts(r["created_at"]) <= cutoff]
            if not rows:
                return total
            last_id = rows[-1]["id"]
            outgoing = self._rows_to_outgoing(rows)
            await self.backbone.publish_many([o for _, o in outgoing])
            await self._mark_sent(outgoing)
            total += len(rows)
            if len(rows) < limit:
                return total

    async def _sweep_loop(self) -> None:
        """Housekeeping: follow the maintenance switch (every 2 s), relay stuck outbox rows (every 15 s,
        in the one worker elected sweeper among all the hub's processes)."""
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(2)
            try:
                await self.follow_maintenance()
            except Exception as e:  # noqa: BLE001 - retried next round
                log.warning("maintenance check failed: %s", e)
            if time.monotonic() - last_sweep >= 15:
                last_sweep = time.monotonic()
                try:
                    if not await self.sweeper.lead():
                        continue
                    n = await self.relay_pending(older_than=30)
                    if n:
                        log.info("outbox sweeper relayed %d pending message(s)", n)
                except Exception as e:  # noqa: BLE001 - retried next round
                    log.warning("outbox sweep failed: %s", e)

    async def follow_maintenance(self) -> None:
        """``stopped``: take nothing from hub.intake (in-flight packages finish); otherwise consume."""
        from hub.registry.store import maintenance_mode

        async with self.engine.connect() as conn:
            mode = await maintenance_mode(conn)
        stopped = mode == "stopped"
        if stopped == self.gate.maintenance_stopped or not self._tasks:
            await self.gate.close_retired()
            return
        self.gate.maintenance_stopped = stopped
        await self.gate.apply()
        if stopped:
            log.info("maintenance: stopped taking packages from %s", C.QUEUE_INTAKE)
        else:
            log.info("maintenance: consuming %s again", C.QUEUE_INTAKE)


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()



