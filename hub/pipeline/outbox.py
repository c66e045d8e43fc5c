"""The outbox relay: publish what a batch committed, mark it sent, and finish what was left unsent.

Outgoing messages are written as outbox rows in the batch's transaction; the worker publishes
them (confirmed) after the commit and marks them sent afterwards, off the critical path: in
the next batch's transaction (:meth:`Relay.mark_in`), or alone when no batch follows. A row
left unsent (the worker died between commit and confirm, or marking failed) is published
again: by the redelivered package's own batch (:meth:`Relay.pending`), at start-up and by the
sweeper (:meth:`Relay.relay_pending`). Delivered copies are re-derived from the one stored
original, so a republished message has the same bytes and the same message id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub import constants as C
from hub.audit.records import append_rows, record_row, utcnow
from hub.backbone.base import Backbone, Outgoing
from hub.edxml.model import parse_timestamp
from hub.edxml.parser import parse_xml
from hub.pipeline.checks import relay_copy
from hub.store.blobs import BlobRef
from hub.pipeline.decide import message_id
from hub.retry import is_transient, retry
from hub.store.engine import one_of
from hub.store.tables import outbox, packages

log = logging.getLogger("hub.worker")

Sent = list[tuple[int | None, Outgoing]]  # (outbox row id or None, the message)


class Relay:
    """Publishing and marking for one worker. ``audit``: log each delivery in the audit log."""

    def __init__(self, engine: AsyncEngine, backbone: Backbone, relay_id: str, *, audit: bool = True):
        self.engine = engine
        self.backbone = backbone
        self.relay_id = relay_id  # the hub's OrganId: its TraceHeader on relayed copies, the actor of deliveries
        self.audit = audit

    # --- rebuilding messages from rows ------------------------------------------------------

    def outgoing_from_row(self, r) -> Outgoing:
        """An outbox row as a message again (after a crash): re-derive the relayed copy."""
        h = dict(r["headers"] or {})
        body = r["data"]
        if BlobRef.of(h) is not None:  # delivered by reference: the stored blob is the copy
            body = b""
        elif h.get(C.H_TRACE_AT):
            # No size cap here: these bytes were checked when they arrived (the cap may have changed).
            body = relay_copy(parse_xml(body, max_bytes=len(body)), self.relay_id, parse_timestamp(h[C.H_TRACE_AT]))
        return Outgoing(r["exchange"], r["routing_key"], body, headers=h, priority=r["priority"],
                        message_id=message_id(h), user_id=self.backbone.user)

    def rows_to_outgoing(self, rows) -> Sent:
        """Outbox rows as messages; a row that cannot be rebuilt is logged and skipped, never
        allowed to hold back the others."""
        out = []
        for r in rows:
            try:
                out.append((r["id"], self.outgoing_from_row(r)))
            except Exception:  # noqa: BLE001 - one bad row must not stop recovery
                log.exception("outbox row %s cannot be rebuilt; left unsent for an operator", r["id"])
        return out

    async def pending(self, conn: AsyncConnection, intake_shas: Iterable[str]) -> Sent:
        """The unsent outbox rows of intake messages already recorded (their redelivery finishes them)."""
        shas = list(intake_shas)
        if not shas:
            return []
        rows = (await conn.execute(
            sa.select(outbox, packages.c.data).join(packages, packages.c.sha256 == outbox.c.sha256)
            .where(one_of(conn, outbox.c.intake_sha256, shas), outbox.c.sent_at.is_(None)))).mappings().all()
        return self.rows_to_outgoing(rows)

    # --- publishing and marking -------------------------------------------------------------

    async def publish(self, items: list[Outgoing], *, stopping: Callable[[], bool] = lambda: False,
                      on_retry: Callable[[int, BaseException], None] | None = None) -> bool:
        """Publish (confirmed), retrying with backoff while the broker is away; False only when
        ``stopping()`` became true meanwhile."""

        def retrying(attempt: int, e: BaseException) -> None:
            if on_retry is not None:
                on_retry(attempt, e)
            if attempt in (1, 5) or attempt % 20 == 0:
                log.warning("publishing %d message(s) failed (attempt %d): %s; retrying", len(items), attempt, e)

        try:
            await retry(lambda: self.backbone.publish_many(items), first=0.2, stop=stopping, on_retry=retrying)
        except Exception as e:
            if stopping() and is_transient(e):
                return False
            raise
        return True

    async def mark_in(self, conn: AsyncConnection, sent: Sent, now: datetime | None = None) -> list[dict]:
        """In the caller's transaction: mark the confirmed outbox rows of ``sent`` sent; returns the
        audit entries of their deliveries for the caller to append ([] with the audit log off).
        ``now``: the time the caller stamps its own entries with, so that the log's times never go
        backwards from one entry to the next (a batch's transaction appends these before its own)."""
        ids = [i for i, _ in sent if i is not None]
        if not ids:
            return []
        now = now or utcnow()
        # only rows still unsent: a transaction redone after a lost COMMIT reply logs no delivery twice
        marked = set((await conn.execute(outbox.update().where(one_of(conn, outbox.c.id, ids), outbox.c.sent_at.is_(None))
                                         .values(sent_at=now).returning(outbox.c.id))).scalars().all())
        return self.delivered(sent, marked, now)

    def delivered(self, sent: Sent, marked: set[int], now: datetime) -> list[dict]:
        """The audit entries of the deliveries among ``sent`` whose outbox rows were just marked
        sent (``marked``: their ids, consumed: an id listed twice in ``sent`` is logged once; []
        with the audit log off)."""
        if not self.audit:
            return []
        entries = []
        for i, o in sent:
            h = o.headers or {}
            if i not in marked or o.exchange != C.EXCHANGE_DELIVER:
                continue
            marked.discard(i)
            event = "refusal.delivered" if h.get(C.H_REASON) else f"{h.get(C.H_KIND, 'package')}.delivered"
            recipient = h.get(C.H_RECIPIENT)
            entries.append(record_row(
                event, actor=self.relay_id, document_id=h.get(C.H_DOCUMENT_ID), sender=h.get(C.H_SENDER),
                sha256=h.get(C.H_SHA256), reason=h.get(C.H_REASON), at=now,
                details={"recipient": recipient, "inbox": o.routing_key},
                # an edoc's delivery concerns the one recipient of the deliveries row it came from
                recipients=(recipient,) if event == "edoc.delivered" and recipient is not None else None))
        return entries

    async def mark_sent(self, sent: Sent) -> None:
        """After the broker confirmed: mark the outbox rows sent and log each delivery (its own transaction)."""
        if not any(i is not None for i, _ in sent):
            return
        async with self.engine.begin() as conn:
            await append_rows(conn, await self.mark_in(conn, sent))

    async def mark_sent_retrying(self, sent: Sent, attempts: int = 3) -> None:
        """:meth:`mark_sent`, retried through short outages (what stays unmarked, the sweeper republishes)."""

        def retrying(attempt: int, e: BaseException) -> None:
            log.warning("marking the outbox sent failed (attempt %d): %s", attempt, e)

        await retry(lambda: self.mark_sent(sent), attempts=attempts, first=0.4, on_retry=retrying)

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
            outgoing = self.rows_to_outgoing(rows)
            await self.backbone.publish_many([o for _, o in outgoing])
            await self.mark_sent(outgoing)
            total += len(rows)
            if len(rows) < limit:
                return total


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
