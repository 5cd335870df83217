"""sla: initial tables

Revision ID: sla_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = "sla_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("assignment_id", sa.String(length=60), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("handler", sa.String(length=100), nullable=False),
        sa.Column("jurisdiction_version", sa.Integer(), nullable=False),
        sa.Column("started_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("limit_amount", sa.Integer(), nullable=False),
        sa.Column("limit_unit", sa.String(length=20), nullable=False),
        sa.Column("due", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("total_seconds", sa.Float(), nullable=False),
        sa.Column("elapsed_before", sa.Float(), nullable=False),
        sa.Column("running_since", gridflow_common.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("colour", sa.String(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "next_transition_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("assignment_id"),
    )
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_clocks_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sla_clocks_next_transition_at"), ["next_transition_at"], unique=False
        )

    op.create_table(
        "sla_failed",
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
    with op.batch_alter_table("sla_failed", schema=None) as batch_op:
        batch_op.create_index("ix_sla_failed_due", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "sla_outbox",
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
        "sla_processed",
        sa.Column("handler", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("sla_processed")
    op.drop_table("sla_outbox")
    with op.batch_alter_table("sla_failed", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_failed_due")

    op.drop_table("sla_failed")
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_clocks_next_transition_at"))
        batch_op.drop_index(batch_op.f("ix_sla_clocks_case_id"))

    op.drop_table("sla_clocks")
