"""The sealer: folds new audit entries into the Merkle tree and signs a checkpoint.

Every N entries or T seconds, whichever comes first. Appends never wait for it (it only
reads records and inserts checkpoints). In the checkpoint's transaction it also stores the
hash of every perfect subtree the fold completed (``merkle_nodes``, ``hub.audit.nodes``), so
proofs read O(log n) rows; it is the only writer of that table. Only one sealer runs at a time, however many
workers: on PostgreSQL a transaction-scoped try-lock, on SQLite the database write lock;
and the checkpoint's size is its primary key, so two racing sealers cannot both write one.
Across several hub processes the :class:`Sealer` loop itself runs only in the elected leader
(``hub.store.leader``); the others wait to take over.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit import checkpoint as cp
from hub.audit import nodes
from hub.audit.merkle import CompactRange
from hub.pki.identity import Identity
from hub.retry import _sqlstate
from hub.store import leader
from hub.store.tables import checkpoints, records

log = logging.getLogger("hub.audit.sealer")
SEAL_LOCK = 7310023
CHUNK = 50_000
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired


def origin_for(organ_id: str) -> str:
    return f"{organ_id}/audit"


async def latest_checkpoint(conn) -> dict | None:
    return (await conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size.desc()).limit(1))).mappings().first()


def fold(frontier: CompactRange, rows) -> tuple[list[tuple[int, int, bytes]], int | None]:
    """Append ``(seq, leaf_hash hex)`` rows to ``frontier`` in order; returns the perfect
    subtrees completed (to store) and the seq found where the next one was expected (a gap), if any."""
    done: list[tuple[int, int, bytes]] = []
    for seq, leaf in rows:
        if seq != frontier.size + 1:
            return done, seq
        done.extend(frontier.append(bytes.fromhex(leaf)))
    return done, None


async def seal(engine: AsyncEngine, identity: Identity, *, origin: str | None = None,
               wait: float | None = None) -> cp.Checkpoint | None:
    """Sign a checkpoint over every entry written so far; None when there is nothing new
    (or another sealer holds the lock). With ``wait`` (seconds), on PostgreSQL, wait that
    long for another sealer to commit instead (then sign only what it left); None if it has not."""
    origin = origin or origin_for(identity.organ_id)
    try:
        return await _seal(engine, identity, origin, wait)
    except DBAPIError as e:
        if wait is not None and _sqlstate(e.orig) == LOCK_NOT_AVAILABLE:
            return None  # lock_timeout: the other sealer is still at it
        raise


async def _seal(engine: AsyncEngine, identity: Identity, origin: str, wait: float | None) -> cp.Checkpoint | None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            if wait is None:
                got = (await conn.execute(sa.text(f"SELECT pg_try_advisory_xact_lock({SEAL_LOCK})"))).scalar()
                if not got:
                    return None
            else:  # waits on the lock, not by polling it: no sleep past the other sealer's commit
                # one round trip: lock_timeout set for this transaction (a volatile subquery: first), then the lock
                await conn.execute(sa.text(
                    f"SELECT pg_advisory_xact_lock({SEAL_LOCK}) FROM (SELECT set_config('lock_timeout', :ms, true)) t"),
                    {"ms": str(max(1, int(wait * 1000)))})
        last = await latest_checkpoint(conn)
        frontier = CompactRange.from_json(last["frontier"]) if last else CompactRange()
        top = (await conn.execute(sa.select(sa.func.max(records.c.seq)))).scalar() or 0
        if top <= frontier.size:
            return None
        while frontier.size < top:
            rows = (await conn.execute(
                sa.select(records.c.seq, records.c.leaf_hash).where(records.c.seq > frontier.size)
                .order_by(records.c.seq).limit(CHUNK))).all()
            done, gap = await asyncio.to_thread(fold, frontier, rows)  # hashing: off the event loop
            await nodes.store_nodes(conn, done)
            if gap is not None:
                log.error("audit log: entry %d is missing (next present is %d); not sealing past it — "
                          "run `hub audit verify`", frontier.size + 1, gap)
                break
        if last is not None and frontier.size == last["size"]:
            return None
        signed = cp.sign(identity.key, origin=origin, size=frontier.size, root=frontier.root(),
                         at=datetime.now(timezone.utc), key_id=cp.key_id_for(identity.cert))
        await conn.execute(checkpoints.insert().values(
            size=signed.size, root=signed.root.hex(), at=signed.at, key_id=signed.key_id, text=signed.to_text(),
            frontier=frontier.to_json()))
    return signed


class Sealer:
    """Runs :func:`seal` every ``every_entries`` new entries or ``every_seconds``, whichever first."""

    def __init__(self, engine: AsyncEngine, identity: Identity, *, every_entries: int = 1000,
                 every_seconds: float = 10.0, poll: float = 1.0):
        self.engine = engine
        self.identity = identity
        self.every_entries = every_entries
        self.every_seconds = every_seconds
        self.poll = poll
        self.sealed = 0
        self.leadership = leader.Leadership(engine, leader.SEALER, "audit sealer")
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="hub-audit-sealer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        await self.leadership.release()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.poll)
            try:
                if not await self.leadership.lead():
                    last = loop.time()
                    continue
                async with self.engine.connect() as conn:
                    top = (await conn.execute(sa.select(sa.func.max(records.c.seq)))).scalar() or 0
                    latest = await latest_checkpoint(conn)
                pending = top - (latest["size"] if latest else 0)
                if pending <= 0:
                    last = loop.time()
                    continue
                if pending >= self.every_entries or loop.time() - last >= self.every_seconds:
                    if await seal(self.engine, self.identity) is not None:
                        self.sealed += 1
                    last = loop.time()
            except Exception as e:  # noqa: BLE001 - retried next round; appends never depend on it
                log.warning("sealing failed: %s", e)
