"""The rules as routing, sla, departments and notify apply them: each service's handlers on a
SQLite file through the real idempotent consumer, one service at a time (no broker)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from gridflow_common import contracts as c
from gridflow_common import metrics
from gridflow_common.domain import vocabulary as v
from tests.unit.service_harness import CST, ServiceUnderTest, lucheng_files, new_case_id

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
DISTRICT = "330302"
COMMAND = f"command-{DISTRICT}"
WUMA_GRID = "330302001001001"


# ------------------------------------------------------------------------------------ routing


@pytest.fixture
def routing(tmp_path):
    from gridflow_routing.handlers import DEFINITION

    service = ServiceUnderTest(DEFINITION, tmp_path, T0)
    yield service
    service.close()


def _register(routing, category: str | None) -> str:
    case_id = new_case_id()
    assert (
        routing.deliver(
            c.INTAKE,
            c.CASE_REGISTERED,
            {
                "case_id": case_id,
                "category": category,
                "area_code": WUMA_GRID,
                "description": "青园社区门口堆放垃圾",
                "location": None,
            },
        )
        == "done"
    )
    return case_id


def _report(
    routing, case_id: str, status: str, assignment_id: str, category: str | None = None
) -> str:
    return routing.deliver(
        c.INTAKE,
        c.CASE_STATUS_REPORTED,
        {
            "case_id": case_id,
            "assignment_id": assignment_id,
            "sender": "someone",
            "status": status,
            "note": None,
            "category": category,
        },
    )


def test_current_assignment_is_what_routing_decided_last(routing):
    from gridflow_routing.handlers import current_assignment

    case_id = _register(routing, "component.streetlight")
    with routing.runtime.work() as work:
        first = current_assignment(work, case_id)
        assert current_assignment(work, "no-such-case") is None
    assert first == {
        "assignment_id": f"{case_id}-1",
        "holder": "urban_management-330302001",
        "lead": "urban_management",
        "tier": v.STREET,
        "assisting": [],
        "category": "component.streetlight",
        "seq": 1,
    }
    _report(routing, case_id, v.BEYOND_AUTHORITY, f"{case_id}-1")
    with routing.runtime.work() as work:
        second = current_assignment(work, case_id)
    assert (second["assignment_id"], second["holder"], second["tier"], second["seq"]) == (
        f"{case_id}-2",
        "urban_management-330302",
        v.DISTRICT,
        2,
    )


def test_a_case_returned_twice_waits_at_the_command_center_instead_of_bouncing(routing):
    from gridflow_routing.handlers import current_assignment

    case_id = _register(routing, "event.junk_pile")
    _report(routing, case_id, v.RETURNED, f"{case_id}-1")  # no category named: to the center
    assert [(t, p["holder"], p["assignment_id"]) for t, p in routing.emitted()] == [
        (c.CASE_ROUTED, "urban_management-330302001", f"{case_id}-1"),
        (c.CASE_ROUTED, COMMAND, f"{case_id}-2"),
    ]

    # Returned again at the command center, then beyond authority there: no new assignment
    # (so no new clock), no escalation counted; the case waits for the center's order.
    _report(routing, case_id, v.RETURNED, f"{case_id}-2")
    _report(routing, case_id, v.BEYOND_AUTHORITY, f"{case_id}-2", category="event.noise")
    emitted = routing.emitted()
    assert [(t, p["holder"], p["cause"], p["assignment_id"]) for t, p in emitted] == [
        (c.CASE_AWAITING_ORDER, COMMAND, v.RETURNED, f"{case_id}-2"),
        (c.CASE_AWAITING_ORDER, COMMAND, v.BEYOND_AUTHORITY, f"{case_id}-2"),
    ]
    assert all("等待指挥中心指令" in p["explanation"] for _, p in emitted)
    with routing.runtime.work() as work:
        now = current_assignment(work, case_id)
    assert (now["assignment_id"], now["holder"], now["category"]) == (
        f"{case_id}-2",
        COMMAND,
        "event.junk_pile",
    )
    from gridflow_routing.models import assignments

    (row,) = routing.rows(assignments)
    assert (row["escalations"], row["seq"]) == (0, 2)


def test_a_red_warning_at_the_command_center_moves_nothing(routing):
    case_id = _register(routing, None)  # unclassified: straight to the command center
    routing.emitted()
    assert (
        routing.deliver(
            c.SLA,
            c.CASE_COLOUR_CHANGED,
            {
                "case_id": case_id,
                "assignment_id": f"{case_id}-1",
                "colour": v.RED,
                "action": v.ACTION_ESCALATE,
                "fraction": 2.0,
                "holder": COMMAND,
            },
        )
        == "done"
    )
    assert routing.emitted() == []


# ------------------------------------------------------------------------------------ sla


@pytest.fixture
def sla(tmp_path):
    from gridflow_sla.handlers import DEFINITION

    service = ServiceUnderTest(DEFINITION, tmp_path, T0)
    yield service
    service.close()


def _dispatch(
    service,
    case_id: str,
    category: str | None,
    holder: str,
    at: dt.datetime = T0,
    seq: int = 1,
    reason: str = v.REASON_NEW,
) -> str:
    return service.deliver(
        c.DEPARTMENTS,
        c.CASE_DISPATCHED,
        {
            "case_id": case_id,
            "assignment_id": f"{case_id}-{seq}",
            "reason": reason,
            "category": category,
            "tier": v.DISTRICT if category is None else v.STREET,
            "holder": holder,
            "lead": None,
            "assisting": [],
            "escalations": 0,
            "area_code": WUMA_GRID,
            "description": "无法分类的反映",
            "location": None,
            "queue": c.department_queue(holder),
        },
        at=at,
    )


def test_an_unclassified_case_gets_a_triage_clock_from_the_jurisdiction(sla):
    from gridflow_sla.models import clocks

    case_id = new_case_id()
    assert _dispatch(sla, case_id, None, COMMAND) == "done"
    (clock,) = sla.rows(clocks)
    # Lucheng has no settings.csv: the default, 2 working hours from Monday 09:00.
    assert (clock["limit_amount"], clock["limit_unit"], clock["holder"]) == (
        2,
        "working_hours",
        COMMAND,
    )
    assert clock["due"] == dt.datetime(2026, 3, 2, 11, 0, tzinfo=CST)
    # Its green is said (the case view has no category to infer a running clock from).
    assert [(t, p["colour"], p["action"]) for t, p in sla.emitted()] == [
        (c.CASE_COLOUR_CHANGED, v.GREEN, v.ACTION_NONE)
    ]
    # Just under 3 of its 2 working hours gone at noon: past orange (1.0), short of red (1.5).
    noon = dt.datetime(2026, 3, 2, 11, 59, tzinfo=CST)
    assert sla.deliver(c.INTAKE, c.CLOCK_ADVANCED, {"now": noon.isoformat()}, at=noon) == "done"
    assert [p["colour"] for _, p in sla.emitted()] == [v.YELLOW, v.ORANGE]


def test_the_triage_limit_comes_from_settings_csv(tmp_path):
    from gridflow_sla.handlers import DEFINITION
    from gridflow_sla.models import clocks

    files = {
        **lucheng_files(),
        "settings.csv": ("key,value\ntriage_time_limit,30\ntriage_time_unit,minutes\n"),
    }
    sla = ServiceUnderTest(DEFINITION, tmp_path, T0, files)
    try:
        _dispatch(sla, new_case_id(), None, COMMAND)
        (clock,) = sla.rows(clocks)
        assert clock["due"] == T0 + dt.timedelta(minutes=30)
    finally:
        sla.close()


def test_a_clock_near_year_9999_neither_fails_nor_poisons_the_sweep(sla):
    from gridflow_sla.handlers import periodic
    from gridflow_sla.models import clocks

    ordinary = new_case_id()
    assert _dispatch(sla, ordinary, "component.streetlight", "urban_management-330302001") == (
        "done"
    )
    far = dt.datetime(9999, 12, 31, 16, 0, tzinfo=CST)  # Friday; no working day follows
    sla.clock.set(far)
    for category in ("component.streetlight", None):  # working days, and the triage clock
        assert _dispatch(sla, new_case_id(), category, COMMAND, at=far) == "done"
    # The sweep at the end of time still walks every other clock through its colours.
    sla.emitted()
    assert periodic(sla.runtime) >= 1
    walked = [(p["case_id"], p["colour"]) for _, p in sla.emitted()]
    assert walked == [(ordinary, v.YELLOW), (ordinary, v.ORANGE), (ordinary, v.RED)]
    assert periodic(sla.runtime) == 0
    failed = sla.rows(sla.runtime.tables["failed"])
    assert failed == []
    assert {r["case_id"] for r in sla.rows(clocks)} == {ordinary}


def _gauge() -> dict[str, float]:
    return {s.labels["colour"]: s.value for m in metrics.OPEN_CLOCKS.collect() for s in m.samples}


def test_open_clocks_are_exported_on_the_simulated_clock_of_the_embedded_default(sla):
    from gridflow_sla.handlers import periodic

    metrics.OPEN_CLOCKS.clear()
    _dispatch(sla, new_case_id(), "component.streetlight", "urban_management-330302001")
    _dispatch(sla, new_case_id(), None, COMMAND)
    assert sla.clock.simulated
    periodic(sla.runtime)
    assert _gauge() == {v.GREEN: 2, v.YELLOW: 0, v.ORANGE: 0, v.RED: 0}


def test_the_embedded_default_runs_slas_periodic_on_the_simulated_clock():
    import inspect

    from gridflow_app import embedded

    # The only periodic work is SLA's; the simulated clock must not switch it off.
    assert "not self.clock.simulated" not in inspect.getsource(embedded.EmbeddedGridflow._tick)


# ------------------------------------------------------------------------------------ departments


def test_department_messages_show_instants_in_the_citys_zone(tmp_path):
    from gridflow_departments.handlers import DEFINITION

    for files, expected in (
        (None, "2026-03-02T09:00:00+08:00"),
        (
            {**lucheng_files(), "settings.csv": "key,value\ntime_zone,Asia/Tokyo\n"},
            "2026-03-02T10:00:00+09:00",
        ),
    ):
        folder = tmp_path / expected[-6:].replace(":", "")
        folder.mkdir()
        departments = ServiceUnderTest(DEFINITION, folder, T0, files)
        try:
            case_id = new_case_id()
            utc = T0.astimezone(dt.timezone.utc)
            assert (
                departments.deliver(
                    c.ROUTING,
                    c.CASE_ROUTED,
                    {
                        "case_id": case_id,
                        "assignment_id": f"{case_id}-1",
                        "reason": v.REASON_NEW,
                        "category": "event.medical_waste",
                        "tier": v.STREET,
                        "holder": "environment-330302104",
                        "lead": "environment",
                        "assisting": ["health"],
                        "escalations": 0,
                        "area_code": "330302104001001",
                        "description": "医疗废弃物",
                        "location": None,
                    },
                    at=utc,
                )
                == "done"
            )
            (message,) = [
                body
                for key, body in departments.outbox()
                if key == "environment.environment-330302104"
            ]
            assert message["dispatched_at"] == expected
            assert message["handler"] == "environment-330302104"
            # One working day (the category's limit) from Monday morning: the end of Tuesday's
            # office hours, in the city's zone.
            assert message["due_at"] == "2026-03-03T17:30:00" + expected[-6:]
        finally:
            departments.close()


# ------------------------------------------------------------------------------------ notify


@pytest.fixture
def notify(tmp_path):
    from gridflow_notify.handlers import DEFINITION

    service = ServiceUnderTest(DEFINITION, tmp_path, T0)
    yield service
    service.close()


ENGLISH_TERMS = sorted(
    {value for name, value in vars(v).items() if name.isupper() and isinstance(value, str)}
)


def _english_terms_in(text: str) -> list[str]:
    return [
        term
        for term in ENGLISH_TERMS
        if re.search(rf"(?<![A-Za-z_]){re.escape(term)}(?![A-Za-z_])", text)
    ]


def test_no_vocabulary_term_in_english_reaches_a_notification_text(notify):
    from gridflow_notify.models import notifications

    case_id = "C20260302-0001"
    station = "urban_management-330302001"
    for reason in v.ROUTING_REASONS:
        for category, holder in (("event.junk_pile", station), (None, COMMAND)):
            notify.deliver(
                c.DEPARTMENTS,
                c.CASE_DISPATCHED,
                {
                    "case_id": case_id,
                    "assignment_id": f"{case_id}-1",
                    "reason": reason,
                    "category": category,
                    "tier": v.STREET,
                    "holder": holder,
                    "lead": None,
                    "assisting": [],
                    "escalations": 0,
                    "area_code": WUMA_GRID,
                    "description": "垃圾",
                    "location": None,
                    "queue": "q",
                },
            )
    for colour in v.COLOURS:
        for action in v.WARNING_ACTIONS:
            notify.deliver(
                c.SLA,
                c.CASE_COLOUR_CHANGED,
                {
                    "case_id": case_id,
                    "assignment_id": f"{case_id}-1",
                    "colour": colour,
                    "action": action,
                    "fraction": 1.0,
                    "holder": station,
                },
            )
    for cause in (v.RETURNED, v.BEYOND_AUTHORITY):
        notify.deliver(
            c.ROUTING,
            c.CASE_AWAITING_ORDER,
            {
                "case_id": case_id,
                "assignment_id": f"{case_id}-2",
                "holder": COMMAND,
                "cause": cause,
                # The holder's own words travel as written (the template quotes them); what
                # must not leak is Gridflow's vocabulary.
                "explanation": "不属于本单位职责",
            },
        )
    texts = [r["text"] for r in notify.rows(notifications)]
    reasons = {r["reason"] for r in notify.rows(notifications)}
    assert reasons == {
        v.DISPATCHED,
        v.ACTION_REMIND,
        v.ACTION_SUPERVISE,
        v.ACTION_ESCALATE,
        v.AWAITING_ORDER,
        # The reporter hears of a new case's dispatch (issue 10.6); its text is rendered when
        # sent (test_residents_hear_back checks every template for English words).
        "resident_dispatched",
    }
    assert any("黄色预警" in t for t in texts)  # the city's template (warning_yellow)
    assert {t: _english_terms_in(t) for t in texts if _english_terms_in(t)} == {}
