"""The gateway's inbox leases in the database (hub.api.leases), on RabbitMQ + PostgreSQL and on the
embedded defaults: urgent first, an expired lease is handed out again under a new id (the old one
is refused), each package is acknowledged once even by racing acks, and a copy the broker hands
out again is dropped."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from hub import constants as C
from hub.api import leases
from hub.backbone.base import inbox_key
from hub.store.engine import make_engine
from hub.store.tables import gateway_leases, gateway_seen
from tests.conftest import G22, H41


async def _deliver(env, n: int, *, urgent: bool = False, first: int = 0) -> None:
    for i in range(first, first + n):
        await env.hub.backbone.publish(
            C.EXCHANGE_DELIVER, inbox_key(H41, urgent), f"<package {i}/>".encode(), message_id=f"edoc:{G22}:D{i}:{H41}",
            headers={C.H_KIND: "edoc", C.H_SENDER: G22, C.H_DOCUMENT_ID: f"D{i}", C.H_RECIPIENT: H41})


async def test_leases_expire_hand_out_again_and_settle_once(env):
    async with env.running() as hub:
        engine = make_engine(env.settings.database_url)
        try:
            await _deliver(env, 2)
            await _deliver(env, 1, urgent=True, first=2)
            got = await leases.hand_out(engine, hub.backbone, H41, 10, lease_seconds=0)  # expired at once
            assert [(x.headers[C.H_DOCUMENT_ID], x.urgent) for x in got] == [("D2", True), ("D0", False),
                                                                             ("D1", False)]
            assert got[1].data == b"<package 0/>"
            assert await hub.backbone.depth("inbox." + H41) == 0  # moved into the database
            again = await leases.hand_out(engine, hub.backbone, H41, 2)  # the expired ones first, oldest first
            assert [x.headers[C.H_DOCUMENT_ID] for x in again] == ["D2", "D0"]
            assert {x.lease_id for x in again}.isdisjoint({x.lease_id for x in got})
            acked, unknown = await leases.settle(engine, H41, [got[0].lease_id, again[0].lease_id])
            assert acked == [again[0].lease_id] and unknown == [got[0].lease_id]  # the old id was handed on
            # another agency cannot settle H41's lease; racing acks of one lease: exactly one wins
            assert await leases.settle(engine, G22, [again[1].lease_id]) == ([], [again[1].lease_id])
            results = await asyncio.gather(*(leases.settle(engine, H41, [again[1].lease_id]) for _ in range(4)))
            assert sorted(len(a) for a, _ in results) == [0, 0, 0, 1]
            # a late ack of an expired lease nobody was handed again still counts
            assert await leases.settle(engine, H41, [got[2].lease_id]) == ([got[2].lease_id], [])
            # a copy of a package already handed over (the broker redelivered it) is dropped
            await _deliver(env, 1)
            assert await leases.hand_out(engine, hub.backbone, H41, 10) == []
            async with engine.connect() as conn:
                assert (await conn.execute(sa.select(sa.func.count()).select_from(gateway_leases))).scalar() == 0
                seen = (await conn.execute(sa.select(gateway_seen.c.message_id))).scalars().all()
            assert sorted(seen) == [f"edoc:{G22}:D{i}:{H41}" for i in range(3)]
        finally:
            await engine.dispose()
