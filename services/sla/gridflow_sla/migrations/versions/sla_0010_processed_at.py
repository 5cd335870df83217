"""sla: processed message ids say when they were claimed, so old ones can be pruned

Revision ID: sla_0010
Revises: sla_0001
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = 'sla_0010'
down_revision = 'sla_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, so adding it does not rewrite a large table; ids claimed before this migration
    # count from now and are pruned once the retention window has passed.
    with op.batch_alter_table('sla_processed', schema=None) as batch_op:
        batch_op.add_column(sa.Column('processed_at', gridflow_common.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_sla_processed_at', ['processed_at'], unique=False)
    op.execute("UPDATE sla_processed SET processed_at = CURRENT_TIMESTAMP")


def downgrade() -> None:
    with op.batch_alter_table('sla_processed', schema=None) as batch_op:
        batch_op.drop_index('ix_sla_processed_at')
        batch_op.drop_column('processed_at')
