"""Proofs from stored subtree hashes equal the proofs from every leaf, read O(log n) hashes,
and the stored hashes are append-only and checked by `hub audit verify` — on SQLite and
real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from hub.audit import checkpoint as cp
from hub.audit import log, merkle, nodes, query
from hub.audit.sealer import seal
from hub.audit.verify import verify_log
from hub.errors import UsageError
from hub.store.engine import make_engine, migrate
from hub.store.tables import checkpoints, merkle_nodes, records
from tests.audit.test_log_db import fill, tamper
from tests.conftest import HUB


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(b"entry %d" % i) for i in range(n)]


def _all_nodes(leaves: list[bytes]) -> dict[merkle.Node, bytes]:
    """Every perfect subtree of the tree, as the sealer stores them (plus the leaves, level 0)."""
    out = {(0, i): h for i, h in enumerate(leaves)}
    tree = merkle.CompactRange()
    for h in leaves:
        for level, idx, node in tree.append(h):
            out[(level, idx)] = node
    return out


# --- the pure core ----------------------------------------------------------------------------

def test_append_returns_exactly_the_perfect_subtrees_it_completes():
    leaves = _leaves(67)
    got = _all_nodes(leaves)
    want = {(0, i): h for i, h in enumerate(leaves)}
    for level in range(1, 7):
        for idx in range(len(leaves) >> level):
            want[(level, idx)] = merkle.root(leaves[idx << level:(idx + 1) << level])
    assert got == want


def test_inclusion_from_nodes_equals_from_leaves_for_every_small_tree():
    for size in range(1, 70):
        leaves = _leaves(size)
        stored = _all_nodes(leaves)
        root = merkle.root(leaves)
        for index in range(size):
            ranges = merkle.inclusion_ranges(index, size)
            proof = merkle.proof_from_nodes(ranges, stored)
            assert proof == merkle.inclusion_proof(leaves, index, size), (index, size)
            assert merkle.verify_inclusion(leaves[index], index, size, proof, root)


def test_consistency_from_nodes_equals_from_leaves_for_every_small_pair():
    leaves = _leaves(48)
    stored = _all_nodes(leaves)
    for new in range(0, 49):
        for old in range(0, new + 1):
            proof = merkle.proof_from_nodes(merkle.consistency_ranges(old, new), stored)
            assert proof == merkle.consistency_proof(leaves, old, new), (old, new)


def test_larger_trees_sampled():
    import random

    rnd = random.Random(10)  # fixed seed: the same sample every run
    leaves = _leaves(3000)
    stored = _all_nodes(leaves)
    for _ in range(60):
        size = rnd.randint(70, 3000)
        index, old = rnd.randrange(size), rnd.randint(0, size)
        assert merkle.proof_from_nodes(merkle.inclusion_ranges(index, size), stored) == \
            merkle.inclusion_proof(leaves, index, size), (index, size)
        assert merkle.proof_from_nodes(merkle.consistency_ranges(old, size), stored) == \
            merkle.consistency_proof(leaves, old, size), (old, size)


def test_a_proof_needs_logarithmically_many_stored_hashes():
    for size in (*range(1, 300), 1_000_000, 10_000_000, 2**40 + 12345):
        bound = 2 * size.bit_length()
        for index in {0, size // 3, size // 2, size - 1}:
            assert len(merkle.nodes_needed(merkle.inclusion_ranges(index, size))) <= bound, (index, size)
        for old in {1, size // 3, size // 2, size - 1}:
            if 0 < old <= size:
                assert len(merkle.nodes_needed(merkle.consistency_ranges(old, size))) <= bound, (old, size)


def test_ranges_outside_an_rfc_tree_are_refused():
    with pytest.raises(UsageError):
        merkle.perfect_parts(1, 4)  # 1..3 is not a subtree
    with pytest.raises(UsageError):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(UsageError):
        merkle.consistency_ranges(6, 5)


# --- in the database --------------------------------------------------------------------------

async def _stored_leaves(engine) -> list[bytes]:
    async with engine.connect() as conn:
        return [bytes.fromhex(h) for h in (await conn.execute(
            sa.select(records.c.leaf_hash).order_by(records.c.seq))).scalars()]


async def test_proofs_from_stored_nodes_equal_proofs_from_leaves(engine, hub_id):
    sizes = []
    for batch in (1, 6, 1, 5, 20, 3):  # checkpoints at 1, 7, 8, 13, 33, 36
        await fill(engine, batch, start=sum(sizes[-1:]) if sizes else 0)
        sizes.append((await seal(engine, hub_id)).size)
    await fill(engine, 5, start=36)  # 37..41: not sealed yet, proofs still work (from those leaves)
    leaves = await _stored_leaves(engine)
    assert len(leaves) == 41 and sizes == [1, 7, 8, 13, 33, 36]
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(merkle_nodes))).scalar()
    assert stored == sum(36 >> level for level in range(1, 6))  # every perfect subtree of 1..36, no more
    for size in (*sizes, 41):
        for seq in range(1, size + 1):
            got = await query.inclusion(engine, seq, size)
            assert got["path"] == [p.hex() for p in merkle.inclusion_proof(leaves, seq - 1, size)], (seq, size)
            assert got["leaf_hash"] == leaves[seq - 1].hex()
    for new in range(0, 42):
        for old in range(0, new + 1):
            assert await query.consistency(engine, old, new) == merkle.consistency_proof(leaves, old, new), (old, new)


def _count_fetched(monkeypatch) -> list[int]:
    """How many hashes each ``nodes.fetch_nodes`` call returned (rows read), in call order."""
    fetched: list[int] = []
    real = nodes.fetch_nodes

    async def counting(conn, wanted):
        out = await real(conn, wanted)
        fetched.append(len(out))
        return out

    monkeypatch.setattr(nodes, "fetch_nodes", counting)
    return fetched


async def test_proofs_read_only_the_nodes_they_need(engine, hub_id, monkeypatch):
    await fill(engine, 100)
    await seal(engine, hub_id)
    fetched = _count_fetched(monkeypatch)
    await query.inclusion(engine, 37, 100)
    await query.consistency(engine, 61, 100)
    assert fetched and max(fetched) <= 2 * (100).bit_length()


async def test_an_inclusion_proof_reads_its_nodes_and_leaf_in_one_statement(engine, hub_id):
    await fill(engine, 100)
    await seal(engine, hub_id)
    leaves = await _stored_leaves(engine)
    statements: list[str] = []

    def seen(conn, cursor, statement, *a):
        statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        got = await query.inclusion(engine, 37)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert got["path"] == [p.hex() for p in merkle.inclusion_proof(leaves, 36, 100)]
    assert got["leaf_hash"] == leaves[36].hex()
    reads = [s for s in statements if "merkle_nodes" in s or "leaf_hash" in s]
    # the latest checkpoint, the size of the log, then every hash in one statement
    assert len(reads) == 1 and "merkle_nodes" in reads[0] and "leaf_hash" in reads[0], statements
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 3, statements


async def test_beyond_the_checkpoint_a_large_node_is_hashed_from_its_halves(engine, hub_id, monkeypatch):
    await fill(engine, 127)
    await seal(engine, hub_id)
    await fill(engine, 1, start=127)  # leaf 128 completes nodes up to level 7 (all 128 leaves): none stored
    leaves = await _stored_leaves(engine)
    fetched = _count_fetched(monkeypatch)
    assert (await query.inclusion(engine, 1, 128))["path"] == [p.hex() for p in merkle.inclusion_proof(leaves, 0, 128)]
    # the 64-leaf half is rebuilt from stored halves level by level: a few rows per level, not 64 leaves
    assert sum(fetched) <= 4 * 8, fetched
    assert await query.consistency(engine, 5, 128) == merkle.consistency_proof(leaves, 5, 128)


async def test_merkle_nodes_are_append_only(engine, hub_id):
    await fill(engine, 8)
    await seal(engine, hub_id)
    for stmt in ("UPDATE merkle_nodes SET hash = '00' WHERE level = 1 AND idx = 0",
                 "DELETE FROM merkle_nodes WHERE level = 3"):
        with pytest.raises((DBAPIError, IntegrityError)) as e:
            async with engine.begin() as conn:
                await conn.execute(sa.text(stmt))
        assert "append-only" in str(e.value)


async def _tamper_nodes(engine, sql: str) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            for t in ("merkle_nodes_no_update", "merkle_nodes_no_delete"):
                await conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {t}"))
    await tamper(engine, sql)


async def test_verify_names_a_forged_node(engine, hub_id):
    await fill(engine, 20)
    await seal(engine, hub_id)
    assert (await verify_log(engine, hub_id.cert)).ok
    await _tamper_nodes(engine, f"UPDATE merkle_nodes SET hash = '{'ab' * 32}' WHERE level = 2 AND idx = 3")
    rep = await verify_log(engine, hub_id.cert)
    assert not rep.ok and rep.first_bad_node == (2, 3) and rep.first_bad_entry is None
    assert "level 2, index 3: entries 13..16" in rep.problems[0] and "forged" in rep.problems[0]


async def test_verify_names_a_deleted_and_an_invented_node(engine, hub_id):
    await fill(engine, 20)
    await seal(engine, hub_id)
    await _tamper_nodes(engine, "DELETE FROM merkle_nodes WHERE level = 1 AND idx = 4")
    rep = await verify_log(engine, hub_id.cert)
    assert rep.first_bad_node == (1, 4) and "missing" in rep.problems[0]
    await fill(engine, 4, start=20)  # 21..24 not sealed: no node may cover them yet
    await _tamper_nodes(engine, f"INSERT INTO merkle_nodes (level, idx, hash) VALUES (1, 4, '{'cd' * 32}'); "
                                f"INSERT INTO merkle_nodes (level, idx, hash) VALUES (2, 5, '{'cd' * 32}'); "
                                f"INSERT INTO merkle_nodes (level, idx, hash) VALUES (4, 9, '{'cd' * 32}')")
    rep = await verify_log(engine, hub_id.cert)
    named = "\n".join(rep.problems)
    assert rep.first_bad_node == (1, 4)
    assert "level 2, index 5: entries 21..24) is stored but no checkpoint covers it" in named
    assert "level 4, index 9: entries 145..160) is stored but covers entries the log does not hold" in named


async def _count_nothing(conn, rows) -> None:
    pass


async def test_migration_backfills_the_nodes_of_a_log_sealed_before(db_url_empty, hub_id, monkeypatch):
    engine = make_engine(db_url_empty)
    try:
        await migrate(engine, "0012_followup")
        with monkeypatch.context() as m:  # appended as a hub of that version did: no counters (0034) yet
            m.setattr(log, "count_records", _count_nothing)
            m.setattr(log, "FUSED", False)  # (the append's one statement writes the counters and the 0040 index)
            await fill(engine, 27)
        leaves = await _stored_leaves(engine)
        tree = merkle.CompactRange()
        tree.extend(leaves[:21])
        signed = cp.sign(hub_id.key, origin=f"{HUB}/audit", size=21, root=tree.root(),
                         at=datetime.now(timezone.utc), key_id=cp.key_id_for(hub_id.cert))
        async with engine.begin() as conn:  # a checkpoint as the sealer wrote them before nodes
            await conn.execute(checkpoints.insert().values(
                size=21, root=signed.root.hex(), at=signed.at, key_id=signed.key_id, text=signed.to_text(),
                frontier=tree.to_json()))
        await migrate(engine)
        async with engine.connect() as conn:
            got = {(lv, ix): bytes.fromhex(h) for lv, ix, h in (await conn.execute(sa.select(merkle_nodes))).all()}
        assert got == {k: v for k, v in _all_nodes(leaves[:21]).items() if k[0] > 0}
        assert (await verify_log(engine, hub_id.cert)).ok
        assert (await seal(engine, hub_id)).size == 27  # the sealer carries on from the backfilled nodes
        rep = await verify_log(engine, hub_id.cert)
        assert rep.ok, rep.problems
        assert (await query.inclusion(engine, 5, 27))["path"] == [
            p.hex() for p in merkle.inclusion_proof(leaves, 4, 27)]
    finally:
        await engine.dispose()


# --- CPU work off the event loop --------------------------------------------------------------

def _threads_of(monkeypatch, module, name: str) -> list[int]:
    """Wrap ``module.name`` to record the thread each call runs in."""
    import threading

    seen: list[int] = []
    real = getattr(module, name)

    def recording(*a, **kw):
        seen.append(threading.get_ident())
        return real(*a, **kw)

    monkeypatch.setattr(module, name, recording)
    return seen


async def test_sealing_and_verifying_hash_off_the_event_loop(engine, hub_id, monkeypatch):
    import threading

    from hub.audit import sealer, verify_range

    loop_thread = threading.get_ident()
    folds = _threads_of(monkeypatch, sealer, "fold")
    leaves = _threads_of(monkeypatch, verify_range, "page_leaves")
    node_checks = _threads_of(monkeypatch, verify_range, "runs_match")
    await fill(engine, 30)
    assert (await seal(engine, hub_id)).size == 30
    assert (await verify_log(engine, hub_id.cert)).ok
    assert folds and leaves and node_checks
    assert loop_thread not in folds and loop_thread not in leaves and loop_thread not in node_checks


async def test_sizes_beyond_the_log_and_malformed_hashes_are_refused(engine, hub_id):
    from hub.errors import ConflictError

    await fill(engine, 8)
    await seal(engine, hub_id)
    with pytest.raises(UsageError):
        await query.inclusion(engine, 1, 9)
    with pytest.raises(UsageError):
        await query.consistency(engine, 1, 9)
    await _tamper_nodes(engine, "UPDATE merkle_nodes SET hash = 'zz' WHERE level = 1 AND idx = 1")
    with pytest.raises(ConflictError) as e:
        await query.inclusion(engine, 1, 8)
    assert e.value.code == "audit.log_damaged" and "subtree (1, 1) is malformed" in e.value.message
