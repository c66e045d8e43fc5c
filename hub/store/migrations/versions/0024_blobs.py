"""Large packages by reference: content-addressed blobs in chunks (``blobs``, ``blob_chunks``, ``blob_grants``).

Revision ID: 0024_blobs
Revises: 0013_audit_nodes

A package over ``HUB_BY_REFERENCE_BYTES`` does not travel in a RabbitMQ message (the broker
refuses messages over its ``max_message_size``, 128 MB by default): its bytes are stored here,
in 1 MB chunks (bounded memory on both ends of every query), and the message carries the
reference (``x-hub-blob-sha256``, ``x-hub-blob-size``). In the database rather than a folder:
every hub instance sees the same bytes without a shared file system, and they are backed up
and replicated with the records that name them. ``blob_grants`` says which agency may fetch
which blob (``GET /api/v1/blobs/{sha256}``): the recipients the hub delivered it to.
"""

import sqlalchemy as sa
from alembic import op

revision = "0024_blobs"
down_revision = "0026_shared_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "n"),
    )
    op.create_table(
        "blob_grants",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("agency", sa.String(length=13), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "agency"),
    )
    if op.get_bind().dialect.name == "postgresql":  # base64 barely compresses (see revision 0005)
        op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("blob_grants")
    op.drop_table("blob_chunks")
    op.drop_table("blobs")
