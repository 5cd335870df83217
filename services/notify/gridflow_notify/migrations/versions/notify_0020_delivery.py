"""notify: messages are delivered (one row per recipient, case and cause; tries logged)

Revision ID: notify_0020
Revises: notify_0010
"""

import sqlalchemy as sa
from alembic import op

import gridflow_common.db

revision = "notify_0020"
down_revision = "notify_0010"
branch_labels = None
depends_on = None

_T = gridflow_common.db.UtcDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notify_notifications", schema=None) as b:
        b.add_column(sa.Column("message_key", sa.String(length=240), nullable=True))
        b.add_column(sa.Column("kind", sa.String(length=40), nullable=True))
        b.add_column(sa.Column("subject", sa.String(length=200), nullable=True))
        b.add_column(sa.Column("context", sa.JSON(), nullable=True))
        b.add_column(sa.Column("channels", sa.JSON(), nullable=True))
        b.add_column(sa.Column("channel_index", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(
            sa.Column("status", sa.String(length=20), nullable=False, server_default="recorded")
        )
        b.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("not_before", _T, nullable=True))
        b.add_column(sa.Column("next_attempt_at", _T, nullable=True))
        b.add_column(sa.Column("lease_until", _T, nullable=True))
        b.add_column(sa.Column("sent_at", _T, nullable=True))
        b.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        b.create_index("uq_notify_notifications_message_key", ["message_key"], unique=True)
        b.create_index("ix_notify_notifications_due", ["status", "next_attempt_at"], unique=False)
    op.create_table(
        "notify_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("at", _T, nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_notify_attempts_notification_id", "notify_attempts", ["notification_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notify_attempts_notification_id", table_name="notify_attempts")
    op.drop_table("notify_attempts")
    with op.batch_alter_table("notify_notifications", schema=None) as b:
        b.drop_index("ix_notify_notifications_due")
        b.drop_index("uq_notify_notifications_message_key")
        for column in (
            "last_error",
            "sent_at",
            "lease_until",
            "next_attempt_at",
            "not_before",
            "attempts",
            "status",
            "urgent",
            "channel_index",
            "channels",
            "context",
            "subject",
            "kind",
            "message_key",
        ):
            b.drop_column(column)
