"""intake: processed message ids say when they were claimed, so old ones can be pruned

Revision ID: intake_0010
Revises: intake_0002
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = 'intake_0010'
down_revision = 'intake_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, so adding it does not rewrite a large table; ids claimed before this migration
    # count from now and are pruned once the retention window has passed.
    with op.batch_alter_table('intake_processed', schema=None) as batch_op:
        batch_op.add_column(sa.Column('processed_at', gridflow_common.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_intake_processed_at', ['processed_at'], unique=False)
    op.execute("UPDATE intake_processed SET processed_at = CURRENT_TIMESTAMP")


def downgrade() -> None:
    with op.batch_alter_table('intake_processed', schema=None) as batch_op:
        batch_op.drop_index('ix_intake_processed_at')
        batch_op.drop_column('processed_at')
