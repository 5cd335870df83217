"""Hotspots (热点): many new cases of one category in one grid or community within one window
make one alert (GET /api/v1/hotspots) and one ``hotspot_detected`` event, which notify turns
into a notice for the command center's duty people. On the embedded default's SQLite; the
concurrent case is on PostgreSQL (tests/integration/test_assessment_on_postgres.py).
"""

from __future__ import annotations

import datetime as dt
import json
import queue

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import assessment as asm
from gridflow_common.domain.jurisdiction_files import JurisdictionError, parse_jurisdiction
from gridflow_notify.models import notifications
from tests.conftest import lucheng_files
from tests.credentials import SignedApi

CST = dt.timezone(dt.timedelta(hours=8))
G1 = "330302104001001"
G2 = "330302104001002"
COMMUNITY = "330302104001"
RULES = (
    "category,level,threshold,window_minutes\n"
    "*,grid,3,30\n"
    "*,community,5,60\n"
    "event.noise,grid,0,30\n"
)


@pytest.fixture
def city(gridflow):
    files = lucheng_files()
    files["hotspots.csv"] = RULES
    gridflow.runtimes[c.INTAKE].jurisdictions.install(files)
    gridflow.runtimes[c.INTAKE].clock.set(dt.datetime(2026, 1, 5, 9, 1, tzinfo=CST))
    return gridflow


def _pump(g) -> list[str]:
    """Deliver everything on the bus; the methods delivered, in order."""
    seen = []
    for _ in range(500):
        try:
            consumer, method, message = g.bus.deliveries.get_nowait()
        except queue.Empty:
            return seen
        seen.append(method)
        handler = g.definitions[consumer].handlers[method]
        assert g.runtimes[consumer].consume(method, message, handler) == "done"
    raise AssertionError("the bus did not drain")


def _report(api, grid: str, category: str = "component.streetlight") -> str:
    body = {
        "channel": "web",
        "description": "路灯不亮",
        "category": category,
        "location": {"grid_code": grid},
    }
    answer = api.handle("POST", "/api/v1/reports", json.dumps(body).encode())
    assert answer.status == 201, answer.body
    return answer.body["case_id"]


def _hotspots(api, query: str = "") -> list[dict]:
    answer = api.handle("GET", f"/api/v1/hotspots{query}")
    assert answer.status == 200, answer.body
    return answer.body["items"]


def _move(g, minutes: int) -> None:
    clock = g.runtimes[c.INTAKE].clock
    clock.set(clock.now() + dt.timedelta(minutes=minutes))


def test_the_threshold_th_case_in_a_grid_raises_one_alert_and_one_event(city):
    api = SignedApi(city)
    first = [_report(api, G1) for _ in range(2)]
    assert _pump(city).count("on_hotspot_detected") == 0
    assert _hotspots(api) == []
    third = _report(api, G1)
    assert _pump(city).count("on_hotspot_detected") == 1
    fourth = _report(api, G1)
    assert _pump(city).count("on_hotspot_detected") == 0  # once per window, not per report
    [alert] = _hotspots(api)
    assert (alert["level"], alert["area_code"], alert["category"]) == (
        "grid",
        G1,
        "component.streetlight",
    )
    assert (alert["count"], alert["threshold"], alert["window_minutes"]) == (4, 3, 30)
    # Ordered by registration instant (all four share one here, then by id).
    assert alert["case_ids"] == sorted([*first, third, fourth])
    assert alert["first_at"].startswith("2026-01-05T09:01") and alert["area_name"]
    # notify told the command center's duty people, naming the place and the count.
    with city.runtimes[c.NOTIFY].work() as work:
        notices = work.db.execute(
            sa.select(notifications).where(notifications.c.reason == "hotspot")
        ).all()
    assert notices and all(n.role == "command_duty" for n in notices)
    assert all("3件路灯不亮" in n.text and n.case_id == alert["id"] for n in notices)


def test_the_next_window_counts_afresh(city):
    api = SignedApi(city)
    for _ in range(2):
        _report(api, G1)
    _move(city, 30)  # 09:31: the next half hour
    _report(api, G1)
    assert _pump(city).count("on_hotspot_detected") == 0
    assert _hotspots(api) == []


def test_grids_of_a_community_add_up_to_the_community_threshold(city):
    api = SignedApi(city)
    for grid in (G1, G2, G1, G2):
        _report(api, grid)
    assert _pump(city).count("on_hotspot_detected") == 0
    _report(api, G2)  # the fifth in the community; G2's third
    assert _pump(city).count("on_hotspot_detected") == 2
    levels = {(a["level"], a["area_code"]): a["count"] for a in _hotspots(api)}
    assert levels == {("community", COMMUNITY): 5, ("grid", G2): 3}


def test_a_category_turned_off_or_another_category_does_not_count(city):
    api = SignedApi(city)
    for _ in range(3):
        _report(api, G1, "event.noise")  # grid level off for noise
    _report(api, G1)
    _report(api, G1)
    assert _pump(city).count("on_hotspot_detected") == 0
    assert _hotspots(api) == []


def test_old_alerts_leave_the_list(city):
    api = SignedApi(city)
    for _ in range(3):
        _report(api, G1)
    assert len(_hotspots(api)) == 1
    _move(city, 25 * 60)
    assert _hotspots(api) == []
    assert len(_hotspots(api, "?hours=48")) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [("?hours=0", "hours"), ("?hours=x", "hours"), ("?hours=100000", "hours"), ("?id=1", "id")],
)
def test_bad_hotspot_queries_are_refused_naming_the_field(city, query, field):
    answer = SignedApi(city).handle("GET", f"/api/v1/hotspots{query}")
    assert answer.status == 400 and field in answer.body["errors"], answer.body


def test_hotspot_rules_file_is_checked_cell_by_cell():
    files = lucheng_files()
    files["hotspots.csv"] = (
        "category,level,threshold,window_minutes\n"
        "*,street,3,30\n"
        "event.no_such,grid,3,30\n"
        "*,grid,-1,30\n"
        "*,community,3,0\n"
    )
    with pytest.raises(JurisdictionError) as refused:
        parse_jurisdiction(files)
    where = {(p.line, p.column) for p in refused.value.problems}
    assert where == {(2, "level"), (3, "category"), (4, "threshold"), (5, "window_minutes")}


def test_default_rules_and_windows_are_fixed_and_shared():
    rules = asm.HotspotRules()
    assert rules.rule("anything", "grid") == asm.HotspotRule("grid", 5, 60)
    instant = dt.datetime(2026, 1, 5, 9, 59, 59, tzinfo=dt.timezone.utc)
    assert asm.window_start(instant, 60) == dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)
    same = asm.hotspot_id("x", "grid", G1, asm.window_start(instant, 60), 60)
    later = instant + dt.timedelta(seconds=1)
    assert asm.hotspot_id("x", "grid", G1, asm.window_start(instant, 60), 60) == same
    assert asm.hotspot_id("x", "grid", G1, asm.window_start(later, 60), 60) != same
