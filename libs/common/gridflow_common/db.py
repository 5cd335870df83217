"""Database plumbing shared by every service: engines, the platform tables and per-service tables
for the outbox, the idempotent consumer and the dead-letter store.

Each service owns its tables (prefixed with the service's name) and its own Alembic history; the
platform tables (the simulated clock, jurisdiction versions) belong to ``libs/common``.
"""

from __future__ import annotations

import datetime as dt
import os

import sqlalchemy as sa

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/gridflow"


class UtcDateTime(sa.types.TypeDecorator):
    """An aware datetime stored as UTC and read back aware, on PostgreSQL and SQLite alike
    (SQLite would otherwise drop the offset and hand back naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give the instant a UTC offset")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


platform_metadata = sa.MetaData()

clock_table = sa.Table(
    "gridflow_clock",
    platform_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("now", UtcDateTime(), nullable=False),
)

jurisdiction_table = sa.Table(
    "gridflow_jurisdictions",
    platform_metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("loaded_at", UtcDateTime(), nullable=False),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=False),
)

# Secrets the platform makes for itself and every service shares (the key of signed action
# links, gridflow_common.links): made by the first process that needs one, never configured.
secrets_table = sa.Table(
    "gridflow_secrets",
    platform_metadata,
    sa.Column("name", sa.String(60), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)


def messaging_tables(metadata: sa.MetaData, service: str) -> dict[str, sa.Table]:
    """The outbox, processed-message and dead-letter tables of one service."""
    outbox = sa.Table(
        f"{service}_outbox",
        metadata,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("exchange", sa.String(200), nullable=False),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
    )
    processed = sa.Table(
        f"{service}_processed",
        metadata,
        sa.Column("handler", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        # Operational (real) time of the claim: ids older than the retention window are pruned.
        sa.Column("processed_at", UtcDateTime(), nullable=True),
        sa.Index(f"ix_{service}_processed_at", "processed_at"),
    )
    failed = sa.Table(
        f"{service}_failed",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("handler", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),  # retrying | dead
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("failed_at", UtcDateTime(), nullable=False),
        sa.Index(f"ix_{service}_failed_due", "state", "next_attempt_at"),
    )
    return {"outbox": outbox, "processed": processed, "failed": failed}


def add_processed_at(op, service: str) -> None:
    """The migration that gives ``<service>_processed`` its ``processed_at`` (every service's
    history runs it once, ``op`` being Alembic's). Nullable, so adding it does not rewrite a
    large table; ids claimed before it count from the migration and are pruned once the
    retention window has passed."""
    with op.batch_alter_table(f"{service}_processed") as batch_op:
        batch_op.add_column(sa.Column("processed_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index(f"ix_{service}_processed_at", ["processed_at"], unique=False)
    op.execute(f"UPDATE {service}_processed SET processed_at = CURRENT_TIMESTAMP")


def drop_processed_at(op, service: str) -> None:
    with op.batch_alter_table(f"{service}_processed") as batch_op:
        batch_op.drop_index(f"ix_{service}_processed_at")
        batch_op.drop_column("processed_at")


def database_url() -> str:
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


DEFAULT_POOL_SIZE = 5


def make_engine(
    url: str | None = None, pool_size: int | None = None, pool_timeout: float = 30.0
) -> sa.Engine:
    """``pool_size`` is the most connections this engine ever holds (no overflow): a nameko
    service passes its worker count plus what runs beside the workers (see nameko_support), so
    the pool and the workers are sized together."""
    url = url or database_url()
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            # One in-memory database per connection would split the services' views of the
            # data, and a single shared connection would let one unit of work's rollback undo
            # another's: the embedded default uses a file (see embedded.py).
            raise ValueError("use a SQLite file, not an in-memory database")
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    # Five services (and their replicas) share PostgreSQL's connection limit (100 by default).
    # No overflow: the pool is the budget, and a unit of work never holds more than one.
    # No pre-ping (a round trip on every checkout); a connection that died with a database
    # restart fails its first use, SQLAlchemy then invalidates the pool, and the failure policy
    # retries the message on a fresh connection.
    return sa.create_engine(
        url,
        pool_size=pool_size or DEFAULT_POOL_SIZE,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
    )


def make_probe_engine(url: str | None = None) -> sa.Engine:
    """One connection of its own for readiness checks, so a probe never waits behind busy
    workers for the pool, and answers within seconds when the database is unreachable."""
    url = url or database_url()
    if url.startswith("sqlite"):
        return make_engine(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return sa.create_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=2,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 2, "options": "-c statement_timeout=2000"},
    )
