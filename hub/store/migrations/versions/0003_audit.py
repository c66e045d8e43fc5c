"""Audit log: leaf hashes on records, signed checkpoints, append-only triggers.

Revision ID: 0003
Revises: 0002

Existing records get their leaf hash computed here, in sequence order. On PostgreSQL and
SQLite, triggers refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) of records and
checkpoints; deploy/postgres/roles.sql also grants the hub's role INSERT and SELECT only.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION hub_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the % table is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
"""


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("records") as b:
        b.add_column(sa.Column("leaf_hash", sa.String(length=64), nullable=True))
    _backfill(bind)
    with op.batch_alter_table("records") as b:
        b.alter_column("leaf_hash", existing_type=sa.String(length=64), nullable=False)
        b.create_index("ix_records_sender_at", ["sender", "at"])
        b.create_index("ix_records_reason", ["reason"])
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    if bind.dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for table in ("records", "checkpoints"):
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION hub_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION hub_append_only()")
    elif bind.dialect.name == "sqlite":
        for table in ("records", "checkpoints"):
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'the {table} table is append-only: {action} refused'); END")


def _backfill(bind) -> None:
    from hub.audit.entry import entry_leaf

    records = sa.table("records", *(sa.column(c) for c in (
        "seq", "at", "event", "actor", "document_id", "sender", "sha256", "reason", "message", "details", "leaf_hash")))
    records.c.details.type = sa.JSON()
    records.c.at.type = sa.DateTime(timezone=True)
    rows = bind.execute(sa.select(records).order_by(records.c.seq)).mappings().all()
    for r in rows:
        leaf = entry_leaf(r["seq"], r["at"], r["event"], r["actor"], r["document_id"], r["sender"], r["sha256"],
                          r["reason"], r["message"], r["details"]).hex()
        bind.execute(records.update().where(records.c.seq == r["seq"]).values(leaf_hash=leaf))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in ("records", "checkpoints"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS hub_append_only()")
    elif bind.dialect.name == "sqlite":
        for table in ("records", "checkpoints"):
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    op.drop_table("checkpoints")
    with op.batch_alter_table("records") as b:
        b.drop_index("ix_records_reason")
        b.drop_index("ix_records_sender_at")
        b.drop_column("leaf_hash")
