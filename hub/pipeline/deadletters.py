"""Dead letters: what reached ``hub.dead`` is kept in the database for admins to inspect,
replay to intake or discard — one or many, each action recorded with its actor.

The keeper consumes ``hub.dead`` and acks a message only after its row committed, so the
queue stays near empty and nothing is lost. While the database is unreachable it stops
consuming (``hub.dead`` has no delivery limit, so what it handed back waits there), says so
once, probes with a bounded exponential backoff with jitter, and consumes again when the
database answers.

What a dead letter says about itself is believed only as far as the broker proves it
(:func:`provenance`): the hub's own dead letters (published as the hub's broker user, no
``x-death``) carry reason headers only the hub can set; a message RabbitMQ dead-lettered
itself (``x-death``: delivery limit, rejection) carries whatever its publisher set, so only
its validated ``user_id`` and the broker's ``x-death`` are used, and it gets an audit entry
(``package.dead_lettered``) when it is taken in.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import constants as C
from hub.backbone.base import DEFAULT_USER, Backbone, Incoming, Message
from hub.errors import TransientError, UsageError
from hub.retry import backoff
from hub.audit.records import append_rows, record_row, utcnow
from hub.backbone.blobref import BlobRef
from hub.store import packages as stored_packages
from hub.store.packages import Stored
from hub.store.tables import dead_letters

log = logging.getLogger("hub.deadletters")

# x-death reasons RabbitMQ gives; anything else (a forged x-death entry) is "broker.dead_lettered"
BROKER_REASONS = ("delivery_limit", "rejected", "expired", "maxlen")
# faults that are the environment's, not the message's: pause and retry later
UNAVAILABLE = (OperationalError, DBAPIError, TransientError, ConnectionError, OSError, asyncio.TimeoutError)


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


def _text(value, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Provenance:
    """What the evidence proves about a dead letter.

    ``by_hub``: the hub dead-lettered it itself (and recorded that when it decided);
    otherwise RabbitMQ did (``x-death``) or an unknown publisher put it on ``hub.dead``.
    ``original_user`` is the broker-validated publisher (for the hub's own letters, the
    adapter the hub attributed the package to); ``actor`` is who the audit log may name."""

    reason: str
    message: str
    original_user: str | None
    original_exchange: str | None
    original_routing_key: str | None
    by_hub: bool
    actor: str | None


def provenance(msg: Message, headers: dict, hub_user: str) -> Provenance:
    """Pure: believe a dead letter's headers only as far as the broker vouches for them."""
    deaths = headers.get("x-death")
    death = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else None
    from_hub = bool(hub_user) and msg.user_id == hub_user
    if death is None and from_hub:  # the hub's own: only its connection can publish with its user_id
        user = _text(headers.get(C.H_ORIGINAL_USER), 128)
        return Provenance(
            reason=_text(headers.get(C.H_REASON), 64) or "hub.dead_lettered",
            message=_text(headers.get(C.H_MESSAGE), 2000) or "the hub dead-lettered it",
            original_user=user, original_exchange=_text(headers.get(C.H_ORIGINAL_EXCHANGE), 64),
            original_routing_key=_text(headers.get(C.H_ORIGINAL_ROUTING_KEY), 128), by_hub=True, actor=user)
    gateway = _text(headers.get(C.H_GATEWAY_AGENCY), 64) if from_hub else None
    actor = f"gateway:{gateway}" if gateway else msg.user_id
    if death is None:
        return Provenance(
            reason="broker.dead_lettered",
            message=(f"published straight to {C.EXCHANGE_DEAD} by {msg.user_id or 'an unnamed publisher'}, not by "
                     "the hub: its headers are not believed; inspect and replay or discard"),
            original_user=msg.user_id, original_exchange=None, original_routing_key=msg.routing_key or None,
            by_hub=False, actor=actor)
    why = death.get("reason") if death.get("reason") in BROKER_REASONS else None
    keys = death.get("routing-keys")
    queue = _text(death.get("queue"), 64) or "?"
    return Provenance(
        reason=f"broker.{why}" if why else "broker.dead_lettered",
        message=(f"RabbitMQ dead-lettered it from {queue} ({why or 'unknown reason'}) after "
                 f"{death.get('count', '?')} time(s): the hub could not process it; inspect and replay or discard"),
        original_user=msg.user_id, original_exchange=_text(death.get("exchange"), 64),
        original_routing_key=_text(keys[0], 128) if isinstance(keys, list) and keys else None,
        by_hub=False, actor=actor)


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0, rand=random.random) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): exponential from ``base``, at most ``cap``,
    with jitter (between half and all of it) so that many keepers do not retry in step."""
    return backoff(attempt, base, cap, jitter=True, rand=rand)


class DeadLetterKeeper:
    def __init__(self, engine: AsyncEngine, backbone: Backbone | None, *, hub_user: str | None = None,
                 base_delay: float = 0.5, max_delay: float = 30.0):
        self.engine = engine
        self.backbone = backbone
        self.hub_user = hub_user if hub_user is not None else (backbone.user if backbone is not None else DEFAULT_USER)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._consumer = None
        self._recovery: asyncio.Task | None = None
        self._outages = 0  # consecutive outages without a kept letter in between (grows the backoff)
        self.kept = 0
        self.paused = False

    async def start(self) -> None:
        self._consumer = await self.backbone.consume(C.QUEUE_DEAD, self.keep, prefetch=50)

    async def stop(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            try:
                await self._recovery
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
            self._recovery = None
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.cancel()

    async def keep(self, incoming: Incoming) -> None:
        if self.paused:  # delivered before the pause took effect: back to hub.dead (no delivery limit there)
            await self._give_back(incoming)
            return
        try:
            await self._store(incoming)
        except Exception as e:  # noqa: BLE001 - any failure pauses the keeper; none may spin it
            await self._give_back(incoming)
            await self._pause(e)
            return
        self._outages = 0
        self.kept += 1
        try:
            await incoming.ack()
        except Exception as e:  # noqa: BLE001 - stored already; the connection is gone, RabbitMQ hands it over again
            log.warning("dead-letter keeper: stored a letter but could not acknowledge it (%s)", e)

    async def _store(self, incoming: Incoming) -> None:
        msg = incoming.message
        h = _jsonable(msg.headers or {})
        p = provenance(msg, h, self.hub_user)
        # A blob reference is believed only from the hub's own broker user (a large package the
        # gateway or the hub handed over by reference, dead-lettered by RabbitMQ or by the hub).
        ours = msg.user_id == self.hub_user
        ref = BlobRef.of(h) if ours and not msg.body else None
        now = utcnow()
        async with self.engine.begin() as conn:
            kept = await stored_packages.keep(conn, msg.body, h, now, by_reference=ours) if msg.body or ref else None
            sha = kept.sha256 if kept is not None else None
            size = kept.size if kept is not None else len(msg.body)
            dead_id = (await conn.execute(dead_letters.insert().returning(dead_letters.c.id).values(
                received_at=now, reason=p.reason, message=p.message, original_user=p.original_user,
                original_exchange=p.original_exchange, original_routing_key=p.original_routing_key,
                headers=h, sha256=sha, size=size, state="pending"))).scalar_one()
            if not p.by_hub:  # the hub recorded its own dead letters when it decided; RabbitMQ's are new to the log
                await append_rows(conn, [record_row(
                    "package.dead_lettered", actor=p.actor, sha256=sha, reason=p.reason, message=p.message,
                    details={"dead_letter": dead_id, "size": size, "by": "rabbitmq" if h.get("x-death")
                             else "unverified publisher", "exchange": p.original_exchange,
                             "routing_key": p.original_routing_key})])

    @staticmethod
    async def _give_back(incoming: Incoming) -> None:
        if not incoming.settled:
            try:
                await incoming.reject(requeue=True)
            except Exception:  # noqa: BLE001 - connection gone: RabbitMQ requeued it already
                pass

    async def _pause(self, error: Exception) -> None:
        """Stop consuming and retry in the background; one log line per change of state."""
        if self.paused:
            return
        self.paused = True
        self._outages += 1
        outage = isinstance(error, UNAVAILABLE)
        what = "the database or the broker is unavailable" if outage else "storing a dead letter failed"
        log.warning("dead-letter keeper: %s (%s: %s); paused %s, retrying with backoff", what,
                    type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "", C.QUEUE_DEAD,
                    exc_info=None if outage else error)  # a bug's traceback, once per pause
        if self._consumer is not None:
            try:
                await self._consumer.stop_deliveries()
            except Exception:  # noqa: BLE001 - the recovery replaces the consumer anyway
                pass
        self._recovery = asyncio.create_task(self._recover(), name="dead-letter-keeper-recovery")

    async def _recover(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = self._outages - 1
        while True:
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt, base=self.base_delay, cap=self.max_delay))
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
                old, self._consumer = self._consumer, None
                if old is not None:
                    await old.cancel()  # its callbacks have all handed their messages back
                self.paused = False
                self._consumer = await self.backbone.consume(C.QUEUE_DEAD, self.keep, prefetch=50)
            except Exception:  # noqa: BLE001 - still unavailable: no new line, the state did not change
                self.paused = True
                continue
            log.info("dead-letter keeper: consuming %s again after %.0f s", C.QUEUE_DEAD, loop.time() - started)
            self._recovery = None
            return


async def list_dead(engine: AsyncEngine, state: str | None = "pending", limit: int = 100, offset: int = 0):
    q = sa.select(dead_letters).order_by(dead_letters.c.id.desc())
    if state:
        q = q.where(dead_letters.c.state == state)
    async with engine.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.count()).select_from(q.subquery()))).scalar()
        rows = (await conn.execute(q.limit(limit).offset(offset))).mappings().all()
    return total, [dict(r) for r in rows]


async def get_dead(engine: AsyncEngine, dead_id: int) -> tuple[dict, Stored | None]:
    """The dead letter and where its package's bytes are (``hub.store.packages``; None: no body)."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(dead_letters).where(dead_letters.c.id == dead_id))).mappings().first()
        if row is None:
            raise UsageError(f"no dead letter {dead_id}", code="usage.not_found")
        stored = await stored_packages.locate(conn, row["sha256"])
    return dict(row), stored


