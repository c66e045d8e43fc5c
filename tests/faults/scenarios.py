"""Issue 15's cluster faults, each a stream of packages (5,000 in the suite and the benchmark)
through `hub serve` on a cluster of our own, counted end to end by independent consumers:

- :func:`hub_killed`: one hub of two killed with ``kill -9``; the other keeps going, and the
  sealer and the outbox sweeper move to it (seen in PostgreSQL: who holds the advisory locks);
- :func:`postgres_failover`: the PostgreSQL primary stopped (immediate: a crash) and its
  synchronous standby promoted; the hubs find it through ``target_session_attrs=read-write``
  without a restart;
- :func:`network_cut`: the network between one RabbitMQ node and the others cut for 30 s;
  pause_minority pauses that node, the clients move;
- :func:`node_killed`: one RabbitMQ node killed with ``kill -9`` and brought back 10 s later.

Each returns the :class:`Stream` and its :class:`Counts` after checking that nothing was lost,
dead-lettered, recorded twice or orphaned and that `hub audit verify` passes (``assert_clean``),
and prints published/confirmed/delivered/duplicates/lost and the time to recover (the longest
the recipients waited for a delivery from the fault on). Nothing here imports pytest:
``tests/faults/test_cluster_faults.py`` runs two of them in the suite, ``benchmarks/cluster_faults.py``
all four. Every wait has a deadline; the caller's ``finally`` calls ``Stream.cleanup``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import sqlalchemy as sa

from hub.store.engine import make_engine
from tests.faults.cluster import PostgresPair, RabbitCluster, _port_open
from tests.faults.hubproc import alive
from tests.faults.stream import Broker, Counts, Stream, assert_clean

CUT = 30  # seconds without a network between RabbitMQ node 0 and the others
NODE_DOWN = 10  # seconds a killed RabbitMQ node stays down


async def _stream(broker: Broker, pg, pki, tmp: Path, packages, hubs: int = 1) -> Stream:
    s = Stream(broker, pg, pki, tmp, packages, hubs=hubs)
    await s.setup()
    return s


async def _run(s: Stream, fault, *, hubs_started: bool = False) -> None:
    """Hub(s) up, receivers, the stream; ``fault`` runs once a quarter of it is confirmed."""
    if not hubs_started:
        await s.start_hub(*range(s.n_hubs))
    await s.start_receivers()
    pub = s.stream()
    await s.until_confirmed(len(s.packages) // 4, timeout=180)
    await fault()
    await asyncio.wait_for(pub, 300)
    await s.until_delivered(timeout=240)


async def hub_killed(broker: Broker, pg, pki, tmp: Path, packages, streams: list[Stream]) -> tuple[Stream, Counts]:
    s = await _stream(broker, pg, pki, tmp, packages, hubs=2)
    streams.append(s)
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
        await s.until_leaders({"sweeper": "hub-1"}, timeout=60)
        moved["sweeper"] = time.monotonic() - t0
        assert not any(alive(k) for k in kids), f"check process(es) {kids} outlived the killed hub"

    await _run(s, fault, hubs_started=True)
    assert s.hubs[1].proc.poll() is None, "the surviving hub went down"
    c = await s.finish("hub 1 of 2 killed -9")
    print(f"  leadership moved to hub-1 (pg_locks): sealer in {moved['sealer']:.1f} s, "
          f"sweeper in {moved['sweeper']:.1f} s", flush=True)
    assert_clean(s, c, len(packages))
    return s, c


async def postgres_failover(broker: Broker, pair: PostgresPair, pki, tmp: Path, packages,
                            streams: list[Stream]) -> tuple[Stream, Counts]:
    s = await _stream(broker, pair, pki, tmp, packages, hubs=2)
    streams.append(s)

    async def fault() -> None:
        s.fault()
        await asyncio.to_thread(pair.primary.stop, "immediate")  # a crash: no shutdown checkpoint sent
        await asyncio.sleep(5)  # the failover manager (or an operator) decides
        await asyncio.to_thread(pair.promote)

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
    assert (port, recovery) == (pair.standby.port, False)
    c = await s.finish("PostgreSQL primary crashed, synchronous standby promoted (2 hubs)")
    assert [h.proc.pid for h in s.hubs] == pids, "a hub was restarted"
    assert_clean(s, c, len(packages))
    return s, c


async def network_cut(broker: Broker, pg, pki, tmp: Path, packages, cluster: RabbitCluster,
                      streams: list[Stream]) -> tuple[Stream, Counts]:
    """Needs ``RabbitCluster(splittable=0)``; leaves the cluster whole (or raises)."""
    s = await _stream(broker, pg, pki, tmp, packages)
    streams.append(s)
    node0 = cluster.members[0]
    seen: dict[str, float] = {}

    async def fault() -> None:
        s.fault()
        t0 = time.monotonic()
        cluster.cut()  # node 0: every client's first node
        try:
            while _port_open(node0.port):  # pause_minority: node 0 stops its listeners
                assert time.monotonic() - t0 < CUT, f"node 0 did not pause within {CUT} s of the cut"
                await asyncio.sleep(0.5)
            seen["paused"] = time.monotonic() - t0
            await asyncio.sleep(max(0.0, CUT - (time.monotonic() - t0)))
        finally:
            await asyncio.to_thread(cluster.heal)
        t1 = time.monotonic()
        await asyncio.to_thread(cluster.wait_node, 0, 120)  # back, and running the app again
        seen["back"] = time.monotonic() - t1

    await _run(s, fault)
    c = await s.finish(f"network to RabbitMQ node 1 of 3 cut for {CUT} s")
    print(f"  the node paused {seen['paused']:.1f} s into the cut (pause_minority) and ran again "
          f"{seen['back']:.1f} s after it healed", flush=True)
    assert_clean(s, c, len(packages))
    return s, c


async def node_killed(broker: Broker, pg, pki, tmp: Path, packages, cluster: RabbitCluster,
                      streams: list[Stream]) -> tuple[Stream, Counts]:
    """Leaves the cluster whole (or raises)."""
    s = await _stream(broker, pg, pki, tmp, packages)
    streams.append(s)
    back: dict[str, float] = {}

    async def fault() -> None:
        s.fault()
        await asyncio.to_thread(cluster.kill, 0)  # every client's first node
        await asyncio.sleep(NODE_DOWN)
        t0 = time.monotonic()
        cluster.start_node(0)
        await asyncio.to_thread(cluster.wait_node, 0, 120)
        back["node"] = time.monotonic() - t0

    await _run(s, fault)
    c = await s.finish(f"RabbitMQ node 1 of 3 killed -9, back after {NODE_DOWN} s")
    print(f"  the node ran again {back['node']:.1f} s after its restart", flush=True)
    assert_clean(s, c, len(packages))
    return s, c
