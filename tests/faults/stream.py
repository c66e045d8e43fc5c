"""A stream of packages through `hub serve` on our own cluster, counted end to end by independent
consumers: the fault suite's machinery (the crash test's, grown a publisher that retries until
confirmed, counters, and the end-of-run checks)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from adapters.sdk import Adapter, SeenStore
from hub import constants as C
from hub.backbone.base import inbox_queue
from hub.backbone.factory import connect
from hub.backbone.users import agency_permissions
from hub.edxml.builder import build_edoc
from hub.edxml.signature import sign_package
from hub.errors import HubError
from hub.registry.store import add_agency, add_trust_anchor
from hub.store import leader
from hub.store.engine import make_engine, migrate
from hub.store.tables import dead_letters, documents, records
from tests.conftest import G22, H41, H44, HUB, make_edoc
from tests.faults.cluster import Postgres, PostgresPair, RabbitCluster
from tests.faults.hubproc import HubProcess

AGENCIES = (G22, H41, H44)
LISTENING = "  listening on "  # what `hub serve` prints once its API takes requests (hub.service.serve)


def signed(pki, sender: str, to: tuple[str, ...]) -> tuple[str, tuple[str, ...], bytes]:
    """A signed package from ``sender`` to ``to``: (DocumentId, recipients, bytes)."""
    d = make_edoc(sender, to)
    ident = pki.ids[sender]
    return d.document_id, to, sign_package(build_edoc(d, []), ident.key, ident.cert)


@dataclass
class Counts:
    published: int = 0  # publish attempts (a failed one is retried)
    confirmed: int = 0  # packages the broker confirmed
    expected: int = 0  # (package, recipient) deliveries owed
    delivered: int = 0  # distinct deliveries the independent consumers received
    duplicates: int = 0  # copies received again (at-least-once; the adapters filter them)
    lost: int = 0
    dead: int = 0  # dead-lettered (hub.dead queue + kept dead letters + package.dead records)
    twice: int = 0  # DocumentIds recorded (accepted) more than once
    orphans: list[int] = field(default_factory=list)
    recovered: float | None = None  # s: the longest time without a delivery, from the fault on
    seconds: float = 0.0  # the whole stream, first publish to last delivery

    def line(self, name: str) -> str:
        rec = "n/a" if self.recovered is None else f"{self.recovered:.1f}s"
        return (f"{name}: published={self.published} confirmed={self.confirmed} expected={self.expected} "
                f"delivered={self.delivered} duplicates={self.duplicates} lost={self.lost} dead={self.dead} "
                f"recorded_twice={self.twice} orphans={len(self.orphans)} recovered_in={rec} "
                f"stream={self.seconds:.0f}s")


@dataclass
class Broker:
    """The suite's vhost and agency users on the cluster (made once: rabbitmqctl is slow)."""

    cluster: RabbitCluster
    vhost: str
    passwords: dict[str, str]

    @classmethod
    def make(cls, cluster: RabbitCluster) -> Broker:
        vhost = f"faults-{uuid.uuid4().hex[:8]}"
        cluster.add_vhost(vhost)
        passwords = {}
        for code in AGENCIES:
            p = agency_permissions(code)
            passwords[code] = uuid.uuid4().hex
            cluster.add_user(code, passwords[code], vhost=vhost, configure=p.configure, write=p.write, read=p.read)
        return cls(cluster, vhost, passwords)

    def url(self, code: str | None = None) -> str:
        if code is None:
            return self.cluster.url("guest", "guest", self.vhost)
        return self.cluster.url(code, self.passwords[code], self.vhost)


