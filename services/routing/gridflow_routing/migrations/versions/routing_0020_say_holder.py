"""routing: the table holds assignments, and its unit that holds a case is the holder

Revision ID: routing_0020
Revises: routing_0010
"""

from alembic import op

revision = "routing_0020"
down_revision = "routing_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("routing_cases", "routing_assignments")
    with op.batch_alter_table("routing_assignments") as batch_op:
        batch_op.alter_column("handler", new_column_name="holder")


def downgrade() -> None:
    with op.batch_alter_table("routing_assignments") as batch_op:
        batch_op.alter_column("holder", new_column_name="handler")
    op.rename_table("routing_assignments", "routing_cases")
