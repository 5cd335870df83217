"""Departments owns the record of every case pushed to a department system."""

import sqlalchemy as sa

from gridflow_common.db import UtcDateTime, messaging_tables

metadata = sa.MetaData()

dispatches = sa.Table(
    "departments_dispatches",
    metadata,
    sa.Column("assignment_id", sa.String(60), primary_key=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("dispatched_at", UtcDateTime(), nullable=False),
)

OWN_TABLES = [dispatches]
messaging = messaging_tables(metadata, "departments")
