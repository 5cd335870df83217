"""intake: hotspot counters and alerts (intake_hotspots), and the indexes the assessment's sums
read by (cases by registration and by closing instant; timeline entries by kind and instant)

Revision ID: intake_0130
Revises: intake_0110
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0130"
down_revision = "intake_0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_hotspots",
        sa.Column("hotspot_id", sa.String(40), primary_key=True),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("area_code", sa.String(32), nullable=False),
        sa.Column("window_start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("window_minutes", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("alerted_at", UtcDateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_intake_hotspots_alerted_last", "intake_hotspots", ["alerted_at", "last_at"])
    op.create_index("ix_intake_cases_registered_at", "intake_cases", ["registered_at"])
    op.create_index("ix_intake_cases_closed_at", "intake_cases", ["closed_at"])
    op.create_index("ix_intake_timeline_kind_at", "intake_timeline", ["kind", "at"])


def downgrade() -> None:
    op.drop_index("ix_intake_timeline_kind_at", table_name="intake_timeline")
    op.drop_index("ix_intake_cases_closed_at", table_name="intake_cases")
    op.drop_index("ix_intake_cases_registered_at", table_name="intake_cases")
    op.drop_index("ix_intake_hotspots_alerted_last", table_name="intake_hotspots")
    op.drop_table("intake_hotspots")
