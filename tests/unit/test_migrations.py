"""Each service's Alembic history builds exactly the tables its models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gridflow_app import bootstrap
from gridflow_common import migrate
from gridflow_common.db import make_engine


@pytest.mark.parametrize("history", list(bootstrap.HISTORIES))
def test_migrations_build_what_the_models_declare(tmp_path, history):
    engine = make_engine(f"sqlite:///{tmp_path}/m.sqlite")
    package = bootstrap.HISTORIES[history]
    migrate.upgrade(engine, history, package)
    metadata = migrate.package_metadata(package)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, type_, *_: type_ != "table" or name in metadata.tables,
                "compare_type": False,
            },
        )
        assert compare_metadata(context, metadata) == []
