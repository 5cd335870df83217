"""The wiring of all five services: which services make Gridflow, and which migration histories
a database gets, in order. The one place that knows every service package by name."""

from __future__ import annotations

import sqlalchemy as sa

from gridflow_app.folders import LUCHENG, jurisdiction_files
from gridflow_common import contracts as c
from gridflow_common import migrate
from gridflow_common.service import ServiceDefinition
from gridflow_departments.handlers import DEFINITION as DEPARTMENTS
from gridflow_intake.handlers import DEFINITION as INTAKE
from gridflow_notify.handlers import DEFINITION as NOTIFY
from gridflow_routing.handlers import DEFINITION as ROUTING
from gridflow_sla.handlers import DEFINITION as SLA

__all__ = [
    "DEFINITIONS",
    "HISTORIES",
    "LUCHENG",
    "definitions",
    "jurisdiction_files",
    "upgrade_all",
]

DEFINITIONS: dict[str, ServiceDefinition] = {
    d.name: d for d in (INTAKE, ROUTING, DEPARTMENTS, SLA, NOTIFY)
}

# Migration histories (name -> package holding its `migrations` folder), in the order a fresh
# database gets them: the platform's tables first, then each service's.
HISTORIES: dict[str, str] = {
    migrate.PLATFORM: migrate.PLATFORM_PACKAGE,
    c.INTAKE: "gridflow_intake",
    c.ROUTING: "gridflow_routing",
    c.DEPARTMENTS: "gridflow_departments",
    c.SLA: "gridflow_sla",
    c.NOTIFY: "gridflow_notify",
}


def definitions() -> dict[str, ServiceDefinition]:
    """Every service, in contracts.SERVICES order."""
    return {name: DEFINITIONS[name] for name in c.SERVICES}


def upgrade_all(engine: sa.Engine, names: list[str] | None = None) -> None:
    for name in names or list(HISTORIES):
        migrate.upgrade(engine, name, HISTORIES[name])
