"""intake: every unit's inbox of the cases given to it (GET /api/v1/units/{code}/inbox)

Revision ID: intake_0090
Revises: intake_0080
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0090"
down_revision = "intake_0080"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_inbox",
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("unit", sa.String(length=100), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("assignment_id", sa.String(length=60), nullable=False),
        sa.Column("adapter", sa.String(length=40), nullable=True),
        sa.Column("due_at", sa.String(length=40), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    op.create_index("uq_intake_inbox_cursor", "intake_inbox", ["cursor"], unique=True)
    op.create_index("ix_intake_inbox_unit_cursor", "intake_inbox", ["unit", "cursor"])
    op.create_index("ix_intake_inbox_department_cursor", "intake_inbox", ["department", "cursor"])


def downgrade() -> None:
    op.drop_index("ix_intake_inbox_department_cursor", "intake_inbox")
    op.drop_index("ix_intake_inbox_unit_cursor", "intake_inbox")
    op.drop_index("uq_intake_inbox_cursor", "intake_inbox")
    op.drop_table("intake_inbox")
