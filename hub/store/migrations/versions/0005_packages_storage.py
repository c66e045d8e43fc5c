"""Store package bytes uncompressed on PostgreSQL (STORAGE EXTERNAL).

Revision ID: 0005
Revises: 0004

Packages are mostly base64 attachments, which pglz barely shrinks but spends CPU on for every
insert; out-of-line storage without compression keeps the bytes exact and the hub faster.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE packages ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE packages ALTER COLUMN data SET STORAGE EXTENDED")