async def settle_dead(engine: AsyncEngine, backbone: Backbone, registry, ids: list[int], action: str,
                      actor: str) -> dict:
    """``replay`` (publish to edxml.submit as its original adapter) or ``discard`` pending letters."""
    if action not in ("replay", "discard"):
        raise UsageError("action must be replay or discard")
    done, skipped = [], []
    for dead_id in ids:
        row, stored = await get_dead(engine, dead_id)
        if row["state"] != "pending":
            skipped.append({"id": dead_id, "state": row["state"]})
            continue
        if action == "replay":
            if stored is None or not stored.size:
                skipped.append({"id": dead_id, "state": "empty: nothing to replay"})
                continue
            # A package stored as a blob goes back by reference, as it came (never over the broker's limit).
            data, ref = (b"", stored.ref().headers()) if stored.by_reference else (stored.inline, {})
            if row["reason"] == "vdxp.delivery_failed" and row["original_exchange"] == C.EXCHANGE_DELIVER:
                # A delivered copy its VDXP recipient gave up on (`fail`; the hub wrote this row
                # itself, it never comes from hub.dead): back to that inbox, under the same message
                # id, so the recipient's list takes it up again.
                h = {**dict(row["headers"] or {}), **ref}
                h[C.H_REPLAYED_BY] = actor
                await backbone.publish(C.EXCHANGE_DELIVER, row["original_routing_key"], data, headers=h,
                                       message_id=f"{h.get(C.H_KIND)}:{h.get(C.H_SENDER)}:"
                                                  f"{h.get(C.H_DOCUMENT_ID)}:{h.get(C.H_RECIPIENT)}")
            else:
                # The hub republishes as itself, naming the original adapter (like the HTTP gateway);
                # the checks then attribute it to that adapter again.
                headers = {C.H_REPLAYED_BY: actor, **ref}
                code = _replay_agency(row, registry, backbone.user)
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


def _replay_agency(row: dict, registry, hub_user: str) -> str | None:
    """The agency a replay is published for: the one the broker-validated publisher serves. A letter
    the hub published for the HTTP gateway names the calling agency in a header only the hub's user
    can set; a letter without a proven publisher is replayed for nobody (and refused again)."""
    user = row["original_user"]
    if not user:
        return None
    if user == hub_user:
        agency = (row["headers"] or {}).get(C.H_GATEWAY_AGENCY)
        return agency if isinstance(agency, str) and agency else None
    return registry.agency_for_user(user)
