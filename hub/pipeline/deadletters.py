"""Dead letters: what reached ``hub.dead`` is kept in the database for admins to inspect,
replay to intake or discard — one or many, each action recorded with its actor.

The keeper consumes ``hub.dead`` and acks a message only after its row committed, so the
queue stays near empty and nothing is lost. Messages that RabbitMQ dead-lettered itself
(delivery limit, rejection) carry ``x-death``; the hub's own carry its reason headers.
"""

from __future__ import annotations

import hashlib
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import constants as C
from hub.backbone.base import Backbone, Incoming
from hub.errors import UsageError
from hub.store.engine import dialect_insert
from hub.store.records import append_rows, record_row, utcnow
from hub.store.tables import dead_letters, packages

log = logging.getLogger("hub.deadletters")




def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class DeadLetterKeeper:
    def __init__(self, engine: AsyncEngine, backbone: Backbone):
        self.engine = engine
        self.backbone = backbone
        self._consumer = None
        self.kept = 0

    async def start(self) -> None:
        self._consumer = await self.backbone.consume(C.QUEUE_DEAD, self.keep, prefetch=50)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.cancel()
            self._consumer = None

    async def keep(self, incoming: Incoming) -> None:
        msg = incoming.message
        h = _jsonable(msg.headers or {})
        death = (h.get("x-death") or [{}])[0] if isinstance(h.get("x-death"), list) else {}
        reason = h.get(C.H_REASON) or (f"broker.{death.get('reason')}" if death.get("reason") else "broker.dead_lettered")
        message = h.get(C.H_MESSAGE) or (
            f"RabbitMQ dead-lettered it from {death.get('queue', '?')} ({death.get('reason', '?')}) after "
            f"{h.get('x-delivery-count', '?')} deliveries: the hub could not process it; inspect and replay or discard"
        )
        sha = hashlib.sha256(msg.body).hexdigest() if msg.body else None
        now = utcnow()
        async with self.engine.begin() as conn:
            if sha:
                await conn.execute(dialect_insert(conn, packages).on_conflict_do_nothing().values(
                    sha256=sha, size=len(msg.body), data=msg.body, stored_at=now))
            await conn.execute(dead_letters.insert().values(
                received_at=now, reason=reason, message=message,
                original_user=h.get(C.H_ORIGINAL_USER) or msg.user_id,
                original_exchange=h.get(C.H_ORIGINAL_EXCHANGE) or (death.get("exchange") if death else None),
                original_routing_key=h.get(C.H_ORIGINAL_ROUTING_KEY) or msg.routing_key,
                headers=h, sha256=sha, size=len(msg.body), state="pending"))
        await incoming.ack()
        self.kept += 1


async def list_dead(engine: AsyncEngine, state: str | None = "pending", limit: int = 100, offset: int = 0):
    q = sa.select(dead_letters).order_by(dead_letters.c.id.desc())
    if state:
        q = q.where(dead_letters.c.state == state)
    async with engine.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.count()).select_from(q.subquery()))).scalar()
        rows = (await conn.execute(q.limit(limit).offset(offset))).mappings().all()
    return total, [dict(r) for r in rows]


async def get_dead(engine: AsyncEngine, dead_id: int) -> tuple[dict, bytes]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(dead_letters).where(dead_letters.c.id == dead_id))).mappings().first()
        if row is None:
            raise UsageError(f"no dead letter {dead_id}", code="usage.not_found")
        data = b""
        if row["sha256"]:
            data = (await conn.execute(sa.select(packages.c.data).where(packages.c.sha256 == row["sha256"]))).scalar() or b""
    return dict(row), data


async def settle_dead(engine: AsyncEngine, backbone: Backbone, registry, ids: list[int], action: str,
                      actor: str) -> dict:
    """``replay`` (publish to edxml.submit as its original adapter) or ``discard`` pending letters."""
    if action not in ("replay", "discard"):
        raise UsageError("action must be replay or discard")
    done, skipped = [], []
    for dead_id in ids:
        row, data = await get_dead(engine, dead_id)
        if row["state"] != "pending":
            skipped.append({"id": dead_id, "state": row["state"]})
            continue
        if action == "replay":
            if not data:
                skipped.append({"id": dead_id, "state": "empty: nothing to replay"})
                continue
            if row["original_exchange"] == C.EXCHANGE_DELIVER:
                # A delivered copy its recipient gave up on (VDXP `fail`): back to that inbox,
                # under the same message id, so the recipient's list takes it up again.
                h = dict(row["headers"] or {})
                h[C.H_REPLAYED_BY] = actor
                await backbone.publish(C.EXCHANGE_DELIVER, row["original_routing_key"], data, headers=h,
                                       message_id=f"{h.get(C.H_KIND)}:{h.get(C.H_SENDER)}:"
                                                  f"{h.get(C.H_DOCUMENT_ID)}:{h.get(C.H_RECIPIENT)}")
            else:
                # The hub republishes as itself, naming the original adapter (like the HTTP gateway);
                # the checks then attribute it to that adapter again.
                headers = {C.H_REPLAYED_BY: actor}
                code = registry.agency_for_user(row["original_user"]) if row["original_user"] else None
                if code:
                    headers[C.H_GATEWAY_AGENCY] = code
                await backbone.publish(C.EXCHANGE_SUBMIT, "", data, user_id=backbone.user, headers=headers)
        async with engine.begin() as conn:
            res = await conn.execute(dead_letters.update().where(
                dead_letters.c.id == dead_id, dead_letters.c.state == "pending").values(
                state="replayed" if action == "replay" else "discarded", settled_at=utcnow(), settled_by=actor))
            if res.rowcount:
                await append_rows(conn, [record_row(
                    f"deadletter.{'replayed' if action == 'replay' else 'discarded'}", actor=actor,
                    sha256=row["sha256"], reason=row["reason"], details={"dead_letter": dead_id})])
        done.append(dead_id)
    return {"done": done, "skipped": skipped}
