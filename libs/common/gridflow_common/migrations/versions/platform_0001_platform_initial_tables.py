"""platform: initial tables

Revision ID: platform_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = "platform_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gridflow_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("now", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "gridflow_jurisdictions",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("loaded_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )


def downgrade() -> None:
    op.drop_table("gridflow_jurisdictions")
    op.drop_table("gridflow_clock")
