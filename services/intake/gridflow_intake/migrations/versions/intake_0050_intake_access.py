"""intake: users, credentials and the audit log (access)

Revision ID: intake_0050
Revises: intake_0040
"""

import sqlalchemy as sa
from alembic import op

from gridflow_common.db import UtcDateTime

revision = "intake_0050"
down_revision = "intake_0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_users",
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("scope", sa.String(100), nullable=True),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("disabled_at", UtcDateTime(), nullable=True),
    )
    op.create_table(
        "intake_credentials",
        sa.Column("credential_id", sa.String(24), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=True),
        sa.Column("channel", sa.String(20), nullable=True),
        sa.Column("holder", sa.String(100), nullable=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("rate_limit", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("used_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_intake_credentials_user_id", "intake_credentials", ["user_id"])
    op.create_table(
        "intake_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_intake_audit_at", "intake_audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_intake_audit_at", "intake_audit")
    op.drop_table("intake_audit")
    op.drop_index("ix_intake_credentials_user_id", "intake_credentials")
    op.drop_table("intake_credentials")
    op.drop_table("intake_users")
