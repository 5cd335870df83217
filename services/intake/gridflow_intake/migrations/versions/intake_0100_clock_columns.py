"""intake: the running clock's due instant and colour on the case's row (the command center's
lists filter and sort by them; NULL when no clock runs)

Revision ID: intake_0100
Revises: intake_0070
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0100"
down_revision = "intake_0070"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("intake_cases", sa.Column("due_at", UtcDateTime(timezone=True), nullable=True))
    op.add_column("intake_cases", sa.Column("colour", sa.String(10), nullable=True))


def downgrade() -> None:
    op.drop_column("intake_cases", "colour")
    op.drop_column("intake_cases", "due_at")
