"""Extensions (延期) and pauses (挂起) on the clock: the holder asks (``extension_requested``,
``pause_requested``) and says the wait is over (``resumed``); the command center approves or
refuses; the due instant, the limit and the colours follow.

The domain's arithmetic (the extended limit in working time, the pause) and the requests'
checks are pure; the outcomes go through the HTTP API of the embedded default (the in-memory
bus pumped by hand); two approvals at once on PostgreSQL; SLA's consumer of a republished
approval.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.calendar import (
    SlaClock,
    TimeLimit,
    TimeUnit,
    extended_total,
    measure,
    resumed_due,
)
from gridflow_common.domain.jurisdiction_files import load_folder
from gridflow_intake import handlers as h
from gridflow_intake import models
from gridflow_sla.handlers import sweep
from gridflow_sla.models import clocks
from tests.unit.service_harness import ServiceUnderTest, new_case_id
from tests.unit.test_intake_cases import _pump
from tests.unit.test_orders import (
    MONDAY_0900,
    SQUAD,
    City,
    _instant,
    intake_on_postgresql,  # noqa: F401  (a fixture)
    orders_at_once,
)
from tests.unit.test_orders_domain import LUCHENG
from tests.unit.test_service_rules import _dispatch

CST = dt.timezone(dt.timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=CST)


@pytest.fixture
def city(gridflow) -> City:
    return City(gridflow)


@pytest.fixture(scope="module")
def lucheng():
    return load_folder(LUCHENG)


# -- the arithmetic --------------------------------------------------------------------------------


def test_an_extended_limit_is_the_working_time_from_dispatch_to_the_instant_approved(lucheng):
    """Scenario 07's streetlight: three working days from Monday 09:00 are due Thursday 17:30;
    extended to the next Tuesday 17:30, the limit is the working time from dispatch to then,
    and yellow (0.75 of it) comes the Monday after, not on Thursday morning."""
    cal = lucheng.calendar
    limit = TimeLimit(3, TimeUnit.WORKING_DAYS)
    clock = SlaClock.start(at(2, 9), limit, cal)
    assert clock.due == at(5, 17, 30)
    total = extended_total(clock.total_seconds, clock.due, at(10, 17, 30), limit, cal)
    assert total == measure(at(2, 9), at(10, 17, 30), limit, cal)
    clock.total_seconds, clock.due = total, at(10, 17, 30)
    yellow = clock.instant_of_fraction(0.75, cal)
    assert yellow is not None
    assert at(9, 10, 15) < yellow < at(9, 10, 30)
    assert clock.fraction(at(5, 9), cal) < 0.75  # without the extension: yellow since 08:38


def test_time_stopped_before_an_extension_counts_on_neither_side(lucheng):
    """A clock held (or paused) for a working day before its extension runs against the limit
    from dispatch to the new instant less that day: the day counts on neither side."""
    cal = lucheng.calendar
    limit = TimeLimit(1, TimeUnit.WORKING_DAYS)
    clock = SlaClock.start(at(2, 9), limit, cal)
    moved = resumed_due(clock.due, at(2, 10), at(3, 10), limit, cal)
    assert moved > clock.due
    total = extended_total(clock.total_seconds, moved, at(6, 17, 30), limit, cal)
    stopped = measure(at(2, 10), at(3, 10), limit, cal)
    assert total == pytest.approx(measure(at(2, 9), at(6, 17, 30), limit, cal) - stopped)


def test_an_extension_in_natural_hours_adds_natural_time(lucheng):
    limit = TimeLimit(24, TimeUnit.HOURS)
    total = extended_total(86400.0, at(3, 9), at(4, 3), limit, lucheng.calendar)
    assert total == 86400.0 + 18 * 3600


def test_a_pause_over_a_weekend_moves_a_working_time_due_instant_by_working_time_only(lucheng):
    """Paused Friday 16:30, resumed Monday 09:30: one working hour on Friday and one on Monday."""
    limit = TimeLimit(2, TimeUnit.WORKING_DAYS)
    due = resumed_due(at(10, 17, 30), at(6, 16, 30), at(9, 9, 30), limit, lucheng.calendar)
    assert due == at(11, 10, 30)


def _state(**changes) -> lifecycle.ClockState:
    return lifecycle.ClockState(
        **{"status": v.ACCEPTED, "due": at(3, 17, 30), "paused": False, "pending": None, **changes}
    )


def test_an_extension_names_an_instant_after_the_current_due_one():
    assert lifecycle.check_request(v.EXTENSION_REQUESTED, _state(), hours=48) == at(5, 17, 30)
    asked = lifecycle.check_request(v.EXTENSION_REQUESTED, _state(), due=at(6, 12))
    assert asked == at(6, 12)
    for due in (at(3, 17, 30), at(3, 10)):
        with pytest.raises(lifecycle.Unprocessable) as refused:
            lifecycle.check_request(v.EXTENSION_REQUESTED, _state(), due=due)
        assert refused.value.field == "due" and "not after" in refused.value.message


@pytest.mark.parametrize(
    ("status", "state", "note", "error", "field", "why"),
    [
        (v.PAUSE_REQUESTED, {}, None, lifecycle.InvalidRequest, "note", "says why"),
        (v.PAUSE_REQUESTED, {"pending": "extension"}, "等", lifecycle.Conflict, "status", "one"),
        (v.EXTENSION_REQUESTED, {"pending": "pause"}, None, lifecycle.Conflict, "status", "one"),
        (v.PAUSE_REQUESTED, {"paused": True}, "等", lifecycle.Conflict, "status", "resumed"),
        (v.PAUSE_REQUESTED, {"status": v.ON_HOLD, "due": None}, "等", lifecycle.Conflict, "status", "no clock"),
        (v.EXTENSION_REQUESTED, {"status": v.RESOLVED}, None, lifecycle.Conflict, "status", "no clock"),
        (v.RESUMED, {}, None, lifecycle.Conflict, "status", "not paused"),
    ],
)  # fmt: skip
def test_a_request_the_clock_cannot_take_is_refused(status, state, note, error, field, why):
    with pytest.raises(error) as refused:
        lifecycle.check_request(status, _state(**state), hours=24, note=note)
    assert refused.value.field == field and why in refused.value.message


def test_resumed_ends_a_pause_and_a_decision_needs_a_pending_request():
    assert lifecycle.check_request(v.RESUMED, _state(paused=True)) is None
    for kind in (v.ORDER_APPROVE, v.ORDER_REFUSE):
        with pytest.raises(lifecycle.Conflict):
            lifecycle.check_decision(kind, None)
        lifecycle.check_decision(kind, "pause")
    # A paused clock shows no colour and no due instant.
    assert lifecycle.colour_shown(v.ACCEPTED, True, v.YELLOW, paused=True) is None
    assert lifecycle.clock_columns(v.ACCEPTED, True, at(3, 17), None, paused=True) == (None, None)


# -- through the API -------------------------------------------------------------------------------


def _accepted_case(city: City) -> str:
    """A junk pile its squad accepted: one working day from Monday 09:00, due Tuesday 17:30."""
    case_id = city.report()
    city.update(case_id, SQUAD, v.ACCEPTED)
    assert _instant(city.view(case_id)["due"]) == at(3, 17, 30)
    return case_id


def _ask(city: City, case_id: str, status: str, **extra):
    token = city.tokens.get(f"key:{SQUAD}")
    if token is None:
        city.update(case_id, SQUAD, v.NOTE, note="准备申请")
    answer = city.call(
        "POST",
        f"/api/v1/cases/{case_id}/updates",
        {"from": SQUAD, "status": status, **extra},
        who=f"key:{SQUAD}",
    )
    _pump(city.g)
    return answer


def _clock(city: City) -> dict:
    with city.g.engine.connect() as conn:
        return dict(conn.execute(sa.select(clocks).where(clocks.c.active)).mappings().one())


def _requests(view: dict) -> list[dict]:
    return [e for e in view["timeline"] if e["kind"] in lifecycle.REQUESTS]


def test_an_approved_extension_moves_the_due_instant_and_the_colours_follow_it(city, lucheng):
    case_id = _accepted_case(city)
    city.clock(MONDAY_0900 + dt.timedelta(hours=2))
    asked = _ask(city, case_id, v.EXTENSION_REQUESTED, due=at(5, 17, 30).isoformat(), note="等配件")
    assert asked.status == 202, asked.body
    view = city.view(case_id)
    assert (view["pending"], _instant(view["due"]), view["extensions"]) == (
        "extension",
        at(3, 17, 30),
        0,
    )
    city.clock(MONDAY_0900 + dt.timedelta(hours=3))
    answer = city.order(case_id, kind="approve", reason="同意延期")
    assert answer.status == 202, answer.body
    view = city.view(case_id)
    assert (view["status"], view["pending"], view["extensions"], view["colour"]) == (
        v.ACCEPTED,
        None,
        1,
        v.GREEN,
    )
    assert _instant(view["due"]) == at(5, 17, 30)
    assert city.case_row(case_id).due_at == at(5, 17, 30)
    (request,) = _requests(view)
    assert (request["decision"], request["decided_by"]) == ("approved", "user:orders-command")
    (entry,) = city.orders_in_timeline(case_id)
    assert (entry["order"], entry["request"], entry["reason"]) == (
        "approve",
        "extension",
        "同意延期",
    )
    clock = _clock(city)
    limit = TimeLimit(1, TimeUnit.WORKING_DAYS)
    assert clock["due"] == at(5, 17, 30)
    cal = lucheng.calendar
    assert clock["total_seconds"] == pytest.approx(measure(at(2, 9), at(5, 17, 30), limit, cal))
    # Without the extension Tuesday 15:00 would be yellow (11 of 13.5 working hours).
    city.clock(at(3, 15))
    assert city.view(case_id)["colour"] == v.GREEN
    # 24 of 27.5 working hours by Thursday 12:00: past 0.75.
    city.clock(at(5, 12))
    assert city.view(case_id)["colour"] == v.YELLOW


def test_an_extension_by_hours_asks_for_that_much_after_the_current_due_instant(city):
    case_id = _accepted_case(city)
    assert _ask(city, case_id, v.EXTENSION_REQUESTED, hours=48).status == 202
    assert city.order(case_id, kind="approve").status == 202
    assert _instant(city.view(case_id)["due"]) == at(5, 17, 30)


def test_an_extension_backwards_is_a_422_naming_due_and_changes_nothing(city):
    case_id = _accepted_case(city)
    before = city.view(case_id)
    answer = _ask(city, case_id, v.EXTENSION_REQUESTED, due=at(3, 12).isoformat())
    assert answer.status == 422, answer.body
    assert "not after the current due instant" in answer.body["errors"]["due"][0]
    after = city.view(case_id)
    assert (after["pending"], after["due"]) == (None, before["due"])
    assert _requests(after) == []


def test_an_extension_to_the_past_is_a_422_naming_due(city):
    case_id = _accepted_case(city)
    city.clock(MONDAY_0900 + dt.timedelta(hours=2))
    answer = _ask(city, case_id, v.EXTENSION_REQUESTED, due=at(2, 10).isoformat())
    assert answer.status == 422, answer.body
    assert "already passed" in answer.body["errors"]["due"][0]
    assert city.view(case_id)["pending"] is None


def test_a_refused_request_leaves_the_clock_as_it_was_and_records_why(city):
    case_id = _accepted_case(city)
    assert _ask(city, case_id, v.EXTENSION_REQUESTED, due=at(6, 17, 30).isoformat()).status == 202
    clock_before = _clock(city)
    no_reason = city.order(case_id, kind="refuse")
    assert no_reason.status == 400 and "reason" in no_reason.body["errors"], no_reason.body
    assert city.view(case_id)["pending"] == "extension"
    answer = city.order(case_id, kind="refuse", reason="配件可在本地采购")
    assert answer.status == 202, answer.body
    view = city.view(case_id)
    assert (view["pending"], view["extensions"], _instant(view["due"])) == (None, 0, at(3, 17, 30))
    (request,) = _requests(view)
    assert (request["decision"], request["refused_because"]) == ("refused", "配件可在本地采购")
    assert _clock(city) == clock_before
    # Decided: there is nothing left to approve.
    again = city.order(case_id, kind="approve")
    assert again.status == 409 and "none awaits" in again.body["errors"]["kind"][0]


def test_approve_with_nothing_pending_is_a_409_that_changes_nothing(city):
    case_id = _accepted_case(city)
    before = city.view(case_id)
    answer = city.order(case_id, kind="approve", reason="x")
    assert answer.status == 409, answer.body
    assert "none awaits a decision" in answer.body["errors"]["kind"][0]
    assert city.view(case_id) == before


def test_a_second_request_waits_for_the_first_to_be_decided(city):
    case_id = _accepted_case(city)
    assert _ask(city, case_id, v.PAUSE_REQUESTED, note="等待居民在家").status == 202
    second = _ask(city, case_id, v.EXTENSION_REQUESTED, hours=24)
    assert second.status == 409 and "one request at a time" in second.body["errors"]["status"][0]
    assert city.view(case_id)["pending"] == "pause"


def test_an_approved_pause_stops_the_clock_until_the_holder_resumes(city):
    case_id = _accepted_case(city)
    no_reason = _ask(city, case_id, v.PAUSE_REQUESTED)
    assert no_reason.status == 400 and "note" in no_reason.body["errors"], no_reason.body
    city.clock(MONDAY_0900 + dt.timedelta(hours=1))  # Monday 10:00
    assert _ask(city, case_id, v.PAUSE_REQUESTED, note="等待雨停后施工").status == 202
    assert city.view(case_id)["pending"] == "pause"
    assert city.order(case_id, kind="approve", reason="同意挂起").status == 202
    view = city.view(case_id)
    assert (view["status"], view["colour"], view["due"], view["pending"]) == (
        v.ACCEPTED,
        None,
        None,
        None,
    )
    assert view["paused_since"] is not None
    row = city.case_row(case_id)
    assert (row.due_at, row.colour) == (None, None)
    clock = _clock(city)
    assert clock["running_since"] is None and clock["next_transition_at"] is None
    # Past the original due instant nothing turns: the clock stands still.
    city.clock(at(4, 9))
    assert city.view(case_id)["colour"] is None
    # Resumed Wednesday 09:00: paused from Monday 10:00, 13 working hours (as a hold) move the
    # due instant from Tuesday 17:30 to Thursday 16:30.
    assert _ask(city, case_id, v.RESUMED, note="雨停，开始施工").status == 202
    view = city.view(case_id)
    assert (view["colour"], _instant(view["due"]), view["paused_since"]) == (
        v.GREEN,
        at(5, 16, 30),
        None,
    )
    assert city.case_row(case_id).due_at == at(5, 16, 30)
    clock = _clock(city)
    assert clock["due"] == at(5, 16, 30) and clock["running_since"] == at(4, 9)
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds.count(v.PAUSE_REQUESTED) == 1 and kinds.count(v.RESUMED) == 1
    # Resumed twice: nothing is paused any more.
    again = _ask(city, case_id, v.RESUMED)
    assert again.status == 409 and "not paused" in again.body["errors"]["status"][0]


def test_a_pause_on_a_closed_case_is_refused(city):
    case_id = _accepted_case(city)
    city.update(case_id, SQUAD, v.RESOLVED, note="已清理")
    verified = city.call("POST", f"/api/v1/cases/{case_id}/verification", {"passed": True})
    assert verified.status == 200, verified.body
    _pump(city.g)
    before = city.view(case_id)
    answer = _ask(city, case_id, v.PAUSE_REQUESTED, note="等待")
    assert answer.status == 409, answer.body
    assert "closed" in answer.body["errors"]["status"][0]
    assert city.view(case_id) == before


def test_a_hold_while_paused_and_its_release_count_the_stopped_time_once(city):
    case_id = _accepted_case(city)
    city.clock(MONDAY_0900 + dt.timedelta(hours=1))
    _ask(city, case_id, v.PAUSE_REQUESTED, note="等待其他部门")
    assert city.order(case_id, kind="approve").status == 202
    city.clock(at(3, 9))
    assert city.order(case_id, kind="hold", reason="产权争议").status == 202
    city.clock(at(4, 9))
    assert city.order(case_id, kind="release").status == 202
    view = city.view(case_id)
    # Stopped from Monday 10:00 to Wednesday 09:00, as one stretch: due Thursday 16:30.
    assert (_instant(view["due"]), view["colour"]) == (at(5, 16, 30), v.GREEN)
    assert _clock(city)["due"] == at(5, 16, 30)


# -- two approvals at once -------------------------------------------------------------------------


def test_ten_approvals_at_once_give_one_202_and_nine_409s(intake_on_postgresql):  # noqa: F811
    runtime, version = intake_on_postgresql
    case_id = "GF-20260302-APPROVALS"
    with runtime.work() as work:
        work.db.execute(
            sa.insert(models.cases),
            dict(
                case_id=case_id,
                status=v.ACCEPTED,
                category="event.junk_pile",
                description="x",
                area_code="330302001001001",
                assisting=[],
                holder=SQUAD,
                lead="urban_management",
                assignment_id=f"{case_id}-1",
                assignment_seq=1,
                escalations=0,
                reporters=1,
                jurisdiction_version=version,
                registered_at=MONDAY_0900,
                due_at=at(3, 17, 30),
                colour=v.GREEN,
            ),
        )
        h._note(
            work,
            case_id,
            v.EXTENSION_REQUESTED,
            MONDAY_0900,
            sender=SQUAD,
            due=at(5, 17, 30).isoformat(),
            decision=lifecycle.EXTENSION_PENDING,
        )
    outcomes = orders_at_once(
        runtime, case_id, {"kind": "approve", "reason": None, "unit": None, "category": None}
    )
    assert sorted(outcomes) == [202] + [409] * 9, outcomes
    with runtime.work() as work:
        row = work.db.execute(sa.select(models.cases)).one()
        kinds = work.db.execute(sa.select(models.timeline.c.kind)).scalars().all()
    assert (row.extensions, row.due_at) == (1, at(5, 17, 30))
    assert sorted(kinds) == sorted([v.EXTENSION_REQUESTED, v.ENTRY_ORDER])
    assert runtime.pending_outbox() == 1


# -- SLA's consumer --------------------------------------------------------------------------------


@pytest.fixture
def sla(tmp_path):
    from gridflow_sla.handlers import DEFINITION

    service = ServiceUnderTest(DEFINITION, tmp_path, MONDAY_0900)
    yield service
    service.close()


def _approval(sla, case_id: str, request: str, due: dt.datetime | None, when: dt.datetime):
    payload = {
        "order_id": uuid.uuid4().hex,
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "kind": v.ORDER_APPROVE,
        "by": "user:command",
        "status_before": v.ACCEPTED,
        "status": v.ACCEPTED,
        "request": request,
        "due": due.isoformat() if due else None,
    }
    return sla.deliver(c.INTAKE, c.CASE_ORDER_GIVEN, payload, at=when)


def test_a_republished_approval_moves_the_clock_once(sla):
    case_id = new_case_id()
    assert _dispatch(sla, case_id, "event.junk_pile", SQUAD) == "done"
    # Tuesday 15:00: yellow (11 of 13.5 working hours).
    sla.clock.set(at(3, 15))
    with sla.runtime.work(now=at(3, 15)) as work:
        sweep(work, at(3, 15))
    assert sla.rows(clocks)[0]["colour"] == v.YELLOW
    sla.emitted()
    assert _approval(sla, case_id, "extension", at(6, 17, 30), at(3, 15)) == "done"
    (first,) = sla.rows(clocks)
    assert first["due"] == at(6, 17, 30) and first["colour"] == v.GREEN
    # Back to green, said once, at the approval's instant.
    said = [(k, p["colour"]) for k, p in sla.emitted() if k == c.CASE_COLOUR_CHANGED]
    assert said == [(c.CASE_COLOUR_CHANGED, v.GREEN)]
    assert _approval(sla, case_id, "extension", at(6, 17, 30), at(3, 15, 5)) == "done"
    assert sla.rows(clocks) == [first]
    assert sla.emitted() == []


def test_a_republished_pause_approval_and_resumed_stop_and_resume_once(sla):
    case_id = new_case_id()
    assert _dispatch(sla, case_id, "event.junk_pile", SQUAD) == "done"
    paused_at = MONDAY_0900 + dt.timedelta(hours=1)
    for when in (paused_at, paused_at + dt.timedelta(hours=2)):
        assert _approval(sla, case_id, "pause", None, when) == "done"
    (clock,) = sla.rows(clocks)
    assert (clock["paused_at"], clock["running_since"], clock["elapsed_before"]) == (
        paused_at,
        None,
        3600.0,
    )
    resumed = {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "sender": SQUAD,
        "status": v.RESUMED,
    }
    sla.clock.set(at(4, 9))
    for when in (at(4, 9), at(4, 10)):
        assert sla.deliver(c.INTAKE, c.CASE_STATUS_REPORTED, resumed, at=when) == "done"
    (clock,) = sla.rows(clocks)
    assert (clock["due"], clock["running_since"], clock["paused_at"]) == (
        at(5, 16, 30),
        at(4, 9),
        None,
    )


def test_a_request_lapses_when_the_case_moves_to_another_holder(city):
    case_id = _accepted_case(city)
    assert _ask(city, case_id, v.EXTENSION_REQUESTED, hours=24).status == 202
    assert city.order(case_id, kind="escalate", reason="久拖未决").status == 202
    view = city.view(case_id)
    assert view["handler"] != SQUAD and view["pending"] is None
    refused = city.order(case_id, kind="approve")
    assert refused.status == 409 and "none awaits" in refused.body["errors"]["kind"][0]
    assert view["extensions"] == 0


def test_the_pending_request_is_the_latest_on_the_current_assignment():
    asked = (v.PAUSE_REQUESTED, {"decision": lifecycle.EXTENSION_PENDING, "assignment_id": "A-1"})
    assert lifecycle.pending_request([asked], "A-1") == "pause"
    assert lifecycle.pending_request([asked], "A-2") is None
    assert lifecycle.pending_request([asked]) == "pause"
