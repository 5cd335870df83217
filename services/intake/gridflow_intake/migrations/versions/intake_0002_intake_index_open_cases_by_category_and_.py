"""intake: index open cases by category and position

Revision ID: intake_0002
Revises: intake_0001
"""

from alembic import op

revision = "intake_0002"
down_revision = "intake_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intake_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_cases_open_category"))
        batch_op.create_index(
            "ix_intake_cases_category_position", ["category", "lat", "lon"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("intake_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_intake_cases_category_position")
        batch_op.create_index(
            batch_op.f("ix_intake_cases_open_category"), ["category", "status"], unique=False
        )
