"""Jurisdiction versions in the database: install a folder as a whole, read any version back.

Every event carries the jurisdiction version it was decided under, so a service that has not yet
seen a new import still decides a case by the rules the case was registered with.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from gridflow_common.db import jurisdiction_table
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_common.domain.jurisdiction_files import (
    JurisdictionError,
    adapter_problems,
    parse_jurisdiction,
)

ACTIVE_VERSION_TTL = 1.0


class NoJurisdiction(LookupError):
    pass


def check_adapters(jurisdiction: Jurisdiction) -> None:
    """Refuse a jurisdiction whose adapters.csv rows the adapters installed in this process
    cannot serve (``registry.config_problems``), each problem on its line and column. Made at
    install only: a stored version read back later was accepted when it was installed."""
    from gridflow_common.adapters import registry

    problems = adapter_problems(jurisdiction, registry.config_problems)
    if problems:
        raise JurisdictionError(problems)


def check_templates(jurisdiction: Jurisdiction) -> None:
    """Refuse a jurisdiction whose message templates (its own notify_templates.csv, or those
    they fall back to) cannot render (``notify_templates.problems``): found at import, not
    when the first message at night fails."""
    from gridflow_common import notify_templates
    from gridflow_common.domain.jurisdiction_files import Problem

    problems = [
        Problem(file, line, "template", f"{kind}: {why}")
        for file, line, kind, why in notify_templates.problems(jurisdiction.notify_plan)
    ]
    if problems:
        raise JurisdictionError(problems)


class JurisdictionStore:
    def __init__(self, engine: sa.Engine, lock: Any = None):
        self._engine = engine
        self._lock = lock or contextlib.nullcontext()
        self._cache: dict[int, Jurisdiction] = {}
        self._active: tuple[int, float] | None = None

    def install(self, files: dict[str, str]) -> int:
        """Validate the whole folder, then make it the one in force. Raises JurisdictionError
        (and leaves the current one in force) when any file is wrong, or when adapters.csv
        names an adapter not installed here or configures one as it cannot be used."""
        parsed = parse_jurisdiction(files)
        check_adapters(parsed)
        check_templates(parsed)
        with self._lock, self._engine.begin() as conn:
            conn.execute(sa.update(jurisdiction_table).values(active=False))
            version = conn.execute(
                sa.insert(jurisdiction_table)
                .values(loaded_at=dt.datetime.now(dt.timezone.utc), files=files, active=True)
                .returning(jurisdiction_table.c.version)
            ).scalar_one()
        self._cache[version] = parsed
        self._active = (version, time.monotonic())
        return version

    @contextlib.contextmanager
    def _reading(self, connection: sa.Connection | None) -> Iterator[sa.Connection]:
        """The caller's connection when it has one (a unit of work reads everything on the one
        connection it holds: asking the pool for a second deadlocks a busy service), else one
        of our own."""
        if connection is not None:
            yield connection
            return
        with self._lock, self._engine.connect() as conn:
            yield conn

    def active_version(self, connection: sa.Connection | None = None) -> int:
        """The version in force. Read at most once a second per process: an import through
        another replica takes effect here within that second (events carry their version, so a
        case in flight keeps the rules it was registered under)."""
        now = time.monotonic()
        if self._active is not None and now - self._active[1] < ACTIVE_VERSION_TTL:
            return self._active[0]
        with self._reading(connection) as conn:
            version = conn.execute(
                sa.select(jurisdiction_table.c.version).where(jurisdiction_table.c.active)
            ).scalar()
        if version is None:
            self._active = None
            raise NoJurisdiction("no jurisdiction has been imported yet")
        self._active = (version, now)
        return version

    def active(self, connection: sa.Connection | None = None) -> tuple[int, Jurisdiction]:
        version = self.active_version(connection)
        return version, self.get(version, connection)

    def get(self, version: int, connection: sa.Connection | None = None) -> Jurisdiction:
        cached = self._cache.get(version)
        if cached is not None:
            return cached
        with self._reading(connection) as conn:
            files = conn.execute(
                sa.select(jurisdiction_table.c.files).where(jurisdiction_table.c.version == version)
            ).scalar()
        if files is None:
            raise NoJurisdiction(f"jurisdiction version {version} does not exist")
        parsed = parse_jurisdiction(files)
        self._cache[version] = parsed
        return parsed

    def clear(self) -> None:
        with self._lock, self._engine.begin() as conn:
            conn.execute(sa.delete(jurisdiction_table))
        self._cache.clear()
        self._active = None

    def loaded_at(self, version: int) -> dt.datetime | None:
        """When ``version`` was installed (None if it does not exist)."""
        with self._lock, self._engine.connect() as conn:
            return conn.execute(
                sa.select(jurisdiction_table.c.loaded_at).where(
                    jurisdiction_table.c.version == version
                )
            ).scalar()
