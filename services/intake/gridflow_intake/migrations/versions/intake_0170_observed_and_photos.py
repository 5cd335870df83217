"""intake: the instant a report was observed (beside when it was received), on the report and on
the case its first report registered; photos uploaded for reports (intake_photos)

Revision ID: intake_0170
Revises: intake_0160
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0170"
down_revision = "intake_0160"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("intake_reports", sa.Column("observed_at", UtcDateTime(timezone=True)))
    op.add_column("intake_cases", sa.Column("observed_at", UtcDateTime(timezone=True)))
    op.create_table(
        "intake_photos",
        sa.Column("photo_id", sa.String(40), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("uploaded_by", sa.String(100), nullable=False),
        sa.Column("uploaded_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("case_id", sa.String(40), sa.ForeignKey("intake_cases.case_id"), nullable=True),
        sa.Column("report_id", sa.Integer, nullable=True),
    )
    op.create_index("ix_intake_photos_case_id", "intake_photos", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_intake_photos_case_id", "intake_photos")
    op.drop_table("intake_photos")
    for table in ("intake_cases", "intake_reports"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("observed_at")
