"""Registry changes travel as deltas from the change log, and a registry brought up to date that
way is the one a full load gives, field by field (SQLite and real PostgreSQL)."""

from __future__ import annotations

import ast
import asyncio
import os
import random
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.errors import UsageError
from hub.pki import devpki
from hub.pipeline import snapshot
from hub.registry import changes
from hub.registry.feed import Loaded, RegistryFeed
from hub.registry.store import (
    add_agency, add_crl, add_trust_anchor, import_csv, retire_agency, unpin_certificate,
)
from hub.store.engine import make_engine, migrate
from hub.store.tables import registry_changes, settings_kv
from tests.conftest import G22, H41, H44

SYSTEMS = [G22, H41, H44, "000.00.00.H13"]


@pytest.fixture
async def engines(db_url):
    """Two engines on one database: the instance that writes (A) and the one that follows (B)."""
    a, b = make_engine(db_url), make_engine(db_url)
    await migrate(a)
    yield a, b
    await a.dispose()
    await b.dispose()


@pytest.fixture(scope="module")
def certs(pki):
    """Agency certificates to pin (EC keys: quick to make), and a second CA with its key."""
    return ([devpki.issue(pki.ca_cert, pki.ca_key, f"feed {i}", key=devpki.new_key("ec"))[0] for i in range(8)],
            devpki.make_ca("feed second CA", key=devpki.new_key("ec")))


async def fresh(engine) -> Loaded:
    return await RegistryFeed(deltas=False).refresh(engine)


def assert_same(got: Loaded, want: Loaded) -> None:
    """Every field the checks read: agencies, the lookup indexes, routing, trust (in order)."""
    g, w = got.registry, want.registry
    assert got.version == want.version == g.version == w.version
    assert g.agencies == w.agencies  # frozen dataclasses: every field of every agency
    assert g._by_fp == w._by_fp and g._by_user == w._by_user
    assert {c: g.system_of(c) for c in w.agencies} == {c: w.system_of(c) for c in w.agencies}
    assert snapshot.trust_der(got.trust) == snapshot.trust_der(want.trust)


def code_of(i: int) -> str:
    return f"{i % 1000:03d}.{i // 1000 % 100:02d}.00.H41"


async def random_change(engine, rng: random.Random, certs, pki, state: dict) -> str:
    """One change through the store's writers (what the CLI, the admin API, the VDXP directory
    and the demo call); returns what it did."""
    pins, (ca2, ca2_key) = certs
    known = sorted(state["codes"])
    what = rng.choice(["add", "add", "update", "pin", "unpin", "retire", "import", "anchor", "crl"])
    try:
        if what == "add":
            state["n"] += 1
            code = code_of(state["n"])
            await add_agency(engine, code, name=f"Sở {state['n']}", served_by=rng.choice([None, H41, G22]),
                             accepts=rng.choice([None, "1,2", "3"]), profile=rng.choice([None, "sdk"]),
                             actor="test")
            state["codes"].add(code)
        elif what == "update":
            code = rng.choice(known)
            await add_agency(engine, code, name=f"Tên mới {rng.random():.3f}", accepts=rng.choice(["", "1", None]),
                             connected=rng.choice([None, True, False]) if code not in SYSTEMS else None,
                             profile=rng.choice(["strict", "sdk", None]), actor="test")
        elif what == "pin":
            code, cert = rng.choice(SYSTEMS), rng.choice(pins)
            await add_agency(engine, code, certs=[cert], actor="test")
        elif what == "unpin":
            pinned = await _pinned(engine)
            if not pinned:
                return "unpin (nothing pinned)"
            code, fp = rng.choice(pinned)
            await unpin_certificate(engine, code, fp, actor="test")
        elif what == "retire":
            await retire_agency(engine, rng.choice(known), actor="test")
        elif what == "import":
            lines = ["code,name,served_by,accepts,connected"]
            for _ in range(rng.randrange(1, 6)):
                state["n"] += 1
                code = rng.choice(known + [code_of(state["n"])])
                lines.append(f"{code},Nhập {state['n']},{rng.choice(['', H44])},{rng.choice(['', '1'])},"
                             f"{'true' if code in SYSTEMS else 'false'}")
                state["codes"].add(code)
            await import_csv(engine, "\n".join(lines) + "\n", actor="test")
        elif what == "anchor":
            await add_trust_anchor(engine, rng.choice([ca2, pki.ca_cert]), actor="test")
        else:
            ca, key = rng.choice([(pki.ca_cert, pki.ca_key), (ca2, ca2_key)])
            when = datetime.now(timezone.utc) - timedelta(days=1)
            await add_crl(engine, devpki.make_crl(ca, key, [(rng.randrange(1, 2**40), when)]), actor="test")
    except UsageError as e:  # a change the writers refuse (e.g. a CRL of a CA not trusted yet) changes nothing
        return f"{what} refused: {e}"
    return what


