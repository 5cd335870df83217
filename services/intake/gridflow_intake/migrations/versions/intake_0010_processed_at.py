"""intake: processed message ids say when they were claimed, so old ones can be pruned

Revision ID: intake_0010
Revises: intake_0002
"""

from alembic import op

from gridflow_common.db import add_processed_at, drop_processed_at

revision = "intake_0010"
down_revision = "intake_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_processed_at(op, "intake")


def downgrade() -> None:
    drop_processed_at(op, "intake")
