"""Intake's service layer under concurrency on the real PostgreSQL: duplicate merging (合并)
decided once for reports that arrive together, and the colour projection fed concurrently and
out of order by two SLA replicas.

Run under `nameko test` (eventlet monkey-patched, psycopg2 green), as `make test` does: every
thread below is a green thread holding its own connection, so the transactions really are open
on the server at the same time, as the workers of one or more intake processes would be.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid

import pytest
import sqlalchemy as sa

from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.domain import merging
from gridflow_common.domain import vocabulary as v
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models
from tests.conftest import lucheng_files
from tests.intake_messages import colour_changed
from tests.integration.support import together

pytestmark = pytest.mark.integration
PARALLEL = 8
ROUNDS = 5
# Inside grid 330302104001001 (Tengqiao); rounds are kept apart by closing each round's case.
PLACE = {"lat": 28.05, "lon": 120.635}


@pytest.fixture(scope="module")
def intake(database_url):
    engine = sa.create_engine(database_url, pool_size=PARALLEL + 2, max_overflow=PARALLEL)
    bootstrap.upgrade_all(engine)
    store = JurisdictionStore(engine)
    store.install(lucheng_files())
    runtime = ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())
    yield runtime
    engine.dispose()


@pytest.fixture(autouse=True)
def _close_this_modules_reports_afterwards(intake):
    """Each test starts with no open case of its own making at the place (even after a failure
    left some open), so one test's cases never take another's reports."""
    yield
    with intake.engine.begin() as conn:
        mine = sa.select(models.reports.c.case_id).where(
            sa.or_(
                models.reports.c.external_id.like("merge-%"),
                models.reports.c.external_id.like("other-%"),
            )
        )
        conn.execute(
            sa.update(models.cases).where(models.cases.c.case_id.in_(mine)).values(status=v.CLOSED)
        )


def _cases_at(intake, category: str, ids: list[str]) -> list:
    with intake.engine.connect() as conn:
        return conn.execute(
            sa.select(models.cases.c.case_id, models.cases.c.reporters)
            .select_from(models.cases.join(models.reports))
            .where(models.reports.c.external_id.in_(ids), models.cases.c.category == category)
            .distinct()
        ).all()


def _register(intake, report: dict):
    with intake.work() as work:
        return h.register_report(work, report)


@pytest.mark.parametrize(
    "place",
    [
        PLACE,
        # Across a lock-cell border (latitude 28.05 is on one): the reports fall on both sides.
        {"lat": 28.05, "lon": 120.635, "spread_m": 40},
    ],
)
def test_parallel_reports_of_one_place_and_category_make_one_case(intake, place):
    category = "event.junk_pile"
    spread = place.get("spread_m", 0) / 111_000
    lats = [place["lat"] + spread * (i / (PARALLEL - 1) - 0.5) for i in range(PARALLEL)]
    if spread:
        assert len({math.floor(lat / merging.LOCK_CELL_DEGREES) for lat in lats}) == 2
    for round_ in range(ROUNDS):
        tag = uuid.uuid4().hex[:8]
        ids = [f"merge-{tag}-{i}" for i in range(PARALLEL)]
        reports = [
            {
                "channel": "wechat",
                "external_id": ids[i],
                "category": category,
                "description": "小区门口堆了一大堆垃圾",
                "location": {"lat": lats[i], "lon": place["lon"]},
            }
            for i in range(PARALLEL)
        ]

        answers = together(PARALLEL, lambda i, reports=reports: _register(intake, reports[i]))
        assert not [a for a in answers if isinstance(a, Exception)], answers
        statuses = sorted(status for status, _ in answers)
        cases = _cases_at(intake, category, ids)
        assert len(cases) == 1, f"round {round_}: {len(cases)} cases from one place"
        assert cases[0].reporters == PARALLEL
        assert statuses == [200] * (PARALLEL - 1) + [201]
        with intake.engine.begin() as conn:  # close it, so the next round starts afresh
            conn.execute(
                sa.update(models.cases)
                .where(models.cases.c.case_id == cases[0].case_id)
                .values(status=v.CLOSED)
            )


def test_parallel_reports_of_other_categories_at_one_place_stay_apart(intake):
    categories = ["event.junk_pile", "event.noise", "event.medical_waste", "event.illegal_building"]
    tag = uuid.uuid4().hex[:8]

    def report(i: int):
        with intake.work() as work:
            return h.register_report(
                work,
                {
                    "channel": "wechat",
                    "external_id": f"other-{tag}-{i}",
                    "category": categories[i % len(categories)],
                    "description": "现场有问题",
                    "location": dict(PLACE, lat=PLACE["lat"] + 0.0003),
                },
            )

    answers = together(len(categories), report)
    assert all(not isinstance(a, Exception) for a in answers), answers
    # None joined another of these (a case of the same category left open at this place by an
    # earlier test on the session's database may take one: that is merging working).
    assert len({answer["case_id"] for _, answer in answers}) == len(categories), answers
    assert all(status in (200, 201) for status, _ in answers), answers


def test_concurrent_out_of_order_colours_end_at_the_latest_with_no_failure(intake):
    """After a jump of days two SLA replicas announce every colour of every clock, at once and
    in any order: each case ends at its latest colour, every message is taken first time."""
    start = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone.utc)
    rng = random.Random(2)
    cases = [f"GF-COLOUR-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    with intake.engine.begin() as conn:
        for case_id in cases:
            conn.execute(
                sa.insert(models.cases),
                dict(
                    case_id=case_id,
                    status=v.DISPATCHED,
                    category="event.junk_pile",
                    description="-",
                    area_code="330302104001001",
                    assisting=[],
                    escalations=0,
                    reporters=1,
                    jurisdiction_version=1,
                    registered_at=start,
                    assignment_id=f"{case_id}-1",
                    assignment_seq=1,
                    holder="x",
                    tier=v.STREET,
                ),
            )
    messages = []
    for case_id in cases:
        for day, colour in ((1, v.YELLOW), (2, v.ORANGE), (3, v.RED)):
            message = colour_changed(
                case_id, f"{case_id}-1", colour, start + dt.timedelta(days=day)
            )
            messages += [message, {**message, "event_id": "replica-2-" + message["event_id"]}]
    rng.shuffle(messages)

    outcomes = together(
        len(messages),
        lambda i: intake.consume("on_case_colour_changed", messages[i], h.on_case_colour_changed),
    )

    assert outcomes == ["done"] * len(messages)
    with intake.engine.connect() as conn:
        colours = dict(
            conn.execute(
                sa.select(models.colours.c.case_id, models.colours.c.colour).where(
                    models.colours.c.case_id.in_(cases)
                )
            ).all()
        )
        warnings = conn.execute(
            sa.select(models.timeline.c.case_id, sa.func.count())
            .where(models.timeline.c.case_id.in_(cases), models.timeline.c.kind == v.ENTRY_WARNING)
            .group_by(models.timeline.c.case_id)
        ).all()
        failed = conn.execute(sa.text("SELECT count(*) FROM intake_failed")).scalar()
    assert colours == {case_id: v.RED for case_id in cases}
    assert dict(warnings) == {case_id: 3 for case_id in cases}
    assert failed == 0
