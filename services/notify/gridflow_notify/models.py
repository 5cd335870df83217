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
    # -- delivery (notify_0020) ----------------------------------------------------------------
    # One row per (recipient, case, cause): replicas and redeliveries insert it once.
    sa.Column("message_key", sa.String(240), nullable=True),
    sa.Column("kind", sa.String(40), nullable=True),  # the template's kind
    sa.Column("subject", sa.String(200), nullable=True),
    sa.Column("context", sa.JSON, nullable=True),  # what a resident's message renders at send
    sa.Column("channels", sa.JSON, nullable=True),  # in order of preference
    sa.Column("channel_index", sa.Integer, nullable=False, server_default="0"),
    sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(20), nullable=False, server_default="recorded"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # Quiet hours: city time (a rehearsal's morning comes when its clock says so).
    sa.Column("not_before", UtcDateTime(), nullable=True),
    # Retries and the claim's lease: operational time, never the city's.
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    sa.Column("sent_at", UtcDateTime(), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Index("uq_notify_notifications_message_key", "message_key", unique=True),
    sa.Index("ix_notify_notifications_due", "status", "next_attempt_at"),
)

# Every try of a message: when (operational time), through which channel, what came of it.
attempts = sa.Table(
    "notify_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("notification_id", sa.Integer, nullable=False, index=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("error", sa.String(500), nullable=True),
)

# What notify was told of each case (notify_0021): a colour change, an undeliverable case or a
# returned one does not carry the category nor the place, and a warning that names them reads
# better than one that says "待分类事项" (uncategorised).
case_facts = sa.Table(
    "notify_case_facts",
    metadata,
    sa.Column("case_id", sa.String(40), primary_key=True),
    sa.Column("category", sa.String(100), nullable=True),
    sa.Column("area_code", sa.String(32), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

OWN_TABLES = [notifications, attempts, case_facts]
messaging = messaging_tables(metadata, "notify")
