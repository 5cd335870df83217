"""intake: channels behind keys: a sensor's key names its device (and may carry the device's
registered place); a report remembers the device that sent it, so a device's alerts merge into
its open case

Revision ID: intake_0180
Revises: intake_0160
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0180"
down_revision = "intake_0160"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("intake_credentials", sa.Column("device", sa.String(64), nullable=True))
    op.add_column("intake_credentials", sa.Column("device_place", sa.JSON, nullable=True))
    op.add_column("intake_reports", sa.Column("device", sa.String(64), nullable=True))
    op.create_index("ix_intake_reports_device", "intake_reports", ["device"])


def downgrade() -> None:
    op.drop_index("ix_intake_reports_device", table_name="intake_reports")
    with op.batch_alter_table("intake_reports") as batch_op:
        batch_op.drop_column("device")
    with op.batch_alter_table("intake_credentials") as batch_op:
        batch_op.drop_column("device_place")
        batch_op.drop_column("device")
