"""sla: when an order stopped a clock (挂账), so that its release moves the due instant later by
the time on hold

Revision ID: sla_0030
Revises: sla_0020
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "sla_0030"
down_revision = "sla_0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sla_clocks", sa.Column("paused_at", UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sla_clocks") as batch_op:
        batch_op.drop_column("paused_at")
