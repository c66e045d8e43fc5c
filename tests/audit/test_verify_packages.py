"""`hub audit verify` re-hashes every stored package: changed or missing package bytes are found
and named, on SQLite and real PostgreSQL, by editing rows directly (issue 8, item 8)."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from hub.audit.sealer import seal
from hub.audit.verify import verify_log
from hub.audit.records import append_rows, record_row, utcnow
from hub.store.tables import packages
from tests.conftest import G22

BODIES = [f"<edXML n='{i}'>gói tin {i}</edXML>".encode() for i in range(5)]


async def _received(engine) -> list[str]:
    """Five packages as the worker stores them: the bytes, and a package.received entry naming their hash."""
    shas = [hashlib.sha256(b).hexdigest() for b in BODIES]
    async with engine.begin() as conn:
        await conn.execute(packages.insert(), [{"sha256": s, "size": len(b), "data": b, "stored_at": utcnow()}
                                               for s, b in zip(shas, BODIES)])
        await append_rows(conn, [record_row("package.received", actor=G22, document_id=f"{G22},2026/11/27,{i}/VPCP",
                                            sender=G22, sha256=s, details={"size": len(b)})
                                 for i, (s, b) in enumerate(zip(shas, BODIES))])
    return shas


async def _edit(engine, sql: str, **params) -> None:
    """What someone with database access could do to the stored bytes."""
    async with engine.begin() as conn:
        await conn.execute(sa.text(sql), params)


async def test_untouched_packages_verify(engine, hub_id):
    await _received(engine)
    await seal(engine, hub_id)
    rep = await verify_log(engine, hub_id.cert)
    assert rep.ok, rep.problems
    assert rep.packages == 5


async def test_changed_package_bytes_are_found(engine, hub_id):
    shas = await _received(engine)
    await seal(engine, hub_id)
    await _edit(engine, "UPDATE packages SET data = :d WHERE sha256 = :s",
                d=BODIES[2].replace(b"2", b"9"), s=shas[2])
    rep = await verify_log(engine, hub_id.cert)
    assert not rep.ok
    assert rep.first_bad_package == shas[2]
    assert shas[2][:16] in rep.problems[0] and "changed" in rep.problems[0]
    assert "entry 3" in rep.problems[0]  # the entry that names these bytes
    assert rep.first_bad_entry is None  # the entries themselves are intact


async def test_changed_size_and_missing_package_are_found(engine, hub_id):
    shas = await _received(engine)
    await _edit(engine, "UPDATE packages SET size = 1 WHERE sha256 = :s", s=shas[0])
    await _edit(engine, "DELETE FROM packages WHERE sha256 = :s", s=shas[4])
    rep = await verify_log(engine, hub_id.cert)
    assert not rep.ok
    text = "\n".join(rep.problems)
    assert shas[0][:16] in text and "size" in text
    assert shas[4][:16] in text and "missing" in text and "entry 5" in text
