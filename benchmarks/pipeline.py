"""`hub bench`: packages through the full pipeline on real RabbitMQ and PostgreSQL, and the bare
ceiling (the same payloads relayed by aio-pika with no checks) in the same run.

One run prints: the bare relay, the full hub with the audit log on and off (alternating, ``--repeat``
rounds; medians and the min–max spread), the ratio hub/relay, the latency submit→inbox at half the
saturated rate, full checks per second on one core, and for large packages (``--large``) the time
to the inbox and the peak RSS of the hub process. ``--json`` adds all of it as one JSON document on
the last line. Every hub run starts `hub serve` as its own process(es) on a fresh throw-away database;
the vhost and databases are removed afterwards.

Where it runs: RabbitMQ from ``HUB_BENCH_AMQP_URL``, else ``HUB_AMQP_URL``, else the local
default (guest@127.0.0.1:5672); PostgreSQL from ``HUB_BENCH_PG_ADMIN`` (a URL of a database the
bench may CREATE DATABASE from), else postgres@127.0.0.1:5432. The hub's embedded defaults (no
broker, SQLite) cannot be benchmarked across processes, so they fall back to those local services.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
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
IDLE_TIMEOUT = 60.0  # seconds without a delivery before a run is declared stuck
STAGES = ("check", "record", "publish", "mark_sent", "ack")
MB = 1024 * 1024


class BenchError(Exception):
    """A run that cannot finish (stuck, refused, a service missing): one line for the user."""


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def say(text: str) -> None:
    """A progress line (stderr, so that stdout stays the results)."""
    print(text, file=sys.stderr, flush=True)


def _spread(xs: list[float]) -> dict:
    return {"median": statistics.median(xs) if xs else 0.0, "min": min(xs, default=0.0),
            "max": max(xs, default=0.0), "runs": xs}


def bench_edoc(i: int, tag: str) -> Edoc:
    from datetime import date, datetime

    return Edoc(
        sender=Organization(G22, "Văn phòng Chính phủ", "Văn phòng Chính phủ"),
        recipients=(Organization(H41, organ_name="UBND tỉnh Nghệ An"),),
        document_id=f"{G22},{date.today():%Y/%m/%d},{i + 1}/{tag}-{uuid.uuid4().hex[:6]}",
        code=Code(str(i + 1), tag), promulgation_place="Hà Nội", promulgation_date=date.today(),
        document_type=DocumentType("1", "0", "Công văn"), subject=f"V/v đo hiệu năng số {i + 1}",
        trace=(TraceHeader(G22, datetime.now().replace(microsecond=0)),),
    )


def make_packages(ident: Identity, n: int, size: int) -> list[bytes]:
    out = []
    att = max(0, int((size - 4200) * 3 / 4))  # base64 grows 4/3; ~4.2 KB of header and signature
    blob = (b"%PDF-1.4 benchmark " * (att // 19 + 1))[:att]
    last = time.monotonic()
    for i in range(n):
        out.append(ident.sign(build_edoc(bench_edoc(i, "BENCH"), [AttachmentFile("a.pdf", blob, "application/pdf")]
                                         if att else [])))
        if time.monotonic() - last > 2 or i + 1 == n:
            last = time.monotonic()
            say(f"  signing packages: {i + 1:,}/{n:,}")
    return out


@dataclass
class Received:
    count: int = 0
    lat: list[float] = field(default_factory=list)
    last: float = 0.0


async def receive_all(url: str, queues: list[str], n: int, label: str, *, idle: float = IDLE_TIMEOUT,
                       where: str = "") -> Received:
    """Consume until ``n`` messages arrived (every delivery counts; the latency only of those that carry
    ``x-hub-submitted-at``). BenchError when nothing arrived for ``idle`` seconds."""
    got = Received()
    conn = await aio_pika.connect_robust(url)
    done = asyncio.Event()
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=500)

        async def on(m):
            now = time.time()
            sub = (m.headers or {}).get(C.H_SUBMITTED_AT)
            if isinstance(sub, (int, float, str)) and not isinstance(sub, bool):
                try:
                    got.lat.append(now - float(sub))
                except ValueError:
                    pass
            got.count += 1
            got.last = now
            await m.ack()
            if got.count >= n:
                done.set()

        for q in queues:
            await (await ch.get_queue(q)).consume(on)
        seen, since = 0, time.monotonic()
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), 2.0)
            except asyncio.TimeoutError:
                pass
            if got.count != seen:
                seen, since = got.count, time.monotonic()
                say(f"  {label}: received {got.count:,}/{n:,}")
            elif time.monotonic() - since > idle:
                raise BenchError(f"{label}: stuck: received {got.count:,} of {n:,} and nothing for {idle:.0f} s"
                                 + (f" ({where})" if where else ""))
    return got


async def publish_all(url: str, exchange: str, key: str, bodies: list[bytes], user_id: str | None,
                       pace: float | None = None) -> float:
    """Publish with confirms, 200 in flight (or ``pace`` messages/s, each at its time); returns the start time.
    The submit time travels as a decimal string: pamqp would send a float as a 32-bit float."""
    conn = await aio_pika.connect_robust(url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.get_exchange(exchange) if exchange else ch.default_exchange

        def message(b: bytes) -> aio_pika.Message:
            return aio_pika.Message(b, headers={C.H_SUBMITTED_AT: repr(time.time())}, user_id=user_id,
                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT)

        t0 = time.time()
        if pace:
            # each on its own schedule, its confirm awaited beside the next ones: awaited one by one,
            # a confirm slower than the interval (a quorum queue's fsync) would lower the rate
            pending = []
            for i, b in enumerate(bodies):
                delay = t0 + i / pace - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                pending.append(asyncio.ensure_future(ex.publish(message(b), routing_key=key)))
            await asyncio.gather(*pending)
            return t0
        for i in range(0, len(bodies), 200):
            await asyncio.gather(*(ex.publish(message(b), routing_key=key) for b in bodies[i:i + 200]))
    return t0


def status_mb(pid: int, field_name: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def peak_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a process, in MB."""
    return status_mb(pid, "VmHWM")


