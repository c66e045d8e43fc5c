"""Exactly-once recording rests on the idempotency table, not on the audit log: with the audit
log off, a package that comes back (a real redelivery from the broker, or a retry after a
commit whose reply was lost) is recorded once and answered once. On real RabbitMQ +
PostgreSQL and on the embedded broker + SQLite."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from hub.backbone.base import inbox_queue
from hub.edxml.builder import build_edoc
from hub.store.tables import deliveries, documents, intake_seen, outbox, records
from tests.conftest import G22, H41, H44, attachment, make_edoc
from tests.hubenv import until


def packages(g):
    """An edoc G22 may send to H41 and H44, and one H44 refuses (a type it does not accept)."""
    good = g.sign(build_edoc(make_edoc(G22, (H41, H44)), [attachment()]))
    refused = g.sign(build_edoc(make_edoc(G22, (H44,), doc_type="9"), []))
    return good, refused


async def settled(env, hub) -> None:
    """Every outbox row marked sent, then nothing left for the relay: what is in the queues is all there is."""
    async def all_sent():
        async with hub.engine.connect() as c:
            return (await c.execute(sa.select(sa.func.count()).select_from(outbox)
                                    .where(outbox.c.sent_at.is_(None)))).scalar_one() == 0

    await until(all_sent)
    assert await hub.workers[0].relay_pending(older_than=0) == 0


async def depth(hub, code: str, urgent: bool = False) -> int:
    return await hub.backbone.depth(inbox_queue(code, urgent))


async def recorded_once(env, hub, good: bytes, refused: bytes, *, audit: bool) -> None:
    sha_good, sha_refused = hashlib.sha256(good).hexdigest(), hashlib.sha256(refused).hexdigest()
    await until(lambda: _depths(hub, ((H41, False, 1), (H44, False, 1), (G22, True, 1))))
    await settled(env, hub)
    # one copy per recipient, one refusal to the sender: nothing published twice
    assert [await depth(hub, H41), await depth(hub, H44), await depth(hub, G22, True)] == [1, 1, 1]
    docs = await env.scalar(sa.select(documents.c.id).where(documents.c.sha256 == sha_good))
    assert len(docs) == 1
    assert sorted(r for r, in await env.scalar(sa.select(deliveries.c.recipient))) == [H41, H44]
    rows = await env.scalar(sa.select(outbox.c.intake_sha256, sa.func.count()).group_by(outbox.c.intake_sha256))
    assert sorted(rows) == sorted([(sha_good, 2), (sha_refused, 1)])
    seen = await env.scalar(sa.select(intake_seen.c.sha256, intake_seen.c.adapter_user))
    assert sorted(seen) == sorted([(sha_good, env.user_of(G22)), (sha_refused, env.user_of(G22))])
    refusals = await env.scalar(sa.select(records.c.seq).where(records.c.event == "package.refused"))
    accepted = await env.scalar(sa.select(records.c.seq).where(records.c.event == "package.accepted"))
    assert (len(refusals), len(accepted)) == ((1, 1) if audit else (0, 0))


async def _depths(hub, wanted) -> bool:
    return all([await depth(hub, code, urgent) >= n for code, urgent, n in wanted])


async def test_audit_off_a_redelivered_package_is_recorded_and_answered_once(env):
    """The broker hands the same message over again (the worker requeued it after its batch
    committed): found in the idempotency table, only its outbox is finished."""
    env.settings = env.settings.model_copy(update={"audit": False})
    async with env.running() as hub:
        worker = hub.workers[0]
        publish = worker.relay.publish
        failed = []

        async def lost_after_commit(items, **kw):
            if not failed:  # the first batch: committed, then a fault before publishing -> requeued
                failed.append(len(items))
                raise RuntimeError("a fault after the commit")
            return await publish(items, **kw)

        worker.relay.publish = lost_after_commit
        g = await env.adapter(G22, start=False)
        good, refused = packages(g)
        await g.publish(good)
        await until(lambda: _depths(hub, ((H41, False, 1), (H44, False, 1))))
        failed.clear()
        await g.publish(refused)
        await recorded_once(env, hub, good, refused, audit=False)
        assert failed  # both batches went through the redelivery


@pytest.mark.parametrize("audit", [False, True], ids=["audit_off", "audit_on"])
async def test_an_ambiguous_commit_records_nothing_twice_and_answers_once(env, audit):
    """The COMMIT succeeds but its reply is lost (the worker sees a connection error): the retry
    finds the batch recorded and publishes its outbox once; no second refusal is sent."""
    env.settings = env.settings.model_copy(update={"audit": audit})
    async with env.running() as hub:
        worker = hub.workers[0]
        record = worker.recorder.record
        lost = []

        async def commit_reply_lost(items, verdicts, registry, *, retry=False, **kw):
            out = await record(items, verdicts, registry, retry=retry, **kw)
            if not retry:  # every batch's first attempt: committed, but the worker is told it failed
                lost.append(len(items))
                raise sa_exc.OperationalError("COMMIT", {}, ConnectionResetError(104, "connection lost during COMMIT"))
            return out

        worker.recorder.record = commit_reply_lost
        g = await env.adapter(G22, start=False)
        good, refused = packages(g)
        await g.publish(good)
        await g.publish(refused)
        await recorded_once(env, hub, good, refused, audit=audit)
        assert sum(lost) == 2  # both packages' batches were retried
