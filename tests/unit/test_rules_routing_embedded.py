"""The city's rules (rules.yaml) on the embedded default, through the HTTP API: a jurisdiction
upload with new rules changes routing without a restart, each decision records the rule and
the rule version, ``GET /api/v1/cases/{id}/routing`` explains it, and a rule's time limit
reaches SLA's clock.

The in-memory bus is pumped by hand (``tests.unit.test_orders.City``), so nothing waits.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from gridflow_app.folders import jurisdiction_files
from gridflow_routing.models import assignments
from gridflow_sla.models import clocks
from tests.unit.test_orders import CST, MONDAY_0900, QINGYUAN, SQUAD, City

NIGHT = dt.datetime(2026, 3, 2, 22, 40, tzinfo=CST)
POLICE_STATION = "police-330302001"
GUIGAN = {"lat": 27.995, "lon": 120.58334}
RULES = """\
rules:
  - id: R3
    name: 夜间噪声转公安
    when:
      category: event.noise
      time: "22:00-06:00"
    then:
      route_to_department: police
  - id: R5
    name: 夜间噪声限时3小时
    when:
      category: event.noise
      time: "22:00-06:00"
    then:
      time_limit: 3 hours
  - id: R7
    name: 五马街道堆物限时4小时
    when:
      category: event.junk_pile
      area: "330302001"
    then:
      time_limit: 4 hours
