"""End-to-end fixtures: the hub running on real RabbitMQ + PostgreSQL (and on the embedded
defaults), agencies registered with their own broker users, adapters per agency."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from adapters.sdk import Adapter, SeenStore
from hub.backbone.factory import connect
from hub.backbone.management import Management
from hub.backbone.users import provision_agency_user, provision_embedded_agency_user
from hub.pki.identity import Identity
from hub.registry.store import add_agency, add_trust_anchor
from hub.service import running_hub
from hub.settings import Settings
from hub.store.engine import make_engine, migrate
from tests.conftest import G22, H41, H44, HUB, AMQP_URL

MGMT = "http://127.0.0.1:15672"


@dataclass
class HubEnv:
    kind: str
    settings: Settings
    pki: object
    vhost: str | None = None
    passwords: dict[str, str] = field(default_factory=dict)
    broker: object | None = None
    hub: object | None = None
    adapters: list = field(default_factory=list)

    def amqp_url(self, user: str, password: str) -> str:
        return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:5672/{quote(self.vhost, safe='')}"

    def user_of(self, code: str) -> str:
        """RabbitMQ users are global, not per vhost: give each test its own user names."""
        return code if self.kind == "embedded" else f"{code}@{self.vhost}"

    async def register(self, code: str, name: str = "", **kw) -> None:
        own_system = kw.get("connected", True) is not False and not kw.get("served_by")
        engine = make_engine(self.settings.database_url)
        try:
            await add_agency(engine, code, name=name or code, amqp_user=self.user_of(code) if own_system else None, **kw)
        finally:
            await engine.dispose()
        if own_system:
            await self.provision(code)

    async def provision(self, code: str) -> None:
        user = self.user_of(code)
        if self.kind == "embedded":
            provision_embedded_agency_user(self.broker, user, code)
            return
        pw = secrets.token_urlsafe(16)
        await provision_agency_user(MGMT, "guest", "guest", user, pw, code, vhost=self.vhost)
        self.passwords[user] = pw

    async def adapter(self, code: str, *, user: str | None = None, identity: Identity | None = None,
                      start: bool = True) -> Adapter:
        user = user or self.user_of(code)
        if self.kind == "embedded":
            bb = await connect(None, user=user, broker=self.broker)
        else:
            bb = await connect(self.amqp_url(user, self.passwords[user]))
        ident = identity or Identity(code, self.pki.ids[code].key, self.pki.ids[code].cert) if code in self.pki.ids else identity
        ad = Adapter(bb, code, ident, SeenStore())
        if start:
            await ad.start()
        self.adapters.append(ad)
        return ad

    @asynccontextmanager
    async def running(self, **kw):
        async with running_hub(self.settings, broker=self.broker, **kw) as hub:
            self.hub = hub
            yield hub

    async def scalar(self, query):
        engine = make_engine(self.settings.database_url)
        try:
            async with engine.connect() as c:
                return (await c.execute(query)).all()
        finally:
            await engine.dispose()


async def _make_env(kind: str, db_url: str, tmp: Path, pki) -> HubEnv:
    hub_ident = pki.ids[HUB]
    kp, cp = pki.write(hub_ident, tmp)
    vhost = None
    if kind == "rabbitmq":
        vhost = f"hubtest-{uuid.uuid4().hex[:10]}"
        async with Management(MGMT, "guest", "guest") as m:
            await m.put_vhost(vhost)
            await m.set_permissions(vhost, "guest", configure=".*", write=".*", read=".*")
        amqp = AMQP_URL.rstrip("/") + "/" + quote(vhost, safe="")
    else:
        amqp = None
    settings = Settings.from_env({}, data_dir=tmp / "data", database_url=db_url, amqp_url=amqp,
                                 hub_organ_id=HUB, hub_key_file=kp, hub_cert_file=cp, check_processes=0)
    env = HubEnv(kind, settings, pki, vhost=vhost)
    if kind == "embedded":
        from hub.backbone.embedded import EmbeddedBroker

        env.broker = EmbeddedBroker()
    engine = make_engine(db_url)
    await migrate(engine)
    await add_trust_anchor(engine, pki.ca_cert)
    await add_agency(engine, HUB, name="hub", certs=[hub_ident.cert], connected=False, accepts="0")
    await engine.dispose()
    await env.register(G22, "Văn phòng Chính phủ", certs=[pki.ids[G22].cert])
    await env.register(H41, "UBND tỉnh Nghệ An", certs=[pki.ids[H41].cert])
    await env.register(H44, "Tỉnh H44", certs=[pki.ids[H44].cert], accepts="1,2")
    return env


async def _teardown(env: HubEnv) -> None:
    for ad in env.adapters:
        try:
            await ad.stop()
            await ad.backbone.close()
        except Exception:  # noqa: BLE001 - best effort
            pass
    if env.kind == "rabbitmq":
        async with Management(MGMT, "guest", "guest") as m:
            await m.delete_vhost(env.vhost)
            for user in env.passwords:
                await m.delete_user(user)


@pytest.fixture(params=[pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]), "embedded"])
async def env(request, tmp_path, pki):
    """The hub on real RabbitMQ + PostgreSQL, and on the embedded broker + SQLite."""
    if request.param == "rabbitmq":
        db = request.getfixturevalue("pg_url")
    else:
        db = request.getfixturevalue("sqlite_db")()
    e = await _make_env(request.param, db, tmp_path, pki)
    yield e
    await _teardown(e)


@pytest.fixture
async def real_env(tmp_path, pki, pg_url):
    """Real RabbitMQ + PostgreSQL only (load and crash tests)."""
    e = await _make_env("rabbitmq", pg_url, tmp_path, pki)
    yield e
    await _teardown(e)


async def drain(adapter: Adapter, n: int, timeout: float = 20.0) -> list:
    """Receive exactly ``n`` packages (acked), failing if they do not arrive in time."""
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < n:
        left = deadline - loop.time()
        assert left > 0, f"only {len(got)} of {n} packages arrived at {adapter.code}: {[r.kind + ' ' + r.document_id for r in got]}"
        r = await adapter.receive(timeout=left)
        if r is None:
            continue
        await r.done()
        got.append(r)
    return got


async def quiet(adapter: Adapter, seconds: float = 0.7) -> list:
    """Whatever else arrives within ``seconds`` (expected: nothing)."""
    extra = []
    while True:
        r = await adapter.receive(timeout=seconds)
        if r is None:
            return extra
        await r.done()
        extra.append(r)


async def letter_with_statuses(env, *, refused: bool = True):
    """Traffic the audit tests read back (the hub must be running): G22 sends a letter to H41 and
    H44, H41 answers 01 then 03, and (with ``refused``) a package to H44 of a type it does not
    accept is refused. Returns (the letter, the refused package or None, {code: adapter})."""
    from tests.conftest import attachment, make_edoc

    g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
    doc = make_edoc(G22, (H41, H44))
    await g.send_document(doc, [attachment()])
    await drain(h41, 1)
    await drain(h44, 1)
    for code in ("01", "03"):
        await h41.send_status(G22, doc.document_id, code, f"bước {code}")
        await drain(g, 1)
    adapters = {G22: g, H41: h41, H44: h44}
    if not refused:
        return doc, None, adapters
    not_competent = make_edoc(G22, (H44,), doc_type="9")
    await g.send_document(not_competent, [])
    await drain(g, 1)
    return doc, not_competent, adapters


async def until(probe, timeout: float = 30.0, every: float = 0.1):
    """Poll ``probe()`` until it returns something truthy, and return that (fails after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await probe()
        if got:
            return got
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(every)
