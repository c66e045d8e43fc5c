"""The audit log in the database: append-only, sealed, and every kind of tampering detected
and located — on SQLite (embedded default) and real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from hub.audit import checkpoint as cp
from hub.audit.sealer import seal
from hub.audit.verify import verify_log
from hub.pki import devpki
from hub.audit.records import append_rows, record_row
from hub.store.tables import checkpoints, records
from tests.conftest import HUB


async def fill(engine, n: int, start: int = 0) -> None:
    async with engine.begin() as conn:
        await append_rows(conn, [record_row(
            "package.accepted", actor="000.00.00.G22", document_id=f"000.00.00.G22,2026/11/27,{start + i}/VPCP",
            sender="000.00.00.G22", sha256=f"{start + i:064x}", details={"recipients": [["000.00.00.H41", "000.00.00.H41"]],
                                                                       "n": start + i, "vi": "Văn bản"})
            for i in range(n)])


async def tamper(engine, sql: str) -> None:
    """What an operator with database access could do, bypassing the append-only triggers."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            for t in ("records_no_update", "records_no_delete", "checkpoints_no_update", "checkpoints_no_delete"):
                await conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {t}"))
        for stmt in sql.split(";"):
            if stmt.strip():
                await conn.execute(sa.text(stmt))


async def test_sealed_log_verifies(engine, hub_id):
    await fill(engine, 30)
    c1 = await seal(engine, hub_id)
    assert c1.size == 30 and c1.verify(hub_id.cert)
    assert await seal(engine, hub_id) is None  # nothing new
    await fill(engine, 12, start=30)
    c2 = await seal(engine, hub_id)
    assert c2.size == 42
    rep = await verify_log(engine, hub_id.cert)
    assert rep.ok, rep.problems
    assert (rep.entries, rep.checkpoints) == (42, 2)


async def test_append_only_triggers(engine):
    await fill(engine, 3)
    for stmt in ("UPDATE records SET message = 'x' WHERE seq = 2", "DELETE FROM records WHERE seq = 2"):
        with pytest.raises((DBAPIError, IntegrityError)) as e:
            async with engine.begin() as conn:
                await conn.execute(sa.text(stmt))
        assert "append-only" in str(e.value)


async def test_one_byte_changed_is_located(engine, hub_id):
    await fill(engine, 20)
    await seal(engine, hub_id)
    await tamper(engine, "UPDATE records SET document_id = '000.00.00.G22,2026/11/27,7/VPCX' WHERE seq = 8")
    rep = await verify_log(engine, hub_id.cert)
    assert not rep.ok and rep.first_bad_entry == 8
    assert "entry 8" in rep.problems[0] and "changed after it was written" in rep.problems[0]


async def test_changed_row_with_recomputed_leaf_is_caught_by_the_checkpoint(engine, hub_id):
    from hub.audit.entry import entry_leaf

    await fill(engine, 20)
    await seal(engine, hub_id)
    async with engine.connect() as conn:
        r = (await conn.execute(sa.select(records).where(records.c.seq == 5))).mappings().one()
    leaf = entry_leaf(5, r["at"], r["event"], "someone else", r["document_id"], r["sender"], r["sha256"], r["reason"],
                      r["message"], r["details"]).hex()
    await tamper(engine, f"UPDATE records SET actor = 'someone else', leaf_hash = '{leaf}' WHERE seq = 5")
    rep = await verify_log(engine, hub_id.cert)
    assert not rep.ok and rep.first_bad_entry is None and rep.first_bad_checkpoint == 20


async def test_deleted_row_is_located(engine, hub_id):
    await fill(engine, 20)
    await seal(engine, hub_id)
    await tamper(engine, "DELETE FROM records WHERE seq = 13")
    rep = await verify_log(engine, hub_id.cert)
    assert not rep.ok and rep.first_bad_entry == 13 and "entry 13 is missing" in rep.problems[0]
    assert rep.first_bad_checkpoint == 20


async def test_swapped_rows_are_located(engine, hub_id):
    await fill(engine, 20)
    await seal(engine, hub_id)
    # swap the contents (and stored leaf hashes) of entries 3 and 4
    await tamper(engine, "UPDATE records SET seq = -3 WHERE seq = 3; UPDATE records SET seq = 3 WHERE seq = 4; "
                         "UPDATE records SET seq = 4 WHERE seq = -3")
    rep = await verify_log(engine, hub_id.cert)
    assert not rep.ok and rep.first_bad_entry == 3


