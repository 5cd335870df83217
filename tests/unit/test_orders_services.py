"""``case_order_given`` as routing and SLA act on it, each service's handlers on a SQLite file
through the real idempotent consumer (no broker): a new assignment for assign, escalate and
reopen; the clock stopped and resumed for hold and release; an order announced twice acts once."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from tests.unit.service_harness import CST, ServiceUnderTest, new_case_id
from tests.unit.test_service_rules import _dispatch, _register

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
SQUAD = "urban_management-330302001"


def _order(service, case_id: str, kind: str, at: dt.datetime = T0, order_id=None, **fields):
    payload = {
        "order_id": order_id or uuid.uuid4().hex,
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "kind": kind,
        "by": "user:command",
        "status_before": v.DISPATCHED,
        "status": v.DISPATCHED,
        **fields,
    }
    return service.deliver(c.INTAKE, c.CASE_ORDER_GIVEN, payload, at=at)


@pytest.fixture
def routing(tmp_path):
    from gridflow_routing.handlers import DEFINITION

    service = ServiceUnderTest(DEFINITION, tmp_path, T0)
    yield service
    service.close()


@pytest.fixture
def sla(tmp_path):
    from gridflow_sla.handlers import DEFINITION

    service = ServiceUnderTest(DEFINITION, tmp_path, T0)
    yield service
    service.close()


def _routed(routing) -> list[dict]:
    return [p for key, p in routing.emitted() if key == c.CASE_ROUTED]


def test_assign_is_a_new_assignment_to_the_unit_named_and_no_escalation(routing):
    case_id = _register(routing, None)  # unclassified: at the command center
    routing.emitted()
    order_id = uuid.uuid4().hex
    assert (
        _order(
            routing,
            case_id,
            v.ORDER_ASSIGN,
            order_id=order_id,
            unit=SQUAD,
            category="event.junk_pile",
        )
        == "done"
    )
    (routed,) = _routed(routing)
    assert (routed["reason"], routed["holder"], routed["lead"], routed["tier"]) == (
        v.REASON_ASSIGNED,
        SQUAD,
        "urban_management",
        v.STREET,
    )
    assert (routed["seq"], routed["escalations"], routed["category"]) == (2, 0, "event.junk_pile")
    # The same order announced again (a republish has a new event id) moves nothing.
    assert _order(routing, case_id, v.ORDER_ASSIGN, order_id=order_id, unit=SQUAD) == "done"
    assert _routed(routing) == []


def test_escalate_counts_and_reopen_goes_back_to_the_last_holder_as_rework(routing):
    case_id = _register(routing, "event.junk_pile")
    routing.emitted()
    assert _order(routing, case_id, v.ORDER_ESCALATE) == "done"
    (up,) = _routed(routing)
    assert (up["reason"], up["tier"], up["escalations"]) == (v.REASON_ESCALATED, v.DISTRICT, 1)
    assert _order(routing, case_id, v.ORDER_REOPEN) == "done"
    (back,) = _routed(routing)
    assert (back["reason"], back["holder"], back["seq"]) == (v.REASON_REWORK, up["holder"], 3)
    assert back["escalations"] == 1


@pytest.mark.parametrize(
    "kind", [v.ORDER_HOLD, v.ORDER_RELEASE, v.ORDER_REJECT, v.ORDER_SUPERVISE, v.ORDER_COMMENT]
)
def test_orders_that_move_nothing_make_no_assignment(routing, kind):
    case_id = _register(routing, "event.junk_pile")
    routing.emitted()
    assert _order(routing, case_id, kind, reason="x") == "done"
    assert _routed(routing) == []


def test_hold_stops_the_clock_and_release_resumes_it_with_the_due_moved_later(sla):
    from gridflow_sla.models import clocks

    case_id = new_case_id()
    assert _dispatch(sla, case_id, "event.junk_pile", SQUAD) == "done"
    (clock,) = sla.rows(clocks)
    assert clock["due"] == dt.datetime(2026, 3, 3, 17, 30, tzinfo=CST)
    held_at = T0 + dt.timedelta(hours=1)
    assert _order(sla, case_id, v.ORDER_HOLD, at=held_at, reason="x") == "done"
    (clock,) = sla.rows(clocks)
    assert clock["running_since"] is None and clock["next_transition_at"] is None
    assert clock["paused_at"] == held_at and clock["elapsed_before"] == 3600.0
    released = dt.datetime(2026, 3, 4, 9, 0, tzinfo=CST)
    sla.clock.set(released)
    assert _order(sla, case_id, v.ORDER_RELEASE, at=released) == "done"
    (clock,) = sla.rows(clocks)
    assert clock["running_since"] == released and clock["paused_at"] is None
    assert clock["due"] == dt.datetime(2026, 3, 5, 16, 30, tzinfo=CST)
    assert clock["next_transition_at"] is not None
    # A second release (redelivered) finds the clock running and changes nothing.
    assert _order(sla, case_id, v.ORDER_RELEASE, at=released + dt.timedelta(hours=1)) == "done"
    assert sla.rows(clocks)[0]["due"] == clock["due"]


def test_reject_stops_every_clock_of_the_case(sla):
    from gridflow_sla.models import clocks

    case_id = new_case_id()
    assert _dispatch(sla, case_id, "event.junk_pile", SQUAD) == "done"
    assert _order(sla, case_id, v.ORDER_REJECT, reason="不予立案") == "done"
    (clock,) = sla.rows(clocks)
    assert not clock["active"] and clock["next_transition_at"] is None


@pytest.fixture
def departments(tmp_path):
    from gridflow_departments.handlers import DEFINITION

    service = ServiceUnderTest(DEFINITION, tmp_path, T0)
    yield service
    service.close()


def _routed_to_squad(departments, case_id: str) -> None:
    assert (
        departments.deliver(
            c.ROUTING,
            c.CASE_ROUTED,
            {
                "case_id": case_id,
                "assignment_id": f"{case_id}-1",
                "reason": v.REASON_NEW,
                "category": "event.junk_pile",
                "tier": v.STREET,
                "holder": SQUAD,
                "lead": "urban_management",
                "assisting": [],
                "escalations": 0,
                "area_code": "330302001001001",
                "description": "堆放垃圾",
                "location": None,
            },
        )
        == "done"
    )
    departments.outbox()


@pytest.mark.parametrize(
    ("kind", "status"), [(v.ORDER_REJECT, v.REJECTED), (v.ORDER_MERGE, v.CLOSED)]
)
def test_a_case_finished_by_order_is_closed_for_the_unit_working_on_it(departments, kind, status):
    case_id = new_case_id()
    _routed_to_squad(departments, case_id)
    assert _order(departments, case_id, kind, reason="x", status=status) == "done"
    (message,) = [body for key, body in departments.outbox() if key.endswith(SQUAD)]
    assert (message["kind"], message["change"], message["status"]) == ("change", "closed", status)


@pytest.mark.parametrize("kind", [v.ORDER_HOLD, v.ORDER_SUPERVISE, v.ORDER_COMMENT])
def test_orders_that_leave_the_holder_at_work_send_it_nothing(departments, kind):
    case_id = new_case_id()
    _routed_to_squad(departments, case_id)
    assert _order(departments, case_id, kind, reason="x") == "done"
    assert departments.outbox() == []
