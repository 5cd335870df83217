"""intake: initial tables

Revision ID: intake_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = "intake_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_cases",
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("area_code", sa.String(length=32), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("handler", sa.String(length=100), nullable=True),
        sa.Column("lead", sa.String(length=100), nullable=True),
        sa.Column("assisting", sa.JSON(), nullable=False),
        sa.Column("assignment_id", sa.String(length=60), nullable=True),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("reporters", sa.Integer(), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("jurisdiction_version", sa.Integer(), nullable=False),
        sa.Column("registered_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("case_id"),
    )
    with op.batch_alter_table("intake_cases", schema=None) as batch_op:
        batch_op.create_index("ix_intake_cases_open_category", ["category", "status"], unique=False)

    op.create_table(
        "intake_colours",
        sa.Column("assignment_id", sa.String(length=60), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("colour", sa.String(length=10), nullable=True),
        sa.Column("at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("assignment_id"),
    )
    op.create_table(
        "intake_failed",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("handler", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("failed_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("intake_failed", schema=None) as batch_op:
        batch_op.create_index("ix_intake_failed_due", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "intake_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("exchange", sa.String(length=200), nullable=False),
        sa.Column("routing_key", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            gridflow_common.db.UtcDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "intake_processed",
        sa.Column("handler", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id"),
    )
    op.create_table(
        "intake_timeline",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("intake_timeline", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_timeline_case_id"), ["case_id"], unique=False)

    op.create_table(
        "intake_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reporter", sa.JSON(), nullable=True),
        sa.Column("received_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["intake_cases.case_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_id", name="uq_intake_reports_channel_external_id"),
    )


def downgrade() -> None:
    op.drop_table("intake_reports")
    with op.batch_alter_table("intake_timeline", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_timeline_case_id"))

    op.drop_table("intake_timeline")
    op.drop_table("intake_processed")
    op.drop_table("intake_outbox")
    with op.batch_alter_table("intake_failed", schema=None) as batch_op:
        batch_op.drop_index("ix_intake_failed_due")

    op.drop_table("intake_failed")
    op.drop_table("intake_colours")
    with op.batch_alter_table("intake_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_intake_cases_open_category")

    op.drop_table("intake_cases")