class Stream:
    """One scenario: a fresh database, ``hubs`` × `hub serve` (restartable), a publisher and two
    receivers. ``pg`` is a :class:`Postgres` or a :class:`PostgresPair` (anything with
    ``create_database`` returning the URL). :meth:`fault` marks the moment a fault starts: the
    time to recover is the longest the recipients then waited for a delivery (from the fault to
    the first one, or between two)."""

    def __init__(self, broker: Broker, pg: Postgres | PostgresPair, pki, tmp: Path,
                 packages: list[tuple[str, tuple[str, ...], bytes]], *, hubs: int = 1):
        self.broker, self.pg, self.pki, self.tmp = broker, pg, pki, tmp
        self.packages = packages  # (DocumentId, recipients, signed bytes)
        self.counts = Counts()
        self.expected = {(d, r) for d, to, _ in packages for r in to}
        self.got: set[tuple[str, str]] = set()
        self.raw = 0
        self.adapters: dict[str, Adapter] = {}
        self.tasks: list[asyncio.Task] = []
        self.n_hubs = hubs
        self.hubs: list[HubProcess] = []
        self.hub: HubProcess | None = None  # the first
        self.db_url = ""
        self.fault_at: float | None = None
        self.gap = 0.0  # the longest wait for a delivery since the fault
        self.started_at = self.last_delivery = 0.0

    def fault(self) -> None:
        self.fault_at = time.monotonic()

    async def setup(self) -> None:
        self.db_url = await asyncio.to_thread(self.pg.create_database, f"hub_fault_{uuid.uuid4().hex[:10]}")
        engine = make_engine(self.db_url)
        try:
            await migrate(engine)
            await add_trust_anchor(engine, self.pki.ca_cert)
            await add_agency(engine, HUB, name="hub", certs=[self.pki.ids[HUB].cert], connected=False, accepts="0")
            for code in AGENCIES:
                await add_agency(engine, code, name=code, amqp_user=code, certs=[self.pki.ids[code].cert],
                                 accepts="1,2" if code == H44 else None)
        finally:
            await engine.dispose()
        kp, cp = self.pki.write(self.pki.ids[HUB], self.tmp)
        for k in range(self.n_hubs):  # each names itself to PostgreSQL (pg_stat_activity.application_name)
            url = f"{self.db_url}{'&' if '?' in self.db_url else '?'}application_name=hub-{k}"
            self.hubs.append(HubProcess({
                "HUB_DATA_DIR": str(self.tmp / f"data{k}"), "HUB_DATABASE_URL": url, "HUB_AMQP_URL": self.broker.url(),
                "HUB_ORGAN_ID": HUB, "HUB_KEY_FILE": str(kp), "HUB_CERT_FILE": str(cp), "HUB_PREFETCH": "200",
            }, self.tmp / ("hub.log" if k == 0 else f"hub{k}.log")))
        self.hub = self.hubs[0]
        # a previous scenario's leftovers (there should be none) must not count here
        admin = await connect(self.broker.url())
        try:
            await admin.declare_topology()
            for q in (C.QUEUE_INTAKE, C.QUEUE_DEAD):
                await admin.purge(q)
            for code in (H41, H44):
                for q in (inbox_queue(code), inbox_queue(code, True)):
                    try:
                        await admin.purge(q)
                    except HubError:  # not declared yet (the first scenario)
                        pass
        finally:
            await admin.close()

    def live_hubs(self) -> list[HubProcess]:
        return [h for h in self.hubs if h.proc is not None and h.proc.poll() is None]

    async def start_hub(self, *which: int) -> None:
        """Start hub(s) ``which`` (default: the first; after a kill, that one again) and wait until
        every live hub consumes ``hub.intake`` and the started ones have finished starting (their
        API listens: a fault then hits a running hub, not one half-way through its start)."""
        started = {k: self.hubs[k].log().count(LISTENING) for k in which or (0,)}
        for k in which or (0,):
            self.hubs[k].start()
        deadline = time.monotonic() + 90
        admin = await connect(self.broker.url())
        try:
            while True:  # the hub declares the inboxes when it has started
                live = self.live_hubs()
                try:
                    if await admin.consumers(C.QUEUE_INTAKE) >= len(live):
                        await admin.depth(inbox_queue(H44, True))
                        if all(self.hubs[k].log().count(LISTENING) > n for k, n in started.items()):
                            return
                except HubError:
                    pass
                for k in which or (0,):
                    h = self.hubs[k]
                    assert h.proc.poll() is None, f"the hub exited: {h.log()[-3000:]}"
                    assert time.monotonic() < deadline, f"the hub did not start: {h.log()[-3000:]}"
                await asyncio.sleep(0.3)
        finally:
            await admin.close()

    async def leaders(self) -> dict[str, str]:
        """Which hub holds which role now, from PostgreSQL: {"sealer": "hub-0", "sweeper": …}."""
        roles = {leader.SEALER: "sealer", leader.SWEEPER: "sweeper"}
        engine = make_engine(self.db_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                rows = (await conn.execute(sa.text(
                    "SELECT l.objid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid IN (:a, :b) "
                    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                    {"a": leader.SEALER, "b": leader.SWEEPER})).all()
        finally:
            await engine.dispose()
        return {roles[int(k)]: name for k, name in rows}

    async def until_leaders(self, want: dict[str, str], timeout: float = 60) -> float:
        """Wait until the roles are held as ``want`` says; the seconds it took."""
        t0 = time.monotonic()
        while True:
            now = await self.leaders()
            if all(now.get(r) == h for r, h in want.items()):
                return time.monotonic() - t0
            assert time.monotonic() - t0 < timeout, f"roles {now} after {timeout:.0f} s, wanted {want}"
            await asyncio.sleep(0.2)

    async def adapter(self, code: str) -> Adapter:
        bb = await connect(self.broker.url(code))
        ad = Adapter(bb, code, None, SeenStore())
        self.adapters[code] = ad
        return ad

    async def start_receivers(self) -> None:
        for code in (H41, H44):
            ad = await self.adapter(code)
            await ad.start(prefetch=200)
            self.tasks.append(asyncio.create_task(self._receive(ad)))

    async def _receive(self, ad: Adapter) -> None:
        while True:
            try:
                r = await ad.receive(timeout=None)
                self.raw += 1
                self.got.add((r.document_id, r.headers.get(C.H_RECIPIENT)))
                now = time.monotonic()
                if self.fault_at is not None:
                    self.gap = max(self.gap, now - max(self.last_delivery, self.fault_at))
                self.last_delivery = now
                await r.done()
            except HubError:  # the broker went away under the ack: it redelivers, the SDK filters
                await asyncio.sleep(0.2)

    async def publish_all(self, items: list[bytes], *, code: str = G22, chunk: int = 50, pause: float = 0.05,
                          headers=None) -> None:
        """Publish, each until the broker confirms it (retrying through outages)."""
        ad = self.adapters.get(code) or await self.adapter(code)

        async def one(data: bytes, i: int) -> None:
            deadline = time.monotonic() + 240
            while True:
                self.counts.published += 1
                try:
                    if headers is None:
                        await ad.publish(data)
                    else:
                        await ad.backbone.publish(C.EXCHANGE_SUBMIT, "", data, user_id=ad.backbone.user,
                                                  headers=headers(i))
                    self.counts.confirmed += 1
                    return
                except HubError:
                    assert time.monotonic() < deadline, "a package could not be published for 240 s"
                    await asyncio.sleep(0.5)

        for i in range(0, len(items), chunk):
            await asyncio.gather(*(one(d, i + k) for k, d in enumerate(items[i:i + chunk])))
            await asyncio.sleep(pause)

    def stream(self) -> asyncio.Task:
        self.started_at = time.monotonic()
        return asyncio.create_task(self.publish_all([data for _, _, data in self.packages]))

    async def until_confirmed(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.counts.confirmed < n:
            assert time.monotonic() < deadline, f"only {self.counts.confirmed} of {n} confirmed"
            await asyncio.sleep(0.1)

    async def until_delivered(self, n: int | None = None, timeout: float = 180) -> None:
        """Wait for ``n`` deliveries (default: all owed); returns early on none (the check says)."""
        deadline = time.monotonic() + timeout
        while len(self.got & self.expected) < (len(self.expected) if n is None else n):
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.3)

    async def finish(self, name: str) -> Counts:
        """Stop everything, count, verify the audit log; the caller asserts on the counts."""
        c = self.counts
        await asyncio.sleep(1.0)  # late duplicates
        for t in self.tasks:
            t.cancel()
        c.expected = len(self.expected)
        c.delivered = len(self.got & self.expected)
        c.lost = len(self.expected - self.got)
        c.duplicates = sum(a.duplicates_skipped for a in self.adapters.values())
        if self.fault_at is not None:
            c.recovered = self.gap
        if self.started_at and self.last_delivery:
            c.seconds = self.last_delivery - self.started_at
        admin = await connect(self.broker.url())
        try:
            c.dead = await admin.depth(C.QUEUE_DEAD)
        finally:
            await admin.close()
        for h in self.hubs:
            code = await asyncio.to_thread(h.terminate, 60)
            assert code is not None, f"`hub serve` did not stop on SIGTERM: {h.log()[-3000:]}"
        for h in self.hubs:
            c.orphans += await asyncio.to_thread(h.orphans, 15.0)
        for ad in self.adapters.values():
            try:
                await ad.stop()
                await ad.backbone.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        engine = make_engine(self.db_url)
        try:
            async with engine.connect() as conn:
                c.dead += (await conn.execute(sa.select(sa.func.count()).select_from(dead_letters))).scalar_one()
                c.dead += (await conn.execute(sa.select(sa.func.count()).select_from(records).where(
                    records.c.event == "package.dead"))).scalar_one()
                c.twice = len((await conn.execute(
                    sa.select(records.c.document_id).where(records.c.event == "package.accepted")
                    .group_by(records.c.document_id).having(sa.func.count() > 1))).all())
                self.documents = (await conn.execute(sa.select(sa.func.count()).select_from(documents).where(
                    documents.c.kind == "edoc"))).scalar_one()
        finally:
            await engine.dispose()
        self.audit = await asyncio.to_thread(self._audit_verify)
        print("\n  " + c.line(name), flush=True)
        return c

    def _audit_verify(self) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hub.cli", "audit", "verify"], env=self.hub.env,
                              capture_output=True, text=True, timeout=120)

    def diagnostics(self) -> str:
        """For a failure's message: the database server's state and log, the hub's outage lines."""
        out = []
        for pg in ([self.pg.primary, self.pg.standby] if hasattr(self.pg, "standby") else [self.pg]):
            root = getattr(pg, "root", None)
            try:
                tail = (Path(root) / "server.log").read_text(errors="replace")[-1500:] if root else ""
            except OSError as e:
                tail = f"(no server log: {e})"
            out.append(f"PostgreSQL port {getattr(pg, 'port', '?')} running={getattr(pg, 'running', '?')}; "
                       f"its log ends:\n{tail}")
        for k, h in enumerate(self.hubs):
            lines = [line for line in h.log().splitlines()
                     if any(w in line for w in ("database", "intake", "recording", "resum", "Traceback", "error"))]
            out.append(f"hub-{k}'s outage lines:\n" + "\n".join(lines[-25:]))
        return "\n".join(out)

    def cleanup(self) -> None:
        for t in self.tasks:
            t.cancel()
        for h in self.hubs:
            h.cleanup()


def assert_clean(s: Stream, c: Counts, documents: int) -> None:
    """What every scenario ends with: nothing lost, dead-lettered, recorded twice or orphaned; audit OK."""
    missing = sorted(s.expected - s.got)[:3]
    assert c.lost == 0, f"{c.lost} deliveries lost, e.g. {missing}; hub log: {s.hub.log()[-2000:]}\n{s.diagnostics()}"
    assert c.dead == 0, f"{c.dead} dead-lettered; hub log: {s.hub.log()[-2000:]}"
    assert c.twice == 0
    assert s.documents == documents
    assert c.orphans == [], f"processes left behind: {c.orphans}"
    assert s.audit.returncode == 0, s.audit.stdout[-2000:] + s.audit.stderr[-2000:]
