"""The reporter's link on the real PostgreSQL: twenty evaluations through one link, sent at the
same instant by as many workers each holding its own connection, take exactly one.

Run under `nameko test` (eventlet monkey-patched, psycopg2 green), as `make test` does: the
transactions are open on the server together, so it is the row lock and the conditional update
of ``handlers.evaluate`` that decide, not a lock in this process.
"""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.domain import vocabulary as v
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models
from gridflow_intake import progress as pg
from gridflow_intake.api import IntakeApi

pytestmark = pytest.mark.integration
PARALLEL = 20


@pytest.fixture(scope="module")
def api(database_url, engine):
    """Intake's API on an engine of its own: a connection for each of the parallel workers (the
    session's ``engine`` fixture has migrated the database and installed Lucheng)."""
    engine = sa.create_engine(database_url, pool_size=PARALLEL + 2, max_overflow=PARALLEL)
    store = JurisdictionStore(engine)
    runtime = ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())
    yield IntakeApi(runtime, peers=None)
    engine.dispose()


def test_twenty_parallel_evaluations_through_one_link_take_exactly_one(api):
    report = {
        "channel": "web",
        "description": "路边堆放医疗废弃物",
        "category": "event.medical_waste",
        # Far from the other modules' places, so it joins none of their cases.
        "location": {"lat": 28.052, "lon": 120.637},
    }
    answer = api.handle("POST", "/api/v1/reports", json.dumps(report).encode())
    assert answer.status in (200, 201), answer.body
    case_id = answer.body["case_id"]
    with api.runtime.engine.begin() as conn:
        conn.execute(
            sa.update(models.cases)
            .where(models.cases.c.case_id == case_id)
            .values(status=v.CLOSED, closed_at=sa.func.now(), satisfaction=None)
        )
    url = answer.body["progress_url"]
    path = url[url.index(pg.PROGRESS_PATH) :] + "/evaluation"
    barrier = threading.Barrier(PARALLEL)
    results: list = [None] * PARALLEL

    def evaluate(i: int) -> None:
        barrier.wait()
        body = json.dumps({"satisfaction": i % 5 + 1}).encode()
        results[i] = api.handle("POST", path, body)

    threads = [threading.Thread(target=evaluate, args=(i,)) for i in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "an evaluation never finished"
    statuses = sorted(r.status for r in results)
    assert statuses == [200] + [409] * (PARALLEL - 1), [(r.status, r.body) for r in results]
    (winner,) = [r for r in results if r.status == 200]
    with api.runtime.engine.connect() as conn:
        satisfaction = conn.execute(
            sa.select(models.cases.c.satisfaction).where(models.cases.c.case_id == case_id)
        ).scalar_one()
        entries = conn.execute(
            sa.select(models.timeline.c.detail).where(
                models.timeline.c.case_id == case_id,
                models.timeline.c.kind == v.ENTRY_EVALUATED,
            )
        ).all()
    assert satisfaction == winner.body["satisfaction"]
    assert [e.detail["by"] for e in entries] == ["reporter"]
