"""sla: the unit that holds a case is the holder

Revision ID: sla_0020
Revises: sla_0010
"""

from alembic import op

revision = "sla_0020"
down_revision = "sla_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sla_clocks") as batch_op:
        batch_op.alter_column("handler", new_column_name="holder")


def downgrade() -> None:
    with op.batch_alter_table("sla_clocks") as batch_op:
        batch_op.alter_column("holder", new_column_name="handler")
