"""Stored subtree hashes: proofs from O(log n) rows instead of every leaf.

The sealer (``hub.audit.sealer``) stores, in the same transaction as each checkpoint, the
hash of every perfect subtree its fold completes (``merkle_nodes``: level >= 1, index; the
leaves themselves are ``records.leaf_hash``). Every hash an RFC 9162 inclusion or
consistency proof holds is the fold of at most log2(n) such subtrees
(``hub.audit.merkle.perfect_parts``), so a proof reads O(log n) rows by primary key, for any
tree size up to the latest checkpoint, and hashes O(log n) times.

A node that ends beyond the latest checkpoint (entries not sealed yet) is not stored: it is
hashed from its two halves, recursively, so the cost is bounded by what the sealer has not
folded yet, not by the size of the log. ``hub audit verify`` recomputes every stored node and names any that differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit import merkle
from hub.audit.merkle import Node
from hub.errors import ConflictError, UsageError
from hub.store.tables import merkle_nodes, records

INSERT_CHUNK = 10_000


async def store_nodes(conn: AsyncConnection, nodes: Sequence[tuple[int, int, bytes]]) -> None:
    """Insert ``(level, index, hash)`` rows (what ``CompactRange.append`` returns); the sealer only."""
    for i in range(0, len(nodes), INSERT_CHUNK):
        await conn.execute(merkle_nodes.insert(), [{"level": lv, "idx": ix, "hash": h.hex()}
                                                   for lv, ix, h in nodes[i:i + INSERT_CHUNK]])


def _damaged(what: str) -> ConflictError:
    return ConflictError(f"{what}; run `hub audit verify`", code="audit.log_damaged")


def _hash(text: str, node: Node) -> bytes:
    try:
        h = bytes.fromhex(text)
    except (TypeError, ValueError):
        h = b""
    if len(h) != merkle.HASH_SIZE:
        raise _damaged(f"the stored hash of {'entry %d' % (node[1] + 1) if node[0] == 0 else 'subtree %r' % (node,)} "
                       "is malformed")
    return h


async def _within_log(conn: AsyncConnection, size: int) -> None:
    top = (await conn.execute(sa.select(sa.func.max(records.c.seq)))).scalar() or 0
    if size > top:
        raise UsageError(f"the log holds {top} entries, not {size}")


async def fetch_nodes(conn: AsyncConnection, wanted: Iterable[Node]) -> dict[Node, bytes]:
    """The hashes of the perfect subtrees ``wanted``: leaves from ``records``, the others from
    ``merkle_nodes``, and any node not stored (it ends beyond the latest checkpoint) from its
    two halves, recursively: a few rows per level, however large the node."""
    wanted = set(wanted)
    out: dict[Node, bytes] = {}
    # one statement (one round trip) for the leaves and the inner nodes together
    parts = []
    leaves = sorted(ix for lv, ix in wanted if lv == 0)
    if leaves:
        parts.append(sa.select(sa.literal(0).label("level"), (records.c.seq - 1).label("idx"),
                               records.c.leaf_hash.label("hash"))
                     .where(records.c.seq.in_([ix + 1 for ix in leaves])))
    inner = sorted(n for n in wanted if n[0] > 0)
    if inner:  # one expanding (level, idx) IN: the same cached statement whatever the levels
        parts.append(sa.select(merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash).where(
            sa.tuple_(merkle_nodes.c.level, merkle_nodes.c.idx).in_(inner)))
    if parts:
        for lv, ix, h in (await conn.execute(parts[0] if len(parts) == 1 else sa.union_all(*parts))).all():
            out[(lv, ix)] = _hash(h, (lv, ix))
    missing = sorted(wanted - out.keys())
    for lv, ix in missing:
        if lv == 0:
            raise _damaged(f"audit entry {ix + 1} is missing from the log")
    if missing:  # not sealed yet: hash each from its two halves (the left one is usually stored)
        halves = await fetch_nodes(conn, {(lv - 1, 2 * ix + side) for lv, ix in missing for side in (0, 1)})
        for lv, ix in missing:
            out[(lv, ix)] = merkle.node_hash(halves[(lv - 1, 2 * ix)], halves[(lv - 1, 2 * ix + 1)])
    return out


async def inclusion_proofs(conn: AsyncConnection, indices: Sequence[int], size: int, *, check_size: bool = True
                           ) -> list[list[bytes]]:
    """RFC 9162 audit paths of leaves ``indices`` (0-based) in the tree of ``size`` leaves.
    ``check_size=False``: ``size`` is a stored checkpoint's, no need to count the log first
    (were entries missing, the nodes read would say so: :func:`fetch_nodes`)."""
    return (await proven_leaves(conn, indices, size, leaves=False, check_size=check_size))[0]


async def proven_leaves(conn: AsyncConnection, indices: Sequence[int], size: int, *, leaves: bool = True,
                        check_size: bool = True) -> tuple[list[list[bytes]], list[bytes]]:
    """The audit paths of :func:`inclusion_proofs` and (``leaves``) the leaf hashes they prove,
    read in the same statement."""
    if check_size:
        await _within_log(conn, size)
    ranges = [merkle.inclusion_ranges(i, size) for i in indices]
    wanted = merkle.nodes_needed(r for rs in ranges for r in rs)
    nodes = await fetch_nodes(conn, [*wanted, *((0, i) for i in indices)] if leaves else wanted)
    return [merkle.proof_from_nodes(rs, nodes) for rs in ranges], [nodes[(0, i)] for i in indices] if leaves else []


async def consistency_proof(conn: AsyncConnection, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof from the tree of ``old_size`` leaves to ``new_size``."""
    await _within_log(conn, new_size)
    ranges = merkle.consistency_ranges(old_size, new_size)
    nodes = await fetch_nodes(conn, merkle.nodes_needed(ranges))
    return merkle.proof_from_nodes(ranges, nodes)
