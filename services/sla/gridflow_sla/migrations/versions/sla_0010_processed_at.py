"""sla: processed message ids say when they were claimed, so old ones can be pruned

Revision ID: sla_0010
Revises: sla_0001
"""

from alembic import op

from gridflow_common.db import add_processed_at, drop_processed_at

revision = "sla_0010"
down_revision = "sla_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_processed_at(op, "sla")


def downgrade() -> None:
    drop_processed_at(op, "sla")
