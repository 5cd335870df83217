"""sla: the sweep's index holds only the running clocks with a colour still ahead (a partial
index on next_transition_at), so that a sweep costs what is due, not every clock ever made

Revision ID: sla_0040
Revises: sla_0030
"""

import sqlalchemy as sa
from alembic import op

revision = "sla_0040"
down_revision = "sla_0030"
branch_labels = None
depends_on = None

WHERE = sa.text("active AND next_transition_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_sla_clocks_next_transition_at", table_name="sla_clocks")
    op.create_index(
        "ix_sla_clocks_due",
        "sla_clocks",
        ["next_transition_at"],
        postgresql_where=WHERE,
        sqlite_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_sla_clocks_due", table_name="sla_clocks")
    op.create_index("ix_sla_clocks_next_transition_at", "sla_clocks", ["next_transition_at"])