async def _pinned(engine) -> list[tuple[str, str]]:
    from hub.store.tables import agency_certs

    async with engine.connect() as c:
        return [tuple(r) for r in (await c.execute(
            sa.select(agency_certs.c.code, agency_certs.c.fingerprint).where(agency_certs.c.retired_at.is_(None))
            .order_by(agency_certs.c.fingerprint))).all()]


async def seed(engine, pki) -> dict:
    await add_trust_anchor(engine, pki.ca_cert, actor="test")
    for code in SYSTEMS:
        await add_agency(engine, code, name=code, certs=[pki.ids[code].cert] if code in pki.ids else [], actor="test")
    await import_csv(engine, "code,name,served_by\n" + "".join(f"{code_of(i)},Sở {i},{H41 if i % 3 else ''}\n"
                                                              for i in range(1, 40)), actor="test")
    return {"codes": set(SYSTEMS) | {code_of(i) for i in range(1, 40)}, "n": 40}


@pytest.mark.parametrize("seed_no", [15, 1502])
async def test_random_changes_as_deltas_equal_a_full_load(engines, pki, certs, seed_no):
    a, b = engines
    state = await seed(a, pki)
    follower = RegistryFeed()  # instance B
    assert_same(await follower.refresh(b), await fresh(b))
    rng = random.Random(seed_no)
    done, prev = [], follower.current
    for _ in range(40):
        batch = [await random_change(a, rng, certs, pki, state) for _ in range(rng.randrange(1, 4))]
        done += batch  # B looks after one to three changes
        got = await follower.refresh(b)
        if all(" refused" in w or "nothing" in w for w in batch):
            assert got is prev  # nothing changed: the same snapshot
        else:
            assert got.how == "delta" and got is not prev, batch
        assert_same(got, await fresh(b))
        prev = got
    assert follower.loads["full"] == 1 and follower.loads["delta"] >= 30
    assert {"add", "update", "pin", "unpin", "retire", "import", "anchor", "crl"} <= {w.split()[0] for w in done}


async def test_every_change_is_logged_in_its_own_transaction_with_its_version(engines, pki, certs):
    a, _ = engines
    await seed(a, pki)
    async with a.connect() as c:
        rows = (await c.execute(sa.select(registry_changes.c.version, registry_changes.c.kind,
                                          registry_changes.c.item, registry_changes.c.op))).all()
        version = int((await c.execute(sa.select(settings_kv.c.value)
                                       .where(settings_kv.c.key == changes.VERSION_KEY))).scalar())
    assert {v for v, *_ in rows} == set(range(1, version + 1))  # each version has its rows
    assert (1, "anchor", next(r[2] for r in rows if r[0] == 1), "add") in rows
    assert [(k, i, o) for v, k, i, o in rows if v == 2] == [("agency", G22, "add")]
    assert len([r for r in rows if r[0] == version]) == 39 and {r[3] for r in rows if r[0] == version} == {"import"}
    # a refused change logs nothing and bumps nothing
    with pytest.raises(UsageError):
        await retire_agency(a, "000.00.00.H99", actor="test")
    async with a.connect() as c:
        assert (await c.execute(sa.select(sa.func.max(registry_changes.c.version)))).scalar() == version


async def test_falls_back_to_a_full_load_when_the_log_cannot_say(engines, pki, certs, monkeypatch):
    a, b = engines
    state = await seed(a, pki)
    follower = RegistryFeed()
    await follower.refresh(b)
    rng = random.Random(7)

    # a bulk import above the limit logs one `reload` row: everything is read again
    monkeypatch.setattr(changes, "IMPORT_LOGGED_MAX", 3)
    await import_csv(a, "code,name\n" + "".join(f"{code_of(i)},Lớn {i}\n" for i in range(100, 110)), actor="test")
    got = await follower.refresh(b)
    assert got.how == "full" and len(got.registry.agencies) == len(state["codes"]) + 10
    assert_same(got, await fresh(b))

    # the log pruned past B's version
    await random_change(a, rng, certs, pki, state)
    assert (await follower.refresh(b)).how == "delta"
    await add_agency(a, H44, name="đổi tên", actor="test")
    assert await changes.prune(a, keep_hours=0) > 0  # everything older than now
    got = await follower.refresh(b)
    assert got.how == "full" and got.registry.get(H44).name == "đổi tên"
    assert_same(got, await fresh(b))

    # a version bumped with no rows (a hub without the log): the gap is seen
    await add_agency(a, G22, name="một", actor="test")
    async with a.begin() as c:
        await c.execute(settings_kv.update().where(settings_kv.c.key == changes.VERSION_KEY)
                        .values(value=sa.cast(sa.cast(settings_kv.c.value, sa.Integer) + 1, sa.Text)))
    await add_agency(a, G22, name="hai", actor="test")
    got = await follower.refresh(b)
    assert got.how == "full" and got.registry.get(G22).name == "hai"
    assert_same(got, await fresh(b))
    assert (await follower.refresh(b)) is got  # unchanged: the same snapshot


