"""notify: what notify was told of each case (category, place), for events that do not say

Revision ID: notify_0021
Revises: notify_0020
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = "notify_0021"
down_revision = "notify_0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_case_facts",
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("area_code", sa.String(length=32), nullable=True),
        sa.Column("updated_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )


def downgrade() -> None:
    op.drop_table("notify_case_facts")
