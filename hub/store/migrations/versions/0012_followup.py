"""Deadline follow-up, accent-insensitive agency search, server-side console sessions.

Revision ID: 0012_followup
Revises: 0005

- ``documents.due_date`` (MessageHeader/DueDate), ``documents.code`` (number/notation) and
  ``documents.type_name`` (DocumentType/TypeName) for the overdue page, the follow-up report and
  the audit search. The date each recipient reached each status is already in
  ``status_history.at`` (and the current one in ``deliveries.updated_at``).
- ``agencies.name_folded``: the name folded by ``hub.registry.fold`` (filled here for existing rows).
- ``console_sessions``: the console's sign-ins (the cookie holds a random id; the API token never
  leaves the sign-in form).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_followup"
down_revision = "0005"
branch_labels = None
depends_on = None


def _fold(text):
    # a copy of hub.registry.fold.fold as of this revision (migrations do not import moving code)
    import unicodedata

    if not text:
        return ""
    stripped = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return " ".join(stripped.replace("đ", "d").replace("Đ", "D").casefold().split())


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["api_users.id"]),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    with op.batch_alter_table("documents") as b:
        b.add_column(sa.Column("due_date", sa.Date(), nullable=True))
        b.add_column(sa.Column("code", sa.String(length=255), nullable=True))
        b.add_column(sa.Column("type_name", sa.String(length=255), nullable=True))
    op.create_index("ix_documents_due_date", "documents", ["due_date"])
    with op.batch_alter_table("agencies") as b:
        b.add_column(sa.Column("name_folded", sa.Text(), server_default="", nullable=False))
    conn = op.get_bind()
    agencies = sa.table("agencies", sa.column("code", sa.String), sa.column("name", sa.Text),
                        sa.column("name_folded", sa.Text))
    rows = conn.execute(sa.select(agencies.c.code, agencies.c.name)).all()
    for i in range(0, len(rows), 5000):
        chunk = [{"c": code, "f": _fold(name)} for code, name in rows[i:i + 5000]]
        conn.execute(agencies.update().where(agencies.c.code == sa.bindparam("c"))
                     .values(name_folded=sa.bindparam("f")), chunk)


def downgrade() -> None:
    op.drop_table("console_sessions")
    with op.batch_alter_table("agencies") as b:
        b.drop_column("name_folded")
    op.drop_index("ix_documents_due_date", table_name="documents")
    with op.batch_alter_table("documents") as b:
        b.drop_column("type_name")
        b.drop_column("code")
        b.drop_column("due_date")
