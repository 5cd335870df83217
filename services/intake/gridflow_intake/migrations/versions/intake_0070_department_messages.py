"""intake: the first answer to each department message with an id (idempotency, 24 hours)

Revision ID: intake_0070
Revises: intake_0090 (after the spent links and the inbox, which reached main first)
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0070"
down_revision = "intake_0090"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_department_messages",
        sa.Column("sender", sa.String(100), primary_key=True),
        sa.Column("message_key", sa.String(200), primary_key=True),
        sa.Column("case_id", sa.String(40), nullable=True),
        sa.Column("answer_status", sa.Integer, nullable=False),
        sa.Column("answer", sa.JSON, nullable=False),
        sa.Column("received_at", UtcDateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_intake_department_messages_received_at",
        "intake_department_messages",
        ["received_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_intake_department_messages_received_at", "intake_department_messages")
    op.drop_table("intake_department_messages")
