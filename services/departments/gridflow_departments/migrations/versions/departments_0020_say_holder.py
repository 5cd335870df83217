"""departments: the unit that holds a case is the holder

Revision ID: departments_0020
Revises: departments_0010
"""

from alembic import op

revision = "departments_0020"
down_revision = "departments_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("departments_dispatches") as batch_op:
        batch_op.alter_column("handler", new_column_name="holder")


def downgrade() -> None:
    with op.batch_alter_table("departments_dispatches") as batch_op:
        batch_op.alter_column("holder", new_column_name="handler")