async def test_pruning_keeps_whole_recent_versions(engines, pki):
    a, _ = engines
    await seed(a, pki)
    async with a.begin() as c:  # the first three versions written two days ago
        await c.execute(registry_changes.update().where(registry_changes.c.version <= 3)
                        .values(at=datetime.now(timezone.utc) - timedelta(days=2)))
    assert await changes.prune(a, keep_hours=24) == 3
    async with a.connect() as c:
        left = {v for (v,) in (await c.execute(sa.select(registry_changes.c.version))).all()}
    assert min(left) == 4 and left == set(range(4, max(left) + 1))
    assert await changes.prune(a, keep_hours=24) == 0


@pytest.mark.postgres
async def test_concurrent_writers_and_a_follower(pg_url, pki, certs):
    """Four writers on their own connections at once while B follows: B ends equal to a full load,
    and every snapshot it took on the way holds exactly the rows of its version (the version, the
    log and the rows are read in one REPEATABLE READ snapshot)."""
    a, b = make_engine(pg_url), make_engine(pg_url)
    try:
        await migrate(a)
        await seed(a, pki)
        follower = RegistryFeed()
        base = (await follower.refresh(b)).version
        stop = asyncio.Event()
        seen = []

        async def follow():
            while not stop.is_set():
                seen.append(await follower.refresh(b))
                await asyncio.sleep(0)

        async def write(k: int):  # each step renames this writer's system
            for i in range(40):
                await add_agency(a, SYSTEMS[k], name=f"w{k}.{i}", actor="test")

        def writes_in(s: Loaded) -> int:
            return sum(int(n.split(".")[1]) + 1 for code in SYSTEMS if (n := s.registry.get(code).name).startswith("w"))

        task = asyncio.create_task(follow())
        await asyncio.gather(*(write(k) for k in range(4)))
        stop.set()
        await task
        got = await follower.refresh(b)
        assert_same(got, await fresh(b))
        assert got.version == base + 160 and writes_in(got) == 160
        assert follower.loads["full"] == 1 and follower.loads["delta"] >= 2
        assert all(writes_in(s) == s.version - base for s in seen)
    finally:
        await a.dispose()
        await b.dispose()


REGISTRY_TABLES = ("agencies", "agency_certs", "trust_anchors", "crls")
_WRITE = re.compile(r"\b(%s)\s*\.\s*(insert|update|delete)\s*\(|insert\(\s*(%s)\s*\)|"
                    r"(?i:(insert\s+into|update|delete\s+from)\s+(%s)\b)"
                    % ("|".join(REGISTRY_TABLES), "|".join(REGISTRY_TABLES), "|".join(REGISTRY_TABLES)))


def test_only_the_store_writes_the_registry_and_each_of_its_writers_logs():
    """Every path that changes agencies, pins or trust (CLI, admin API, console, VDXP directory,
    import, demo) goes through hub.registry.store, and each of its writers calls changes.record
    in the transaction it writes in."""
    root = Path(__file__).resolve().parents[2] / "hub"
    store = root / "registry" / "store.py"
    elsewhere = [f"{p.relative_to(root)}: {m.group(0)}" for p in root.rglob("*.py")
                 if p != store and "migrations" not in p.parts for m in _WRITE.finditer(p.read_text())]
    assert elsewhere == []
    writers = []
    for fn in ast.walk(ast.parse(store.read_text())):
        if isinstance(fn, ast.AsyncFunctionDef):
            src = ast.get_source_segment(store.read_text(), fn)
            if _WRITE.search(src) or "dialect_insert(conn, agencies)" in src:
                writers.append(fn.name)
                assert "changes.record(conn" in src, f"{fn.name} writes the registry without logging it"
    assert set(writers) == {"add_agency", "retire_agency", "unpin_certificate", "import_csv", "add_trust_anchor",
                            "add_crl"}


def test_cli_changes_are_logged(tmp_path, pki):
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
    env.pop("HUB_DATABASE_URL", None)
    pem = tmp_path / "g22.pem"
    pem.write_bytes(devpki.cert_pem(pki.ids[G22].cert))
    for args in (["agency", "add", G22, "--name", "VPCP", "--cert", str(pem)], ["agency", "retire", G22]):
        p = subprocess.run([sys.executable, "-m", "hub.cli", *args], env=env, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr

    async def rows():
        e = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hub.db'}")
        try:
            async with e.connect() as c:
                return (await c.execute(sa.select(registry_changes.c.version, registry_changes.c.kind,
                                                  registry_changes.c.item, registry_changes.c.op)
                                        .order_by(registry_changes.c.id))).all()
        finally:
            await e.dispose()

    assert [tuple(r) for r in asyncio.run(rows())] == [(1, "agency", G22, "add"), (2, "agency", G22, "retire")]
