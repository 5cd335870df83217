"""routing: the last command-center order acted on, so a redelivered order moves nothing

Revision ID: routing_0040
Revises: routing_0030
"""

import sqlalchemy as sa
from alembic import op

revision = "routing_0040"
down_revision = "routing_0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("routing_assignments", sa.Column("last_order", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("routing_assignments") as batch_op:
        batch_op.drop_column("last_order")
