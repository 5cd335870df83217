"""intake: signed action links already used (one click, one action)

Revision ID: intake_0080
Revises: intake_0060
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = "intake_0080"
down_revision = "intake_0060"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_spent_links",
        sa.Column("delivery_id", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("unit", sa.String(100), nullable=False),
        sa.Column("nonce", sa.String(40), nullable=False),
        sa.Column("spent_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", "action"),
    )
    op.create_index("ix_intake_spent_links_case_id", "intake_spent_links", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_intake_spent_links_case_id", "intake_spent_links")
    op.drop_table("intake_spent_links")
