"""One batch's transaction: read what the store holds, let :mod:`hub.pipeline.decide` decide,
write the plan (documents, deliveries, statuses, outbox, idempotency rows, audit entries).

Exactly-once recording rests on the idempotency table (``intake_seen``: intake digest and
publisher), written in the same transaction as everything the message caused: an intake
message that comes back (a redelivery, or a retry after a commit whose reply was lost) finds
its row and only finishes its outbox, with or without the audit log.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.audit.records import append_rows, utcnow
from hub.edxml.model import Edoc, StatusPackage
from hub.pipeline.business import target_ids
from hub.pipeline import large, submit
from hub.pipeline.checks import Verdict
from hub.pipeline.decide import Copies, Decisions, Intake, Plan, StatusView, StoreView
from hub.pipeline.lifecycle import REVOCATION, UPDATE
from hub.pipeline.outbox import Relay, Sent
from hub.pipeline.status_rows import copies, write_history
from hub.pipeline.statuses import document_keys, is_answer
from hub.pki.identity import Identity
from hub.registry.model import Registry
from hub.store.counts import count_documents, document_count_rows, upsert_conflict
from hub.store.engine import dialect_insert, one_of, rows_of, unnest_insert, unnest_params
from hub.store.tables import deliveries, document_counts, documents, intake_seen, outbox, packages


# On PostgreSQL: a batch's idempotency rows, its senders' document counters and the outbox rows of
# earlier batches the broker confirmed, in one statement (Recorder._seen_counted_marked)
_SEEN_COUNTED_MARKED = sa.text(
    f"WITH s AS ({unnest_insert(intake_seen, 's_')}), "
    f"c AS ({unnest_insert(document_counts, 'c_', upsert_conflict(document_counts, ['sender']))}) "
    "UPDATE outbox SET sent_at = :now WHERE id = ANY(CAST(:m_ids AS BIGINT[])) AND sent_at IS NULL RETURNING id")

class Recorder:
    """Records batches for one worker. ``audit``: append the audit entries (``HUB_AUDIT``)."""

    def __init__(self, engine: AsyncEngine, relay: Relay, hub: Identity, *, audit: bool = True,
                 by_reference_bytes: int | None = None):
        self.engine = engine
        self.relay = relay
        self.hub = hub
        self.audit = audit
        # bodies over this travel by reference to stored bytes (hub.pipeline.large); None: never
        self.by_reference_bytes = by_reference_bytes
        self._conn: AsyncConnection | None = None  # kept between batches (no pool checkout and ping each)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction on the connection the recorder keeps; a failed one drops it (a connection
        that met an outage is not reused: the next batch checks out a fresh, pinged one)."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = await self.engine.connect()
        try:
            async with conn.begin():
                yield conn
        except BaseException:
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise

    async def close(self) -> None:
        """Give the kept connection back to the pool."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def record(self, items: Sequence[Intake], verdicts: Sequence[Verdict], registry: Registry, *,
                     retry: bool = False, marks: Sent = ()) -> tuple[Sent, Plan]:
        """Decide and write one batch in one transaction; (what to publish, the plan written).
        ``retry``: an earlier attempt may have committed; what it recorded is not recorded again.
        ``marks``: outbox rows of earlier batches the broker confirmed, marked sent (and their
        deliveries logged, before this batch's entries) in the same transaction."""
        now = utcnow()
        d = Decisions(registry, self.hub, self.relay.backbone.user, now)
        p = d.plan
        written: list[dict] = []  # documents rows, counted per sender at the end (hub.store.counts)
        async with self._transaction() as conn:
            existing, seen = await _existing_and_seen(conn, items, verdicts)
            view = StoreView(existing=existing, known=await _known_refs(conn, verdicts),
                             acts_on=await _acts_on(conn, verdicts), seen=seen)
            statuses = []
            for item, v in zip(items, verdicts):
                again = retry or item.message.redelivered
                if d.decide(item, v, view, again=again) == "status":
                    statuses.append((item, v))
            await _flush_packages(conn, p, self.by_reference_bytes)
            if p.documents:
                ids = (await conn.execute(
                    documents.insert().returning(documents.c.id, sort_by_parameter_order=True),
                    p.documents)).scalars().all()
                written += p.documents
                d.documents_written(ids, view)
                await conn.execute(deliveries.insert(), [{"document": ids[i], **row} for i, row in p.deliveries])
                for o in p.outbox:
                    if o.new_document is not None:
                        o.row["document"] = ids[o.new_document]
            for item, v in statuses:
                write = d.status(item, v, view, await _status_view(conn, v.package))
                if write is None:
                    continue
                await _flush_packages(conn, p, self.by_reference_bytes)
                doc_pk = (await conn.execute(documents.insert().returning(documents.c.id)
                                             .values(**write.document))).scalar_one()
                written.append(write.document)
                d.status_written(write, doc_pk, view)
                for delivery, shown in write.shown.items():
                    await conn.execute(deliveries.update().where(deliveries.c.id == delivery).values(
                        status=shown, updated_at=now))
                await write_history(conn, write.history)
            await _flush_packages(conn, p, self.by_reference_bytes)
            out: Sent = await self.relay.pending(conn, p.pending_for)
            await self._by_reference(conn, p)
            rows = [o.row for o in p.outbox if o.row is not None]
            if rows:
                oids = iter((await conn.execute(outbox.insert().returning(outbox.c.id, sort_by_parameter_order=True),
                                                rows)).scalars().all())
                out += [(next(oids) if o.row is not None else None, o.message) for o in p.outbox]
            else:
                out += [(None, o.message) for o in p.outbox]
            # what the HTTP entry points waiting for these packages answer (hub.pipeline.submit)
            users = {id(i.message): i.user for i in items}
            decided = submit.decisions(items, verdicts, p.records, lambda msg: users[id(msg)])
            await submit.record(conn, decided)
            # the idempotency rows: a plain INSERT, so another worker recording the same message
            # meanwhile makes this transaction fail with an IntegrityError, and the batch is decided
            # again; the senders' counters; the outbox rows of earlier batches the broker confirmed
            if conn.dialect.name == "postgresql":  # one statement
                delivered = await self._seen_counted_marked(conn, p.seen, written, marks, now)
            else:
                if p.seen:
                    await conn.execute(intake_seen.insert(), p.seen)
                await count_documents(conn, written)
                delivered = await self.relay.mark_in(conn, marks, now) if marks else []
            if self.audit:
                # the documents rows written: their earlier entries may concern their recipients now
                await append_rows(conn, delivered + p.records, [w["document_id"] for w in written])
        submit.wake(decided)
        return out, p

    async def _seen_counted_marked(self, conn: AsyncConnection, seen: list[dict], written: list[dict], marks: Sent,
                                   now) -> list[dict]:
        """On PostgreSQL, in one statement: insert the idempotency rows ``seen``, add the documents
        rows ``written`` to their senders' counters (``hub.store.counts``), mark sent the outbox
        rows of ``marks`` still unsent; returns the audit entries of those deliveries."""
        counts = document_count_rows(written)
        ids = [i for i, _ in marks if i is not None]
        if not (seen or counts or ids):
            return []
        marked = set((await conn.execute(_SEEN_COUNTED_MARKED, {
            **unnest_params(intake_seen, "s_", seen), **unnest_params(document_counts, "c_", counts),
            "now": now, "m_ids": ids})).scalars().all())
        return self.relay.delivered(marks, marked, now) if ids else []

    async def _by_reference(self, conn: AsyncConnection, p: Plan) -> None:
        """Outgoing bodies over the threshold go as an empty body naming a stored blob (written
        here, in the batch's transaction); smaller ones as they are (a lean relayed copy expanded)."""
        blobs = large.ByReference(self.by_reference_bytes if self.by_reference_bytes is not None else 1 << 62)
        for o in p.outbox:
            if o.row is None:
                continue
            body = o.lean if o.lean is not None else o.message.body
            body, headers = blobs.outgoing(body, o.source, o.row["headers"], o.message.routing_key)
            o.row["headers"] = headers
            o.message = replace(o.message, body=body, headers=headers)
        await blobs.flush(conn)


