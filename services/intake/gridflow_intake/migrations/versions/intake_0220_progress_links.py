"""intake: more progress links per report (a resident's message carries one)

Revision ID: intake_0220
Revises: intake_0180
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = "intake_0220"
down_revision = "intake_0190"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_progress_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("created_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(
        "ix_intake_progress_links_report_id", "intake_progress_links", ["report_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_intake_progress_links_report_id", table_name="intake_progress_links")
    op.drop_table("intake_progress_links")
