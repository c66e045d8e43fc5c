"""The fault suite of issue 8: a stream of 2,000 packages through `hub serve` on a 3-node RabbitMQ
cluster and a PostgreSQL server of the suite's own, counted end to end by independent consumers,
through one fault each. Every scenario ends with 0 lost, 0 dead-lettered, 0 recorded twice, no
orphaned process and `hub audit verify` OK, and prints published/confirmed/delivered/duplicates/lost.

Every wait has a deadline (and pytest a timeout), so a scenario fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from hub import constants as C
from hub.edxml.builder import build_edoc
from hub.edxml.signature import sign_package
from tests.conftest import G22, H41, H44, make_edoc
from tests.faults.hubproc import alive
from tests.faults.stream import Stream, assert_clean

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

N = 2000
DB_OUTAGE = 60  # seconds


def _signed(pki, sender: str, to: tuple[str, ...]) -> tuple[str, tuple[str, ...], bytes]:
    d = make_edoc(sender, to)
    ident = pki.ids[sender]
    return d.document_id, to, sign_package(build_edoc(d, []), ident.key, ident.cert)


@pytest.fixture(scope="module")
def stream_packages(pki):
    """2,000 signed packages from G22, every third to H44 too (each scenario has its own database)."""
    return [_signed(pki, G22, (H41, H44) if i % 3 == 0 else (H41,)) for i in range(N)]


@pytest.fixture(scope="module")
def flood_packages(pki):
    return [_signed(pki, H44, (H41,)) for _ in range(300)]


@pytest.fixture
async def stream(broker, own_pg, pki, tmp_path, stream_packages):
    if not own_pg.running:
        await asyncio.to_thread(own_pg.start)
    s = Stream(broker, own_pg, pki, tmp_path, stream_packages)
    await s.setup()
    try:
        yield s
    finally:
        s.cleanup()


async def _run(s: Stream, fault) -> None:
    """Hub up, receivers, the stream; ``fault`` runs once a quarter of it is confirmed."""
    await s.start_hub()
    await s.start_receivers()
    pub = s.stream()
    await s.until_confirmed(N // 4)
    s.fault()  # the time to recover runs from here
    await fault()
    await asyncio.wait_for(pub, 300)
    await s.until_delivered()


async def test_database_stopped_for_60_s(stream: Stream, own_pg):
    async def fault() -> None:
        await asyncio.to_thread(own_pg.stop, "fast")
        await asyncio.sleep(DB_OUTAGE)
        await asyncio.to_thread(own_pg.start)
        assert own_pg.running, f"PostgreSQL did not come back:\n{stream.diagnostics()}"

    await _run(stream, fault)
    c = await stream.finish("database stopped 60 s")
    assert_clean(stream, c, N)


async def test_rabbitmq_restarted(stream: Stream, rabbit_cluster):
    async def fault() -> None:
        await asyncio.to_thread(rabbit_cluster.restart)

    await _run(stream, fault)
    c = await stream.finish("RabbitMQ restarted")
    assert_clean(stream, c, N)


async def test_hub_killed_5_times(stream: Stream):
    rng = random.Random(8)
    kills = 0

    async def fault() -> None:
        nonlocal kills
        while kills < 5:
            progress = min(len(stream.got) + 250, len(stream.expected))
            await stream.until_delivered(progress, timeout=60)  # progress since the last start
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            killed = stream.hub.proc.pid
            kids = await asyncio.to_thread(stream.hub.wait_children, 1, 90)  # its check process (started with the hub)
            stream.hub.kill9()
            kills += 1
            left = await asyncio.to_thread(stream.hub.orphans, 15.0)
            assert left == [], f"kill {kills}: processes of hub {killed} left behind: {left}"
            assert not any(alive(k) for k in kids), f"kill {kills}: check process(es) {kids} outlived the hub"
            await stream.start_hub()

    await _run(stream, fault)
    c = await stream.finish(f"hub killed -9 {kills} times")
    assert kills == 5
    assert_clean(stream, c, N)


POISON = [datetime(2026, 11, 30, tzinfo=timezone.utc), b"\x00\xff", Decimal("17329500.5"), "soon", True, [1, 2],
          {"x": 1}, -(2**63), 1e300]


async def test_poisoned_header_flood_from_one_agency(stream: Stream, flood_packages):
    stream.expected |= {(d, r) for d, to, _ in flood_packages for r in to}

    def poison(i: int) -> dict:
        return {C.H_SUBMITTED_AT: POISON[i % len(POISON)], C.H_GATEWAY_AGENCY: G22, C.H_REASON: "forged",
                C.H_ORIGINAL_USER: G22, C.H_MESSAGE: b"\xff" * (i % 7)}

    async def fault() -> None:
        await stream.publish_all([data for _, _, data in flood_packages], code=H44, chunk=30, headers=poison)

    await _run(stream, fault)
    c = await stream.finish("poisoned-header flood from H44")
    assert_clean(stream, c, N + len(flood_packages))


async def test_one_node_of_three_killed(stream: Stream, rabbit_cluster):
    async def fault() -> None:
        await asyncio.to_thread(rabbit_cluster.kill, 0)  # every client's first node

    try:
        await _run(stream, fault)
        c = await stream.finish("node 1 of 3 killed")
    finally:  # the cluster whole again for whoever comes next
        rabbit_cluster.start_node(0)
        await asyncio.to_thread(rabbit_cluster.wait_node, 0)
    assert_clean(stream, c, N)
