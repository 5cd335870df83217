"""SLA owns one clock per assignment: when it started, when it is due, where it stands."""

import sqlalchemy as sa

from gridflow_common.db import UtcDateTime, messaging_tables

metadata = sa.MetaData()

clocks = sa.Table(
    "sla_clocks",
    metadata,
    sa.Column("assignment_id", sa.String(60), primary_key=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("jurisdiction_version", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("limit_amount", sa.Integer, nullable=False),
    sa.Column("limit_unit", sa.String(20), nullable=False),
    sa.Column("due", UtcDateTime(), nullable=False),
    sa.Column("total_seconds", sa.Float, nullable=False),
    sa.Column("elapsed_before", sa.Float, nullable=False),
    sa.Column("running_since", UtcDateTime(), nullable=True),
    # When the clock was stopped by an order (挂账) or a pause; null while it runs (sla_0030).
    sa.Column("paused_at", UtcDateTime(), nullable=True),
    sa.Column("colour", sa.String(10), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    # The sweep reads only the clocks whose next colour is due: its cost follows what is due,
    # not how many cases are open (the partial index below, sla_0040).
    sa.Column("next_transition_at", UtcDateTime(), nullable=True),
)

# Only running clocks with a colour still ahead: closed, stopped and finished clocks (the many)
# are not in it, so the index stays the size of what can come due, and the sweep's range scan
# reads only the rows it returns (sla_0040; the column's plain index held every clock ever made).
DUE_CLOCKS_WHERE = sa.and_(clocks.c.active, clocks.c.next_transition_at.isnot(None))
sa.Index(
    "ix_sla_clocks_due",
    clocks.c.next_transition_at,
    postgresql_where=DUE_CLOCKS_WHERE,
    sqlite_where=DUE_CLOCKS_WHERE,
)

OWN_TABLES = [clocks]
messaging = messaging_tables(metadata, "sla")
