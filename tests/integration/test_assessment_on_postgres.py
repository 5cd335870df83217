"""Assessment and hotspots on the real PostgreSQL: the period's sums in SQL (the dialect's JSON
and epoch arithmetic) give the hand-computed week of tests/unit/test_assessment.py, and twenty
reports registered at once across a hotspot's threshold make exactly one alert and one
``hotspot_detected`` in the outbox.

Run under `nameko test` (eventlet monkey-patched, psycopg2 green), as `make test` does: the
threads below hold their own connections, so the registrations' transactions really overlap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa

from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common.domain import assessment as asm
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import assessment as queries
from gridflow_intake import handlers as h
from gridflow_intake import models
from tests.conftest import lucheng_files
from tests.integration.support import together
from tests.unit import test_assessment as week

pytestmark = pytest.mark.integration
PARALLEL = 20
THRESHOLD = 7
GRID = "330302104001003"


class FixedClock:
    """The city's time standing at one instant: every registration falls in one window."""

    simulated = True

    def __init__(self, now: dt.datetime):
        self.instant = now

    def now(self, connection=None) -> dt.datetime:
        return self.instant

    def set(self, now: dt.datetime, *, allow_backwards: bool = False) -> dt.datetime:
        self.instant = now
        return now


@pytest.fixture(scope="module")
def intake(database_url):
    engine = sa.create_engine(database_url, pool_size=PARALLEL + 2, max_overflow=PARALLEL)
    bootstrap.upgrade_all(engine)
    store = JurisdictionStore(engine)
    files = lucheng_files()
    # Only a category no other test reports on this session's database has a threshold here.
    files["hotspots.csv"] = (
        "category,level,threshold,window_minutes\n"
        "*,grid,0,60\n*,community,0,60\n"
        f"component.manhole_cover,grid,{THRESHOLD},60\n"
    )
    store.install(files)
    # A window of its own, far from any other test's instants.
    clock = FixedClock(dt.datetime(2031, 6, 1, 3, 7, tzinfo=dt.timezone.utc))
    runtime = ServiceRuntime(c.INTAKE, engine, clock, store, h.DEFINITION.tables())
    yield runtime
    engine.dispose()


def test_twenty_reports_at_once_across_the_threshold_make_one_alert_and_one_event(intake):
    tag = uuid.uuid4().hex[:8]

    def register(i: int):
        with intake.work() as work:
            return h.register_report(
                work,
                {
                    "channel": "wechat",
                    "external_id": f"hotspot-{tag}-{i}",
                    "category": "component.manhole_cover",
                    "description": "井盖不见了",
                    "location": {"grid_code": GRID},
                },
            )

    answers = together(PARALLEL, register)
    assert not [a for a in answers if isinstance(a, Exception)], answers
    assert sorted(status for status, _ in answers) == [201] * PARALLEL
    outbox = models.messaging["outbox"]
    with intake.engine.connect() as conn:
        alerts = conn.execute(
            sa.select(models.hotspots).where(
                models.hotspots.c.area_code == GRID,
                models.hotspots.c.category == "component.manhole_cover",
            )
        ).all()
        events = [
            json.loads(body)
            for body in conn.execute(
                sa.select(outbox.c.body).where(outbox.c.routing_key == c.HOTSPOT_DETECTED)
            ).scalars()
        ]
    assert len(alerts) == 1
    assert alerts[0].count == PARALLEL and alerts[0].alerted_at is not None
    mine = [e for e in events if e["payload"]["hotspot_id"] == alerts[0].hotspot_id]
    assert len(mine) == 1, events
    payload = mine[0]["payload"]
    assert (payload["count"], payload["threshold"]) == (THRESHOLD, THRESHOLD)
    case_ids = {answer["case_id"] for _, answer in answers}
    assert payload["case_id"] in case_ids


def test_the_period_sums_in_postgresql_match_the_hand_computed_week(intake):
    prefix = f"PG{uuid.uuid4().hex[:6]}-"
    rows = [dataclasses.replace(s, case_id=prefix + s.case_id) for s in week.seeds()]
    week.seed_into(intake, rows)
    start, end = asm.period(dt.date(2026, 1, 5), dt.date(2026, 1, 11), week.CST)
    mine = models.cases.c.case_id.like(prefix + "%")
    with intake.work() as work:
        j = work.active_jurisdiction()[1]
        sums = queries.tallies(work, asm.BY_DEPARTMENT, start, end, mine)
    rolled = asm.roll_up(sums, queries.key_of(j, asm.BY_DEPARTMENT))
    urban = asm.figures(rolled["urban_management"], j.assessment_weights)
    assert {k: urban[k] for k in week.EXPECTED_URBAN} == week.EXPECTED_URBAN
    assert rolled["police"].returned == 1 and rolled["police"].registered == 1