async def _flush_packages(conn: AsyncConnection, p: Plan, by_reference_bytes: int | None) -> None:
    if p.packages:
        if by_reference_bytes is not None:  # large packages: their bytes in a blob, the row without them
            await large.store_packages(conn, p.packages.values(), by_reference_bytes)
        await conn.execute(dialect_insert(conn, packages).on_conflict_do_nothing(), list(p.packages.values()))
        p.packages.clear()


async def _existing_and_seen(conn: AsyncConnection, items: Sequence[Intake], verdicts: Sequence[Verdict]) \
        -> tuple[dict[tuple[str, str], dict], set[tuple[str, str]]]:
    """What the store already holds of the batch, in one round trip: the documents rows of the
    accepted packages' (sender, DocumentId) (``existing``), and the (intake sha256, publisher)
    of its messages already recorded (``seen``, the idempotency table)."""
    doc_keys = {(v.package.sender.organ_id, v.package.document_id) for v in verdicts if v.accepted}
    seen_keys = {(v.sha256, item.user) for item, v in zip(items, verdicts)}
    parts = []
    if doc_keys:  # tag "d": id, sender, document_id, sha256
        parts.append(sa.select(sa.literal("d").label("tag"), documents.c.id, documents.c.sender.label("a"),
                               documents.c.document_id.label("b"), documents.c.sha256)
                     .where(rows_of(conn, (documents.c.sender, documents.c.document_id), doc_keys)))
    if seen_keys:  # tag "s": -, publisher, -, sha256
        parts.append(sa.select(sa.literal("s").label("tag"), sa.cast(sa.null(), documents.c.id.type).label("id"),
                               intake_seen.c.adapter_user.label("a"), sa.cast(sa.null(), sa.String).label("b"),
                               intake_seen.c.sha256)
                     .where(rows_of(conn, (intake_seen.c.sha256, intake_seen.c.adapter_user), seen_keys)))
    if not parts:
        return {}, set()
    rows = (await conn.execute(parts[0] if len(parts) == 1 else sa.union_all(*parts))).all()
    existing = {(r.a, r.b): {"id": r.id, "sender": r.a, "document_id": r.b, "sha256": r.sha256}
                for r in rows if r.tag == "d"}
    return existing, {(r.sha256, r.a) for r in rows if r.tag == "s"}


