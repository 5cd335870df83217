"""intake: a report's progress link (the SHA-256 of its reporter's token)

Revision ID: intake_0060
Revises: intake_0050
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0060"
down_revision = "intake_0050"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: reports taken before this revision have no link, and none is made up for them.
    op.add_column("intake_reports", sa.Column("progress_token_hash", sa.String(64), nullable=True))
    op.create_index(
        "uq_intake_reports_progress_token_hash",
        "intake_reports",
        ["progress_token_hash"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_intake_reports_progress_token_hash", "intake_reports")
    with op.batch_alter_table("intake_reports", schema=None) as batch_op:
        batch_op.drop_column("progress_token_hash")
