"""`hub bench`: packages through the full pipeline on real RabbitMQ and PostgreSQL, and the bare
ceiling (the same payloads relayed by aio-pika with no checks) in the same run.

Prints packages/s, submit→inbox latency p50/p95/p99, peak memory of the hub process and the
ratio pipeline/ceiling. Uses a throw-away vhost and database, removed afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import aio_pika
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hub import constants as C
from hub.backbone.base import inbox_queue
from hub.backbone.factory import connect
from hub.backbone.management import Management
from hub.backbone.users import provision_agency_user
from hub.edxml.builder import AttachmentFile, build_edoc
from hub.edxml.model import Code, DocumentType, Edoc, Organization, TraceHeader
from hub.pki.devpki import init_dev_pki, load_cert
from hub.pki.identity import Identity
from hub.registry.store import add_agency, add_trust_anchor
from hub.settings import Settings
from hub.store.engine import make_engine, migrate

G22, H41 = "000.00.00.G22", "000.00.00.H41"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_MGMT = "http://127.0.0.1:15672"


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def _progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done:,}/{total:,}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def make_packages(ident: Identity, n: int, size: int) -> list[bytes]:
    from datetime import date, datetime

    out = []
    att = max(0, int((size - 4200) * 3 / 4))  # base64 grows 4/3; ~4.2 KB of header and signature
    blob = (b"%PDF-1.4 benchmark " * (att // 19 + 1))[:att]
    for i in range(n):
        doc = Edoc(
            sender=Organization(G22, "Văn phòng Chính phủ", "Văn phòng Chính phủ"),
            recipients=(Organization(H41, organ_name="UBND tỉnh Nghệ An"),),
            document_id=f"{G22},{date.today():%Y/%m/%d},{i + 1}/BENCH-{uuid.uuid4().hex[:6]}",
            code=Code(str(i + 1), "BENCH"), promulgation_place="Hà Nội", promulgation_date=date.today(),
            document_type=DocumentType("1", "0", "Công văn"), subject=f"V/v đo hiệu năng số {i + 1}",
            trace=(TraceHeader(G22, datetime.now().replace(microsecond=0)),),
        )
        out.append(ident.sign(build_edoc(doc, [AttachmentFile("a.pdf", blob, "application/pdf")] if att else [])))
        if (i + 1) % 250 == 0 or i + 1 == n:
            _progress("signing packages", i + 1, n)
    return out


async def _receive_all(url: str, queues: list[str], n: int, timeout: float) -> tuple[list[float], float]:
    """Consume until n messages arrived; returns latencies (s) and the time of the last one."""
    lat: list[float] = []
    conn = await aio_pika.connect_robust(url)
    done = asyncio.Event()
    last = 0.0
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=500)

        async def on(m):
            nonlocal last
            now = time.time()
            sub = (m.headers or {}).get(C.H_SUBMITTED_AT)
            if sub is not None:
                lat.append(now - float(sub))
            last = now
            await m.ack()
            if len(lat) >= n:
                done.set()

        for q in queues:
            await (await ch.get_queue(q)).consume(on)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except asyncio.TimeoutError:
            pass
    return lat, last


async def _publish_all(url: str, exchange: str, key: str, bodies: list[bytes], user_id: str | None,
                       pace: float | None = None) -> float:
    """Publish with confirms, 200 in flight (or ``pace`` messages/s, one by one); returns the start time."""
    conn = await aio_pika.connect_robust(url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.get_exchange(exchange) if exchange else ch.default_exchange
        t0 = time.time()
        if pace:
            for i, b in enumerate(bodies):
                delay = t0 + i / pace - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await ex.publish(aio_pika.Message(b, headers={C.H_SUBMITTED_AT: repr(time.time())}, user_id=user_id,
                                                  delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=key)
            return t0
        for i in range(0, len(bodies), 200):
            await asyncio.gather(*(ex.publish(aio_pika.Message(
                b, headers={C.H_SUBMITTED_AT: repr(time.time())}, user_id=user_id,  # str: pamqp sends floats as float32
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=key) for b in bodies[i:i + 200]))
    return t0


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def _register(db_url: str, pki, vhost: str, users: dict, hub_code: str) -> None:
    engine = make_engine(db_url)
    await migrate(engine)
    await add_trust_anchor(engine, load_cert(pki.ca_cert), actor="bench")
    for code in (G22, H41):
        await add_agency(engine, code, name=code, certs=[load_cert(pki.agencies[code][1])],
                         amqp_user=f"{code}@{vhost}", actor="bench")
    await add_agency(engine, hub_code, name="hub", certs=[load_cert(pki.hub[1])], connected=False, accepts="0",
                     actor="bench")
    await engine.dispose()


async def _hub_run(label: str, *, tmp: Path, db_url: str, hub_url: str, g22_url: str, g22_user: str, pki,
                   settings: Settings, workers: int, bodies: list[bytes], audit: bool, pace: float | None = None):
    """Start `hub serve` as its own process, push ``bodies``, receive them all at H41."""
    henv = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    henv.update({"HUB_DATA_DIR": str(tmp), "HUB_DATABASE_URL": db_url, "HUB_AMQP_URL": hub_url,
                 "HUB_ORGAN_ID": settings.hub_organ_id, "HUB_KEY_FILE": str(pki.hub[0]),
                 "HUB_CERT_FILE": str(pki.hub[1]), "HUB_CHECK_PROCESSES": str(settings.check_processes),
                 "HUB_PREFETCH": str(settings.prefetch), "HUB_AUDIT": "on" if audit else "off",
                 "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    log_path = tmp / f"hub-{label}.log"
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--workers", str(workers),
                             "--port", str(_free_port())], env=henv, stdout=subprocess.DEVNULL,
                            stderr=open(log_path, "wb"))
    try:
        probe = await connect(hub_url)
        for _ in range(300):
            if await probe.consumers(C.QUEUE_INTAKE) >= workers:
                break
            await asyncio.sleep(0.1)
        await probe.close()
        recv = asyncio.create_task(_receive_all(hub_url, [inbox_queue(H41), inbox_queue(H41, True)], len(bodies),
                                                timeout=max(180, len(bodies) / 20)))
        t0 = await _publish_all(g22_url, C.EXCHANGE_SUBMIT, "", bodies, g22_user, pace=pace)
        lat, last = await recv
        rss = _rss_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rate = len(lat) / (last - t0) if lat else 0.0
    stopped = [line for line in log_path.read_text().splitlines() if "worker stopped" in line]
    return rate, lat, rss, (stopped[-1] if stopped else "")


def _line(label: str, rate: float, lat: list[float], unit: str = "pkg/s") -> str:
    return (f"  {label:<28}{rate:8.0f} {unit:<6} p50 {_pct(lat, 50) * 1000:7.1f} ms   "
            f"p95 {_pct(lat, 95) * 1000:7.1f} ms   p99 {_pct(lat, 99) * 1000:7.1f} ms")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_bench(settings: Settings, *, n: int = 5000, size: int = 10_000, workers: int = 1,
                    json_out: bool = False) -> int:
    amqp = os.environ.get("HUB_BENCH_AMQP_URL") or settings.amqp_url or DEFAULT_AMQP
    pg_admin = os.environ.get("HUB_BENCH_PG_ADMIN") or DEFAULT_PG
    mgmt = settings.management_url or DEFAULT_MGMT
    parts = urlsplit(amqp)
    vhost = f"hub-bench-{uuid.uuid4().hex[:8]}"
    base = f"{parts.scheme}://{parts.netloc}/"
    hub_url = base + quote(vhost, safe="")
    dbs = {k: f"hub_bench_{k}_{uuid.uuid4().hex[:8]}" for k in ("log", "nolog", "paced")}
    db_urls = {k: pg_admin.rsplit("/", 1)[0] + "/" + v for k, v in dbs.items()}
    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    admin = create_async_engine(pg_admin, isolation_level="AUTOCOMMIT")
    print(f"hub bench: {n:,} packages of ~{size:,} bytes through RabbitMQ {parts.hostname} and PostgreSQL "
          f"(vhost {vhost}; throw-away databases)", flush=True)
    async with admin.connect() as c:
        for name in dbs.values():
            await c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    mgmt_user, mgmt_pw = parts.username or "guest", parts.password or "guest"
    users: dict[str, str] = {}
    relay_proc = None
    try:
        async with Management(mgmt, mgmt_user, mgmt_pw) as m:
            await m.put_vhost(vhost)
            await m.set_permissions(vhost, mgmt_user, configure=".*", write=".*", read=".*")
        pki = init_dev_pki(tmp / "pki", {G22: "VPCP", H41: "Nghệ An"}, settings.hub_organ_id)
        for code in (G22, H41):
            users[code] = secrets.token_urlsafe(12)
            await provision_agency_user(mgmt, mgmt_user, mgmt_pw, f"{code}@{vhost}", users[code], code, vhost=vhost)
        for url in db_urls.values():
            await _register(url, pki, vhost, users, settings.hub_organ_id)
        ident = Identity.load(G22, *pki.agencies[G22])
        paced_n = max(200, n // 10)
        bodies = make_packages(ident, n, size)
        paced = make_packages(ident, paced_n, size)
        real_size = statistics.mean(len(b) for b in bodies)

        # 1. the bare ceiling: same bodies, same broker, aio-pika relay process, no checks
        hb = await connect(hub_url)
        await hb.declare_topology()
        await hb.declare_inbox(H41)
        from hub.backbone.topology import QueueSpec

        await hb._declare((), tuple(QueueSpec(q, {"x-queue-type": "quorum"}, ()) for q in ("bench.in", "bench.out")))  # noqa: SLF001
        await hb.close()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        relay_proc = subprocess.Popen([sys.executable, "-m", "benchmarks.relay", hub_url, "bench.in", "", "bench.out",
                                       str(n)], env=env)
        await asyncio.sleep(1.0)
        recv = asyncio.create_task(_receive_all(hub_url, ["bench.out"], n, timeout=max(120, n / 50)))
        t0 = await _publish_all(hub_url, "", "bench.in", bodies, None)
        lat_bare, last = await recv
        bare_rate = len(lat_bare) / (last - t0) if lat_bare else 0.0
        relay_rss = _rss_mb(relay_proc.pid)
        relay_proc.wait(30)
        relay_proc = None
        print(_line("bare relay (no checks)", bare_rate, lat_bare, "msg/s"), flush=True)

        g22_user = f"{G22}@{vhost}"
        g22_url = (f"{parts.scheme}://{quote(g22_user, safe='')}:{users[G22]}@{parts.hostname}:{parts.port or 5672}/"
                   f"{quote(vhost, safe='')}")
        common = dict(tmp=tmp, hub_url=hub_url, g22_url=g22_url, g22_user=g22_user, pki=pki, settings=settings,
                      workers=workers)
        # 2. the full hub, audit log on (the real thing)
        rate, lat, hub_rss, stats = await _hub_run("log", db_url=db_urls["log"], bodies=bodies, audit=True, **common)
        print(_line("full hub, audit log on", rate, lat), flush=True)
        if stats:
            print("    " + stats.split("worker stopped: ", 1)[-1].rstrip('"}'), flush=True)
        # 3. the same without audit entries (only to measure what the log costs)
        rate_off, lat_off, _, _ = await _hub_run("nolog", db_url=db_urls["nolog"], bodies=bodies, audit=False, **common)
        print(_line("full hub, audit log off", rate_off, lat_off), flush=True)
        # 4. latency when not saturated: half the measured rate
        pace = max(rate / 2, 50.0)
        _, lat_paced, _, _ = await _hub_run("paced", db_url=db_urls["paced"], bodies=paced, audit=True, pace=pace,
                                            **common)
        print(_line(f"latency at {pace:.0f} pkg/s", pace, lat_paced), flush=True)
        ratio = rate / bare_rate if bare_rate else 0.0
        cost = (1 - rate / rate_off) * 100 if rate_off else 0.0
        print(f"  delivered {len(lat):,}/{n:,}; mean package {real_size:,.0f} bytes; ratio hub/bare {ratio:.2f} "
              f"(target ≥ 0.40, ≥ 600 pkg/s); audit log cost {cost:.0f}% (target < 15%); peak RSS hub "
              f"{hub_rss:.0f} MB, relay {relay_rss:.0f} MB, bench {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
              flush=True)
        if json_out:
            print(json.dumps({
                "n": n, "size": real_size, "pipeline_per_s": rate, "pipeline_no_audit_per_s": rate_off,
                "audit_cost_pct": cost, "bare_per_s": bare_rate, "ratio": ratio,
                "saturated_ms": {"p50": _pct(lat, 50) * 1000, "p95": _pct(lat, 95) * 1000, "p99": _pct(lat, 99) * 1000},
                "paced_per_s": pace, "paced_ms": {"p50": _pct(lat_paced, 50) * 1000, "p95": _pct(lat_paced, 95) * 1000,
                                                  "p99": _pct(lat_paced, 99) * 1000},
                "delivered": len(lat), "hub_peak_rss_mb": hub_rss}))
        return 0 if len(lat) == n and len(lat_off) == n and len(lat_paced) == paced_n else 1
    finally:
        if relay_proc is not None:
            relay_proc.kill()
        async with Management(mgmt, mgmt_user, mgmt_pw) as m:
            await m.delete_vhost(vhost)
            for code in users:
                await m.delete_user(f"{code}@{vhost}")
        async with admin.connect() as c:
            for name in dbs.values():
                await c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
