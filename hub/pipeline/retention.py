"""Retention of the idempotency table: ``intake_seen`` rows older than ``HUB_INTAKE_SEEN_DAYS``.

A row names an intake message the hub recorded (its SHA-256 and publisher), so that a
redelivery of it, or a batch retried after a commit whose reply was lost, only finishes its
outbox (``hub.pipeline.recording``). Such a redelivery comes within minutes (RabbitMQ's
``consumer_timeout``, 30 min by default, bounds how long a message stays unacknowledged), so a
row is useless long before the default 30 days; without pruning the table grows by one row per
package forever. A message the broker hands over again after the retention is decided again:
an accepted edoc is still found by its document (nothing recorded twice), a refused package is
refused and answered a second time.

The elected sweeper (``hub.pipeline.worker``) prunes, in batches of :data:`BATCH` rows per
transaction so that no lock is held long.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.tables import intake_seen

BATCH = 5000
EVERY_SECONDS = 3600.0  # how often the sweeper prunes (the rows age in days)


async def prune_seen(engine: AsyncEngine, days: float, *, now: datetime | None = None, batch: int = BATCH) -> int:
    """Delete ``intake_seen`` rows recorded more than ``days`` ago (0: keep every row); returns how many."""
    if days <= 0:
        return 0
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    total = 0
    while True:
        async with engine.begin() as conn:
            keys = (await conn.execute(
                sa.select(intake_seen.c.sha256, intake_seen.c.adapter_user)
                .where(intake_seen.c.recorded_at < cutoff).limit(batch))).all()
            if keys:
                await conn.execute(intake_seen.delete().where(
                    sa.tuple_(intake_seen.c.sha256, intake_seen.c.adapter_user).in_([tuple(k) for k in keys])))
        total += len(keys)
        if len(keys) < batch:
            return total
