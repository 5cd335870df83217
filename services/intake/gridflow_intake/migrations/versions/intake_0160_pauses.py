"""intake: an approved pause (挂起) on the case's row: since when the clock stands still, and the
due instant it had when it stopped

Revision ID: intake_0160
Revises: intake_0150
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0160"
down_revision = "intake_0150"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("intake_cases", sa.Column("paused_at", UtcDateTime(timezone=True), nullable=True))
    op.add_column(
        "intake_cases", sa.Column("paused_due_at", UtcDateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("intake_cases") as batch_op:
        for name in ("paused_due_at", "paused_at"):
            batch_op.drop_column(name)
