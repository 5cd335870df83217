"""Intake's service layer on the embedded default's SQLite: holders' reports (with routing's
word on who holds a case, through a fake ``holder_of``), verification, evaluation, the case view
and the projections of the other services' events, delivered in whatever order.

The in-memory bus is pumped by hand, so nothing waits on background threads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import queue

import pytest
import sqlalchemy as sa

from gridflow_app.embedded import EmbeddedGridflow
from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from gridflow_intake import handlers as h
from gridflow_intake import models
from tests.credentials import SignedApi
from tests.intake_messages import colour_changed
from tests.unit.test_report_validation import _valid_report as _report

ENVIRONMENT_STATION = "environment-330302104"
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def g(gridflow):
    return gridflow


@pytest.fixture
def intake(g):
    return g.runtimes[c.INTAKE]


def _pump(g: EmbeddedGridflow, *, hold_for_intake: bool = False, limit: int = 200) -> list:
    """Deliver everything on the bus and what it causes; with ``hold_for_intake`` the messages
    for intake are kept back and returned (intake has not heard of them yet)."""
    held = []
    for _ in range(limit):
        try:
            consumer, method, message = g.bus.deliveries.get_nowait()
        except queue.Empty:
            return held
        if hold_for_intake and consumer == c.INTAKE:
            held.append((method, message))
            continue
        handler = g.definitions[consumer].handlers[method]
        assert g.runtimes[consumer].consume(method, message, handler) == "done"
    raise AssertionError(f"the bus did not drain within {limit} deliveries")


def _deliver(g: EmbeddedGridflow, method: str, message: dict) -> str:
    return g.runtimes[c.INTAKE].consume(method, message, h.HANDLERS[method])


def _register(intake, **changes) -> str:
    with intake.work() as work:
        status, answer = h.register_report(work, _report(**changes))
    assert status == 201, answer
    return answer["case_id"]


def _view(intake, case_id: str) -> dict:
    with intake.work() as work:
        return h.case_view(work, case_id)


def _update(intake, case_id: str, sender: str, status: str, holder_of=None, **extra):
    update = {"sender": sender, "status": status, **extra}
    with intake.work() as work:
        if holder_of is None:
            return h.report_status(work, case_id, update)
        return h.report_status(work, case_id, update, holder_of=holder_of)


def _refused(call) -> h.Rejected:
    with pytest.raises(h.Rejected) as refused:
        call()
    return refused.value


def _counts(g: EmbeddedGridflow) -> dict[str, int]:
    with g.engine.connect() as conn:
        counts = {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (models.cases, models.timeline, models.colours)
        }
    counts["outbox"] = g.runtimes[c.INTAKE].pending_outbox()
    counts["bus"] = g.bus.deliveries.qsize()
    return counts


def _dispatched(
    case_id: str,
    seq: int,
    holder: str,
    *,
    lead: str | None = None,
    reason: str = v.REASON_NEW,
    tier: str = v.STREET,
    category=None,
    at: dt.datetime | None = None,
    with_seq: bool = False,
) -> dict:
    """A case_dispatched message as departments sends it."""
    payload = {
        "case_id": case_id,
        "assignment_id": f"{case_id}-{seq}",
        "reason": reason,
        "category": category,
        "tier": tier,
        "holder": holder,
        "lead": lead,
        "assisting": [],
        "escalations": seq - 1,
        "area_code": "330302104001001",
        "jurisdiction_version": 1,
        "explanation": "test",
        "description": "",
        "location": None,
        "queue": c.department_queue(lead or holder),
    }
    if with_seq:
        payload["seq"] = seq
    event = c.make_event(
        c.DEPARTMENTS, c.CASE_DISPATCHED, at or dt.datetime(2026, 1, 5, 9, 0, tzinfo=CST), payload
    )
    return event.to_message()


def _as_assignment(message: dict, seq: int = 1) -> dict:
    p = message["payload"]
    return {
        "assignment_id": p["assignment_id"],
        "holder": p["holder"],
        "lead": p["lead"],
        "tier": p["tier"],
        "assisting": p["assisting"],
        "category": p["category"],
        "seq": seq,
    }


# ----------------------------------------------------------- defect 9: a holder that answers at once


@pytest.fixture
def undelivered(g, intake):
    """A case routed and pushed to the environment station, whose case_dispatched intake has
    not seen yet: (case id, the held case_dispatched message)."""
    case_id = _register(intake)
    held = _pump(g, hold_for_intake=True)
    [message] = [m for method, m in held if method == "on_case_dispatched"]
    assert _view(intake, case_id)["handler"] is None
    return case_id, message


@pytest.mark.parametrize("sender", [ENVIRONMENT_STATION, "environment"])
def test_holder_answering_before_intake_saw_the_dispatch_is_taken_on_routings_word(
    g, intake, undelivered, sender
):
    case_id, message = undelivered
    asked = []

    def holder_of(asked_case_id):
        asked.append(asked_case_id)
        return _as_assignment(message)

    g.clock.set(g.clock.now() + dt.timedelta(seconds=1))  # the answer comes a moment later
    assert _update(intake, case_id, sender, v.ACCEPTED, holder_of) == (
        202,
        {"case_id": case_id, "status": v.ACCEPTED},
    )
    assert asked == [case_id]
    view = _view(intake, case_id)
    assert (view["status"], view["handler"], view["lead"], view["tier"]) == (
        v.ACCEPTED,
        ENVIRONMENT_STATION,
        "environment",
        v.STREET,
    )
    # Routing hears the report against the assignment it made.
    [reported] = [
        m
        for consumer, _, m in list(g.bus.deliveries.queue)
        if consumer == c.ROUTING and m["event_type"] == c.CASE_STATUS_REPORTED
    ]
    assert reported["payload"]["assignment_id"] == message["payload"]["assignment_id"]

    # The dispatch's projection, arriving now, does not undo the holder's answer.
    assert _deliver(g, "on_case_dispatched", message) == "done"
    view = _view(intake, case_id)
    assert (view["status"], view["handler"]) == (v.ACCEPTED, ENVIRONMENT_STATION)
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds == [v.REGISTERED, v.ENTRY_ROUTED, v.DISPATCHED, v.ACCEPTED]


def test_a_unit_routing_does_not_show_holding_the_case_is_still_refused(g, intake, undelivered):
    case_id, message = undelivered
    before = _counts(g)
    refused = _refused(
        lambda: _update(intake, case_id, "police", v.ACCEPTED, lambda _: _as_assignment(message))
    )
    assert refused.status == 409
    assert ENVIRONMENT_STATION in refused.errors["from"][0]
    assert _counts(g) == before
    assert _view(intake, case_id)["status"] == v.REGISTERED


def test_without_routings_word_a_sender_intake_does_not_show_holding_is_refused(
    intake, undelivered
):
    case_id, _ = undelivered
    assert _refused(lambda: _update(intake, case_id, ENVIRONMENT_STATION, v.ACCEPTED)).status == 409
    assert (
        _refused(
            lambda: _update(intake, case_id, ENVIRONMENT_STATION, v.ACCEPTED, lambda _: None)
        ).status
        == 409
    )


def test_routing_unreachable_is_a_503_that_changes_nothing(g, intake, undelivered):
    case_id, _ = undelivered
    before = _counts(g)

    def holder_of(_):
        raise TimeoutError("routing did not answer")

    refused = _refused(lambda: _update(intake, case_id, ENVIRONMENT_STATION, v.ACCEPTED, holder_of))
    assert (refused.status, list(refused.errors)) == (503, ["from"])
    assert _counts(g) == before


def test_routing_is_not_asked_when_intake_already_shows_the_sender_holding(g, intake):
    case_id = _register(intake)
    _pump(g)

    def holder_of(_):
        raise AssertionError("asked routing though intake knew")

    assert _update(intake, case_id, ENVIRONMENT_STATION, v.ACCEPTED, holder_of)[0] == 202


def test_an_older_assignment_arriving_late_never_overwrites_a_newer_one(g, intake):
    case_id = _register(intake)
    _pump(g, hold_for_intake=True)
    newer = _dispatched(
        case_id,
        2,
        "environment-330302",
        lead="environment",
        tier=v.DISTRICT,
        reason=v.REASON_ESCALATED,
        with_seq=True,
    )
    older = _dispatched(case_id, 1, ENVIRONMENT_STATION, lead="environment")
    assert _deliver(g, "on_case_dispatched", newer) == "done"
    assert _deliver(g, "on_case_dispatched", older) == "done"
    view = _view(intake, case_id)
    assert (view["handler"], view["tier"], view["escalations"]) == (
        "environment-330302",
        v.DISTRICT,
        1,
    )
    assert view["status"] == v.DISPATCHED


def test_the_same_dispatch_announced_twice_is_projected_once(g, intake):
    case_id = _register(intake)
    held = _pump(g, hold_for_intake=True)
    [message] = [m for method, m in held if method == "on_case_dispatched"]
    assert _deliver(g, "on_case_dispatched", message) == "done"
    assert _update(intake, case_id, ENVIRONMENT_STATION, v.ACCEPTED)[0] == 202
    again = dict(message, event_id="another-replica-sent-it-again")
    assert _deliver(g, "on_case_dispatched", again) == "done"
    view = _view(intake, case_id)
    assert view["status"] == v.ACCEPTED
    assert [e["kind"] for e in view["timeline"]].count(v.DISPATCHED) == 1


# ------------------------------------------------------ defect 2: colours out of order, twice each


def test_colours_out_of_order_and_announced_twice_end_at_the_latest(g, intake):
    case_id = _register(intake)
    _pump(g)
    assignment_id = f"{case_id}-1"
    start = dt.datetime(2026, 1, 5, 9, 0, tzinfo=CST)
    announced = [
        colour_changed(case_id, assignment_id, colour, start + dt.timedelta(days=day))
        for day, colour in ((1, v.YELLOW), (2, v.ORANGE), (3, v.RED))
    ]
    # As two SLA replicas would: every colour twice (another event id each time), latest first.
    for message in [*reversed(announced), *announced]:
        assert _deliver(g, "on_case_colour_changed", message) in ("done", "duplicate")
        other_replica = {**message, "event_id": "replica-2-" + message["event_id"]}
        assert _deliver(g, "on_case_colour_changed", other_replica) in ("done", "duplicate")
    view = _view(intake, case_id)
    assert view["colour"] == v.RED
    warnings = [e for e in view["timeline"] if e["kind"] == v.ENTRY_WARNING]
    assert [w["colour"] for w in warnings] == [v.YELLOW, v.ORANGE, v.RED]


def test_two_colours_of_one_instant_end_at_the_more_severe_in_either_order(g, intake):
    case_id = _register(intake)
    _pump(g)
    at = dt.datetime(2026, 1, 6, 9, 0, tzinfo=CST)
    orange = colour_changed(case_id, f"{case_id}-1", v.ORANGE, at)
    red = colour_changed(case_id, f"{case_id}-1", v.RED, at)
    for message in (red, orange):
        assert _deliver(g, "on_case_colour_changed", message) == "done"
    assert _view(intake, case_id)["colour"] == v.RED


# ------------------------------------------------ defect 11: an unclassified case's triage clock


def test_an_unclassified_case_at_the_command_center_shows_its_clocks_colour(g, intake):
    case_id = _register(intake, category=None, description="有个情况需要反映一下")
    _pump(g)
    view = _view(intake, case_id)
    assert view["category"] is None and view["status"] == v.DISPATCHED
    assert view["handler"].startswith("command-")
    assert view["colour"] == v.GREEN
    _deliver(
        g,
        "on_case_colour_changed",
        colour_changed(
            case_id, f"{case_id}-1", v.YELLOW, dt.datetime(2026, 1, 5, 11, 0, tzinfo=CST)
        ),
    )
    assert _view(intake, case_id)["colour"] == v.YELLOW


# ----------------------------------------------------------- defect 12: evaluated once


def _closed_case(g, intake) -> str:
    case_id = _register(intake)
    _pump(g)
    assert _update(intake, case_id, ENVIRONMENT_STATION, v.RESOLVED)[0] == 202
    with intake.work() as work:
        assert h.verify(work, case_id, {"passed": True})[1]["status"] == v.CLOSED
    return case_id


def test_a_second_evaluation_is_refused_with_409_and_the_first_stands(g, intake):
    case_id = _closed_case(g, intake)
    with intake.work() as work:
        assert h.evaluate(work, case_id, {"satisfaction": 4})[0] == 200
    before = _counts(g)

    def again():
        with intake.work() as work:
            h.evaluate(work, case_id, {"satisfaction": 1})

    refused = _refused(again)
    assert (refused.status, list(refused.errors)) == (409, ["satisfaction"])
    assert _view(intake, case_id)["satisfaction"] == 4
    assert _counts(g) == before


def test_a_second_evaluation_through_the_api_answers_409(g):
    api = SignedApi(g)
    case_id = _closed_case(g, g.runtimes[c.INTAKE])
    path = f"/api/v1/cases/{case_id}/evaluation"
    first = api.handle("POST", path, json.dumps({"satisfaction": 4}).encode(), {})
    second = api.handle("POST", path, json.dumps({"satisfaction": 1}).encode(), {})
    assert (first.status, second.status) == (200, 409)
    assert "satisfaction" in second.body["errors"]


# ------------------------------------------------------ defect 13: a category beside `accepted`


@pytest.mark.parametrize("status", [v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED])
def test_a_category_beside_a_report_that_keeps_the_case_is_a_400_naming_category(g, intake, status):
    case_id = _register(intake)
    _pump(g)
    before = _counts(g)
    refused = _refused(
        lambda: _update(intake, case_id, ENVIRONMENT_STATION, status, category="event.noise")
    )
    assert (refused.status, list(refused.errors)) == (400, ["category"])
    assert _counts(g) == before
    view = _view(intake, case_id)
    assert (view["status"], view["category"]) == (v.DISPATCHED, "event.medical_waste")


def test_a_category_beside_a_return_still_reclassifies_through_routing(g, intake):
    case_id = _register(intake)
    _pump(g)
    assert (
        _update(intake, case_id, ENVIRONMENT_STATION, v.RETURNED, category="event.junk_pile")[0]
        == 202
    )
    _pump(g)
    assert _view(intake, case_id)["category"] == "event.junk_pile"


# ------------------------------------------------------------ defect 14: instants in the city's zone


def test_every_instant_in_the_case_view_is_in_the_jurisdictions_zone(g, intake):
    case_id = _closed_case(g, intake)
    view = _view(intake, case_id)
    instants = [view["registered_at"], view["closed_at"], *(e["at"] for e in view["timeline"])]
    assert all(
        dt.datetime.fromisoformat(i).utcoffset() == dt.timedelta(hours=8) for i in instants
    ), instants


def test_a_jurisdiction_in_another_zone_shows_the_case_in_that_zone(g, intake):
    case_id = _register(intake)
    store = g.runtimes[c.INTAKE].jurisdictions
    version, j = store.active()
    store._cache[version] = dataclasses.replace(j, time_zone="Asia/Kathmandu")
    view = _view(intake, case_id)
    assert dt.datetime.fromisoformat(view["registered_at"]).utcoffset() == dt.timedelta(
        hours=5, minutes=45
    )


# ------------------------------------------------------------ names beside the codes


def test_the_case_view_names_its_category_holder_lead_assisting_and_area(g, intake):
    case_id = _register(intake)
    _pump(g)
    view = _view(intake, case_id)
    # The codes as they were, and beside them the names a Chinese reader needs (Lucheng's).
    assert (view["category"], view["handler"], view["lead"], view["assisting"]) == (
        "event.medical_waste",
        ENVIRONMENT_STATION,
        "environment",
        ["health"],
    )
    assert view["area_code"] == "330302104001001"
    assert (view["category_name"], view["handler_name"], view["lead_name"]) == (
        "医疗废弃物违规堆放",
        "藤桥环保所",
        "鹿城区生态环境分局",
    )
    assert view["assisting_names"] == ["鹿城区卫生健康局"]
    assert view["area_name"] == "戍浦社区第1网格"
    assert c.CaseSchema().validate(view) == {}


def test_the_case_view_names_from_the_cases_own_jurisdiction_and_none_for_unknown_codes(g, intake):
    case_id = _register(intake)
    _pump(g)
    # The case was made under another version (not the active one), which names the station
    # otherwise and lacks its department: the view follows the case's version, and a code that
    # version does not know has no name (the code is still shown).
    store = g.runtimes[c.INTAKE].jurisdictions
    _, j = store.active()
    renamed = tuple(
        dataclasses.replace(u, name="藤桥环保所（旧）") if u.code == ENVIRONMENT_STATION else u
        for u in j.units
    )
    store._cache[99] = dataclasses.replace(
        j, units=renamed, departments=tuple(d for d in j.departments if d.code != "environment")
    )
    with g.engine.begin() as conn:
        conn.execute(
            sa.update(models.cases)
            .where(models.cases.c.case_id == case_id)
            .values(jurisdiction_version=99)
        )
    view = _view(intake, case_id)
    assert view["handler_name"] == "藤桥环保所（旧）"
    assert view["lead"] == "environment" and view["lead_name"] is None
    assert view["assisting_names"] == ["鹿城区卫生健康局"]


def test_a_case_nobody_holds_yet_has_no_holder_names(g, intake, undelivered):
    case_id, _ = undelivered
    view = _view(intake, case_id)
    assert (view["handler"], view["handler_name"], view["lead_name"]) == (None, None, None)
    assert view["category_name"] == "医疗废弃物违规堆放"
    assert view["assisting"] == [] and view["assisting_names"] == []
