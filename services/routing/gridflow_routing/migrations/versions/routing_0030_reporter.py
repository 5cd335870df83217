"""routing: an assignment keeps its case's reporter (masked), to forward with every assignment

Revision ID: routing_0030
Revises: routing_0020
"""

import sqlalchemy as sa
from alembic import op

revision = "routing_0030"
down_revision = "routing_0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("routing_assignments") as batch_op:
        batch_op.add_column(sa.Column("reporter", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("routing_assignments") as batch_op:
        batch_op.drop_column("reporter")
