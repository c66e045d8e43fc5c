"""Leader election: exactly one holder of a role (the audit sealer, the outbox sweeper) at a time.

On PostgreSQL the leader holds a session-level advisory lock (``pg_try_advisory_lock``) on a
connection of its own, kept open while it leads. The lock dies with that connection, so when
the holder dies (``kill -9``, a lost network, ``pg_terminate_backend``) another process takes
the role at its next poll. A leader checks its connection at every poll and steps down as soon
as the connection is gone: at most one process believes it leads, give or take that one poll
(work done under a role must stay safe to repeat, as sealing and relaying the outbox are).

On SQLite there is one process per database file: every contender leads (the old behaviour).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("hub.store.leader")

# Session-level advisory lock keys. They must differ from the transaction-scoped keys
# (7310021 migrations, 7310022 audit appends, 7310023 a seal): both kinds share one key space.
SEALER = 7310024
SWEEPER = 7310025


class Leadership:
    """Contends for one role; call :meth:`lead` before each round of the role's work."""

    def __init__(self, engine: AsyncEngine, key: int, role: str):
        self.engine = engine
        self.key = key
        self.role = role
        self.backend_pid: int | None = None  # the PostgreSQL backend holding the lock, while leading
        self._conn: AsyncConnection | None = None

    @property
    def leading(self) -> bool:
        return self._conn is not None or self.engine.dialect.name != "postgresql"

    async def lead(self) -> bool:
        """True when this contender holds the role now (taking it if it is free)."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._conn is not None:
            try:
                await self._conn.execute(sa.text("SELECT 1"))
                await self._conn.commit()
                return True
            except Exception as e:  # noqa: BLE001 - the connection (and with it the lock) is gone
                log.warning("%s: lost the leader's database connection (%s); stepping down", self.role, e)
                await self._drop(invalidate=True)
                return False
        conn = await self.engine.connect()
        try:
            got = (await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})).scalar()
            if not got:
                await conn.rollback()
                await conn.close()
                return False
            self.backend_pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
            await conn.commit()  # not idle in a transaction while leading; the session lock stays
        except BaseException:
            await conn.invalidate()
            await conn.close()
            raise
        self._conn = conn
        log.info("%s: this process leads now (backend %s)", self.role, self.backend_pid)
        return True

    async def release(self) -> None:
        """Give the role up (stopping): unlock, so a contender takes it at its next poll."""
        if self._conn is None:
            return
        try:
            await self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            await self._conn.commit()
            await self._drop(invalidate=False)
        except Exception:  # noqa: BLE001 - the connection is gone: so is the lock
            await self._drop(invalidate=True)

    async def _drop(self, *, invalidate: bool) -> None:
        conn, self._conn, self.backend_pid = self._conn, None, None
        if conn is None:
            return
        try:
            if invalidate:
                await conn.invalidate()  # never back into the pool with a dead (or locked) session
            await conn.close()
        except Exception:  # noqa: BLE001 - already broken
            pass