async def test_forged_checkpoint_is_located(engine, hub_id, pki):
    await fill(engine, 10)
    await seal(engine, hub_id)
    await fill(engine, 5, start=10)
    other_cert, other_key = devpki.issue(pki.ca_cert, pki.ca_key, "not the hub")
    forged = cp.sign(other_key, origin=f"{HUB}/audit", size=15, root=b"\x11" * 32, at=datetime.now(timezone.utc),
                     key_id=cp.key_id_for(hub_id.cert))  # claims the hub's key id
    async with engine.begin() as conn:
        await conn.execute(checkpoints.insert().values(size=15, root=forged.root.hex(), at=forged.at, key_id=forged.key_id,
                                                       text=forged.to_text(), frontier='{"size":0,"peaks":[]}'))
    rep = await verify_log(engine, hub_id.cert)
    assert not rep.ok and rep.first_bad_checkpoint == 15 and rep.first_bad_entry is None
    assert any("signature does not verify" in p for p in rep.problems)


async def test_only_one_sealer_and_appends_never_wait(engine, hub_id):
    await fill(engine, 50)
    results = await asyncio.gather(*(seal(engine, hub_id) for _ in range(4)), return_exceptions=True)
    sealed = [r for r in results if isinstance(r, cp.Checkpoint)]
    errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, IntegrityError)]
    assert len(sealed) >= 1 and not errors, results
    async with engine.connect() as conn:
        sizes = [s for (s,) in (await conn.execute(sa.select(checkpoints.c.size))).all()]
    assert sizes == [50]
    rep = await verify_log(engine, hub_id.cert)
    assert rep.ok, rep.problems


async def test_a_flipped_byte_in_the_second_process_range_is_named(pg_url, hub_id):
    """Two processes on PostgreSQL: the second verifies entries 21..40 on its own connections;
    one byte changed in entry 31 (the middle of that range) is named with its message, and
    the checkpoints over it fail."""
    import os

    from hub.store.engine import make_engine, migrate

    engine = make_engine(pg_url)
    try:
        await migrate(engine)
        await fill(engine, 24)
        await seal(engine, hub_id)
        await fill(engine, 16, start=24)
        await seal(engine, hub_id)
        rep = await verify_log(engine, hub_id.cert, processes=2)
        assert rep.ok, rep.problems
        assert [r[:2] for r in rep.ranges] == [(1, 20), (21, 40)] and rep.entries == 40
        assert rep.ranges[0][2] == os.getpid() and rep.ranges[1][2] != os.getpid()
        await tamper(engine, "UPDATE records SET document_id = '000.00.00.G22,2026/11/27,30/VPCX' WHERE seq = 31")
        rep = await verify_log(engine, hub_id.cert, processes=2)
        assert rep.ranges[1][:2] == (21, 40) and rep.ranges[1][2] != os.getpid()
        assert not rep.ok and rep.first_bad_entry == 31 and rep.first_bad_checkpoint == 40
        assert rep.problems[0] == ("entry 31 (package.accepted, 000.00.00.G22,2026/11/27,30/VPCX) does not match "
                                   "its leaf hash: it was changed after it was written")
        assert len([p for p in rep.problems if p.startswith("entry ")]) == 1
    finally:
        await engine.dispose()


async def test_an_entry_stamped_before_an_earlier_commit_never_goes_back_in_time(engine, hub_id):
    """Two transactions stamp their entries, the later-stamped one takes the append lock first:
    the other's entries follow it in the log at its time, never before it (the trail's seconds
    between steps stay >= 0), and the log still verifies."""
    early, late = datetime(2026, 11, 30, 8, 0, 0, tzinfo=timezone.utc), datetime(2026, 11, 30, 8, 0, 5, tzinfo=timezone.utc)
    async with engine.begin() as conn:
        await append_rows(conn, [record_row("package.accepted", actor="a", document_id="d1", at=late)])
    async with engine.begin() as conn:
        await append_rows(conn, [record_row("edoc.delivered", actor="a", document_id="d0", at=early),
                                 record_row("edoc.delivered", actor="a", document_id="d0", at=early)])
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(records.c.seq, records.c.at).order_by(records.c.seq))).all()
    times = [r.at.replace(tzinfo=timezone.utc) if r.at.tzinfo is None else r.at for r in rows]
    assert [r.seq for r in rows] == [1, 2, 3]
    assert times == [late, late, late]
    await seal(engine, hub_id)
    rep = await verify_log(engine, hub_id.cert)
    assert rep.ok, rep.problems


