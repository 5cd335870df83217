"""Sensor alerts merged per device on the real PostgreSQL: eight alerts of one device arriving
together (each at another place, so the merge by place cannot join them) make one case, decided
one after the other under the device's advisory lock; once that case is closed, the device's next
alert opens a new one.

Run under `nameko test` (eventlet monkey-patched, psycopg2 green), as `make test` does.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.domain import vocabulary as v
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models
from gridflow_intake.sensors_api import alert_report
from tests.conftest import lucheng_files
from tests.integration.support import together

pytestmark = pytest.mark.integration
PARALLEL = 8


@pytest.fixture(scope="module")
def intake(database_url):
    engine = sa.create_engine(database_url, pool_size=PARALLEL + 2, max_overflow=PARALLEL)
    bootstrap.upgrade_all(engine)
    store = JurisdictionStore(engine)
    store.install(lucheng_files())
    runtime = ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())
    yield runtime
    engine.dispose()


def _alert(device: str, i: int) -> dict:
    body = {
        "alert_id": None,
        "kind": "water_level_high",
        "category": None,
        "reading": {"value": 3.1 + i, "unit": "m"},
        "observed_at": None,
        "description": None,
        # Kilometres apart: only the device can bring these together.
        "location": {"lat": 28.00 + 0.01 * i, "lon": 120.56 + 0.01 * i},
    }
    return alert_report(body, device, None)


def _register(intake, report: dict):
    with intake.work() as work:
        return h.register_report(work, report)


def test_alerts_of_one_device_arriving_together_make_one_case(intake):
    device = f"wl-{uuid.uuid4().hex[:8]}"
    answers = together(PARALLEL, lambda i: _register(intake, _alert(device, i)))
    assert not [a for a in answers if isinstance(a, Exception)], answers
    assert sorted(status for status, _ in answers) == [200] * (PARALLEL - 1) + [201]
    case_ids = {answer["case_id"] for _, answer in answers}
    assert len(case_ids) == 1
    [case_id] = case_ids
    with intake.engine.begin() as conn:
        reporters = conn.execute(
            sa.select(models.cases.c.reporters).where(models.cases.c.case_id == case_id)
        ).scalar()
        assert reporters == PARALLEL
        conn.execute(
            sa.update(models.cases).where(models.cases.c.case_id == case_id).values(status=v.CLOSED)
        )
    status, answer = _register(intake, _alert(device, 0))
    assert status == 201 and answer["case_id"] != case_id