"""
NOISE = {
    "channel": "hotline",
    "description": "楼下广场舞音响太吵，深夜还不停",
    "category": "event.noise",
    "location": QINGYUAN,
}


@pytest.fixture
def city(gridflow) -> City:
    return City(gridflow)


def _install(city: City, rules: str | None) -> int:
    files = jurisdiction_files()
    if rules is not None:
        files["rules.yaml"] = rules
    answer = city.call("PUT", "/api/v1/admin/jurisdiction", {"files": files})
    assert answer.status == 200, answer.body
    return answer.body["version"]


def _routing(city: City, case_id: str, who: str = "command") -> dict:
    answer = city.call("GET", f"/api/v1/cases/{case_id}/routing", who=who)
    assert answer.status == 200, answer.body
    return answer.body


def _assignment(city: City, case_id: str):
    with city.g.engine.connect() as conn:
        return conn.execute(sa.select(assignments).where(assignments.c.case_id == case_id)).first()


def test_an_upload_with_a_night_rule_sends_night_noise_to_the_police_without_restart(city):
    city.clock(NIGHT)
    before = city.report(**NOISE)
    # The taxonomy: noise is the environment station's.
    assert city.view(before)["handler"] == "environment-330302001"
    assert _routing(city, before)["current"]["rule_id"] == "taxonomy"

    version = _install(city, RULES)
    # Elsewhere in 五马街道 (桂柑社区), so it is a case of its own, not a second report of one.
    after = city.report(**{**NOISE, "location": GUIGAN})

    assert city.view(after)["handler"] == POLICE_STATION
    row = _assignment(city, after)
    assert (row.rule_id, row.jurisdiction_version, row.holder) == ("R3", version, POLICE_STATION)
    body = _routing(city, after)
    assert body["sentence"] == (
        f"按规则 R3（夜间噪声转公安）于3月2日22:40派至鹿城区公安分局五马派出所；规则版本 {version}"
        "；时限按规则 R5 定为3小时"
    )
    current = body["current"]
    assert current["rule_id"] == "R3" and current["rule_version"] == version
    assert current["rule_name"] == "夜间噪声转公安" and current["holder"] == POLICE_STATION
    # The case registered before the upload keeps the rules it was registered under.
    assert city.view(before)["handler"] == "environment-330302001"


def test_the_same_rule_does_not_fire_by_day(city):
    _install(city, RULES)
    case_id = city.report(**NOISE)  # Monday 09:00
    assert city.view(case_id)["handler"] == "environment-330302001"
    body = _routing(city, case_id)
    assert body["current"]["rule_id"] == "taxonomy"
    assert body["sentence"].startswith("按分类目录（未触发城市规则）于3月2日09:00派至")


def test_a_rule_time_limit_reaches_the_clock_and_the_explanation(city):
    version = _install(city, RULES)
    case_id = city.report()  # a junk pile in Qingyuan, 五马街道
    assert city.view(case_id)["handler"] == SQUAD
    with city.g.engine.connect() as conn:
        clock = conn.execute(sa.select(clocks).where(clocks.c.case_id == case_id)).first()
    assert (clock.limit_amount, clock.limit_unit) == (4, "hours")
    due = dt.datetime.fromisoformat(city.view(case_id)["due"])
    assert due == MONDAY_0900 + dt.timedelta(hours=4)
    body = _routing(city, case_id)
    assert body["current"]["time_limit"] == {"amount": 4, "unit": "hours", "rule_id": "R7"}
    assert body["sentence"].endswith(f"规则版本 {version}；时限按规则 R7 定为4小时")


def test_the_history_lists_every_decision_in_order(city):
    _install(city, RULES)
    case_id = city.report()
    assert city.order(case_id, kind="escalate", reason="需区级协调").status == 202
    decisions = _routing(city, case_id)["decisions"]
    assert [d["reason"] for d in decisions] == ["new", "escalated"]
    assert decisions[1]["holder"] == "urban_management-330302"
    # The time limit rule still matches the escalated case (same category and place).
    assert decisions[1]["time_limit"]["rule_id"] == "R7"


def test_a_night_limit_follows_the_case_when_it_is_escalated(city):
    _install(city, RULES)
    city.clock(NIGHT)
    case_id = city.report(**NOISE)
    city.clock(NIGHT + dt.timedelta(hours=1))  # before the 3-hour limit turns it red
    assert city.order(case_id, kind="escalate", reason="需区级协调").status == 202
    decisions = _routing(city, case_id)["decisions"]
    assert [(d["reason"], d["rule_id"]) for d in decisions] == [
        ("new", "R3"),
        ("escalated", "taxonomy"),
    ]
    # The report came at night: the night limit holds for the district's assignment too.
    assert [d["time_limit"] for d in decisions] == [
        {"amount": 3, "unit": "hours", "rule_id": "R5"}
    ] * 2


def test_a_bad_rules_file_is_refused_with_file_and_line_and_the_old_rules_stay(city):
    version = _install(city, RULES)
    bad = RULES.replace("route_to_department: police", "route_to_department: polise")
    answer = city.call(
        "PUT", "/api/v1/admin/jurisdiction", {"files": {**jurisdiction_files(), "rules.yaml": bad}}
    )
    assert answer.status == 400
    problems = answer.body["errors"]
    assert problems == [
        {
            "file": "rules.yaml",
            "line": 8,
            "column": "rule R3",
            "message": "unknown department 'polise'",
        }
    ]
    assert city.call("GET", "/api/v1/admin/jurisdiction").body["version"] == version


def test_routing_of_a_case_the_caller_may_not_see_is_not_found(city):
    case_id = city.report()
    answer = city.call("GET", f"/api/v1/cases/{case_id}/routing", who="other_leader")
    assert answer.status == 404
    missing = city.call("GET", "/api/v1/cases/nonexistent-1/routing")
    assert missing.status == 404


@pytest.mark.parametrize(
    "case_id", ["%00", "GF-" + "9" * 5000, "%E4%BD%A0%FF", "..%2F..%2Fetc", "1e999999"]
)
def test_hostile_case_ids_are_refused_by_name_never_a_500(city, case_id):
    answer = city.call("GET", f"/api/v1/cases/{case_id}/routing")
    # Not text (NUL) is a 400 on case_id; a path that names no case, or no route, a 404.
    assert answer.status in (400, 404), answer.body
    assert set(answer.body["errors"]) <= {"case_id", "path"} and answer.body["errors"]


def test_routing_needs_a_credential(city):
    answer = city.api.handle("GET", f"/api/v1/cases/{city.report()}/routing", b"", {})
    assert answer.status == 401
