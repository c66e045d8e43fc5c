"""VDXP systems (HMAC secrets encrypted at rest), what they sent (DocId, de-duplication) and
their inbox lists (listed until acknowledged `done`).

Revision ID: 0011_vdxp
Revises: 0010_auth_profile
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_vdxp"
down_revision = "0010_auth_profile"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "vdxp_systems",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("agency", sa.String(length=13), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "vdxp_sent",
        sa.Column("doc_id", sa.String(length=36), nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("agency", sa.String(length=13), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document_id", sa.String(length=255), nullable=False),
        sa.Column("sender", sa.String(length=13), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("doc_id"),
        sa.UniqueConstraint("system", "sha256", "document_id", name="uq_vdxp_sent_dedupe"),
    )
    op.create_index("ix_vdxp_sent_agency", "vdxp_sent", ["agency", "sent_at"], unique=False)
    op.create_table(
        "vdxp_inbox",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=13), nullable=False),
        sa.Column("message_key", sa.String(length=400), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=True),
        sa.Column("recipient", sa.String(length=64), nullable=True),
        sa.Column("document_id", sa.String(length=255), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fetched", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["packages.sha256"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "message_key", name="uq_vdxp_inbox_key"),
    )
    op.create_index("ix_vdxp_inbox_list", "vdxp_inbox", ["owner", "kind", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_vdxp_inbox_list", table_name="vdxp_inbox")
    op.drop_table("vdxp_inbox")
    op.drop_index("ix_vdxp_sent_agency", table_name="vdxp_sent")
    op.drop_table("vdxp_sent")
    op.drop_table("vdxp_systems")
