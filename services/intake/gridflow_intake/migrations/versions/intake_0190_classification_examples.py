"""intake: the labelled examples classification learns from (a case's description and the
category it finally had)

Revision ID: intake_0190
Revises: intake_0160
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0190"
down_revision = "intake_0180"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_classification_examples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("labelled_at", UtcDateTime(), nullable=False),
    )
    op.create_index(
        "ix_intake_classification_examples_case_id",
        "intake_classification_examples",
        ["case_id"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_intake_classification_examples_case_id", table_name="intake_classification_examples"
    )
    op.drop_table("intake_classification_examples")
