"""Departments gives each assignment to every unit that must act on it (the holder as lead,
each assisting department's nearest unit), through the adapter the city's data names, and
tells them of later changes: the service layer on a SQLite file, no broker."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from tests.unit.scripted_department import NAME, DepartmentSystem, installed
from tests.unit.service_harness import CST, ServiceUnderTest, lucheng_files, new_case_id

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
WUMA_GRID = "330302001001001"  # in 五马街道 (330302001), 青园社区 (330302001001)


def adapters_csv(rows: str) -> dict[str, str]:
    return {**lucheng_files(), "adapters.csv": "code,adapter,endpoint\n" + rows}


@pytest.fixture
def system(monkeypatch) -> DepartmentSystem:
    return installed(monkeypatch)


def departments(tmp_path, files=None) -> ServiceUnderTest:
    from gridflow_departments.handlers import DEFINITION

    return ServiceUnderTest(DEFINITION, tmp_path, T0, files)


def route(service, case_id: str, n: int = 1, **fields) -> str:
    payload = {
        "case_id": case_id,
        "assignment_id": f"{case_id}-{n}",
        "reason": v.REASON_NEW if n == 1 else v.REASON_ESCALATED,
        "category": "event.gas_leak",
        "tier": v.DISTRICT,
        "holder": "fire-330302",
        "lead": "fire",
        "assisting": ["emergency", "housing"],
        "escalations": n - 1,
        "area_code": WUMA_GRID,
        "description": "青园社区闻到煤气味",
        "location": {"lat": 27.99, "lon": 120.555},
        "reporter": {"name": "庄**", "phone": "138****0001"},
        **fields,
    }
    return service.deliver(c.ROUTING, c.CASE_ROUTED, payload)


def rows(service) -> list[dict]:
    from gridflow_departments.models import deliveries

    with service.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(sa.select(deliveries).order_by(deliveries.c.seq)).mappings()
        ]


def test_a_gas_leak_goes_to_the_fire_bureau_as_lead_and_to_emergency_and_housing_assisting(
    tmp_path,
):
    service = departments(tmp_path)
    case_id = new_case_id()
    assert route(service, case_id) == "done"
    out = service.outbox()
    pushed = {key: body for key, body in out if key.count(".") == 1 and "payload" not in body}
    assert set(pushed) == {
        "fire.fire-330302",
        "emergency.emergency-330302",
        "housing.housing-330302",
    }
    lead = pushed["fire.fire-330302"]
    assert (lead["role"], lead["unit"], lead["department"]) == ("lead", "fire-330302", "fire")
    assert lead["delivery_id"] == f"{case_id}-1/fire-330302/lead"
    for key in ("emergency.emergency-330302", "housing.housing-330302"):
        assert pushed[key]["role"] == "assisting"
        assert pushed[key]["handler"] == "fire-330302"
    # Due one hour after dispatch (the gas leak's limit), in the city's zone; green at first.
    assert lead["due_at"] == "2026-03-02T10:00:00+08:00"
    assert lead["colour"] == "green"
    assert lead["category_name"] == "燃气泄漏"
    assert lead["location"] == {
        "point": {"lat": 27.99, "lon": 120.555},
        "grid": WUMA_GRID,
        "community": "330302001001",
        "street": "330302001",
        "address": "鹿城区五马街道青园社区青园社区第1网格",
    }
    assert lead["reporter"] == {"name": "庄**", "phone": "138****0001"}
    assert lead["status_back"] == {
        "exchange": "gridflow.status",
        "routing_key": "fire-330302",
        "reply_queue": "gridflow.reply.fire-330302",
        "http": "/api/v1/departments/fire-330302/updates",
    }
    assert c.DepartmentMessageV2().validate(lead) == {}

    (dispatched,) = [body["payload"] for key, body in out if key == c.CASE_DISPATCHED]
    assert dispatched["queue"] == "gridflow.department.fire"
    assert dispatched["due_at"] == "2026-03-02T10:00:00+08:00"
    assert [(d["unit"], d["role"], d["adapter"]) for d in dispatched["deliveries"]] == [
        ("fire-330302", "lead", "amqp"),
        ("emergency-330302", "assisting", "amqp"),
        ("housing-330302", "assisting", "amqp"),
    ]
    assert {r["state"] for r in rows(service)} == {"delivered"}
    service.close()


def test_an_assisting_department_with_a_station_in_the_street_gets_it_there(tmp_path):
    service = departments(tmp_path)
    case_id = new_case_id()
    assert (
        route(
            service,
            case_id,
            category="event.noise",
            tier=v.STREET,
            holder="environment-330302001",
            lead="environment",
            assisting=["police", "environment"],  # the lead's own department is not repeated
            location={"address": "五马街道解放街12号"},
        )
        == "done"
    )
    given = [(r["unit"], r["role"]) for r in rows(service)]
    assert given == [("environment-330302001", "lead"), ("police-330302001", "assisting")]
    (message,) = [b for k, b in service.outbox() if k == "police.police-330302001"]
    # The reporter's own address when there is one.
    assert message["location"]["address"] == "五马街道解放街12号"
    assert message["location"]["point"] is None
    service.close()


def test_a_message_that_breaks_its_contract_fails_the_unit_of_work_not_a_department(tmp_path):
    service = departments(tmp_path)
    outcome = route(service, new_case_id(), location={"lat": "north", "lon": 120.5})
    assert outcome != "done"
    assert rows(service) == []
    assert service.outbox() == []
    service.close()


def test_each_unit_is_served_by_its_own_adapter(tmp_path, system):
    service = departments(tmp_path, adapters_csv(f"housing,{NAME},\nemergency-330302,inbox,\n"))
    case_id = new_case_id()
    assert route(service, case_id) == "done"
    by_unit = {r["unit"]: r for r in rows(service)}
    assert (by_unit["housing-330302"]["adapter"], by_unit["housing-330302"]["state"]) == (
        NAME,
        "pending",
    )
    assert by_unit["emergency-330302"]["state"] == "delivered"  # the inbox: nothing to push
    assert by_unit["fire-330302"]["state"] == "delivered"  # amqp, through the outbox
    keys = [k for k, _ in service.outbox()]
    assert "fire.fire-330302" in keys
    assert not [k for k in keys if "housing" in k or "emergency" in k]
    service.close()


def test_a_new_assignment_withdraws_the_previous_lead_units_case(tmp_path, system):
    service = departments(tmp_path, adapters_csv(f"fire-330302,{NAME},\n"))
    pending_case, delivered_case = new_case_id(), new_case_id()
    assert route(service, pending_case) == "done"
    # Given over AMQP: the old holder was told.
    assert (
        route(service, delivered_case, holder="urban_management-330302001", lead="urban_management")
        == "done"
    )
    service.outbox()
    assert route(service, pending_case, n=2, holder="command-330302") == "done"
    assert route(service, delivered_case, n=2, holder="command-330302") == "done"
    states = {(r["case_id"], r["unit"], r["kind"]): r["state"] for r in rows(service)}
    # Never pushed, so nothing to take back.
    assert states[(pending_case, "fire-330302", "case")] == "withdrawn"
    assert (pending_case, "fire-330302", "change") not in states
    changes = [b for k, b in service.outbox() if k == "urban_management.urban_management-330302001"]
    assert [(m["kind"], m["change"], m["case_id"]) for m in changes] == [
        ("change", "withdrawn", delivered_case)
    ]
    service.close()


def test_colour_changes_go_to_the_holder_and_closing_to_everyone_given_the_case(tmp_path):
    service = departments(tmp_path)
    case_id = new_case_id()
    assert route(service, case_id) == "done"
    service.outbox()
    assert (
        service.deliver(
            c.SLA,
            c.CASE_COLOUR_CHANGED,
            {
                "case_id": case_id,
                "assignment_id": f"{case_id}-1",
                "colour": "yellow",
                "action": v.ACTION_REMIND,
                "fraction": 0.5,
                "holder": "fire-330302",
            },
        )
        == "done"
    )
    (colour,) = service.outbox()
    assert colour[0] == "fire.fire-330302"
    assert (colour[1]["kind"], colour[1]["change"], colour[1]["colour"]) == (
        "change",
        "colour",
        "yellow",
    )
    assert service.deliver(c.INTAKE, c.CASE_VERIFIED, {"case_id": case_id, "passed": True}) == (
        "done"
    )
    closed = {k: b["change"] for k, b in service.outbox()}
    assert closed == {
        "fire.fire-330302": "closed",
        "emergency.emergency-330302": "closed",
        "housing.housing-330302": "closed",
    }
    # A failed verification tells nobody yet: routing's new assignment (rework) will.
    assert service.deliver(c.INTAKE, c.CASE_VERIFIED, {"case_id": case_id, "passed": False}) == (
        "done"
    )
    assert service.outbox() == []
    stored = json.loads(rows(service)[-1]["message"])
    assert stored["kind"] == "change"
    service.close()


def test_amqp_to_a_departments_own_broker_is_pushed_by_the_worker_not_the_outbox(tmp_path):
    service = departments(
        tmp_path, adapters_csv("fire,amqp,amqp://guest:guest@fire.example:5672/\n")
    )
    case_id = new_case_id()
    assert route(service, case_id) == "done"
    by_unit = {r["unit"]: r for r in rows(service)}
    assert (by_unit["fire-330302"]["adapter"], by_unit["fire-330302"]["state"]) == (
        "amqp",
        "pending",
    )
    keys = [k for k, _ in service.outbox()]
    assert "fire.fire-330302" not in keys and "housing.housing-330302" in keys
    service.close()


def _fire_sees_reporters() -> dict[str, str]:
    files = lucheng_files()
    lines = files["departments.csv"].strip().splitlines()
    rows = [lines[0] + ",sees_reporter"]
    rows += [line + (",yes" if line.startswith("fire,") else ",") for line in lines[1:]]
    return {**files, "departments.csv": "\n".join(rows) + "\n"}


def test_only_a_lead_the_city_lets_see_reporters_is_told_where_to_read_them_whole(tmp_path):
    service = departments(tmp_path, _fire_sees_reporters())
    case_id = new_case_id()
    assert route(service, case_id) == "done"
    pushed = {key: body for key, body in service.outbox() if "payload" not in body}
    lead = pushed["fire.fire-330302"]
    assert lead["reporter_contact_url"] == f"/api/v1/cases/{case_id}"
    # The message itself stays masked: the broker never carries the name or the number.
    assert lead["reporter"] == {"name": "庄**", "phone": "138****0001"}
    # Assisting departments, and any lead the city has not allowed, get no way to them.
    assert pushed["emergency.emergency-330302"]["reporter_contact_url"] is None
    service.close()

    (tmp_path / "other").mkdir()
    service = departments(tmp_path / "other", None)
    assert route(service, new_case_id()) == "done"
    pushed = {key: body for key, body in service.outbox() if "payload" not in body}
    assert pushed["fire.fire-330302"]["reporter_contact_url"] is None
    service.close()
