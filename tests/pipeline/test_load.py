"""Urgency and crash safety on real RabbitMQ + PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from hub import constants as C
from hub.backbone.base import inbox_queue
from hub.edxml.builder import build_edoc
from hub.store.tables import documents, records
from tests.conftest import G22, H41, H44, make_edoc

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


async def test_express_overtakes_1000_normal(real_env):
    env = real_env
    async with env.running():
        g = await env.adapter(G22)
        h41 = await env.adapter(H41, start=False)
        normal = [g.sign(build_edoc(make_edoc(G22, (H41,)), [])) for _ in range(1000)]
        express_doc = make_edoc(G22, (H41,), priority=3)
        await asyncio.gather(*(g.publish(d) for d in normal))
        await g.send_document(express_doc, [])
        bb = env.hub.backbone
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = await bb.depth(inbox_queue(H41)) + await bb.depth(inbox_queue(H41, True))
            if n == 1001:
                break
            await asyncio.sleep(0.2)
        assert n == 1001, f"only {n} of 1001 packages reached H41's inboxes"
        assert await bb.depth(inbox_queue(H41, True)) == 1
        await h41.start(prefetch=50)
        first = []
        for _ in range(10):
            r = await h41.receive(timeout=10)
            first.append(r)
            await r.done()
    ids = [r.document_id for r in first]
    assert express_doc.document_id in ids, ids
    assert first[ids.index(express_doc.document_id)].urgent


def _hub_env(env) -> dict:
    s = env.settings
    e = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    e.update({
        "HUB_DATA_DIR": str(s.data_dir), "HUB_DATABASE_URL": s.database_url, "HUB_AMQP_URL": s.amqp_url,
        "HUB_ORGAN_ID": s.hub_organ_id, "HUB_KEY_FILE": str(s.hub_key_file), "HUB_CERT_FILE": str(s.hub_cert_file),
        "HUB_CHECK_PROCESSES": "1", "HUB_PREFETCH": "200",
    })
    return e


def _start_hub(env, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hub.cli", "serve"], env=_hub_env(env), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _kill9(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)  # the worker and its check processes, no goodbye
    except ProcessLookupError:
        pass
    p.wait(10)


@pytest.mark.slow
async def test_kill_9_during_a_stream_of_2000(real_env, tmp_path):
    """Kill -9 the hub repeatedly while 2,000 packages stream in; restart it each time.
    Every accepted package reaches every recipient; none is recorded twice."""
    env = real_env
    rng = random.Random(7)
    g = await env.adapter(G22, start=False)
    docs = []
    for i in range(2000):
        to = (H41, H44) if i % 3 == 0 else (H41,)
        d = make_edoc(G22, to)
        docs.append((d, g.sign(build_edoc(d, []))))
    expected = {(d.document_id, r.organ_id) for d, _ in docs for r in d.recipients}
    got: set = set()
    handed = {H41: 0, H44: 0}
    raw = {H41: 0, H44: 0}
    log = open(tmp_path / "hub.log", "wb")
    hub = _start_hub(env, log)
    kills = 0
    try:
        # the hub declares the inboxes at start; wait for them before the adapters subscribe
        bb = await env.adapter(G22, start=False)
        deadline = time.monotonic() + 60
        while True:
            try:
                await bb.backbone.depth(inbox_queue(H44, True))
                break
            except Exception:  # noqa: BLE001 - not declared yet
                assert time.monotonic() < deadline, (tmp_path / "hub.log").read_text()
                await asyncio.sleep(0.3)
        receivers = {code: await env.adapter(code) for code in (H41, H44)}

        async def receive(code: str) -> None:
            ad = receivers[code]
            while True:
                r = await ad.receive(timeout=None)
                raw[code] += 1
                got.add((r.document_id, r.headers[C.H_RECIPIENT]))
                handed[code] += 1
                await r.done()

        tasks = [asyncio.create_task(receive(c)) for c in receivers]

        async def publish() -> None:
            for i in range(0, len(docs), 50):
                await asyncio.gather(*(g.publish(data) for _, data in docs[i:i + 50]))
                await asyncio.sleep(0.02)

        pub = asyncio.create_task(publish())
        while not pub.done() or kills < 5:
            await asyncio.sleep(rng.uniform(0.8, 2.0))
            _kill9(hub)
            kills += 1
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            hub = _start_hub(env, log)
        await pub
        deadline = time.monotonic() + 180
        while got < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(20)
        except subprocess.TimeoutExpired:
            _kill9(hub)
        log.close()
    missing = expected - got
    assert not missing, f"{len(missing)} deliveries missing after {kills} kills, e.g. {sorted(missing)[:3]}"
    assert handed[H41] + handed[H44] == len(expected)  # each handed over once per recipient
    n_docs = await env.scalar(sa.select(sa.func.count()).select_from(documents).where(documents.c.kind == "edoc"))
    assert n_docs[0][0] == 2000
    twice = await env.scalar(
        sa.select(records.c.document_id, sa.func.count()).where(records.c.event == "package.accepted")
        .group_by(records.c.document_id).having(sa.func.count() > 1))
    assert twice == [], f"recorded twice: {twice[:5]}"
    print(f"\n  {kills} kill -9s; {len(expected)} deliveries, all arrived; "
          f"{sum(a.duplicates_skipped for a in receivers.values())} redelivered copies filtered by the adapters")
