"""platform: secrets the platform makes for itself (the key of signed action links)

Revision ID: platform_0010
Revises: platform_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "platform_0010"
down_revision = "platform_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gridflow_secrets",
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("gridflow_secrets")