async def _known_refs(conn: AsyncConnection, verdicts: Sequence[Verdict]) -> set[tuple[str, str, str]]:
    """(sender, DocumentId, who) for each ResponseFor that names a document ``who`` sent or received:
    a document someone never saw is as unknown to them as one that does not exist."""
    refs = {(rf.organ_id, rf.document_id, v.package.sender.organ_id) for v in verdicts
            if v.accepted and isinstance(v.package, Edoc) for rf in v.package.response_for}
    if not refs:
        return set()
    rows = (await conn.execute(sa.select(documents.c.id, documents.c.sender, documents.c.document_id).where(
        rows_of(conn, (documents.c.sender, documents.c.document_id), {(o, d) for o, d, _ in refs})))).all()
    seen_by = {(r.sender, r.document_id): {r.sender} for r in rows}
    ids = {r.id: (r.sender, r.document_id) for r in rows}
    if ids:
        for doc, recipient, system in (await conn.execute(sa.select(
                deliveries.c.document, deliveries.c.recipient, deliveries.c.system).where(
                one_of(conn, deliveries.c.document, ids)))).all():
            seen_by[ids[doc]] |= {recipient, system}
    return {(o, d, who) for o, d, who in refs if who in seen_by.get((o, d), ())}


async def _acts_on(conn: AsyncConnection, verdicts: Sequence[Verdict]) -> dict[tuple[str, str], int]:
    """(sender, DocumentId) -> documents.id of the earlier documents the batch's revocations,
    updates and replacements act on (no query when there are none)."""
    refs = {(v.package.sender.organ_id, t) for v in verdicts if v.accepted and isinstance(v.package, Edoc)
            for t in target_ids(v.package)}
    if not refs:
        return {}
    rows = (await conn.execute(sa.select(documents.c.sender, documents.c.document_id, documents.c.id).where(
        rows_of(conn, (documents.c.sender, documents.c.document_id), refs),
        documents.c.kind == "edoc"))).all()
    return {(r[0], r[1]): r[2] for r in rows}


async def _status_view(conn: AsyncConnection, st: StatusPackage) -> StatusView:
    """The document a status is about (read after the batch's earlier writes, so a status sees
    the documents and statuses recorded before it in the same batch)."""
    keys = document_keys(st)
    found = {(r["sender"], r["document_id"]): r for r in (await conn.execute(sa.select(documents).where(
        documents.c.sender.in_([k[0] for k in keys]), documents.c.document_id == st.response_for.document_id,
        documents.c.kind == "edoc"))).mappings().all()}
    orig = next((found[k] for k in keys if k in found), None)
    if orig is None:
        return StatusView(None)
    original = Copies(orig, *await copies(conn, orig["id"]))
    later: list[Copies] = []
    if is_answer(st.status_code):
        for doc in (await conn.execute(sa.select(documents).where(
                documents.c.refers_to == orig["id"], documents.c.kind == "edoc",
                documents.c.business_type.in_([REVOCATION, UPDATE])).order_by(documents.c.id.desc()))).mappings().all():
            later.append(Copies(doc, *await copies(conn, doc["id"])))
    return StatusView(original, tuple(later))

