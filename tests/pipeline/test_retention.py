"""The idempotency table's retention (``HUB_INTAKE_SEEN_DAYS``, ``hub.pipeline.retention``): the
sweeper forgets recorded intake messages older than it. A pruned key no longer blocks a
redelivery (the message is decided again); a kept one still does (only its outbox is finished).
On RabbitMQ + PostgreSQL and on the embedded defaults."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from hub.edxml.builder import build_edoc
from hub.pipeline.retention import prune_seen
from hub.store.tables import intake_seen, outbox, records
from tests.conftest import G22, H44, make_edoc
from tests.hubenv import until


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_a_pruned_key_no_longer_blocks_and_a_kept_one_does(env):
    """The broker hands a refused package over again after its batch committed (a fault before
    publishing its answer). Its key pruned meanwhile (aged past the retention), it is decided
    again: refused and answered a second time. Its key kept, only its outbox is finished."""
    env.settings = env.settings.replace(intake_seen_days=30)
    async with env.running() as hub:
        worker = hub.workers[0]
        publish = worker.relay.publish
        holding, hold, fault = asyncio.Event(), asyncio.Event(), [False]

        async def fault_after_commit(items, **kw):
            if fault[0]:  # committed; held while the test prunes, then failed -> requeued, redelivered
                fault[0] = False
                holding.set()
                await hold.wait()
                raise RuntimeError("a fault after the commit")
            return await publish(items, **kw)

        worker.relay.publish = fault_after_commit
        g = await env.adapter(G22, start=False)
        pruned = g.sign(build_edoc(make_edoc(G22, (H44,), doc_type="9"), []))  # H44 does not accept type 9
        kept = g.sign(build_edoc(make_edoc(G22, (H44,), doc_type="9"), []))

        async def refusals(data: bytes) -> int:
            return len(await env.scalar(sa.select(records.c.seq).where(
                records.c.event == "package.refused", records.c.sha256 == sha(data))))

        async def redelivered(data: bytes, *, prune: bool) -> None:
            holding.clear()
            hold.clear()
            fault[0] = True
            await g.publish(data)
            await asyncio.wait_for(holding.wait(), 30)
            assert await refusals(data) == 1 and await env.scalar(sa.select(intake_seen.c.sha256).where(
                intake_seen.c.sha256 == sha(data))) == [(sha(data),)]
            if prune:
                async with worker.engine.begin() as conn:  # recorded 31 days ago
                    await conn.execute(intake_seen.update().where(intake_seen.c.sha256 == sha(data)).values(
                        recorded_at=datetime.now(timezone.utc) - timedelta(days=31)))
            assert await worker.prune_seen() == (1 if prune else 0)
            batches = worker.stats.batches
            hold.set()

            async def redelivery_done():
                return worker.stats.batches > batches

            await until(redelivery_done)  # the redelivered message's batch went through
            await settled(hub)

        await redelivered(pruned, prune=True)
        assert await refusals(pruned) == 2  # no longer blocked: decided (and answered) again
        await redelivered(kept, prune=False)
        assert await refusals(kept) == 1  # blocked: only its outbox was finished
        assert await prune_seen(worker.engine, 30) == 0


async def settled(hub) -> None:
    """Every outbox row published and marked sent: by the redelivery, or (the original answer of a
    message decided again) by the sweeper's relay, run here at once."""
    async def all_sent():
        await hub.workers[0].relay_pending(older_than=0)
        async with hub.engine.connect() as c:
            return (await c.execute(sa.select(sa.func.count()).select_from(outbox)
                                    .where(outbox.c.sent_at.is_(None)))).scalar_one() == 0

    await until(all_sent)


async def test_zero_days_keeps_every_row(migrated_engine):
    now = datetime.now(timezone.utc)
    async with migrated_engine.begin() as conn:
        await conn.execute(intake_seen.insert(), [
            {"sha256": f"{i:064x}", "adapter_user": "u", "recorded_at": now - timedelta(days=400 * i)}
            for i in range(3)])
    assert await prune_seen(migrated_engine, 0) == 0
    assert await prune_seen(migrated_engine, 500, batch=1) == 1  # in batches of one: the 800-day-old row
    async with migrated_engine.connect() as conn:
        left = sorted(r[0] for r in (await conn.execute(sa.select(intake_seen.c.sha256))).all())
    assert left == [f"{0:064x}", f"{1:064x}"]
