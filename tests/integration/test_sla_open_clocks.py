"""``gridflow_sla_open_clocks`` on PostgreSQL: one SLA replica exports the global count and the
others export nothing for it, so a sum over replicas counts every clock once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gridflow_common import metrics
from gridflow_common.clock import RealClock
from gridflow_common.domain.vocabulary import COLOURS
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_sla.handlers import DEFINITION, periodic
from gridflow_sla.models import clocks
from gridflow_sla.open_clocks import EXPORTER, OpenClocksExporter

pytestmark = pytest.mark.integration


def _gauge() -> dict[str, float]:
    return {s.labels["colour"]: s.value for m in metrics.OPEN_CLOCKS.collect() for s in m.samples}


def test_exactly_one_replica_exports_and_another_takes_over_when_it_goes(engine):
    EXPORTER.release()  # this process's own replica (an SLA container run earlier) steps back
    replicas = [OpenClocksExporter() for _ in range(3)]
    try:
        first = [r.is_exporter(engine) for r in replicas]
        assert first.count(True) == 1
        # Asked again, the same one keeps it.
        assert [r.is_exporter(engine) for r in replicas] == first
        replicas[first.index(True)].release()
        rest = [r for i, r in enumerate(replicas) if not first[i]]
        assert [r.is_exporter(engine) for r in rest].count(True) == 1
    finally:
        for r in replicas:
            r.release()


def test_a_replica_without_the_lock_exports_nothing_for_the_gauge(engine):
    runtime = ServiceRuntime(
        DEFINITION.name, engine, RealClock(), JurisdictionStore(engine), DEFINITION.tables()
    )
    with engine.connect() as conn:
        running = conn.execute(
            sa.select(sa.func.count()).select_from(clocks).where(clocks.c.active)
        ).scalar_one()
    other = OpenClocksExporter()
    EXPORTER.release()
    try:
        assert other.is_exporter(engine)  # another replica holds the lock
        periodic(runtime)
        assert _gauge() == {}
        other.release()
        periodic(runtime)
        assert set(_gauge()) == set(COLOURS)
        assert sum(_gauge().values()) == running
    finally:
        other.release()
        EXPORTER.release()
