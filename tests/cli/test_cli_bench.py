"""`hub bench` on real RabbitMQ + PostgreSQL: one run prints every section, `--json` has them all,
every package it sent arrived, and it leaves nothing behind. No figure is asserted (this machine is
shared): only the shape and the counts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks.pipeline import BenchError, receive_all
from hub import constants as C
from hub.backbone.management import Management
from tests.conftest import AMQP_URL, PG_ADMIN_URL
from tests.hubenv import MGMT

HUB = [sys.executable, "-m", "hub.cli"]
N = 200


async def _databases() -> set[str]:
    eng = create_async_engine(PG_ADMIN_URL)
    try:
        async with eng.connect() as c:
            return set((await c.execute(sa.text("SELECT datname FROM pg_database"))).scalars())
    finally:
        await eng.dispose()


@pytest.mark.rabbitmq
@pytest.mark.postgres
@pytest.mark.timeout(900)
async def test_bench_json_has_every_section_and_every_package_arrived(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATA_DIR": str(tmp_path), "HUB_BENCH_AMQP_URL": AMQP_URL, "HUB_BENCH_PG_ADMIN": PG_ADMIN_URL})
    before = await _databases()
    p = await asyncio.create_subprocess_exec(
        *HUB, "bench", "--n", str(N), "--repeat", "1", "--json", "--large", "1", "--check-n", "50",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 850)
    text, progress = out.decode(), err.decode()
    assert p.returncode == 0, f"{text}\n{progress}"
    assert "Traceback" not in text + progress
    for section in ("bare relay", "audit log on", "audit log off", "ratio hub/relay", "latency at",
                    "full checks, one core", "large package 1 MB"):
        assert section in text, section
    assert "received 200/200" in progress  # progress lines while it runs

    r = json.loads(text.strip().splitlines()[-1])
    assert r["ok"] is True and r["n"] == N and r["repeat"] == 1 and "error" not in r
    assert r["relay"]["delivered"] == [N]
    for arm in ("hub_audit_on", "hub_audit_off"):
        a = r[arm]
        assert a["delivered"] == [N]
        assert len(a["runs"]) == 1 and a["min"] <= a["median"] <= a["max"] and a["median"] > 0
        assert set(a["saturated"]) == {"p50_ms", "p95_ms", "p99_ms"}
        assert set(a["stage_us_per_package"]) == {"check", "record", "publish", "mark_sent", "ack"}
        assert a["stage_us_per_package"]["check"] > 0 and a["hub_peak_rss_mb"] > 0
    assert r["ratio"] > 0 and r["ratio"] == pytest.approx(r["hub_audit_on"]["median"] / r["relay"]["median"])
    assert len(r["audit_cost_pct"]["runs"]) == 1
    lat = r["latency_half_load"]
    assert lat["delivered"] == lat["n"] == 200 and lat["per_s"] > 0
    assert lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
    c = r["checks"]
    assert c["n"] == 50 and c["per_s"] > 0 and c["per_cpu_s"] >= c["per_s"] * 0.9 and 0 < c["cpu_share"] <= 1.05
    assert "no IPC" in c["measures"]
    (large,) = r["large"]
    assert large["status"] == "delivered", large  # and the recipient verified the sender's signature
    assert large["mb"] == 1 and large["bytes"] > 1_000_000 and large["seconds"] > 0
    assert large["hub_peak_rss_mb"] >= large["hub_idle_rss_mb"] > 0

    # nothing left behind: its vhost, users and databases are gone
    async with Management(MGMT, "guest", "guest") as m:
        assert r["vhost"] not in {v["name"] for v in await m.request("GET", "/vhosts")}
        users = {u["name"] for u in await m.request("GET", "/users")}
    assert not {u for u in users if u.endswith("@" + r["vhost"])}
    assert not {d for d in await _databases() - before if d.startswith("hub_bench_")}


@pytest.mark.rabbitmq
async def test_a_stuck_run_stops_with_a_clear_message():
    """When fewer messages arrive than were sent, the receiver says how many and stops: no hang."""
    vhost = f"hubtest-{uuid.uuid4().hex[:10]}"
    async with Management(MGMT, "guest", "guest") as m:
        await m.put_vhost(vhost)
        await m.set_permissions(vhost, "guest", configure=".*", write=".*", read=".*")
    try:
        import aio_pika

        url = AMQP_URL.rstrip("/") + "/" + vhost
        conn = await aio_pika.connect_robust(url)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            q = await ch.declare_queue("bench.out", durable=True)
            for i in range(3):  # one with the submit time as the bench sends it, two without
                headers = {C.H_SUBMITTED_AT: "1732950000.5"} if i == 0 else {}
                await ch.default_exchange.publish(aio_pika.Message(b"x", headers=headers), routing_key=q.name)
        with pytest.raises(BenchError, match=r"received 3 of 5 and nothing for 1 s"):
            await receive_all(url, ["bench.out"], 5, "stuck run", idle=1.0)
    finally:
        async with Management(MGMT, "guest", "guest") as m:
            await m.delete_vhost(vhost)


@pytest.mark.rabbitmq
@pytest.mark.postgres
@pytest.mark.timeout(600)
async def test_the_latency_run_alone_at_a_given_rate(tmp_path):
    """``--paced-rate``: the latency run at a rate of one's choosing (on a shared machine, half of a
    saturated rate measured earlier), without the saturated runs; a rate of 0 is a usage error.
    ``--paced-n`` over ``--n``: the packages beyond ``--n`` are new ones (a repeated package is a
    duplicate the hub never delivers again: the run used to stop as stuck)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATA_DIR": str(tmp_path), "HUB_BENCH_AMQP_URL": AMQP_URL, "HUB_BENCH_PG_ADMIN": PG_ADMIN_URL})
    p = await asyncio.create_subprocess_exec(
        *HUB, "bench", "--n", "40", "--skip", "relay,hub,checks", "--large", "", "--paced-n", "60",
        "--paced-rate", "40", "--json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 550)
    text = out.decode()
    assert p.returncode == 0, f"{text}\n{err.decode()}"
    assert "latency at 40 pkg/s" in text and "audit log on" not in text
    lat = json.loads(text.strip().splitlines()[-1])["latency_half_load"]
    assert lat["per_s"] == 40 and lat["delivered"] == lat["n"] == 60

    p = await asyncio.create_subprocess_exec(*HUB, "bench", "--paced-rate", "0", env=env,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 120)
    assert p.returncode != 0 and "--paced-rate" in err.decode() + out.decode()
