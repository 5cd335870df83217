"""Notify owns the record of every notification sent, to whom and why."""

import sqlalchemy as sa

from gridflow_common.db import UtcDateTime, messaging_tables

metadata = sa.MetaData()

notifications = sa.Table(
    "notify_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("assignment_id", sa.String(60), nullable=False),
    sa.Column("person_id", sa.String(40), nullable=False),
    sa.Column("role", sa.String(40), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("address", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

OWN_TABLES = [notifications]
messaging = messaging_tables(metadata, "notify")
