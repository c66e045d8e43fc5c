"""Registry persistence on SQLite (embedded default) and real PostgreSQL."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from hub.errors import UsageError
from hub.registry.store import (
    add_agency, add_crl, add_trust_anchor, import_csv, load_registry, load_trust, retire_agency, unpin_certificate,
)
from hub.pki import devpki
from hub.store.engine import make_engine, migrate
from hub.store.tables import records
from tests.conftest import G22, H41, H44


@pytest.fixture
async def engine(db_url):
    e = make_engine(db_url)
    await migrate(e)
    yield e
    await e.dispose()


async def test_add_show_and_snapshot(engine, pki):
    await add_agency(engine, G22, name="VPCP", certs=[pki.ids[G22].cert])
    await add_agency(engine, H41, name="Nghệ An", certs=[pki.ids[H41].cert], accepts="1, 2")
    reg = await load_registry(engine)
    assert reg.get(G22).fingerprints == {pki.ids[G22].fp}
    assert reg.get(H41).accepts == {"1", "2"}
    assert reg.get(H41).connected and reg.agency_for_user(H41) == H41
    assert reg.owner_of_fingerprint(pki.ids[H41].fp) == H41
    async with engine.connect() as c:
        events = [r[0] for r in (await c.execute(sa.select(records.c.event).order_by(records.c.seq))).all()]
    assert events == ["agency.added", "agency.added"]


async def test_one_certificate_one_agency(engine, pki):
    await add_agency(engine, G22, name="VPCP", certs=[pki.ids[G22].cert])
    with pytest.raises(UsageError, match="already pinned to 000.00.00.G22"):
        await add_agency(engine, H41, name="x", certs=[pki.ids[G22].cert])


async def test_rotation_retire_and_version_bumps(engine, pki):
    await add_agency(engine, G22, name="VPCP", certs=[pki.ids[G22].cert])
    v1 = (await load_registry(engine)).version
    new = pki.issue(G22)
    await add_agency(engine, G22, certs=[new.cert])
    assert (await load_registry(engine)).get(G22).fingerprints == {pki.ids[G22].fp, new.fp}
    await unpin_certificate(engine, G22, pki.ids[G22].fp)
    reg = await load_registry(engine)
    assert reg.get(G22).fingerprints == {new.fp} and reg.version > v1
    await retire_agency(engine, G22)
    assert not (await load_registry(engine)).get(G22).active


async def test_served_by_must_exist(engine):
    with pytest.raises(UsageError, match="not registered"):
        await add_agency(engine, "000.00.24.H44", name="x", served_by=H44)
    await add_agency(engine, H44, name="Tỉnh")
    a = await add_agency(engine, "000.00.24.H44", name="Sở", served_by=H44)
    assert not a.connected
    reg = await load_registry(engine)
    assert reg.route("000.11.24.H44").system == H44


async def test_trust_and_crl_roundtrip(engine, pki):
    await add_trust_anchor(engine, pki.ca_cert)
    with pytest.raises(UsageError, match="not a CA"):
        await add_trust_anchor(engine, pki.ids[G22].cert)
    crl = devpki.make_crl(pki.ca_cert, pki.ca_key, [(123, devpki.datetime.now(devpki.timezone.utc))])
    await add_crl(engine, crl)
    other = devpki.make_crl(*pki.other_ca, [])
    with pytest.raises(UsageError, match="not signed by any trusted CA"):
        await add_crl(engine, other)
    ts = await load_trust(engine)
    assert len(ts.anchors) == 1 and len(ts.crls) == 1


async def test_import_100k_directory(engine, capsys):
    """The national directory: 100,000 codes in one import, with per-line errors."""
    lines = ["code,name,served_by"]
    n = 0
    for l1 in range(1, 64):
        for l2 in range(0, 40):
            for l3 in range(0, 40):
                if n >= 100_000:
                    break
                lines.append(f"000.{l3:02d}.{l2:02d}.H{l1:02d},Cơ quan {n},")
                n += 1
    lines.insert(500, "99.99.H01,broken,")
    t = time.perf_counter()
    res = await import_csv(engine, "\n".join(lines) + "\n")
    took = time.perf_counter() - t
    with capsys.disabled():
        print(f"\n  import of {n:,} codes on {engine.dialect.name}: {took:.1f} s")
    assert res.added == n
    assert res.errors == [(501, "malformed agency code '99.99.H01' (expected NNN.NN.NN.Xnn)")]
    t = time.perf_counter()
    reg = await load_registry(engine)
    assert len(reg.agencies) == n
    # re-import updates, does not duplicate
    res2 = await import_csv(engine, "code,name\n000.00.00.H01,Tỉnh 1 (đổi tên)\n")
    assert (res2.added, res2.updated) == (0, 1)


async def test_import_reports_surplus_fields_and_true_line_numbers(engine):
    res = await import_csv(engine, "code,name\n\n000.00.00.H01,Tỉnh,extra\n000.00.00.H02,Tỉnh 2\n")
    assert res.added == 1
    assert res.errors == [(3, "1 more field(s) than the header has")]


async def test_a_broker_user_belongs_to_one_system(engine):
    await add_agency(engine, G22, name="VPCP", amqp_user="vpcp-adapter")
    with pytest.raises(UsageError, match="already belongs to 000.00.00.G22"):
        await add_agency(engine, H41, name="Nghệ An", amqp_user="vpcp-adapter")
    await add_agency(engine, H41, name="Nghệ An")  # its broker user is its code
    with pytest.raises(UsageError, match="already belongs to 000.00.00.H41"):
        await add_agency(engine, H44, name="x", amqp_user=H41)
