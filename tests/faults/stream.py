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
from hub.errors import HubError
from hub.registry.store import add_agency, add_trust_anchor
from hub.store.engine import make_engine, migrate
from hub.store.tables import dead_letters, documents, records
from tests.conftest import G22, H41, H44, HUB
from tests.faults.cluster import Postgres, RabbitCluster
from tests.faults.hubproc import HubProcess

AGENCIES = (G22, H41, H44)


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

    def line(self, name: str) -> str:
        return (f"{name}: published={self.published} confirmed={self.confirmed} expected={self.expected} "
                f"delivered={self.delivered} duplicates={self.duplicates} lost={self.lost} dead={self.dead} "
                f"recorded_twice={self.twice} orphans={len(self.orphans)}")


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
    """One scenario: a fresh database, `hub serve` (restartable), a publisher and two receivers."""

    def __init__(self, broker: Broker, pg: Postgres, pki, tmp: Path, packages: list[tuple[str, tuple[str, ...], bytes]]):
        self.broker, self.pg, self.pki, self.tmp = broker, pg, pki, tmp
        self.packages = packages  # (DocumentId, recipients, signed bytes)
        self.counts = Counts()
        self.expected = {(d, r) for d, to, _ in packages for r in to}
        self.got: set[tuple[str, str]] = set()
        self.raw = 0
        self.adapters: dict[str, Adapter] = {}
        self.tasks: list[asyncio.Task] = []
        self.hub: HubProcess | None = None
        self.db_url = ""

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
        self.hub = HubProcess({
            "HUB_DATA_DIR": str(self.tmp / "data"), "HUB_DATABASE_URL": self.db_url, "HUB_AMQP_URL": self.broker.url(),
            "HUB_ORGAN_ID": HUB, "HUB_KEY_FILE": str(kp), "HUB_CERT_FILE": str(cp), "HUB_PREFETCH": "200",
        }, self.tmp / "hub.log")
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

    async def start_hub(self) -> None:
        self.hub.start()
        deadline = time.monotonic() + 90
        admin = await connect(self.broker.url())
        try:
            while True:  # the hub declares the inboxes when it has started
                try:
                    if await admin.consumers(C.QUEUE_INTAKE) > 0:
                        await admin.depth(inbox_queue(H44, True))
                        return
                except HubError:
                    pass
                assert self.hub.proc.poll() is None, f"the hub exited: {self.hub.log()[-3000:]}"
                assert time.monotonic() < deadline, f"the hub did not start: {self.hub.log()[-3000:]}"
                await asyncio.sleep(0.3)
        finally:
            await admin.close()

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
        admin = await connect(self.broker.url())
        try:
            c.dead = await admin.depth(C.QUEUE_DEAD)
        finally:
            await admin.close()
        code = await asyncio.to_thread(self.hub.terminate, 60)
        assert code is not None, f"`hub serve` did not stop on SIGTERM: {self.hub.log()[-3000:]}"
        c.orphans = await asyncio.to_thread(self.hub.orphans, 15.0)
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

    def cleanup(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self.hub is not None:
            self.hub.cleanup()


def assert_clean(s: Stream, c: Counts, documents: int) -> None:
    """What every scenario ends with: nothing lost, dead-lettered, recorded twice or orphaned; audit OK."""
    missing = sorted(s.expected - s.got)[:3]
    assert c.lost == 0, f"{c.lost} deliveries lost, e.g. {missing}; hub log: {s.hub.log()[-2000:]}"
    assert c.dead == 0, f"{c.dead} dead-lettered; hub log: {s.hub.log()[-2000:]}"
    assert c.twice == 0
    assert s.documents == documents
    assert c.orphans == [], f"processes left behind: {c.orphans}"
    assert s.audit.returncode == 0, s.audit.stdout[-2000:] + s.audit.stderr[-2000:]
