"""intake: assignment sequence on cases, fact keys on timeline entries

Revision ID: intake_0030
Revises: intake_0010
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0030"
down_revision = "intake_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intake_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignment_seq", sa.Integer(), nullable=True))
    with op.batch_alter_table("intake_timeline", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fact_key", sa.String(length=200), nullable=True))
        batch_op.create_index("uq_intake_timeline_fact_key", ["fact_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("intake_timeline", schema=None) as batch_op:
        batch_op.drop_index("uq_intake_timeline_fact_key")
        batch_op.drop_column("fact_key")
    with op.batch_alter_table("intake_cases", schema=None) as batch_op:
        batch_op.drop_column("assignment_seq")
