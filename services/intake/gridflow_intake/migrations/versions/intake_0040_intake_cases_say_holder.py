"""intake: the unit holding a case is its holder (column handler -> holder)

Revision ID: intake_0040
Revises: intake_0030
"""

from alembic import op

revision = "intake_0040"
down_revision = "intake_0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intake_cases", schema=None) as batch_op:
        batch_op.alter_column("handler", new_column_name="holder")


def downgrade() -> None:
    with op.batch_alter_table("intake_cases", schema=None) as batch_op:
        batch_op.alter_column("holder", new_column_name="handler")
