"""The failure tests of issue 15 on a cluster of the suite's own: 3 RabbitMQ nodes (quorum
queues, pause_minority), PostgreSQL (a primary with a synchronous standby for the failover) and
one or two `hub serve` processes. Each streams 5,000 packages (every third to two recipients),
counted end to end by independent consumers through one fault:

- one hub of two killed with ``kill -9``: the other keeps going, the sealer and the outbox
  sweeper move to it (seen in PostgreSQL: who holds the advisory locks);
- the PostgreSQL primary stopped (immediate: a crash) and the standby promoted: the hubs find
  it through ``target_session_attrs=read-write`` without a restart;
- the network to one RabbitMQ node cut for 30 s: pause_minority pauses it, the clients move;
- one RabbitMQ node killed and brought back.

Every scenario ends with 0 lost, 0 dead-lettered, 0 recorded twice, no orphaned process and
`hub audit verify` OK, and prints published/confirmed/delivered/duplicates/lost and the time to
recover (the longest the recipients waited for a delivery from the fault on). Every wait
has a deadline and pytest a timeout; every process a scenario starts is killed in its teardown.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from hub.store.engine import make_engine
from tests.conftest import G22, H41, H44
from tests.faults.cluster import _port_open
from tests.faults.hubproc import alive
from tests.faults.stream import Broker, Stream, assert_clean, signed

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(360)]

N = 5000
CUT = 30  # seconds without a network between RabbitMQ node 0 and the others


@pytest.fixture(scope="module")
def big_stream(pki):
    return [signed(pki, G22, (H41, H44) if i % 3 == 0 else (H41,)) for i in range(N)]


@pytest.fixture(scope="module")
def broker(rabbit_cluster):
    return Broker.make(rabbit_cluster)


async def _stream(broker, pg, pki, tmp_path, packages, hubs: int = 1) -> Stream:
    if hasattr(pg, "start") and not pg.running:
        await asyncio.to_thread(pg.start)
    s = Stream(broker, pg, pki, tmp_path, packages, hubs=hubs)
    await s.setup()
    return s


async def _run(s: Stream, fault, *, hubs_started: bool = False) -> None:
    """Hub(s) up, receivers, the stream; ``fault`` runs once a quarter of it is confirmed."""
    if not hubs_started:
        await s.start_hub(*range(s.n_hubs))
    await s.start_receivers()
    pub = s.stream()
    await s.until_confirmed(N // 4, timeout=180)
    await fault()
    await asyncio.wait_for(pub, 300)
    await s.until_delivered(timeout=240)


async def test_one_hub_of_two_killed_the_other_keeps_going_and_takes_the_roles(
        broker, own_pg, pki, tmp_path, big_stream):
    s = await _stream(broker, own_pg, pki, tmp_path, big_stream, hubs=2)
    try:
        # hub-0 first, alone until it holds both roles (the sweeper's first round is 15 s in); then hub-1
        await s.start_hub(0)
        await s.until_leaders({"sealer": "hub-0", "sweeper": "hub-0"}, timeout=60)
        await s.start_hub(1)
        moved: dict[str, float] = {}

        async def fault() -> None:
            victim = s.hubs[0]
            kids = await asyncio.to_thread(victim.wait_children, 1, 60)
            assert s.hubs[1].proc.poll() is None
            s.fault()
            victim.kill9()
            t0 = time.monotonic()
            moved["sealer"] = await s.until_leaders({"sealer": "hub-1"}, timeout=60)
            moved["sweeper"] = await s.until_leaders({"sweeper": "hub-1"}, timeout=60)
            moved["both"] = time.monotonic() - t0
            assert not any(alive(k) for k in kids), f"check process(es) {kids} outlived the killed hub"

        await _run(s, fault, hubs_started=True)
        assert s.hubs[1].proc.poll() is None, "the surviving hub went down"
        c = await s.finish("hub 1 of 2 killed -9")
        print(f"  leadership moved to hub-1: sealer in {moved['sealer']:.1f} s, sweeper in {moved['both']:.1f} s",
              flush=True)
        assert_clean(s, c, N)
    finally:
        s.cleanup()


async def test_postgres_primary_stopped_and_the_standby_promoted(broker, pg_pair, pki, tmp_path, big_stream):
    s = await _stream(broker, pg_pair, pki, tmp_path, big_stream, hubs=2)
    try:
        async def fault() -> None:
            s.fault()
            await asyncio.to_thread(pg_pair.primary.stop, "immediate")  # a crash: no shutdown checkpoint sent
            await asyncio.sleep(5)  # the failover manager (or an operator) decides
            await asyncio.to_thread(pg_pair.promote)

        await _run(s, fault)
        pids = [h.proc.pid for h in s.hubs]
        assert all(h.proc.poll() is None for h in s.hubs), "a hub exited during the failover"
        engine = make_engine(s.db_url)
        try:
            async with engine.connect() as conn:  # the URL's first host is down: this is the promoted standby
                port = (await conn.execute(sa.text("SELECT inet_server_port()"))).scalar()
                recovery = (await conn.execute(sa.text("SELECT pg_is_in_recovery()"))).scalar()
        finally:
            await engine.dispose()
        assert (port, recovery) == (pg_pair.standby.port, False)
        c = await s.finish("PostgreSQL primary stopped, standby promoted")
        assert [h.proc.pid for h in s.hubs] == pids, "a hub was restarted"
        assert_clean(s, c, N)
    finally:
        s.cleanup()


async def test_network_to_one_rabbitmq_node_cut_for_30_s(broker, own_pg, pki, tmp_path, big_stream, rabbit_cluster):
    s = await _stream(broker, own_pg, pki, tmp_path, big_stream)
    node0 = rabbit_cluster.members[0]
    seen: dict[str, float] = {}
    try:
        async def fault() -> None:
            s.fault()
            t0 = time.monotonic()
            rabbit_cluster.cut()  # node 0: every client's first node
            try:
                while _port_open(node0.port):  # pause_minority: node 0 stops its listeners
                    assert time.monotonic() - t0 < CUT, f"node 0 did not pause within {CUT} s of the cut"
                    await asyncio.sleep(0.5)
                seen["paused"] = time.monotonic() - t0
                await asyncio.sleep(max(0.0, CUT - (time.monotonic() - t0)))
            finally:
                await asyncio.to_thread(rabbit_cluster.heal)
            t1 = time.monotonic()
            await asyncio.to_thread(rabbit_cluster.wait_node, 0, 120)  # back, and running the app again
            seen["back"] = time.monotonic() - t1

        await _run(s, fault)
        c = await s.finish(f"network to RabbitMQ node 1 of 3 cut for {CUT} s")
        print(f"  node paused {seen['paused']:.1f} s into the cut (pause_minority), "
              f"running again {seen['back']:.1f} s after it healed", flush=True)
        assert_clean(s, c, N)
    finally:
        s.cleanup()
        rabbit_cluster.heal()
        await asyncio.to_thread(rabbit_cluster.wait_node, 0, 120)  # whole again for whoever comes next


async def test_one_rabbitmq_node_killed_and_brought_back(broker, own_pg, pki, tmp_path, big_stream, rabbit_cluster):
    s = await _stream(broker, own_pg, pki, tmp_path, big_stream)
    back: dict[str, float] = {}
    try:
        async def fault() -> None:
            s.fault()
            await asyncio.to_thread(rabbit_cluster.kill, 0)  # every client's first node
            await asyncio.sleep(10)
            t0 = time.monotonic()
            rabbit_cluster.start_node(0)
            await asyncio.to_thread(rabbit_cluster.wait_node, 0, 120)
            back["node"] = time.monotonic() - t0

        await _run(s, fault)
        c = await s.finish("RabbitMQ node 1 of 3 killed -9, back after 10 s")
        print(f"  the node ran again {back['node']:.1f} s after its restart", flush=True)
        assert_clean(s, c, N)
    finally:
        s.cleanup()
        rabbit_cluster.start_node(0)  # whole again for whoever comes next
        await asyncio.to_thread(rabbit_cluster.wait_node, 0, 120)
