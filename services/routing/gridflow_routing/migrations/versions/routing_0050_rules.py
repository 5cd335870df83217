"""routing: what the city's rules look at (channel, report instant) and decided (rule id, a
rule's time limit) on each case's current assignment

Revision ID: routing_0050
Revises: routing_0040
"""

import sqlalchemy as sa
from alembic import op

revision = "routing_0050"
down_revision = "routing_0040"
branch_labels = None
depends_on = None

COLUMNS = ("channel", "registered_at", "rule_id", "time_limit")


def upgrade() -> None:
    op.add_column("routing_assignments", sa.Column("channel", sa.String(32), nullable=True))
    op.add_column(
        "routing_assignments",
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("routing_assignments", sa.Column("rule_id", sa.String(40), nullable=True))
    op.add_column("routing_assignments", sa.Column("time_limit", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("routing_assignments") as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
