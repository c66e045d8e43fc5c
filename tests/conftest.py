"""Shared fixtures: a development PKI, package factories, databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.edxml.builder import AttachmentFile, build_edoc, build_status
from hub.edxml.model import Code, DocumentType, Edoc, Organization, ResponseFor, StatusPackage, TraceHeader
from hub.edxml.signature import sign_package
from hub.pki import devpki
from hub.pki.certs import fingerprint
from hub.pki.chain import TrustStore
from hub.registry.model import Agency, Registry

pytest_plugins = ["tests.hubenv"]

DATA = Path(__file__).resolve().parent / "data"  # the real samples the tests read, copied into the repo

G22 = "000.00.00.G22"  # Government Office
H41 = "000.00.00.H41"  # Nghệ An
H44 = "000.00.00.H44"  # a province serving lower levels
HUB = "000.00.99.G22"
PG_ADMIN_URL = os.environ.get("HUB_TEST_PG_ADMIN", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("HUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass
class Identity:
    code: str
    key: object
    cert: object

    @property
    def fp(self) -> str:
        return fingerprint(self.cert)


@dataclass
class Pki:
    ca_cert: object
    ca_key: object
    ids: dict[str, Identity] = field(default_factory=dict)
    other_ca: tuple = None  # an untrusted CA (cert, key)
    tmp: Path | None = None

    def trust(self, crls=()) -> TrustStore:
        return TrustStore(anchors=(self.ca_cert,), crls=tuple(crls))

    def issue(self, code: str, **kw) -> Identity:
        cert, key = devpki.issue(self.ca_cert, self.ca_key, f"{code} test", **kw)
        return Identity(code, key, cert)

    def write(self, ident: Identity, directory: Path) -> tuple[Path, Path]:
        kp, cp = directory / f"{ident.code}.key", directory / f"{ident.code}.pem"
        kp.write_bytes(devpki.key_pem(ident.key))
        cp.write_bytes(devpki.cert_pem(ident.cert))
        return kp, cp


# Tests that start servers of their own (a RabbitMQ cluster, PostgreSQL primary/standby, the
# local cluster script) and stop or kill them: under pytest-xdist (`-n 2`, pyproject's addopts)
# they run one after another on one worker, while the other worker takes the rest of the suite.
# Schemathesis runs its own pool of clients against a served hub: its cases, too, one at a time.
# The `hub bench` tests check that a run leaves none of its throw-away `hub_bench_*` databases
# behind, which another bench run on the other worker would have open at that moment.
XDIST_GROUPS = {"tests/faults/": "own-clusters", "tests/test_local_cluster.py": "own-clusters",
                "tests/api/test_schemathesis.py": "schemathesis", "tests/cli/test_cli_bench.py": "hub-bench"}


def pytest_collection_modifyitems(config, items):
    root = Path(str(config.rootpath))
    for item in items:
        rel = Path(str(item.path)).relative_to(root).as_posix()
        for prefix, group in XDIST_GROUPS.items():
            if rel.startswith(prefix):
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    ca_cert, ca_key = devpki.make_ca("test root", not_before=datetime.now(timezone.utc) - timedelta(days=800))
    p = Pki(ca_cert, ca_key, tmp=tmp_path_factory.mktemp("pki"))
    for code in (G22, H41, H44, HUB):
        p.ids[code] = p.issue(code)
    p.other_ca = devpki.make_ca("untrusted root")
    (p.tmp / "ca.pem").write_bytes(devpki.cert_pem(ca_cert))
    return p


def registry_for(pki: Pki, extra: dict[str, Agency] | None = None, **overrides) -> Registry:
    agencies = {
        G22: Agency(G22, "Văn phòng Chính phủ", connected=True, fingerprints=frozenset({pki.ids[G22].fp})),
        H41: Agency(H41, "UBND tỉnh Nghệ An", connected=True, fingerprints=frozenset({pki.ids[H41].fp})),
        H44: Agency(H44, "UBND tỉnh Quảng Nam", connected=True, fingerprints=frozenset({pki.ids[H44].fp}),
                    accepts=frozenset({"1", "2"})),
        HUB: Agency(HUB, "hub", connected=False, fingerprints=frozenset({pki.ids[HUB].fp}), accepts=frozenset()),
    }
    agencies.update(extra or {})
    agencies.update(overrides)
    return Registry(agencies)


_counter = iter(range(1, 10**9))


def make_edoc(sender: str = G22, to: tuple[str, ...] = (H41,), *, doc_type: str = "1", priority: int = 0,
              number: int | None = None, response_for: tuple[ResponseFor, ...] = (), subject: str | None = None) -> Edoc:
    n = number if number is not None else next(_counter)
    today = date(2026, 11, 27)
    return Edoc(
        sender=Organization(sender, "Văn phòng Chính phủ", "Văn phòng Chính phủ", "Số 1 Hoàng Hoa Thám, Hà Nội",
                            "vpcp@chinhphu.vn", "080 43100"),
        recipients=tuple(Organization(t, organ_name=f"Cơ quan {t}") for t in to),
        document_id=f"{sender},{today:%Y/%m/%d},{n}/VPCP-TTĐT",
        code=Code(str(n), "VPCP-TTĐT"),
        promulgation_place="Hà Nội",
        promulgation_date=today,
        document_type=DocumentType(doc_type, "0", {"1": "Công văn", "2": "Quyết định"}.get(doc_type, "Văn bản")),
        subject=subject or f"V/v kết nối, liên thông phần mềm quản lý văn bản số {n}",
        content="Văn phòng Chính phủ đề nghị các cơ quan phối hợp thực hiện.",
        due_date=today + timedelta(days=14),
        priority=priority,
        response_for=response_for,
        trace=(TraceHeader(sender, datetime(2026, 11, 27, 9, 0, 0)),),
    )


def attachment(size: int = 6000) -> AttachmentFile:
    return AttachmentFile("cong-van.pdf", (b"%PDF-1.4 edxml test " * (size // 20 + 1))[:size], "application/pdf", "Công văn")


@pytest.fixture
def signed(pki):
    """``signed(edoc=None, signer=None, attachments=None, **edoc_kw) -> bytes``."""

    def make(edoc: Edoc | None = None, signer: Identity | None = None, attachments=None, **kw) -> bytes:
        doc = edoc or make_edoc(**kw)
        ident = signer or pki.ids[doc.sender.organ_id]
        raw = build_edoc(doc, [attachment()] if attachments is None else attachments)
        return sign_package(raw, ident.key, ident.cert)

    return make


def make_status(sender: str, rf_sender: str, rf_docid: str, code: str = "01", description: str = "") -> StatusPackage:
    return StatusPackage(
        sender=Organization(sender, organ_name=f"Cơ quan {sender}"),
        response_for=ResponseFor(rf_sender, rf_docid, code="1/VPCP"),
        status_code=code, description=description, timestamp=datetime.now().replace(microsecond=0),
    )


@pytest.fixture
def signed_status(pki):
    def make(sender: str, rf_sender: str, rf_docid: str, code: str = "01", description: str = "", signer=None) -> bytes:
        st = make_status(sender, rf_sender, rf_docid, code, description)
        ident = signer or pki.ids[sender]
        return sign_package(build_status(st), ident.key, ident.cert)

    return make


# --- databases --------------------------------------------------------------------------------

async def _pg_create(name: str, template: str | None = None) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    eng = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with eng.connect() as c:
            await c.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    finally:
        await eng.dispose()


async def _pg_drop(name: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    eng = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with eng.connect() as c:
            await c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await eng.dispose()


def _run_in_thread(coro) -> None:
    """Run a coroutine to completion from any context (even inside a running loop)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        ex.submit(asyncio.run, coro).result()


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def _migrate_url(url: str) -> None:
    from hub.store.engine import make_engine, migrate

    e = make_engine(url)
    try:
        await migrate(e)
    finally:
        await e.dispose()


