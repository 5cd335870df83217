"""What the command center and the assisting departments are told (issue 7, items 4 and 9):

- a unit that could not be reached after the last try (case_undeliverable) shows in the case's
  timeline, once, and reaches the command center's duty person;
- a dispatch with assisting departments reaches each assisting unit's duty person, saying 协办.

The recipients' rules over the Lucheng jurisdiction, then the events through the embedded
default's in-memory bus, routed by contracts.SUBSCRIPTIONS to intake and notify.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import recipients
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction_files import load_folder
from gridflow_notify.models import notifications
from tests.credentials import SignedApi
from tests.http_samples import report

CST = dt.timezone(dt.timedelta(hours=8))
COMMAND = "command-330302"
FIRE, EMERGENCY, HOUSING = "fire-330302", "emergency-330302", "housing-330302"
STATION = "environment-330302104"
CASE = "GF-20260105-TESTCASEAA"
LATIN = re.compile(r"[A-Za-z]{3,}")


@pytest.fixture(scope="module")
def lucheng():
    from tests.unit.test_recipients import LUCHENG

    return load_folder(LUCHENG)


def _who(notices) -> list[tuple[str, str, str]]:
    return [(n.person.role, n.person.unit_or_area, n.reason) for n in notices]


def _prose(text: str) -> str:
    """The text without the case id (the one Latin run a reader is meant to see)."""
    return text.replace(CASE, "")


# -- the rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", [STATION, EMERGENCY, "office-330302104001", COMMAND])
def test_an_undeliverable_unit_reaches_its_districts_command_center_duty_person(lucheng, unit):
    notices = recipients.undeliverable(lucheng, CASE, unit, v.ASSISTING, 8)
    assert _who(notices) == [(v.ROLE_COMMAND_DUTY, COMMAND, recipients.REASON_UNDELIVERABLE)]
    text = notices[0].text
    assert CASE in text and lucheng.unit(unit).name in text
    assert "协办" in text and "8次" in text
    assert not LATIN.search(_prose(text)), text


def test_an_unknown_unit_reaches_nobody_rather_than_guessing(lucheng):
    assert recipients.undeliverable(lucheng, CASE, "no-such-unit", v.LEAD, 3) == []


def test_each_assisting_unit_hears_of_the_case_as_assisting_and_the_holder_not_twice(lucheng):
    notices = recipients.assisting(
        lucheng, CASE, [EMERGENCY, HOUSING, EMERGENCY, FIRE], "fire", FIRE, "燃气泄漏"
    )
    assert _who(notices) == [
        (v.ROLE_BUREAU_DUTY, EMERGENCY, recipients.REASON_ASSISTING),
        (v.ROLE_BUREAU_DUTY, HOUSING, recipients.REASON_ASSISTING),
    ]
    text = notices[0].text
    assert "协办" in text and "燃气泄漏" in text and "鹿城区消防救援大队" in text
    assert not LATIN.search(_prose(text)), text


def test_an_assisting_unit_is_told_by_its_kinds_duty_role(lucheng):
    notices = recipients.assisting(lucheng, CASE, [STATION], "fire", FIRE, None)
    assert _who(notices) == [(v.ROLE_STATION_DUTY, STATION, recipients.REASON_ASSISTING)]
    assert recipients.UNCLASSIFIED_ZH in notices[0].text


# -- through the bus ---------------------------------------------------------------------------------


@pytest.fixture
def api(gridflow):
    return SignedApi(gridflow)


@pytest.fixture
def gas_leak(gridflow, api) -> dict:
    """A gas leak reported and carried to the fire bureau, its case_dispatched replaced by one
    naming its deliveries (fire lead; emergency and housing assisting), as the departments
    service announces it since issue 7."""
    body = json.dumps(report(category="event.gas_leak", description="闻到煤气味")).encode()
    answer = api.handle("POST", "/api/v1/reports", body)
    assert answer.status == 201
    for _ in range(200):
        if gridflow.bus.deliveries.empty():
            break
        consumer, method, message = gridflow.bus.deliveries.get_nowait()
        if method == "on_case_dispatched":
            continue  # announced below instead, with its deliveries
        handler = gridflow.definitions[consumer].handlers[method]
        assert gridflow.runtimes[consumer].consume(method, message, handler) == "done"
        if method == "on_case_routed":
            routed = message["payload"]
    aid = routed["assignment_id"]
    deliveries = [
        {"unit": unit, "department": unit.split("-")[0], "role": role, "adapter": "webhook"}
        for unit, role in ((FIRE, "lead"), (EMERGENCY, "assisting"), (HOUSING, "assisting"))
    ]
    for d in deliveries:
        d["delivery_id"] = f"{aid}/{d['unit']}"
    payload = {**routed, "queue": c.department_queue("fire"), "deliveries": deliveries}
    _announce(gridflow, c.CASE_DISPATCHED, payload)
    return payload


def _announce(gridflow, event_type: str, payload: dict) -> int:
    """``payload`` announced by the departments service (its outbox, then the bus); how many
    deliveries that made."""
    with gridflow.runtimes[c.DEPARTMENTS].work() as work:
        work.emit(event_type, payload)
    return gridflow.drain()


def _notices(gridflow, case_id: str) -> list[dict]:
    with gridflow.engine.connect() as conn:
        rows = conn.execute(
            sa.select(notifications)
            .where(notifications.c.case_id == case_id)
            .order_by(notifications.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def test_a_dispatch_with_assisting_departments_reaches_their_duty_people_saying_assist(
    gridflow, gas_leak
):
    # The grid worker's notice of registration and the resident's are not about the dispatch.
    sent = [
        n
        for n in _notices(gridflow, gas_leak["case_id"])
        if n["reason"] in (v.DISPATCHED, recipients.REASON_ASSISTING)
    ]
    assert [(n["role"], n["person_id"], n["reason"]) for n in sent] == [
        (v.ROLE_BUREAU_DUTY, "P00067", v.DISPATCHED),  # the fire bureau's, who leads
        (v.ROLE_BUREAU_DUTY, "P00065", recipients.REASON_ASSISTING),  # emergency
        (v.ROLE_BUREAU_DUTY, "P00061", recipients.REASON_ASSISTING),  # housing
    ]
    assert "协办" in sent[1]["text"] and "协办" not in sent[0]["text"]
    assert sent[1]["address"] == "13866000065"


def _undeliverable(case: dict, unit: str, role: str, attempts: int = 8) -> dict:
    return {
        "case_id": case["case_id"],
        "assignment_id": case["assignment_id"],
        "delivery_id": f"{case['assignment_id']}/{unit}",
        "unit": unit,
        "department": unit.split("-")[0],
        "role": role,
        "adapter": "webhook",
        "attempts": attempts,
        "reason": "HTTP 503 from the department's endpoint",
        "jurisdiction_version": case["jurisdiction_version"],
    }


def test_an_undeliverable_unit_shows_in_the_timeline_and_reaches_the_command_center(
    gridflow, api, gas_leak
):
    before = len(_notices(gridflow, gas_leak["case_id"]))
    # Both subscriptions are bound: one announcement, two deliveries (intake and notify).
    assert (
        _announce(gridflow, c.CASE_UNDELIVERABLE, _undeliverable(gas_leak, HOUSING, "assisting"))
        == 2
    )
    view = api.handle("GET", f"/api/v1/cases/{gas_leak['case_id']}").body
    [entry] = [e for e in view["timeline"] if e["kind"] == v.ENTRY_UNDELIVERABLE]
    assert {k: entry[k] for k in ("unit", "role", "adapter", "attempts", "reason")} == {
        "unit": HOUSING,
        "role": "assisting",
        "adapter": "webhook",
        "attempts": 8,
        "reason": "HTTP 503 from the department's endpoint",
    }
    # The case itself goes on: the lead still holds it.
    assert (view["status"], view["handler"]) == (v.DISPATCHED, FIRE)
    sent = _notices(gridflow, gas_leak["case_id"])[before:]
    assert [(n["role"], n["person_id"], n["reason"]) for n in sent] == [
        (v.ROLE_COMMAND_DUTY, "P00049", recipients.REASON_UNDELIVERABLE)
    ]
    assert "无法送达鹿城区住房和城乡建设局" in sent[0]["text"]


def test_the_same_undeliverable_announced_twice_is_one_timeline_entry(gridflow, api, gas_leak):
    payload = _undeliverable(gas_leak, EMERGENCY, "assisting")
    _announce(gridflow, c.CASE_UNDELIVERABLE, payload)
    _announce(gridflow, c.CASE_UNDELIVERABLE, payload)
    view = api.handle("GET", f"/api/v1/cases/{gas_leak['case_id']}").body
    assert len([e for e in view["timeline"] if e["kind"] == v.ENTRY_UNDELIVERABLE]) == 1
