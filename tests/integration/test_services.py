"""One service at a time in a nameko container, against the real RabbitMQ and PostgreSQL.

Run under `nameko test` (eventlet monkey-patched), as `make test` does.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx
import kombu
import pytest
import sqlalchemy as sa
from nameko.testing.services import entrypoint_waiter

from gridflow_common import contracts as c
from tests.integration.support import (
    CST,
    dispatched_payload,
    jurisdiction_version,
    observe,
    publish,
    registered_payload,
    take,
)

pytestmark = pytest.mark.integration


def test_routing_assigns_a_registered_case_once_even_when_delivered_twice(
    container_factory, config, broker, engine
):
    from gridflow_routing.service import RoutingService

    routed = observe(broker, c.ROUTING, c.CASE_ROUTED)
    container = container_factory(RoutingService, config)
    container.start()
    case_id = f"IT-{uuid.uuid4().hex[:8]}"
    payload = registered_payload(engine, case_id)

    with entrypoint_waiter(container, "on_case_registered"):
        envelope = publish(broker, c.INTAKE, c.CASE_REGISTERED, payload)
    with entrypoint_waiter(container, "on_case_registered"):
        publish(broker, c.INTAKE, c.CASE_REGISTERED, payload, event_id=envelope["event_id"])

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT tier, holder, lead, escalations FROM routing_assignments WHERE case_id = :c"
            ),
            {"c": case_id},
        ).all()
    assert [tuple(r) for r in rows] == [
        ("street", "urban_management-330302001", "urban_management", 0)
    ]
    messages = take(broker, routed.name, want=2, timeout=3)
    assert [m["payload"]["case_id"] for m in messages] == [case_id]
    assert messages[0]["payload"]["holder"] == "urban_management-330302001"


def test_a_handler_that_raises_keeps_its_message_and_a_retry_succeeds(
    container_factory, config, broker, engine
):
    from gridflow_routing.service import RoutingService

    real = RoutingService.definition.handlers["on_case_registered"]
    calls = {"n": 0}

    def flaky(work, event):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("department directory briefly unavailable")
        real(work, event)

    RoutingService.definition.handlers["on_case_registered"] = flaky
    try:
        container = container_factory(RoutingService, config)
        container.start()
        case_id = f"IT-{uuid.uuid4().hex[:8]}"
        with entrypoint_waiter(container, "on_case_registered"):
            publish(broker, c.INTAKE, c.CASE_REGISTERED, registered_payload(engine, case_id))

        with engine.connect() as conn:
            failed = conn.execute(
                sa.text("SELECT state, attempts FROM routing_failed WHERE message LIKE :c"),
                {"c": f"%{case_id}%"},
            ).all()
        assert [tuple(r) for r in failed] == [("retrying", 1)]

        # The service's own timer retries after the backoff; no redelivery from outside.
        deadline = time.monotonic() + 15
        routed = []
        while time.monotonic() < deadline and not routed:
            with engine.connect() as conn:
                routed = conn.execute(
                    sa.text("SELECT holder FROM routing_assignments WHERE case_id = :c"),
                    {"c": case_id},
                ).all()
            time.sleep(0.1)  # bounded poll: the retry timer fires after the backoff
        assert [r.holder for r in routed] == ["urban_management-330302001"]
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM routing_failed WHERE message LIKE :c"),
                {"c": f"%{case_id}%"},
            ).scalar()
        assert left == 0
        assert calls["n"] == 2
    finally:
        RoutingService.definition.handlers["on_case_registered"] = real


def test_intake_registers_a_report_and_its_event_waits_for_routing_that_is_not_running(
    container_factory, config, broker, engine, admin_headers
):
    from gridflow_intake.service import IntakeService

    container = container_factory(IntakeService, config)
    container.start()
    url = f"http://{config['WEB_SERVER_ADDRESS']}/api/v1/reports"
    answer = httpx.post(
        url,
        json={
            "channel": "hotline",
            "external_id": f"it-{uuid.uuid4().hex[:8]}",
            "description": "青园社区门口的路灯不亮已经三天了",
            "location": {"lat": 27.995, "lon": 120.556},
        },
        headers=admin_headers,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    case_id = answer.json()["case_id"]

    # No routing service has ever consumed in this vhost: the relay declared routing's queue
    # before publishing, so the event is there rather than confirmed and dropped.
    queue = c.event_queue(c.INTAKE, c.CASE_REGISTERED, c.ROUTING, "on_case_registered")
    events = [
        m for m in take(broker, queue, want=50, timeout=10) if m["payload"]["case_id"] == case_id
    ]
    assert len(events) == 1
    assert events[0]["payload"]["category"] == "component.streetlight"
    assert events[0]["payload"]["area_code"] == "330302001001001"


def test_intake_refuses_a_bad_report_naming_the_field_and_writes_nothing(
    container_factory, config, engine
):
    from gridflow_intake.service import IntakeService

    container = container_factory(IntakeService, config)
    container.start()
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM intake_cases")).scalar()
    answer = httpx.post(
        f"http://{config['WEB_SERVER_ADDRESS']}/api/v1/reports",
        json={
            "channel": "pigeon",
            "description": " ",
            "location": {"lat": 200, "lon": 120.5},
        },
        timeout=10,
    )
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert set(errors) == {"channel", "description", "location.lat"}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM intake_cases")).scalar() == before


def _medical_waste(engine, case_id: str, station: str, street: str) -> dict:
    return {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "reason": "new",
        "category": "event.medical_waste",
        "tier": "street",
        "holder": station,
        "lead": "environment",
        "assisting": ["health"],
        "escalations": 0,
        "area_code": f"{street}001001",
        "jurisdiction_version": jurisdiction_version(engine),
        "description": "医疗废弃物",
        "location": None,
    }


def test_a_station_reads_only_its_own_cases_and_its_bureau_reads_all_of_its_stations(
    container_factory, config, broker, engine
):
    """The topic exchange of cases: a station's system binds its own queue and sees only its
    cases; the bureau's department queue ("environment.*") sees every station's."""
    from gridflow_departments.service import DepartmentsService

    container = container_factory(DepartmentsService, config)
    container.start()
    channel = broker.default_channel
    # Declared at start for every unit served over AMQP, before any case: a station's system
    # that connects first finds its queue (a passive declare fails on a missing queue).
    for unit in ("environment-330302001", "police-330302005", "command-330302"):
        kombu.Queue(c.unit_queue(unit), no_declare=True)(channel).queue_declare(passive=True)
    kombu.Queue(c.department_queue("environment"), no_declare=True)(channel).queue_declare(
        passive=True
    )
    wuma, songtai = f"IT-{uuid.uuid4().hex[:8]}", f"IT-{uuid.uuid4().hex[:8]}"
    for case_id, station, street in (
        (wuma, "environment-330302001", "330302001"),
        (songtai, "environment-330302002", "330302002"),
    ):
        with entrypoint_waiter(container, "on_case_routed"):
            publish(
                broker, c.ROUTING, c.CASE_ROUTED, _medical_waste(engine, case_id, station, street)
            )
    ours = {wuma, songtai}

    def cases_in(queue: str, want: int) -> list[tuple[str, str, str]]:
        return [
            (m["case_id"], m["unit"], m["role"])
            for m in take(broker, queue, want=want, timeout=5)
            if m["case_id"] in ours
        ]

    assert cases_in(c.unit_queue("environment-330302001"), 1) == [
        (wuma, "environment-330302001", "lead")
    ]
    assert cases_in(c.unit_queue("environment-330302002"), 1) == [
        (songtai, "environment-330302002", "lead")
    ]
    assert sorted(cases_in(c.department_queue("environment"), 2)) == sorted(
        [(wuma, "environment-330302001", "lead"), (songtai, "environment-330302002", "lead")]
    )
    # The assisting department (no health station in these streets): its bureau, marked so.
    assert sorted(cases_in(c.unit_queue("health-330302"), 2)) == sorted(
        [(wuma, "health-330302", "assisting"), (songtai, "health-330302", "assisting")]
    )
    sla_queue = c.event_queue(c.DEPARTMENTS, c.CASE_DISPATCHED, c.SLA, "on_case_dispatched")
    announced = [
        m["payload"]
        for m in take(broker, sla_queue, want=20, timeout=5)
        if m["payload"]["case_id"] in ours
    ]
    assert {p["queue"] for p in announced} == {"gridflow.department.environment"}
    assert sorted((d["unit"], d["role"], d["adapter"]) for d in announced[0]["deliveries"]) == [
        (
            "environment-330302001" if announced[0]["case_id"] == wuma else "environment-330302002",
            "lead",
            "amqp",
        ),
        ("health-330302", "assisting", "amqp"),
    ]


def test_sla_catches_up_every_colour_of_a_clock_dispatched_long_ago(
    container_factory, config, broker, engine
):
    from gridflow_sla.service import SlaService

    colours = observe(broker, c.SLA, c.CASE_COLOUR_CHANGED)
    container = container_factory(SlaService, config)
    container.start()
    case_id = f"IT-{uuid.uuid4().hex[:8]}"
    # A 2-hour (wall-clock) limit dispatched 5 hours ago: yellow, orange and red are all past.
    with entrypoint_waiter(container, "on_case_dispatched"):
        publish(
            broker,
            c.DEPARTMENTS,
            c.CASE_DISPATCHED,
            dispatched_payload(engine, case_id),
            occurred_at=dt.datetime.now(CST) - dt.timedelta(hours=5),
        )
    seen = take(broker, colours.name, want=4, timeout=5)
    # Green is where every clock starts and is not announced; each later colour is, once.
    assert [(m["payload"]["colour"], m["payload"]["action"]) for m in seen] == [
        ("yellow", "remind_handler"),
        ("orange", "supervise"),
        ("red", "escalate"),
    ]
    # Each colour happened at the instant it was reached (0.75, 1.0 and 1.5 of two hours after
    # dispatch), not when the handler ran.
    instants = [dt.datetime.fromisoformat(m["occurred_at"]) for m in seen]
    dispatched = instants[0] - dt.timedelta(minutes=90)
    assert [round((t - dispatched).total_seconds() / 60) for t in instants] == [90, 120, 180]
