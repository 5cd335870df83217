"""Alembic per history: each service's history lives in its package's ``migrations`` folder and
in a version table of its own, so each service upgrades its own tables independently.

Generic on purpose: the caller names the history and the package that holds it. Which histories
exist, and in what order a fresh database gets them, is the application's knowledge
(``gridflow_app.bootstrap``), not this library's.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

# The platform's own tables (the simulated clock, the jurisdiction) come with this library.
PLATFORM = "platform"
PLATFORM_PACKAGE = "gridflow_common"


def version_table(history: str) -> str:
    return f"alembic_version_{history}"


def default_package(history: str) -> str:
    """The package a history lives in when the caller does not say: the naming every service
    follows (``gridflow_<name>``), so a service process can migrate itself knowing only its name."""
    return PLATFORM_PACKAGE if history == PLATFORM else f"gridflow_{history}"


def _config(history: str, package: str, connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"{package}:migrations")
    cfg.attributes["history"] = history
    cfg.attributes["package"] = package
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: sa.Engine, history: str, package: str | None = None) -> None:
    """Upgrade one history, found in ``package``'s ``migrations`` folder, to its head."""
    package = package or default_package(history)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas of one service starting together: one migrates, the others wait.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"),
                {"n": f"gridflow-migrate-{history}"},
            )
        command.upgrade(_config(history, package, connection), "head")


def run_env(metadata: sa.MetaData) -> None:
    """Body of every ``migrations/env.py``."""
    from alembic import context

    history = context.config.attributes["history"]
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through gridflow_common.migrate")

    def only_ours(object_name, type_, *_args) -> bool:
        # Other services' tables share the database; autogenerate must not touch them.
        return type_ != "table" or object_name in metadata.tables

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table(history),
        render_as_batch=True,
        include_name=only_ours,
    )
    with context.begin_transaction():
        context.run_migrations()


def package_metadata(package: str) -> sa.MetaData:
    """The tables a package's history builds: its ``models.metadata`` (the platform's in db)."""
    if package == PLATFORM_PACKAGE:
        from gridflow_common.db import platform_metadata

        return platform_metadata
    return importlib.import_module(f"{package}.models").metadata


def metadata_of(history: str) -> sa.MetaData:
    """For ``env.py``: the metadata of the history being run, from the package its caller named."""
    from alembic import context

    attributes = context.config.attributes
    if attributes.get("history") != history:
        raise RuntimeError(f"{history}'s env.py run for history {attributes.get('history')!r}")
    return package_metadata(attributes["package"])
