"""The embedded default (no broker): what departments gives the units is kept per unit and per
department on the in-memory bus, and its tick runs the delivery worker."""

from __future__ import annotations

import time

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from tests.conftest import lucheng_files
from tests.unit.scripted_department import NAME, installed
from tests.unit.service_harness import new_case_id


def routed(g, case_id: str, station: str, street: str, **fields) -> None:
    version = g.store.active_version()
    payload = {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "reason": v.REASON_NEW,
        "category": "event.noise",
        "tier": v.STREET,
        "holder": station,
        "lead": "environment",
        "assisting": ["police"],
        "escalations": 0,
        "area_code": f"{street}001001",
        "description": "噪声",
        "location": None,
        "jurisdiction_version": version,
        **fields,
    }
    event = c.make_event(c.ROUTING, c.CASE_ROUTED, g.clock.now(), payload)
    departments = g.definitions[c.DEPARTMENTS]
    outcome = g.runtimes[c.DEPARTMENTS].consume(
        "on_case_routed", event.to_message(), departments.handlers["on_case_routed"]
    )
    assert outcome == "done"


def test_the_in_memory_bus_keeps_each_units_cases_and_each_departments(gridflow):
    wuma, songtai = new_case_id(), new_case_id()
    routed(gridflow, wuma, "environment-330302001", "330302001")
    routed(gridflow, songtai, "environment-330302002", "330302002")
    bus = gridflow.bus
    assert [m["case_id"] for m in bus.unit_queues["environment-330302001"]] == [wuma]
    assert [m["case_id"] for m in bus.unit_queues["environment-330302002"]] == [songtai]
    assert [m["case_id"] for m in bus.department_queues["environment"]] == [wuma, songtai]
    # The assisting police stations of each street, marked so.
    assert [(m["case_id"], m["role"]) for m in bus.unit_queues["police-330302002"]] == [
        (songtai, "assisting")
    ]
    assert len(bus.department_queues["police"]) == 2


def test_the_embedded_tick_pushes_what_the_worker_must(gridflow, monkeypatch):
    system = installed(monkeypatch)
    gridflow.store.install({**lucheng_files(), "adapters.csv": f"code,adapter\npolice,{NAME}\n"})
    case_id = new_case_id()
    routed(gridflow, case_id, "environment-330302001", "330302001")
    gridflow.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not system.received("police-330302001"):
        time.sleep(0.05)  # bounded poll: the tick runs once a second
    assert system.received("police-330302001") == [f"{case_id}-1/police-330302001/assisting"]
