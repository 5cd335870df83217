"""intake: what the command center's case lists filter by (street, community, channel,
address) on the case row, its clock columns filled for the cases already there, and the
indexes the lists and the board use

Revision ID: intake_0110
Revises: intake_0100
"""

import json

import sqlalchemy as sa
from alembic import op

from gridflow_common.domain import lifecycle
from gridflow_common.domain.jurisdiction_files import parse_jurisdiction

revision = "intake_0110"
down_revision = "intake_0100"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_intake_cases_status_due": ["status", "due_at", "case_id"],
    "ix_intake_cases_registered": ["registered_at", "case_id"],
    "ix_intake_cases_colour_due": ["colour", "due_at"],
    "ix_intake_cases_street": ["street_code", "status"],
    "ix_intake_cases_community": ["community_code"],
    "ix_intake_cases_area": ["area_code"],
    "ix_intake_cases_holder": ["holder"],
    "ix_intake_cases_lead": ["lead"],
}
GIN_ASSISTING = "ix_intake_cases_assisting_gin"
REPORTS_BY_CASE = "ix_intake_reports_case_id"
# Free text (``q``) on PostgreSQL: trigram indexes serve ILIKE '%...%' for three characters and
# more, when the pg_trgm extension can be had (it ships with PostgreSQL's contrib; creating it
# needs the right to). Without it the search still works, by reading every row.
TRIGRAM_INDEXES = {
    "ix_intake_cases_description_trgm": "description",
    "ix_intake_cases_address_trgm": "address",
}


def _trigrams(conn: sa.Connection) -> bool:
    """Whether pg_trgm is there or could be made now (a savepoint keeps a refusal from
    spoiling the migration's transaction)."""
    savepoint = conn.begin_nested()
    try:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def _ancestors(conn: sa.Connection) -> dict[str, tuple[str | None, str | None]]:
    """Area code -> (street, community) in the active jurisdiction (none installed yet: no
    case to fill)."""
    if not sa.inspect(conn).has_table("gridflow_jurisdictions"):
        return {}
    files = conn.execute(
        sa.text("SELECT files FROM gridflow_jurisdictions WHERE active ORDER BY version DESC")
    ).scalar()
    if files is None:
        return {}
    j = parse_jurisdiction(files if isinstance(files, dict) else json.loads(files))
    found: dict[str, tuple[str | None, str | None]] = {}
    for area in j.areas:
        street = j.ancestor(area.code, "street")
        community = j.ancestor(area.code, "community")
        found[area.code] = (street.code if street else None, community.code if community else None)
    return found


def upgrade() -> None:
    op.add_column("intake_cases", sa.Column("street_code", sa.String(32), nullable=True))
    op.add_column("intake_cases", sa.Column("community_code", sa.String(32), nullable=True))
    op.add_column("intake_cases", sa.Column("channel", sa.String(20), nullable=True))
    op.add_column("intake_cases", sa.Column("address", sa.Text, nullable=True))
    conn = op.get_bind()
    # Backfill: the first report's channel; the street and community of each area; the colour
    # of a running clock (its due instant is announced with its next dispatch or colour).
    conn.execute(
        sa.text(
            "UPDATE intake_cases SET channel = (SELECT r.channel FROM intake_reports r "
            "WHERE r.case_id = intake_cases.case_id ORDER BY r.id LIMIT 1)"
        )
    )
    for area, (street, community) in _ancestors(conn).items():
        conn.execute(
            sa.text(
                "UPDATE intake_cases SET street_code = :s, community_code = :c WHERE area_code = :a"
            ),
            {"s": street, "c": community, "a": area},
        )
    running = ", ".join(f"'{s}'" for s in lifecycle.CLOCK_RUNNING_STATUSES)
    conn.execute(
        sa.text(
            "UPDATE intake_cases SET colour = COALESCE((SELECT c.colour FROM intake_colours c "
            "WHERE c.assignment_id = intake_cases.assignment_id), 'green') "
            f"WHERE status IN ({running}) AND assignment_id IS NOT NULL"
        )
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "intake_cases", columns)
    op.create_index(REPORTS_BY_CASE, "intake_reports", ["case_id"])
    if conn.dialect.name == "postgresql":
        op.execute(
            f"CREATE INDEX {GIN_ASSISTING} ON intake_cases USING gin ((CAST(assisting AS jsonb)))"
        )
        if _trigrams(conn):
            for name, column in TRIGRAM_INDEXES.items():
                op.execute(f"CREATE INDEX {name} ON intake_cases USING gin ({column} gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {GIN_ASSISTING}")
        for name in TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    for name in INDEXES:
        op.drop_index(name, "intake_cases")
    op.drop_index(REPORTS_BY_CASE, "intake_reports")
    for column in ("address", "channel", "community_code", "street_code"):
        op.drop_column("intake_cases", column)