async def _register(db_url: str, pki, vhost: str, hub_code: str) -> None:
    engine = make_engine(db_url)
    await migrate(engine)
    await add_trust_anchor(engine, load_cert(pki.ca_cert), actor="bench")
    for code in (G22, H41):
        await add_agency(engine, code, name=code, certs=[load_cert(pki.agencies[code][1])],
                         amqp_user=f"{code}@{vhost}", actor="bench")
    await add_agency(engine, hub_code, name="hub", certs=[load_cert(pki.hub[1])], connected=False, accepts="0",
                     actor="bench")
    await engine.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stage_seconds(log_text: str) -> dict[str, float]:
    """The workers' own per-stage seconds (``worker stopped: ... seconds={...}``), summed over processes."""
    total = dict.fromkeys(STAGES, 0.0)
    for line in log_text.splitlines():
        if "worker stopped" not in line:
            continue
        try:
            msg = json.loads(line).get("message", line)
        except ValueError:
            msg = line
        m = re.search(r"seconds=(\{[^}]*\})", msg)
        if m:
            try:
                for k, v in ast.literal_eval(m.group(1)).items():
                    total[k] = total.get(k, 0.0) + float(v)
            except (ValueError, SyntaxError):
                pass
    return total


@dataclass
class Run:
    """One hub (or relay) run."""

    rate: float
    got: Received
    rss_mb: float = float("nan")  # the largest peak RSS of the hub processes (VmHWM)
    children_rss_mb: float = float("nan")  # the largest of their check processes
    stages: dict[str, float] = field(default_factory=dict)


