"""Merging by grid on the real PostgreSQL (docs/addresses.md): with ``merge_by_grid`` on, ten
grid-only reports of one category in one grid registered at once make exactly one case, which
the nine others join; the per-grid advisory lock makes them decide one after the other.

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
from tests.conftest import lucheng_files
from tests.integration.support import together

pytestmark = pytest.mark.integration
PARALLEL = 10
GRID = "330302002003004"  # 蓝桥社区第4网格: no other test reports there
CATEGORY = "component.streetlight"


@pytest.fixture(scope="module")
def intake(database_url):
    engine = sa.create_engine(database_url, pool_size=PARALLEL + 2, max_overflow=PARALLEL)
    bootstrap.upgrade_all(engine)
    store = JurisdictionStore(engine)
    files = lucheng_files()
    files["settings.csv"] = "key,value\nmerge_by_grid,yes\n"
    store.install(files)
    runtime = ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())
    yield runtime
    # The session's other tests expect the shipped city (grid-only reports not merged).
    store.install(lucheng_files())
    engine.dispose()


def test_grid_only_reports_at_once_make_one_case_the_others_join(intake):
    tag = uuid.uuid4().hex[:8]

    def register(i: int):
        with intake.work() as work:
            return h.register_report(
                work,
                {
                    "channel": "hotline",
                    "external_id": f"grid-merge-{tag}-{i}",
                    "category": CATEGORY,
                    "description": "路灯不亮",
                    "location": {"grid_code": GRID},
                },
            )

    answers = together(PARALLEL, register)
    assert not [a for a in answers if isinstance(a, Exception)], answers
    assert sorted(status for status, _ in answers) == [200] * (PARALLEL - 1) + [201]
    assert len({answer["case_id"] for _, answer in answers}) == 1
    joined = [a for s, a in answers if s == 200]
    assert {a["outcome"] for a in joined} == {v.OUTCOME_JOINED}
    with intake.engine.connect() as conn:
        case = conn.execute(
            sa.select(models.cases).where(models.cases.c.case_id == answers[0][1]["case_id"])
        ).one()
    assert (case.area_code, case.lat, case.reporters) == (GRID, None, PARALLEL)
