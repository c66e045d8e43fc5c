"""Per-agency signature profile; how each package was authenticated; business links.

Revision ID: 0010_auth_profile
Revises: 0012_followup

- ``agencies.profile``: ``strict`` (XML-DSig, SHA-256+) or ``sdk`` (the national SDK's
  signature skeleton, accepted only over the sender's own connection).
- ``documents.authenticated_by``: ``signature``, ``signature-sha1`` or ``connection``.
- ``documents.business_type``: BussinessDocType (1 revocation, 2 update, 3 replacement) of an
  edoc that acts on an earlier one (``refers_to``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_auth_profile"
down_revision = "0012_followup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agencies") as b:
        b.add_column(sa.Column("profile", sa.String(8), nullable=False, server_default="strict"))
    with op.batch_alter_table("documents") as b:
        b.add_column(sa.Column("authenticated_by", sa.String(16), nullable=True))
        b.add_column(sa.Column("business_type", sa.SmallInteger, nullable=True))
    op.create_index("ix_documents_sender_received", "documents", ["sender", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_documents_sender_received", table_name="documents")
    with op.batch_alter_table("documents") as b:
        b.drop_column("business_type")
        b.drop_column("authenticated_by")
    with op.batch_alter_table("agencies") as b:
        b.drop_column("profile")