class Bench:
    """The throw-away vhost, users, PKI and databases of one `hub bench` run."""

    def __init__(self, settings: Settings, *, workers: int, processes: int, hub_env: dict[str, str]):
        self.settings = settings
        self.workers = workers
        self.processes = processes
        self.hub_env = hub_env
        self.amqp = os.environ.get("HUB_BENCH_AMQP_URL") or settings.amqp_url or DEFAULT_AMQP
        self.pg_admin = os.environ.get("HUB_BENCH_PG_ADMIN") or DEFAULT_PG
        self.mgmt = settings.management_url or DEFAULT_MGMT
        parts = urlsplit(self.amqp)
        self.parts = parts
        self.vhost = f"hub-bench-{uuid.uuid4().hex[:8]}"
        self.hub_url = f"{parts.scheme}://{parts.netloc}/" + quote(self.vhost, safe="")
        self.tmp = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        self.admin = create_async_engine(self.pg_admin, isolation_level="AUTOCOMMIT")
        self.mgmt_user, self.mgmt_pw = parts.username or "guest", parts.password or "guest"
        self.users: dict[str, str] = {}
        self.dbs: list[str] = []
        self.vhost_made = False
        self.pki = None
        self.runs = 0
        # what runs `hub serve` (python -m hub.cli), and the code tree it imports the hub from
        self.serve = [sys.executable, "-m", "hub.cli"]
        self.code_tree = str(Path(__file__).resolve().parents[1])

    # --- set-up and tear-down ---------------------------------------------------------------

    async def setup(self) -> None:
        async with Management(self.mgmt, self.mgmt_user, self.mgmt_pw) as m:
            await m.put_vhost(self.vhost)
            self.vhost_made = True
            await m.set_permissions(self.vhost, self.mgmt_user, configure=".*", write=".*", read=".*")
        self.pki = init_dev_pki(self.tmp / "pki", {G22: "VPCP", H41: "Nghệ An"}, self.settings.hub_organ_id)
        for code in (G22, H41):
            self.users[code] = secrets.token_urlsafe(12)
            await provision_agency_user(self.mgmt, self.mgmt_user, self.mgmt_pw, f"{code}@{self.vhost}",
                                        self.users[code], code, vhost=self.vhost)
        hb = await connect(self.hub_url)
        await hb.declare_topology()
        await hb.declare_inbox(H41)
        await hb.declare_inbox(G22)
        from hub.backbone.topology import QueueSpec

        await hb._declare((), tuple(QueueSpec(q, {"x-queue-type": "quorum"}, ()) for q in ("bench.in", "bench.out")))  # noqa: SLF001
        await hb.close()

    async def teardown(self) -> None:
        try:
            async with Management(self.mgmt, self.mgmt_user, self.mgmt_pw) as m:
                if self.vhost_made:
                    await m.delete_vhost(self.vhost)
                for code in self.users:
                    await m.delete_user(f"{code}@{self.vhost}")
        finally:
            async with self.admin.connect() as c:
                for name in self.dbs:
                    await c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await self.admin.dispose()

    def agency_url(self, code: str) -> str:
        p = self.parts
        user = f"{code}@{self.vhost}"
        return (f"{p.scheme}://{quote(user, safe='')}:{self.users[code]}@{p.hostname}:{p.port or 5672}/"
                f"{quote(self.vhost, safe='')}")

    async def fresh_database(self, label: str) -> str:
        name = f"hub_bench_{label}_{uuid.uuid4().hex[:8]}"
        async with self.admin.connect() as c:
            await c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.dbs.append(name)
        url = self.pg_admin.rsplit("/", 1)[0] + "/" + name
        await _register(url, self.pki, self.vhost, self.settings.hub_organ_id)
        return url

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        async with self.admin.connect() as c:
            await c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.dbs.remove(name)

    # --- the runs -----------------------------------------------------------------------------

    async def purge(self, *queues: str) -> None:
        """Empty the queues a run counts from: nothing a previous run left may count in this one."""
        conn = await aio_pika.connect_robust(self.hub_url)
        async with conn:
            ch = await conn.channel()
            for q in queues:
                await (await ch.get_queue(q)).purge()

    async def relay(self, bodies: list[bytes], label: str) -> Run:
        """The bare ceiling: the same bodies, same broker, an aio-pika relay process, no checks."""
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        n = len(bodies)
        await self.purge("bench.in", "bench.out")
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.relay", self.hub_url, "bench.in", "",
                                 "bench.out", str(n)], env=env)
        try:
            await asyncio.sleep(1.0)
            recv = asyncio.create_task(receive_all(self.hub_url, ["bench.out"], n, label))
            t0 = await publish_all(self.hub_url, "", "bench.in", bodies, None)
            got = await recv
            rss = peak_mb(proc.pid)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return Run(got.count / (got.last - t0) if got.count else 0.0, got, rss)

    def start_hub(self, label: str, db_url: str, audit: bool, extra_env: dict[str, str]):
        s = self.settings
        henv = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        henv.update({"HUB_DATA_DIR": str(self.tmp), "HUB_DATABASE_URL": db_url, "HUB_AMQP_URL": self.hub_url,
                     "HUB_AMQP_MANAGEMENT_URL": self.mgmt,
                     "HUB_ORGAN_ID": s.hub_organ_id, "HUB_KEY_FILE": str(self.pki.hub[0]),
                     "HUB_CERT_FILE": str(self.pki.hub[1]), "HUB_CHECK_PROCESSES": str(s.check_processes),
                     "HUB_PREFETCH": str(s.prefetch), "HUB_AUDIT": "on" if audit else "off",
                     "PYTHONPATH": self.code_tree})
        henv.update(self.hub_env)
        henv.update(extra_env)
        extra_env = dict(extra_env)
        processes = int(extra_env.pop("HUB_BENCH_PROCESSES", self.processes))
        self.runs += 1
        safe = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")
        log_path = self.tmp / f"hub-{self.runs:02d}-{safe}.log"
        log = open(log_path, "ab")
        procs = [subprocess.Popen([*self.serve, "serve", "--workers", str(self.workers),
                                   "--port", str(_free_port())], env=henv, stdout=subprocess.DEVNULL, stderr=log)
                 for _ in range(processes)]
        log.close()
        return procs, log_path

    async def wait_consumers(self, procs, log_path: Path) -> None:
        probe = await connect(self.hub_url)
        try:
            want = self.workers * len(procs)
            for _ in range(600):
                if await probe.consumers(C.QUEUE_INTAKE) >= want:
                    return
                if any(p.poll() is not None for p in procs):
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no log)"]
                    raise BenchError(f"`hub serve` exited with status {procs[0].poll()}: {tail[0][:300]}")
                await asyncio.sleep(0.1)
            raise BenchError(f"`hub serve` did not start consuming {C.QUEUE_INTAKE} within 60 s (log {log_path})")
        finally:
            await probe.close()

    @staticmethod
    def stop_hub(procs) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    async def hub(self, label: str, bodies: list[bytes], *, audit: bool, pace: float | None = None,
                  extra_env: dict[str, str] | None = None, probe=None) -> Run:
        """`hub serve` on a fresh database; push ``bodies`` as G22, receive them all at H41. ``probe``:
        ``await probe.started(procs, db_url)`` once the hub consumes, ``await probe.received(procs, db_url)``
        once every package arrived (before the hub stops); ``benchmarks.pipeline_cpu`` samples CPU there."""
        db_url = await self.fresh_database(label.split()[0].replace("-", "_")[:12])
        await self.purge(C.QUEUE_INTAKE, inbox_queue(H41), inbox_queue(H41, True), inbox_queue(G22),
                         inbox_queue(G22, True))
        procs, log_path = self.start_hub(label, db_url, audit, extra_env or {})
        try:
            await self.wait_consumers(procs, log_path)
            if probe is not None:
                await probe.started(procs, db_url)
            recv = asyncio.create_task(receive_all(
                self.hub_url, [inbox_queue(H41), inbox_queue(H41, True)], len(bodies), label,
                where=f"hub log {log_path}"))
            try:
                t0 = await publish_all(self.agency_url(G22), C.EXCHANGE_SUBMIT, "", bodies, f"{G22}@{self.vhost}",
                                        pace=pace)
            except BaseException:
                recv.cancel()
                raise
            got = await recv
            if probe is not None:
                await probe.received(procs, db_url)
            rss = max(peak_mb(p.pid) for p in procs)
            kids = max((peak_mb(c) for p in procs for c in child_pids(p.pid)), default=float("nan"))
        finally:
            self.stop_hub(procs)
        await self.drop_database(db_url)
        run = Run(got.count / (got.last - t0) if got.count else 0.0, got, rss, kids,
                  _stage_seconds(log_path.read_text(errors="replace")))
        return run

