"""intake: timeline entries by kind, case and instant, the assessment's per-case reads (a case's
first dispatch, last resolution, earliest warning ...) as one index-only pass per kind

Revision ID: intake_0150
Revises: intake_0130
"""

from alembic import op

revision = "intake_0150"
down_revision = "intake_0130"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_intake_timeline_kind_case_at", "intake_timeline", ["kind", "case_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_intake_timeline_kind_case_at", table_name="intake_timeline")
