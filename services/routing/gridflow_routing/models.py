"""Routing owns who holds each case now, and how it got there: the current assignment of every
case (one row per case; ``seq`` counts its assignments)."""

import sqlalchemy as sa

from gridflow_common.db import UtcDateTime, messaging_tables

metadata = sa.MetaData()

assignments = sa.Table(
    "routing_assignments",
    metadata,
    sa.Column("case_id", sa.String(40), primary_key=True),
    sa.Column("category", sa.String(100), nullable=True),
    sa.Column("area_code", sa.String(32), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("location", sa.JSON, nullable=True),
    # The case's reporter as case_registered carried it: masked (domain.privacy). Null when the
    # report named none, and for cases registered before routing kept it.
    sa.Column("reporter", sa.JSON, nullable=True),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("lead", sa.String(100), nullable=True),
    sa.Column("assisting", sa.JSON, nullable=False),
    sa.Column("at_command", sa.Boolean, nullable=False),
    sa.Column("escalations", sa.Integer, nullable=False),
    sa.Column("returns", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("jurisdiction_version", sa.Integer, nullable=False),
    # The last command-center order acted on (routing_0040): a redelivered order moves nothing.
    sa.Column("last_order", sa.String(40), nullable=True),
    # What the city's rules (rules.yaml) look at and decided (routing_0050): the report's
    # channel and instant, the rule that chose the holder (``taxonomy`` when none did; null on
    # rows from before), and a rule's time limit for this assignment ({amount, unit, rule_id}).
    sa.Column("channel", sa.String(32), nullable=True),
    sa.Column("registered_at", UtcDateTime(), nullable=True),
    sa.Column("rule_id", sa.String(40), nullable=True),
    sa.Column("time_limit", sa.JSON, nullable=True),
)

OWN_TABLES = [assignments]
messaging = messaging_tables(metadata, "routing")