async def test_details_are_stored_as_the_canonical_text_the_leaf_covers(engine):
    """hub.audit.log writes details as canonical_details (keys sorted, no whitespace, non-ASCII
    as it is), the text verify hashes as it is; read back through SQLAlchemy they are the same value."""
    from hub.audit.entry import canonical_details

    await fill(engine, 2)
    async with engine.connect() as conn:
        cast = "details::text" if conn.dialect.name == "postgresql" else "details"
        texts = (await conn.execute(sa.text(f"SELECT {cast} FROM records ORDER BY seq"))).scalars().all()
        values = (await conn.execute(sa.select(records.c.details).order_by(records.c.seq))).scalars().all()
    want = [{"recipients": [["000.00.00.H41", "000.00.00.H41"]], "n": i, "vi": "Văn bản"} for i in range(2)]
    assert texts == [canonical_details(d) for d in want]
    assert texts[0] == '{"n":0,"recipients":[["000.00.00.H41","000.00.00.H41"]],"vi":"Văn bản"}'
    assert values == want


@pytest.mark.postgres
async def test_stored_details_rewritten_are_told_apart_on_postgresql(pg_url, hub_id):
    """On PostgreSQL verify hashes the stored details text as it is and recomputes the full way
    only when that differs: details rewritten to the same value in another form (reordered,
    spaced, escaped) still verify; a value changed in the canonical form is named, in either
    process's range."""
    from hub.store.engine import make_engine, migrate

    engine = make_engine(pg_url)
    try:
        await migrate(engine)
        await fill(engine, 40)
        await seal(engine, hub_id)
        same = {5: '{"vi":"Văn bản","n":4,"recipients":[["000.00.00.H41","000.00.00.H41"]]}',
                6: '{"n": 5, "recipients": [["000.00.00.H41", "000.00.00.H41"]], "vi": "V\\u0103n b\\u1ea3n"}',
                33: '{"n":32,"recipients":[["000.00.00.H41","000.00.00.H41"]],"vi":"V\\u0103n b\\u1ea3n"}'}
        await tamper(engine, ";".join(f"UPDATE records SET details = '{t}' WHERE seq = {s}"
                                      for s, t in same.items()).replace(":", "\\:"))  # sa.text's binds
        for processes in (1, 2):
            rep = await verify_log(engine, hub_id.cert, processes=processes)
            assert rep.ok, rep.problems
        for seq, n in ((7, 99), (34, 7)):  # canonical form, another value: in the first range, then the second's
            await tamper(engine, f"UPDATE records SET details = "
                                 f"'{{\"n\":{n},\"recipients\":[[\"000.00.00.H41\",\"000.00.00.H41\"]],\"vi\":\"Văn bản\"}}' "
                                 f"WHERE seq = {seq}".replace(":", "\\:"))
            for processes in (1, 2):
                rep = await verify_log(engine, hub_id.cert, processes=processes)
                assert not rep.ok and rep.first_bad_entry == 7 and rep.first_bad_checkpoint == 40
                assert [p for p in rep.problems if p.startswith("entry ")][-1].startswith(f"entry {seq} (package.accepted")
    finally:
        await engine.dispose()


async def test_deleted_rows_spanning_whole_pages_are_located_once(engine, hub_id, monkeypatch):
    """Entries are read a window of PAGE sequence numbers at a time: a run of deleted entries
    wider than several windows (some of them empty) is one gap, named once, and the entries
    after it still verify in place."""
    from hub.audit import verify_range

    monkeypatch.setattr(verify_range, "PAGE", 4)
    await fill(engine, 30)
    await seal(engine, hub_id)
    rep = await verify_log(engine, hub_id.cert, processes=1)
    assert rep.ok, rep.problems
    await tamper(engine, "DELETE FROM records WHERE seq >= 9 AND seq <= 21")
    rep = await verify_log(engine, hub_id.cert, processes=1)
    assert not rep.ok and rep.first_bad_entry == 9 and rep.entries == 17
    entries = [p for p in rep.problems if p.startswith("entry ")]
    assert entries == ["entry 9 is missing: the log jumps from 8 to 22 (deleted?)"]
    await tamper(engine, "DELETE FROM records WHERE seq >= 27")  # and at the end of the log
    rep = await verify_log(engine, hub_id.cert, processes=1)
    assert rep.entries == 13 and rep.first_bad_checkpoint == 30
