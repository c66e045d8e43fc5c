"""`hub audit verify`: recompute every leaf, every checkpoint root and every stored subtree
hash, check every checkpoint signature, re-hash every stored package, and name the first
entry, checkpoint, subtree node or package that does not match.

One pass over ``records`` in sequence order, in chunks; for each chunk the leaves are
recomputed from the entries' canonical bytes (``hub.audit.entry``) and folded into a
``CompactRange``, in a thread (CPU work stays off the event loop). Each checkpoint is checked
when the fold reaches its size: signature with the hub certificate, stored size/root against
the signed text, signed root against the recomputed one. The perfect subtrees the fold
completes are compared with the ``merkle_nodes`` rows the sealer stored (``hub.audit.nodes``):
a node that differs, is missing below the latest checkpoint, or is stored where no checkpoint
or entry justifies it is named by level, index and the entries it covers. Then every stored
package is re-hashed against the SHA-256 its entries name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit import checkpoint as cp
from hub.audit.entry import entry_leaf
from hub.audit.merkle import CompactRange
from hub.store.tables import checkpoints, merkle_nodes, packages, records

CHUNK = 20_000
# The columns entry_leaf covers, then the stored leaf hash; as tuples (no per-row mappings).
_COLUMNS = (records.c.seq, records.c.at, records.c.event, records.c.actor, records.c.document_id, records.c.sender,
            records.c.sha256, records.c.reason, records.c.message, records.c.details, records.c.leaf_hash)
# On PostgreSQL through asyncpg: the same, with details as its stored JSON text, parsed in the
# hashing thread (json.loads, as SQLAlchemy's decoder does) instead of row by row on the event loop.
_PG_RECORDS = ("SELECT seq, at, event, actor, document_id, sender, sha256, reason, message, details::text, leaf_hash "
               "FROM records WHERE seq > $1 ORDER BY seq LIMIT $2")
PACKAGE_CHUNK = 100  # packages are up to the size cap each: few rows per round trip


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    packages: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad_entry: int | None = None
    first_bad_checkpoint: int | None = None
    first_bad_package: str | None = None
    first_bad_node: tuple[int, int] | None = None  # (level, index) in merkle_nodes
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


async def verify_log(engine: AsyncEngine, cert: x509.Certificate, progress=None) -> Report:
    """Read the whole log once, in chunks; the hashing runs in a thread, off the event loop."""
    started = time.perf_counter()
    rep = Report()
    # Two connections: the next chunk of entries is read on one while the stored nodes are read
    # on the other and the current chunk is hashed in a thread.
    async with engine.connect() as conn, engine.connect() as reader:
        cps = (await conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size))).mappings().all()
        total = (await conn.execute(sa.select(sa.func.max(records.c.seq)))).scalar() or 0
        sealed = cps[-1]["size"] if cps else 0  # the sealer stored the nodes of entries 1..sealed
        state = _Walk(tree=CompactRange(), pending=list(cps))
        fetch, details_text = await _records_reader(reader)
        pending = asyncio.ensure_future(fetch(0))
        try:
            while True:
                rows = await pending
                if not rows:
                    break
                pending = asyncio.ensure_future(fetch(rows[-1][0]))
                before = state.tree.size
                made = await asyncio.to_thread(_walk_rows, rows, state, cert, rep, details_text)
                stored = await _stored_nodes(conn, before, state.tree.size)
                await asyncio.to_thread(_check_nodes, made, stored, sealed, rep)
                if progress:
                    progress(rep.entries, total)
        finally:
            if not pending.done():
                pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        beyond = await _stored_nodes(conn, state.tree.size, None)
        _check_nodes([], beyond, sealed, rep)
        for c in state.pending:  # checkpoints beyond the end of the log
            rep.checkpoints += 1
            rep.problem(f"checkpoint {c['size']} covers more entries than the log holds ({state.tree.size}): "
                        "entries were removed, or the checkpoint is forged")
            rep.first_bad_checkpoint = rep.first_bad_checkpoint or c["size"]
        await _verify_packages(conn, rep)
    rep.seconds = time.perf_counter() - started
    return rep


async def _records_reader(conn):
    """``(fetch(after_seq) -> up to CHUNK rows as tuples in _COLUMNS order, details_text)``."""
    if conn.dialect.driver == "asyncpg":
        raw = (await conn.get_raw_connection()).driver_connection
        stmt = await raw.prepare(_PG_RECORDS)

        async def fetch_pg(after: int):
            return await stmt.fetch(after, CHUNK)

        return fetch_pg, True

    async def fetch(after: int):
        return (await conn.execute(sa.select(*_COLUMNS).where(records.c.seq > after)
                                   .order_by(records.c.seq).limit(CHUNK))).all()

    return fetch, False


@dataclass
class _Walk:
    tree: CompactRange
    pending: list
    expected: int = 1


def _walk_rows(rows, state: _Walk, cert: x509.Certificate, rep: Report,
               details_text: bool = False) -> list[tuple[int, int, bytes]]:
    """Recompute the leaves of ``rows`` (tuples in ``_COLUMNS`` order; ``details_text``: details
    is the stored JSON text), fold them in, check the checkpoints they reach; returns the perfect
    subtrees completed (to compare with the stored ones)."""
    tree, made = state.tree, []
    loads = json.loads
    next_size = state.pending[0]["size"] if state.pending else None
    for seq, at, event, actor, document_id, sender, sha256, reason, message, details, stored_leaf in rows:
        if seq != state.expected:
            rep.problem(f"entry {state.expected} is missing: the log jumps from {state.expected - 1} to {seq} (deleted?)")
            rep.first_bad_entry = rep.first_bad_entry or state.expected
            while state.expected < seq:  # keep positions aligned; the missing leaves change every root after
                made.extend(tree.append(b"\x00" * 32))
                state.expected += 1
        if details_text and details is not None:
            details = loads(details)
        leaf = entry_leaf(seq, at, event, actor, document_id, sender, sha256, reason, message, details)
        if leaf.hex() != stored_leaf:
            rep.problem(f"entry {seq} ({event}, {document_id or '-'}) does not match its leaf hash: "
                        "it was changed after it was written")
            rep.first_bad_entry = rep.first_bad_entry or seq
        made.extend(tree.append(leaf))
        state.expected += 1
        rep.entries += 1
        if tree.size == next_size:
            while state.pending and state.pending[0]["size"] == tree.size:
                _check_checkpoint(state.pending.pop(0), tree, cert, rep)
            next_size = state.pending[0]["size"] if state.pending else None
    return made


async def _stored_nodes(conn, after: int, upto: int | None) -> dict[tuple[int, int], str]:
    """Stored subtree hashes completed by leaf counts after+1 .. upto (None: any beyond ``after``)."""
    top = (await conn.execute(sa.select(sa.func.max(merkle_nodes.c.level)))).scalar() or 0
    conds = []
    for level in range(1, top + 1):
        lo = after >> level  # (idx + 1) << level > after
        cond = merkle_nodes.c.idx >= lo
        if upto is not None:
            hi = (upto >> level) - 1  # (idx + 1) << level <= upto
            if hi < lo:
                continue
            cond = sa.and_(cond, merkle_nodes.c.idx <= hi)
        conds.append(sa.and_(merkle_nodes.c.level == level, cond))
    if upto is None:
        conds.append(merkle_nodes.c.level < 1)
    if not conds:
        return {}
    rows = (await conn.execute(sa.select(merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash)
                               .where(sa.or_(*conds)))).all()
    return {(lv, ix): h for lv, ix, h in rows}


def _node_name(level: int, idx: int) -> str:
    return f"subtree node (level {level}, index {idx}: entries {(idx << level) + 1}..{(idx + 1) << level})"


def _check_nodes(made, stored: dict[tuple[int, int], str], sealed: int, rep: Report) -> None:
    """Every node the sealer must have stored (entries 1..sealed) is stored and equal to the
    recomputed one; no other node is stored."""
    for level, idx, h in made:
        key = (level, idx)
        got = stored.pop(key, None)
        if (idx + 1) << level > sealed:
            if got is not None:
                rep.problem(f"{_node_name(level, idx)} is stored but no checkpoint covers it (forged)")
                rep.first_bad_node = rep.first_bad_node or key
        elif got is None:
            rep.problem(f"{_node_name(level, idx)} is missing from merkle_nodes (deleted?); proofs over it fail")
            rep.first_bad_node = rep.first_bad_node or key
        elif got != h.hex():
            rep.problem(f"{_node_name(level, idx)} does not match the entries it covers: "
                        "the stored hash was forged or altered")
            rep.first_bad_node = rep.first_bad_node or key
    for level, idx in sorted(stored):
        rep.problem(f"{_node_name(level, idx)} is stored but covers entries the log does not hold (forged)")
        rep.first_bad_node = rep.first_bad_node or (level, idx)


def _check_checkpoint(row, tree: CompactRange, cert: x509.Certificate, rep: Report) -> None:
    rep.checkpoints += 1
    size = row["size"]
    try:
        signed = cp.Checkpoint.from_text(row["text"])
    except Exception as e:  # noqa: BLE001 - any malformed text is a finding
        rep.problem(f"checkpoint {size}: its signed text is malformed ({e})")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size
        return
    if not signed.verify(cert):
        rep.problem(f"checkpoint {size}: the signature does not verify with the hub certificate (forged or altered)")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size
    if signed.size != size or signed.root.hex() != row["root"]:
        rep.problem(f"checkpoint {size}: the stored size/root differ from what was signed")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size
    if tree.root() != signed.root:
        rep.problem(f"checkpoint {size}: the entries 1..{size} no longer hash to its root "
                    "(an entry was changed, removed, inserted or reordered)")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size


async def _verify_packages(conn, rep: Report) -> None:
    """Every stored package is content-addressed: its bytes must still hash to the SHA-256 the
    entries name (and have their recorded size); every package.received entry's bytes must exist."""

    def bad(sha: str, text: str) -> None:
        rep.problem(text)
        rep.first_bad_package = rep.first_bad_package or sha

    async def named_by(sha: str) -> str:
        first = (await conn.execute(sa.select(records.c.seq, records.c.event).where(records.c.sha256 == sha)
                                    .order_by(records.c.seq).limit(1))).first()
        return f"entry {first.seq} ({first.event})" if first else "no entry"

    last = ""
    while True:
        rows = (await conn.execute(sa.select(packages.c.sha256, packages.c.size, packages.c.data)
                                   .where(packages.c.sha256 > last).order_by(packages.c.sha256)
                                   .limit(PACKAGE_CHUNK))).all()
        if not rows:
            break
        hashed = await asyncio.to_thread(lambda rows=rows: [hashlib.sha256(r[2]).hexdigest() for r in rows])
        in_blobs = await _blob_sizes(conn, [r[0] for r in rows if not r[2] and r[1]])
        for (sha, size, data), actual in zip(rows, hashed):
            rep.packages += 1
            if not data and size and in_blobs.get(sha) == size:
                continue  # a large package: its bytes are a blob of the same name (hub.store.blobs)
            if actual != sha:
                bad(sha, f"package {sha[:16]}… named by {await named_by(sha)} was changed after it was stored: "
                         f"its bytes now hash to {actual[:16]}…")
            elif size != len(data):
                bad(sha, f"package {sha[:16]}… named by {await named_by(sha)}: its recorded size {size} is not "
                         f"the {len(data)} bytes it holds")
        last = rows[-1][0]
    missing = (await conn.execute(
        sa.select(records.c.seq, records.c.sha256)
        .select_from(records.outerjoin(packages, packages.c.sha256 == records.c.sha256))
        .where(records.c.event == "package.received", records.c.sha256.is_not(None), packages.c.sha256.is_(None))
        .order_by(records.c.seq).limit(50))).all()
    for seq, sha in missing:
        bad(sha, f"package {sha[:16]}… named by entry {seq} (package.received) is missing: its bytes were deleted")



async def _blob_sizes(conn, shas: list[str]) -> dict[str, int]:
    """Sizes of the blobs among ``shas`` whose stored chunks still hash to their name (large
    packages keep their bytes there, hub.store.blobs); a changed or missing blob is left out."""
    from hub.store.blobs import rehash

    out = {}
    for sha in shas:
        found = await rehash(conn, sha)
        if found is not None and found[0] == sha:
            out[sha] = found[1]
    return out
