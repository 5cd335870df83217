"""departments: every delivery to a unit, in order, with its state and tries

Revision ID: departments_0030
Revises: departments_0020
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = "departments_0030"
down_revision = "departments_0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "departments_deliveries",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("delivery_id", sa.String(length=300), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("assignment_id", sa.String(length=60), nullable=False),
        sa.Column("unit", sa.String(length=100), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("adapter", sa.String(length=100), nullable=False),
        sa.Column("jurisdiction_version", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("leased_until", gridflow_common.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("external_ref", sa.String(length=200), nullable=True),
        sa.Column("last_word", sa.String(length=100), nullable=True),
        sa.Column("created_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", gridflow_common.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("delivery_id"),
    )
    with op.batch_alter_table("departments_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_departments_deliveries_case_id"), ["case_id"], unique=False
        )
        batch_op.create_index(
            "ix_departments_deliveries_unit_state_seq", ["unit", "state", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_departments_deliveries_state_next", ["state", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("departments_deliveries")
