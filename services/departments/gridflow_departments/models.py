"""Departments owns the record of every case pushed to a department system, and every delivery
to a unit: what was (or is still to be) pushed there, through which adapter, and how it went."""

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

# Delivery states.
PENDING = "pending"  # waiting for the delivery worker (adapters that push from outside)
DELIVERED = "delivered"
UNDELIVERABLE = "undeliverable"  # the last try failed, or the system refused it
WITHDRAWN = "withdrawn"  # the case moved on before this was pushed: never pushed
STATES = (PENDING, DELIVERED, UNDELIVERABLE, WITHDRAWN)

deliveries = sa.Table(
    "departments_deliveries",
    metadata,
    # The order deliveries to one unit are pushed in. The key, because SQLite numbers only an
    # INTEGER PRIMARY KEY by itself; ``delivery_id`` (the idempotency key) is unique beside it.
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("delivery_id", sa.String(300), nullable=False, unique=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("assignment_id", sa.String(60), nullable=False),
    sa.Column("unit", sa.String(100), nullable=False),
    sa.Column("department", sa.String(100), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),  # lead | assisting
    sa.Column("kind", sa.String(16), nullable=False),  # case | change
    sa.Column("adapter", sa.String(100), nullable=False),
    sa.Column("jurisdiction_version", sa.Integer, nullable=False),
    # The department message (contracts.DepartmentMessageV2), JSON, as it is pushed.
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # Operational time (UTC): when the worker may try next, and until when a worker that took
    # it for a push holds it (a crash mid-push: another takes it after this lease).
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("leased_until", UtcDateTime(), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("external_ref", sa.String(200), nullable=True),
    sa.Column("last_word", sa.String(100), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    sa.Index("ix_departments_deliveries_unit_state_seq", "unit", "state", "seq"),
    sa.Index("ix_departments_deliveries_state_next", "state", "next_attempt_at"),
)

OWN_TABLES = [dispatches, deliveries]
messaging = messaging_tables(metadata, "departments")
