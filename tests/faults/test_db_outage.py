"""Hole 1 of issue 8: a database outage must not dead-letter packages. The hub holds what it
has, stops consuming hub.intake (no requeue burns RabbitMQ's delivery limit), waits, resumes."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from hub import constants as C
from hub.edxml.builder import build_edoc
from hub.store.tables import dead_letters, documents, records
from tests.conftest import G22, H41, make_edoc
from tests.hubenv import _make_env, _teardown, drain

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

OUTAGE = 25  # seconds: the old worker dead-lettered a held batch within ~10 s (5 requeues)


@pytest.fixture
async def outage_env(tmp_path, pki, own_pg_url):
    e = await _make_env("rabbitmq", own_pg_url, tmp_path, pki)
    yield e
    await _teardown(e)


async def test_database_outage_dead_letters_nothing(outage_env, own_pg):
    env = outage_env
    async with env.running():
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        before = [make_edoc(G22, (H41,)) for _ in range(20)]
        for d in before:
            await g.send_document(d, [])
        await drain(h41, len(before), timeout=60)

        await asyncio.to_thread(own_pg.stop, "fast")
        first = [make_edoc(G22, (H41,)) for _ in range(10)]  # these meet the outage and are held
        for d in first:
            await g.send_document(d, [])
        await asyncio.sleep(3)
        later = [make_edoc(G22, (H41,)) for _ in range(100)]  # these must stay in hub.intake
        await asyncio.gather(*(g.publish(g.sign(build_edoc(d, []))) for d in later))
        during = first + later
        bb = env.hub.backbone
        await asyncio.sleep(OUTAGE)
        waiting = await bb.depth(C.QUEUE_INTAKE)
        assert waiting >= len(later), f"the hub kept taking packages while the database was down ({waiting} left)"
        assert await bb.depth(C.QUEUE_DEAD) == 0
        await asyncio.to_thread(own_pg.start)

        got = await drain(h41, len(during), timeout=90)
        assert sorted(r.document_id for r in got) == sorted(d.document_id for d in during)
        await asyncio.sleep(1)
        assert await bb.depth(C.QUEUE_DEAD) == 0
        assert await bb.consumers(C.QUEUE_INTAKE) == 1
    assert (await env.scalar(sa.select(sa.func.count()).select_from(dead_letters)))[0][0] == 0
    assert (await env.scalar(sa.select(sa.func.count()).select_from(documents)))[0][0] == 130
    twice = await env.scalar(sa.select(records.c.document_id).where(records.c.event == "package.accepted")
                             .group_by(records.c.document_id).having(sa.func.count() > 1))
    assert twice == []