def _check_rate(n: int) -> dict:
    """Full checks per second on one core, in its own (pinned) process."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-m", "benchmarks.check_rate", "--n", str(n), "--warmup", str(min(100, n))],
                       env=env, capture_output=True, text=True, timeout=600)
    lines = p.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return out


def _line(label: str, rate: float, lat: list[float], unit: str = "pkg/s") -> str:
    return (f"  {label:<30}{rate:8.0f} {unit:<6} p50 {_pct(lat, 50) * 1000:7.1f} ms   "
            f"p95 {_pct(lat, 95) * 1000:7.1f} ms   p99 {_pct(lat, 99) * 1000:7.1f} ms")


def _spread_line(label: str, xs: list[float], unit: str) -> str:
    s = _spread(xs)
    return f"  {label:<30}{s['median']:8.0f} {unit:<6} median of {len(xs)}, spread {s['min']:.0f}–{s['max']:.0f}"


def _lat(xs: list[float]) -> dict:
    return {"p50_ms": _pct(xs, 50) * 1000, "p95_ms": _pct(xs, 95) * 1000, "p99_ms": _pct(xs, 99) * 1000}


def _parse_env(pairs: list[str]) -> dict[str, str]:
    from hub.errors import UsageError

    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k.startswith("HUB_"):
            raise UsageError(f"{p!r}: give HUB_SETTING=VALUE")
        out[k] = v
    return out


async def run_bench(settings: Settings, *, n: int = 5000, size: int = 10_000, workers: int = 1, processes: int = 1,
                    repeat: int = 3, large: list[float] = (50, 200), check_n: int = 2000, paced_n: int | None = None,
                    paced_rate: float | None = None,
                    skip: frozenset[str] = frozenset(), hub_env: list[str] = (), ab: list[str] = (),
                    json_out: bool = False) -> int:
    from hub.errors import UsageError

    if n < 1 or repeat < 1 or workers < 1 or processes < 1:
        raise UsageError("--n, --repeat, --workers and --processes must be at least 1")
    if paced_rate is not None and not paced_rate > 0:
        raise UsageError("--paced-rate: packages per second, more than 0")
    b_env = _parse_env(list(ab)) if ab else None
    bench = Bench(settings, workers=workers, processes=processes, hub_env=_parse_env(list(hub_env)))
    paced_n = paced_n or max(200, n // 10)
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "loadavg_start": list(os.getloadavg())},
        "broker": bench.parts.hostname, "database": urlsplit(bench.pg_admin).hostname, "vhost": bench.vhost,
        "n": n, "repeat": repeat, "workers": workers, "processes": processes, "hub_env": bench.hub_env,
    }
    print(f"hub bench: {n:,} packages of ~{size:,} bytes, {repeat} round(s), {processes} hub process(es) × "
          f"{workers} worker(s), through RabbitMQ {bench.parts.hostname} and PostgreSQL "
          f"{urlsplit(bench.pg_admin).hostname} (vhost {bench.vhost}; throw-away databases)", flush=True)
    ok = True
    try:
        try:
            await bench.setup()
        except Exception as e:  # noqa: BLE001 - one line, not a traceback
            raise BenchError(f"cannot set up the bench on RabbitMQ {bench.amqp.split('@')[-1]} (management "
                             f"{bench.mgmt}) and PostgreSQL {bench.pg_admin.split('@')[-1]}: {e}") from None
        ident = Identity.load(G22, *bench.pki.agencies[G22])
        bodies = make_packages(ident, n, size) if {"relay", "hub", "paced"} - skip else []
        # the bench's own heap (its packages, its imports) out of its collector's full passes, as
        # `hub serve` does (hub.heap): a pass stalled its consumers 37-62 ms, added to the latency
        from hub import heap

        heap.settle()
        result["size"] = statistics.mean(len(x) for x in bodies) if bodies else size
        relay: list[Run] = []
        on: list[Run] = []
        off: list[Run] = []
        arm_b: list[Run] = []
        for r in range(repeat):
            # the hub's arms alternate their order round by round, so a drifting load favours none of them
            hub_arms = [] if "hub" in skip else [("on", True)] + ([] if "off" in skip else [("off", False)]) \
                + ([("B", True)] if b_env else [])
            arms = ([] if "relay" in skip else [("relay", None)]) + (hub_arms[::-1] if r % 2 else hub_arms)
            for arm, audit in arms:
                tag = f"round {r + 1}/{repeat}"
                if arm == "relay":
                    say(f"{tag}: bare relay…")
                    run = await bench.relay(bodies, f"{tag} relay")
                    relay.append(run)
                    print(_line(f"bare relay (no checks) #{r + 1}", run.rate, run.got.lat, "msg/s"), flush=True)
                    ok &= run.got.count == n
                    continue
                label = {"on": "audit on", "off": "audit off", "B": "audit on, B"}[arm]
                say(f"{tag}: full hub, {label}…")
                run = await bench.hub(f"{arm} {tag}", bodies, audit=bool(audit),
                                      extra_env=b_env if arm == "B" else None)
                {"on": on, "off": off, "B": arm_b}[arm].append(run)
                print(_line(f"full hub, {label} #{r + 1}", run.rate, run.got.lat), flush=True)
                ok &= run.got.count == n
        if relay:
            print(_spread_line("bare relay", [x.rate for x in relay], "msg/s"), flush=True)
            result["relay"] = {**_spread([x.rate for x in relay]), "delivered": [x.got.count for x in relay]}
        if on:
            for name, runs in (("hub_audit_on", on), ("hub_audit_off", off), ("hub_b", arm_b)):
                if not runs:
                    continue
                print(_spread_line({"hub_audit_on": "full hub, audit log on", "hub_audit_off": "full hub, audit log off",
                                    "hub_b": "full hub, audit on, B"}[name], [x.rate for x in runs], "pkg/s"), flush=True)
                per_pkg = {k: 1e6 * statistics.median([x.stages.get(k, 0.0) for x in runs]) / n for k in STAGES}
                result[name] = {**_spread([x.rate for x in runs]), "delivered": [x.got.count for x in runs],
                                "saturated": _lat(sum((x.got.lat for x in runs), [])),
                                "hub_peak_rss_mb": max(x.rss_mb for x in runs),
                                "check_process_peak_rss_mb": max(x.children_rss_mb for x in runs),
                                "stage_us_per_package": per_pkg}
            stages = result["hub_audit_on"]["stage_us_per_package"]
            print("    per package (workers' own clocks, audit on, median): "
                  + ", ".join(f"{k} {v:.0f} µs" for k, v in stages.items()), flush=True)
            if off:
                costs = [100 * (1 - a.rate / b.rate) for a, b in zip(on, off) if b.rate]
                result["audit_cost_pct"] = _spread(costs)
                result["audit_cost_pct"]["of_medians"] = 100 * (1 - result["hub_audit_on"]["median"]
                                                                / result["hub_audit_off"]["median"])
                c = result["audit_cost_pct"]
                print(f"  audit log costs {c['of_medians']:.1f} % (medians; per round {c['min']:.1f} … {c['max']:.1f} "
                      f"%; target ≤ 5 %)", flush=True)
            if arm_b:
                result["b_vs_a_pct"] = _spread([100 * (bb.rate / a.rate - 1) for a, bb in zip(on, arm_b)])
                result["hub_b"]["env"] = b_env
                print(f"  B ({' '.join(f'{k}={v}' for k, v in b_env.items())}) vs A: "
                      f"{result['b_vs_a_pct']['median']:+.1f} % (median of per-round ratios; "
                      f"{result['b_vs_a_pct']['min']:+.1f} … {result['b_vs_a_pct']['max']:+.1f} %)", flush=True)
            if relay:
                ratio = result["hub_audit_on"]["median"] / result["relay"]["median"]
                result["ratio"] = ratio
                print(f"  ratio hub/relay {ratio:.2f} (medians; target ≥ 1.0); full hub "
                      f"{result['hub_audit_on']['median']:.0f} pkg/s (target ≥ 1,500)", flush=True)
        if "paced" not in skip:
            rate = result["hub_audit_on"]["median"] if on else 200.0
            pace = paced_rate or max(rate / 2, 20.0)
            say(f"latency at half the saturated rate ({pace:.0f} pkg/s, {paced_n:,} packages)…")
            # packages of their own beyond --n: a repeated one is a duplicate, recorded once and never
            # delivered again, so the run would wait for it until it stopped as stuck
            pbodies = bodies[:paced_n] + (make_packages(ident, paced_n - len(bodies), size)
                                          if paced_n > len(bodies) else [])
            run = await bench.hub("paced", pbodies, audit=True, pace=pace)
            ok &= run.got.count == paced_n
            result["latency_half_load"] = {"per_s": pace, "n": paced_n, "delivered": run.got.count,
                                           **_lat(run.got.lat)}
            print(_line(f"latency at {pace:.0f} pkg/s", pace, run.got.lat) + "  (target p99 ≤ 50 ms)", flush=True)
        if "checks" not in skip:
            say(f"full checks on one core ({check_n:,})…")
            cr = await asyncio.to_thread(_check_rate, check_n)
            result["checks"] = cr
            if "error" in cr:
                print(f"  checks on one core: failed: {cr['error']}", flush=True)
                ok = False
            else:
                print(f"  {'full checks, one core':<30}{cr['per_cpu_s']:8.0f} /CPU-s {cr['cpu_us']:.0f} µs of CPU "
                      f"each (target ≥ 6,000/s); {cr['per_s']:.0f} /s of wall clock: the process got "
                      f"{100 * cr['cpu_share']:.0f} % of its core, load average {cr['loadavg_1min'][0]:.1f}", flush=True)
                print(f"    ({cr['measures']})", flush=True)
        if "large" not in skip:
            # through the HTTP gateway, as a scanned dossier arrives: over HUB_BY_REFERENCE_BYTES it
            # travels by reference to stored bytes (RabbitMQ's own limit is 128 MiB)
            import tempfile
            from pathlib import Path

            from benchmarks.large import measure_pipeline

            result["large"] = []
            for mb in large:
                x = {"mb": mb, "bytes": None, "status": "refused", "reason": None, "seconds": None,
                     "hub_peak_rss_mb": None, "hub_idle_rss_mb": None, "check_process_peak_rss_mb": None,
                     "by_reference": None}
                say(f"  large package: {mb:g} MB through the gateway…")
                try:
                    with tempfile.TemporaryDirectory(prefix="hub-bench-large-") as tmp:
                        (row,) = await measure_pipeline([int(mb)], Path(tmp), 16 * MB)
                    x.update(bytes=int(row["package_mb"] * MB), seconds=row["seconds"],
                             hub_peak_rss_mb=row["hub_peak_rss_mb"], hub_idle_rss_mb=row["hub_idle_mb"],
                             check_process_peak_rss_mb=row.get("check_processes_peak_rss_mb"),
                             by_reference=row["by_reference"])
                    x["status"] = "delivered" if row["delivered_ok"] else "refused"
                    if not row["delivered_ok"]:
                        x["reason"] = "the recipient's bytes do not hash to the reference"
                except Exception as e:  # noqa: BLE001 - reported as the bench's line, not a traceback
                    x["reason"] = f"{type(e).__name__}: {str(e)[:300]}"
                result["large"].append(x)
                if x["status"] == "delivered":
                    budget = 100 + 1.5 * x["bytes"] / MB
                    print(f"  large package {mb:g} MB: delivered in {x['seconds']:.1f} s "
                          f"({'by reference' if x['by_reference'] else 'in the message'}); hub peak RSS "
                          f"{x['hub_peak_rss_mb']:.0f} MB (idle {x['hub_idle_rss_mb']:.0f} MB; target ≤ {budget:.0f} MB; "
                          f"its check process, not counted: {x['check_process_peak_rss_mb']} MB)",
                          flush=True)
                else:
                    print(f"  large package {mb:g} MB: refused: {x['reason']}", flush=True)
    except BenchError as e:
        print(f"hub bench: {e}", file=sys.stderr, flush=True)
        result["error"] = str(e)
        ok = False
    finally:
        result["machine"]["loadavg_end"] = list(os.getloadavg())
        await bench.teardown()
    result["ok"] = ok
    if json_out:
        print(json.dumps(_clean(result)), flush=True)
    return 0 if ok else 1


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _clean(x):
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(x, float):
        return x if _finite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x
