"""intake: the command center's orders on the case's row (on hold since when, from which status
and with which due instant; counts of leader comments and approved extensions)

Revision ID: intake_0120
Revises: intake_0110
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0120"
down_revision = "intake_0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("intake_cases", sa.Column("held_at", UtcDateTime(timezone=True), nullable=True))
    op.add_column("intake_cases", sa.Column("held_from", sa.String(20), nullable=True))
    op.add_column(
        "intake_cases", sa.Column("held_due_at", UtcDateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "intake_cases",
        sa.Column("comments", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column(
        "intake_cases",
        sa.Column("extensions", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("intake_cases") as batch_op:
        for name in ("extensions", "comments", "held_due_at", "held_from", "held_at"):
            batch_op.drop_column(name)