# Most tests want a database at the schema's head. Migrating one takes 0.3-0.5 s (some forty
# Alembic scripts), cloning a migrated one 0.1 s (PostgreSQL's CREATE DATABASE ... TEMPLATE,
# SQLite's backup API): each xdist worker migrates one template per engine and clones it.
# Tests of the migrations themselves, of an old schema, or of what a first start on an empty
# database does take ``pg_url_empty`` / ``db_url_empty`` and migrate as they please.

@pytest.fixture(scope="session")
def pg_template():
    """The name of a PostgreSQL database at the schema's head, cloned by ``pg_url`` (never
    connected to while a test runs: CREATE DATABASE ... TEMPLATE needs it idle)."""
    name = f"hub_tmpl_{uuid.uuid4().hex[:10]}"
    _run_in_thread(_pg_create(name))
    try:
        _run_in_thread(_migrate_url(_pg_url(name)))
        yield name
    finally:
        _run_in_thread(_pg_drop(name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite database file at the schema's head, copied by ``sqlite_db``."""
    path = tmp_path_factory.mktemp("sqlite-template") / "hub.db"
    _run_in_thread(_migrate_url(f"sqlite+aiosqlite:///{path}"))
    return path


def copy_sqlite(template: Path, path: Path) -> str:
    """A consistent copy of ``template`` at ``path`` (the backup API, whatever its journal mode);
    returns its URL."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(template), sqlite3.connect(path)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def sqlite_db(sqlite_template, tmp_path):
    """``copy = sqlite_db(path=tmp_path / 'hub.db') -> URL``: a migrated SQLite database."""
    return lambda path=None: copy_sqlite(sqlite_template, path or tmp_path / "hub.db")


def _fresh_pg(template: str | None = None):
    """Yield the URL of a new database (a clone of ``template``, else empty), dropped after."""
    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    _run_in_thread(_pg_create(name, template=template))
    yield _pg_url(name)
    _run_in_thread(_pg_drop(name))


@pytest.fixture
def pg_url(pg_template):
    """A fresh PostgreSQL database for one test, at the schema's head. Fails (never skips) when
    PostgreSQL is down."""
    yield from _fresh_pg(pg_template)


@pytest.fixture
def pg_url_empty():
    """A fresh, empty PostgreSQL database (no schema): for tests of the migrations."""
    yield from _fresh_pg()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """Each test using it runs on the embedded default (SQLite) and on real PostgreSQL, on a
    database already at the schema's head."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_db")()
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url_empty(request, tmp_path):
    """``db_url`` without the schema: for tests of the migrations and of old schemas."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    else:
        yield request.getfixturevalue("pg_url_empty")


@pytest.fixture
async def migrated_engine(db_url):
    """An engine on ``db_url`` (SQLite and PostgreSQL) with the schema migrated, disposed after."""
    from hub.store.engine import make_engine, migrate

    e = make_engine(db_url)
    await migrate(e)
    yield e
    await e.dispose()
