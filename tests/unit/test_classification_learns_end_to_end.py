"""Classification learns from what the city does with its cases (分类从历史中学习), end to end on
the embedded default through the intake API: a department's return naming another category, an
``assign`` order naming a category, and a verified close each write a label row in the same
request, and a later report in words the taxonomy never named is then classified as the city
handled those cases.

Through ``IntakeApi.handle`` (the same ``answer()`` the HTTP servers call) with real
credentials, the in-memory bus pumped by hand so routing and the SLA clock hear every step.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from gridflow_intake import classifying
from gridflow_intake.models import classification_examples
from tests.unit.test_orders import COMMAND, MONDAY_0900, QINGYUAN, SQUAD, City

NOISE = "event.noise"
# Three cases of mahjong all night (搓麻将): words no category's keywords name.
RETURNED_TEXT = "楼下棋牌室通宵搓麻将"
ORDERED_TEXT = "隔壁棋牌室搓麻将到天亮"
VERIFIED_TEXT = "棋牌室里搓麻将的动静一夜不停"
LATER_TEXT = "我家楼下的棋牌室又在搓麻将了"
# Each taught case a few hundred metres from the others in 五马街道, so none merges into another
# (合并 is by category and point).
ORDERED_AT = {"lat": QINGYUAN["lat"] + 0.003, "lon": QINGYUAN["lon"]}
VERIFIED_AT = {"lat": QINGYUAN["lat"], "lon": QINGYUAN["lon"] + 0.003}
# Tengqiao, far from Qingyuan: the later report must not merge into one of the taught cases.
TENGQIAO = {"lat": 28.05, "lon": 120.64}


def _labels(city: City) -> list[tuple[str, str, str, str]]:
    with city.g.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                classification_examples.c.case_id,
                classification_examples.c.description,
                classification_examples.c.category,
                classification_examples.c.source,
            ).order_by(classification_examples.c.id)
        ).all()
    return [tuple(r) for r in rows]


def _returned_by_the_squad_as_noise(city: City) -> str:
    """Reported as a junk pile; the squad returns it: 'this is a noise case'."""
    case_id = city.report(description=RETURNED_TEXT)
    assert city.view(case_id)["handler"] == SQUAD
    city.clock(MONDAY_0900 + dt.timedelta(minutes=20))
    city.update(case_id, SQUAD, v.RETURNED, category=NOISE, note="是噪声，不是堆物")
    return case_id


def _assigned_by_the_command_center_as_noise(city: City) -> str:
    """Returned without a category, so the command center holds it; it assigns it as noise."""
    case_id = city.report(description=ORDERED_TEXT, location=ORDERED_AT)
    city.update(case_id, SQUAD, v.RETURNED, note="不归我们管")
    assert city.view(case_id)["handler"] == COMMAND
    answer = city.order(
        case_id, kind="assign", unit="environment-330302001", category=NOISE, reason="夜间噪声"
    )
    assert answer.status == 202, answer.body  # accepted: routing hands it to the station
    return case_id


def _closed_as_noise(city: City) -> str:
    """Reported as noise, resolved by the environment station, verified by the command center."""
    case_id = city.report(description=VERIFIED_TEXT, category=NOISE, location=VERIFIED_AT)
    holder = city.view(case_id)["handler"]
    city.update(case_id, holder, v.ACCEPTED)
    city.update(case_id, holder, v.RESOLVED, note="已责令棋牌室夜间停业")
    answer = city.call("POST", f"/api/v1/cases/{case_id}/verification", {"passed": True})
    assert answer.status == 200, answer.body
    assert city.view(case_id)["status"] == v.CLOSED
    return case_id


def test_a_return_an_order_and_a_verified_close_teach_the_next_report(gridflow):
    city = City(gridflow)
    before = city.call(
        "POST",
        "/api/v1/reports",
        {"channel": "web", "description": LATER_TEXT, "location": TENGQIAO},
    )
    assert before.status == 201, before.body
    assert city.view(before.body["case_id"])["category"] != NOISE
    assert _labels(city) == []

    returned = _returned_by_the_squad_as_noise(city)
    ordered = _assigned_by_the_command_center_as_noise(city)
    closed = _closed_as_noise(city)

    # One label per step, each written by the request that decided it.
    assert _labels(city) == [
        (returned, RETURNED_TEXT, NOISE, classifying.SOURCE_RETURNED),
        (ordered, ORDERED_TEXT, NOISE, classifying.SOURCE_ORDERED),
        (closed, VERIFIED_TEXT, NOISE, classifying.SOURCE_VERIFIED),
    ]
    # The embedded default's intake looks at its history again at its next tick after its own
    # label (the refresh is off the request path).
    assert classifying.refresh(city.g.runtimes[c.INTAKE]) is True
    later = city.call(
        "POST",
        "/api/v1/reports",
        {"channel": "web", "description": LATER_TEXT, "location": TENGQIAO},
    )
    assert later.status == 201, later.body
    view = city.view(later.body["case_id"])
    assert view["case_id"] != before.body["case_id"]
    assert view["category"] == NOISE
    assert view["classification"]["category"] == NOISE
    assert "搓麻将" in " ".join(view["classification"]["reasons"][NOISE])


def test_an_order_without_a_category_and_a_plain_return_teach_nothing(gridflow):
    city = City(gridflow)
    case_id = city.report(description=ORDERED_TEXT)
    city.update(case_id, SQUAD, v.RETURNED, note="不归我们管")
    # The command center sends it back to the squad as the junk pile it was reported as.
    answer = city.order(case_id, kind="assign", unit=SQUAD, category=None, reason="属公共区域")
    assert answer.status == 202, answer.body
    assert _labels(city) == []
