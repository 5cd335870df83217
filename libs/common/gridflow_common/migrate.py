"""Alembic per service: each service's history lives in its package's ``migrations`` folder and
in a version table of its own, so each service upgrades its own tables independently."""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

# Migration histories, in the order a fresh database gets them.
PACKAGES = {
    "platform": "gridflow_common",
    "intake": "gridflow_intake",
    "routing": "gridflow_routing",
    "departments": "gridflow_departments",
    "sla": "gridflow_sla",
    "notify": "gridflow_notify",
}


def version_table(name: str) -> str:
    return f"alembic_version_{name}"


def _config(name: str, connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"{PACKAGES[name]}:migrations")
    cfg.attributes["history"] = name
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: sa.Engine, name: str) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas of one service starting together: one migrates, the others wait.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"),
                               {"n": f"gridflow-migrate-{name}"})
        command.upgrade(_config(name, connection), "head")


def upgrade_all(engine: sa.Engine, names: list[str] | None = None) -> None:
    for name in names or list(PACKAGES):
        upgrade(engine, name)


def run_env(metadata: sa.MetaData) -> None:
    """Body of every ``migrations/env.py``."""
    from alembic import context

    name = context.config.attributes["history"]
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through gridflow_common.migrate")

    def only_ours(object_name, type_, *_args) -> bool:
        # Other services' tables share the database; autogenerate must not touch them.
        return type_ != "table" or object_name in metadata.tables

    context.configure(connection=connection, target_metadata=metadata,
                      version_table=version_table(name), render_as_batch=True,
                      include_name=only_ours)
    with context.begin_transaction():
        context.run_migrations()


def metadata_of(name: str) -> sa.MetaData:
    if name == "platform":
        from gridflow_common.db import platform_metadata

        return platform_metadata
    return importlib.import_module(f"{PACKAGES[name]}.models").metadata
