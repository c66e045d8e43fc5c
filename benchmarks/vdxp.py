"""The VDXP endpoint over HTTP: sendEdoc/s and sendEdoc → getReceivedEdocList latency.

    .venv/bin/python -m benchmarks.vdxp [--n 400] [--latency 60] [--concurrency 16] [--json]

`hub serve` runs as its own process on real RabbitMQ and PostgreSQL (a throw-away vhost and
database, removed afterwards); the client is ours (``tests/vdxp/client.py``: signs as the SDK
does). System A (G22) sends signed ~10 KB edocs to H41, whose system B lists them.

1. throughput: ``--n`` sendEdoc calls from ``--concurrency`` clients at once: answers/s, and the
   rate at which they reach B's list (until countReceiveEdoc shows them all);
2. latency: ``--latency`` packages one at a time: sendEdoc, then B polls getReceivedEdocList
   every 5 ms until the package is listed (the poll interval bounds the resolution), then
   acknowledges it ``done``;
3. for comparison in the same run, ``--n`` packages through the hub's own gateway
   (POST /api/v1/documents) from as many clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks.pipeline import DEFAULT_AMQP, DEFAULT_MGMT, DEFAULT_PG, G22, H41, _free_port, _pct, _register, make_packages
from hub.backbone.management import Management
from hub.pki.devpki import init_dev_pki
from hub.pki.identity import Identity
from hub.settings import DEFAULT_HUB_ORGAN_ID
from hub.store.engine import make_engine
from hub.vdxp.keys import SecretBox
from hub.vdxp.systems import add_system

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.vdxp.client import VdxpClient  # noqa: E402 - our SDK-faithful client


async def _wait_ready(session: aiohttp.ClientSession, base: str, proc) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit("hub serve exited early; see its log")
        try:
            async with session.get(base + "/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("hub serve did not come up")


async def _count(b: VdxpClient) -> int:
    return (await b.call("countReceiveEdoc", {"servicetype": "eDoc", "messagetype": "edoc"}))["count"]


async def gateway_rate(session: aiohttp.ClientSession, base: str, token: str, bodies: list[bytes],
                       concurrency: int) -> float:
    queue = list(bodies)

    async def sender():
        while queue:
            body = queue.pop()
            async with session.post(base + "/api/v1/documents", data=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/xml"}) as r:
                assert r.status == 202, await r.text()

    t0 = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - t0)


async def measure(base: str, secrets: dict, bodies: list[bytes], lat_bodies: list[bytes], concurrency: int,
                  gateway: tuple[str, list[bytes]]) -> dict:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 4)) as session:
        endpoint = base + "/vdxp"
        a = VdxpClient(session, endpoint, "vxp.bench.a", secrets["a"])
        b = VdxpClient(session, endpoint, "vxp.bench.b", secrets["b"])
        # 1. throughput
        queue = list(bodies)
        sent_lat: list[float] = []

        async def sender():
            client = VdxpClient(session, endpoint, "vxp.bench.a", secrets["a"])
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                answer = await client.send_edoc(body, G22)
                assert answer["status"] == "OK", answer
                sent_lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        t_sent = time.perf_counter() - t0
        while await _count(b) < len(bodies):
            await asyncio.sleep(0.05)
        t_listed = time.perf_counter() - t0
        for item in (await b.received())["data"]:
            await b.update_status(item["docId"], "done")
        # 2. latency, one at a time
        lat: list[float] = []
        for body in lat_bodies:
            t = time.perf_counter()
            assert (await a.send_edoc(body, G22))["status"] == "OK"
            while True:
                items = (await b.received())["data"]
                if items:
                    lat.append(time.perf_counter() - t)
                    break
                await asyncio.sleep(0.005)
            for item in items:
                await b.update_status(item["docId"], "done")
        # 3. the hub's own gateway, last (its packages land in the same inbox)
        gateway_per_s = await gateway_rate(session, base, gateway[0], gateway[1], concurrency)
    return {"n": len(bodies), "concurrency": concurrency, "send_per_s": len(bodies) / t_sent,
            "gateway_per_s": gateway_per_s,
            "send_p50_ms": _pct(sent_lat, 50) * 1000, "send_p95_ms": _pct(sent_lat, 95) * 1000,
            "listed_per_s": len(bodies) / t_listed, "latency_n": len(lat),
            "latency_p50_ms": _pct(lat, 50) * 1000, "latency_p95_ms": _pct(lat, 95) * 1000,
            "latency_p99_ms": _pct(lat, 99) * 1000, "latency_mean_ms": statistics.mean(lat) * 1000 if lat else 0}


async def run(n: int, latency: int, concurrency: int, size: int, json_out: bool) -> int:
    amqp = os.environ.get("HUB_BENCH_AMQP_URL") or DEFAULT_AMQP
    pg_admin = os.environ.get("HUB_BENCH_PG_ADMIN") or DEFAULT_PG
    parts = urlsplit(amqp)
    vhost = f"hub-bench-vdxp-{uuid.uuid4().hex[:8]}"
    hub_url = f"{parts.scheme}://{parts.netloc}/" + quote(vhost, safe="")
    db = f"hub_bench_vdxp_{uuid.uuid4().hex[:8]}"
    db_url = pg_admin.rsplit("/", 1)[0] + "/" + db
    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-vdxp-"))
    admin = create_async_engine(pg_admin, isolation_level="AUTOCOMMIT")
    user, pw = parts.username or "guest", parts.password or "guest"
    async with admin.connect() as c:
        await c.execute(sa.text(f'CREATE DATABASE "{db}"'))
    proc = None
    try:
        async with Management(DEFAULT_MGMT, user, pw) as m:
            await m.put_vhost(vhost)
            await m.set_permissions(vhost, user, configure=".*", write=".*", read=".*")
        pki = init_dev_pki(tmp / "pki", {G22: "VPCP", H41: "Nghệ An"}, DEFAULT_HUB_ORGAN_ID)
        await _register(db_url, pki, vhost, {}, DEFAULT_HUB_ORGAN_ID)
        engine = make_engine(db_url)
        box = SecretBox.load(tmp / "vdxp.key", create=True)
        secrets = {"a": await add_system(engine, box, "vxp.bench.a", G22, actor="bench"),
                   "b": await add_system(engine, box, "vxp.bench.b", H41, actor="bench")}
        await engine.dispose()
        ident = Identity.load(G22, *pki.agencies[G22])
        bodies = make_packages(ident, 2 * n + latency, size)
        from hub.api.users import add_user

        engine = make_engine(db_url)
        token = await add_user(engine, "bench", "agency", G22, actor="bench")
        await engine.dispose()
        port = _free_port()
        henv = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        henv.update({"HUB_DATA_DIR": str(tmp), "HUB_DATABASE_URL": db_url, "HUB_AMQP_URL": hub_url,
                     "HUB_KEY_FILE": str(pki.hub[0]), "HUB_CERT_FILE": str(pki.hub[1]), "PYTHONPATH": str(ROOT)})
        proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--port", str(port)], env=henv,
                                stdout=subprocess.DEVNULL, stderr=open(tmp / "hub.log", "wb"))
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            await _wait_ready(session, base, proc)
        result = await measure(base, secrets, bodies[:n], bodies[2 * n:], concurrency, (token, bodies[n:2 * n]))
        result["size"] = int(statistics.mean(len(b) for b in bodies))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        async with Management(DEFAULT_MGMT, user, pw) as m:
            await m.delete_vhost(vhost)
        async with admin.connect() as c:
            await c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        await admin.dispose()
    if json_out:
        print(json.dumps(result))
    else:
        print(f"VDXP over HTTP (hub serve, RabbitMQ + PostgreSQL), ~{result['size']:,}-byte edocs:")
        print(f"  sendEdoc, {n} from {concurrency} clients   {result['send_per_s']:8.0f} /s   "
              f"answer p50 {result['send_p50_ms']:.1f} ms  p95 {result['send_p95_ms']:.1f} ms")
        print(f"  ... all listed for the recipient        {result['listed_per_s']:8.0f} /s")
        print(f"  the hub's gateway, same run (POST /api/v1/documents) {result['gateway_per_s']:8.0f} /s")
        print(f"  sendEdoc -> getReceivedEdocList, one at a time ({result['latency_n']}): "
              f"p50 {result['latency_p50_ms']:.1f} ms  p95 {result['latency_p95_ms']:.1f} ms  "
              f"p99 {result['latency_p99_ms']:.1f} ms")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=400, help="packages for the throughput run")
    p.add_argument("--latency", type=int, default=60, help="packages sent one at a time for the latency run")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--size", type=int, default=10_000)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    return asyncio.run(run(a.n, a.latency, a.concurrency, a.size, a.json))


if __name__ == "__main__":
    sys.exit(main())
