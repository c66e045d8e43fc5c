"""State that any hub instance may need for a request: the HTTP gateway's inbox leases and the
keys the instances share.

Revision ID: 0026_shared_state
Revises: 0013_audit_nodes

- ``gateway_leases``: a package ``GET /api/v1/inbox`` handed out is moved from the agency's
  inbox queue into this table (the row commits before the broker message is acked) and stays
  until ``POST /api/v1/inbox/ack`` on any instance; past ``leased_until`` the agency's next
  ``GET`` hands it out again under a new lease id. Before, the lease was an unsettled broker
  message held by one process, so the acknowledgement had to reach that same process.
- ``hub_secrets``: random keys made once by whichever instance needs one first (the console's
  CSRF key is derived from ``console``), so that a form one instance rendered is accepted by
  another.
"""

import sqlalchemy as sa
from alembic import op

revision = "0026_shared_state"
down_revision = "0022_intake_decisions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_leases",
        sa.Column("agency", sa.String(length=13), nullable=False),
        sa.Column("message_key", sa.String(length=400), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("leased_until", TS, nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["packages.sha256"]),
        sa.PrimaryKeyConstraint("agency", "message_key"),
        sa.UniqueConstraint("lease_id"),
    )
    op.create_index("ix_gateway_leases_due", "gateway_leases", ["agency", "urgent", "leased_until"], unique=False)
    op.create_table(
        "hub_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("hub_secrets")
    op.drop_index("ix_gateway_leases_due", table_name="gateway_leases")
    op.drop_table("gateway_leases")
