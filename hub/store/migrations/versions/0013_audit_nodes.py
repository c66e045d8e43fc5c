"""Audit log at scale: the perfect subtree hashes of the sealed Merkle tree (``merkle_nodes``).

Revision ID: 0013_audit_nodes
Revises: 0011_vdxp

The sealer stores, as it folds entries into the tree, the hash of every perfect subtree it
completes (level >= 1; level 0 is ``records.leaf_hash``), so inclusion and consistency proofs
read O(log n) rows instead of every leaf (``hub.audit.nodes``). Append-only like ``records``
and ``checkpoints``: triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL);
deploy/postgres/roles.sql grants the hub's role INSERT and SELECT only.

Backfill: the nodes of the entries sealed before this revision (1 .. the largest checkpoint)
are computed here from the stored leaf hashes, in sequence order.
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0013_audit_nodes"
down_revision = "0011_vdxp"
branch_labels = None
depends_on = None

CHUNK = 50_000


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    _backfill(bind)
    if bind.dialect.name == "postgresql":  # hub_append_only() comes from revision 0003
        op.execute("CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON merkle_nodes "
                   "FOR EACH ROW EXECUTE FUNCTION hub_append_only()")
        op.execute("CREATE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON merkle_nodes "
                   "FOR EACH STATEMENT EXECUTE FUNCTION hub_append_only()")
    elif bind.dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER merkle_nodes_no_{action.lower()} BEFORE {action} ON merkle_nodes "
                       f"BEGIN SELECT RAISE(ABORT, 'the merkle_nodes table is append-only: {action} refused'); END")


def _backfill(bind) -> None:
    # a copy of hub.audit.merkle.CompactRange.append as of this revision (migrations do not
    # import moving code): fold leaves 1..sealed and keep every perfect subtree completed
    records = sa.table("records", sa.column("seq"), sa.column("leaf_hash"))
    checkpoints = sa.table("checkpoints", sa.column("size"))
    nodes = sa.table("merkle_nodes", sa.column("level"), sa.column("idx"), sa.column("hash"))
    sealed = bind.execute(sa.select(sa.func.max(checkpoints.c.size))).scalar() or 0
    peaks: list[bytes] = []
    size = 0
    while size < sealed:
        rows = bind.execute(sa.select(records.c.seq, records.c.leaf_hash)
                            .where(records.c.seq > size, records.c.seq <= sealed)
                            .order_by(records.c.seq).limit(CHUNK)).all()
        out = []
        for seq, leaf in rows:
            if seq != size + 1:
                raise RuntimeError(f"audit entry {size + 1} is missing; run `hub audit verify` before migrating")
            h, n, level = bytes.fromhex(leaf), size, 0
            while n & 1:
                h = hashlib.sha256(b"\x01" + peaks.pop() + h).digest()
                n >>= 1
                level += 1
                out.append({"level": level, "idx": size >> level, "hash": h.hex()})
            peaks.append(h)
            size += 1
        if not rows:
            raise RuntimeError(f"audit entries {size + 1}..{sealed} are missing; run `hub audit verify`")
        if out:
            bind.execute(nodes.insert(), out)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS merkle_nodes_append_only ON merkle_nodes")
        op.execute("DROP TRIGGER IF EXISTS merkle_nodes_no_truncate ON merkle_nodes")
    elif bind.dialect.name == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS merkle_nodes_no_{action}")
    op.drop_table("merkle_nodes")
