"""The orders' domain rules, with no database and no clock of their own: which order a case
takes in which status and what it does (lifecycle), the due instant after a hold (calendar),
what an assign order gives routing, who may order (access), and the holder's pending request."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gridflow_common.domain import access as a
from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.calendar import TimeLimit, TimeUnit, resumed_due
from gridflow_common.domain.jurisdiction_files import load_folder
from gridflow_routing import domain as routing

CST = dt.timezone(dt.timedelta(hours=8))
LUCHENG = Path(__file__).resolve().parents[2] / "libs/common/gridflow_common/fixtures/lucheng"


@pytest.fixture(scope="module")
def lucheng():
    return load_folder(LUCHENG)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=CST)


# -- which order in which status ------------------------------------------------------------------

HELD_BY_A_UNIT = {v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS}
WORKING = {v.REGISTERED, *HELD_BY_A_UNIT}
LEGAL = {
    v.ORDER_ASSIGN: HELD_BY_A_UNIT,
    v.ORDER_ESCALATE: HELD_BY_A_UNIT,
    v.ORDER_HOLD: HELD_BY_A_UNIT,
    v.ORDER_RELEASE: {v.ON_HOLD},
    v.ORDER_REJECT: WORKING | {v.RESOLVED, v.ON_HOLD},
    v.ORDER_REOPEN: {v.CLOSED},
    v.ORDER_MERGE: WORKING | {v.RESOLVED, v.ON_HOLD},
    v.ORDER_SUPERVISE: HELD_BY_A_UNIT,
    v.ORDER_COMMENT: set(v.CASE_STATUSES),
    v.ORDER_APPROVE: HELD_BY_A_UNIT,
    v.ORDER_REFUSE: WORKING | {v.RESOLVED, v.ON_HOLD},
}


def test_the_table_names_every_order_kind():
    assert set(LEGAL) == set(v.ORDER_KINDS) == set(lifecycle.ORDER_ALLOWED_FROM)


@pytest.mark.parametrize("kind", v.ORDER_KINDS)
@pytest.mark.parametrize("status", v.CASE_STATUSES)
def test_an_order_is_taken_exactly_in_the_statuses_it_makes_sense_in(kind, status):
    extra = {"into": "GF-OTHER", "into_status": v.DISPATCHED} if kind == v.ORDER_MERGE else {}
    if status in LEGAL[kind]:
        lifecycle.check_order(kind, status, case_id="GF-THIS", **extra)
        return
    with pytest.raises(lifecycle.Conflict) as refused:
        lifecycle.check_order(kind, status, case_id="GF-THIS", **extra)
    assert refused.value.field == "kind"
    assert status in refused.value.message


def test_escalate_at_the_command_center_is_refused_there_is_nothing_higher():
    with pytest.raises(lifecycle.Conflict, match="no tier higher"):
        lifecycle.check_order(v.ORDER_ESCALATE, v.DISPATCHED, at_top=True)
    lifecycle.check_order(v.ORDER_ASSIGN, v.DISPATCHED, at_top=True)


@pytest.mark.parametrize(
    ("into", "into_status", "why"),
    [
        ("GF-THIS", v.DISPATCHED, "itself"),
        ("GF-OTHER", None, "no case"),
        ("GF-OTHER", v.CLOSED, "merge into an open one"),
        ("GF-OTHER", v.REJECTED, "merge into an open one"),
    ],
)
def test_a_merge_into_itself_nothing_or_a_finished_case_is_refused(into, into_status, why):
    with pytest.raises(lifecycle.Conflict, match=why) as refused:
        lifecycle.check_order(
            v.ORDER_MERGE, v.DISPATCHED, into=into, into_status=into_status, case_id="GF-THIS"
        )
    assert refused.value.field == "into"


@pytest.mark.parametrize(
    ("kind", "status", "held_from", "expected"),
    [
        (v.ORDER_HOLD, v.ACCEPTED, None, (v.ON_HOLD, True, False, False)),
        (v.ORDER_RELEASE, v.ON_HOLD, v.ACCEPTED, (v.ACCEPTED, False, False, False)),
        (v.ORDER_RELEASE, v.ON_HOLD, None, (v.DISPATCHED, False, False, False)),
        (v.ORDER_REJECT, v.REGISTERED, None, (v.REJECTED, True, True, False)),
        (v.ORDER_MERGE, v.DISPATCHED, None, (v.CLOSED, True, True, False)),
        (v.ORDER_REOPEN, v.CLOSED, None, (v.DISPATCHED, True, False, True)),
        (v.ORDER_ASSIGN, v.IN_PROGRESS, None, (v.IN_PROGRESS, False, False, True)),
        (v.ORDER_ESCALATE, v.DISPATCHED, None, (v.DISPATCHED, False, False, True)),
        (v.ORDER_SUPERVISE, v.ACCEPTED, None, (v.ACCEPTED, False, False, False)),
        (v.ORDER_COMMENT, v.CLOSED, None, (v.CLOSED, False, False, False)),
    ],
)
def test_what_each_order_does_to_the_case_at_once(kind, status, held_from, expected):
    outcome = lifecycle.apply_order(kind, status, held_from)
    assert (outcome.status, outcome.clock_stops, outcome.finished, outcome.reassigns) == expected


# -- the due instant after a hold -----------------------------------------------------------------

ONE_WORKING_DAY = TimeLimit(1, TimeUnit.WORKING_DAYS)
FIVE_WORKING_HOURS = TimeLimit(5, TimeUnit.WORKING_HOURS)
TWO_HOURS = TimeLimit(2, TimeUnit.HOURS)


def test_release_moves_the_due_later_by_the_working_time_on_hold(lucheng):
    # Scenario 06: due Tuesday 17:30, on hold Monday 10:00 to Wednesday 09:00 (13 working hours).
    due = resumed_due(at(3, 17, 30), at(2, 10), at(4, 9), ONE_WORKING_DAY, lucheng.calendar)
    assert due == at(5, 16, 30)


def test_a_weekend_on_hold_moves_a_working_time_due_by_nothing(lucheng):
    # On hold from Friday 17:30 (the close) to Monday 08:30 (the opening): no working time.
    due = resumed_due(at(9, 11), at(6, 17, 30), at(9, 8, 30), FIVE_WORKING_HOURS, lucheng.calendar)
    assert due == at(9, 11)


def test_a_hold_over_lunch_counts_only_the_working_minutes(lucheng):
    # 11:30 to 14:30: 30 minutes before lunch and 30 after.
    due = resumed_due(at(2, 16), at(2, 11, 30), at(2, 14, 30), FIVE_WORKING_HOURS, lucheng.calendar)
    assert due == at(2, 17, 0)


def test_a_limit_in_natural_hours_moves_by_the_natural_time_on_hold(lucheng):
    due = resumed_due(at(7, 12), at(7, 11), at(8, 11), TWO_HOURS, lucheng.calendar)
    assert due == at(8, 12)


def test_an_overdue_clock_released_is_overdue_by_as_much_as_when_it_was_held(lucheng):
    # Held an hour after its due; released a working day later: still an hour past it.
    due = resumed_due(at(2, 9), at(2, 10), at(3, 10), FIVE_WORKING_HOURS, lucheng.calendar)
    assert due == at(3, 9)


# -- what an assign order gives routing -------------------------------------------------------


def test_assign_to_a_station_holds_at_the_street_tier_led_by_its_department(lucheng):
    unit = lucheng.unit("urban_management-330302001")
    got = routing.assign_to_unit(unit, lucheng.category("event.junk_pile"), "属公共区域")
    assert (got.tier, got.holder, got.lead, got.at_command) == (
        v.STREET,
        "urban_management-330302001",
        "urban_management",
        False,
    )
    assert "属公共区域" in got.explanation


def test_assign_to_a_community_office_has_no_lead_and_to_the_command_center_is_at_the_top(
    lucheng,
):
    office = lucheng.unit("office-330302001001")
    got = routing.assign_to_unit(office, lucheng.category("event.junk_pile"), None)
    assert (got.tier, got.lead, got.assisting) == (v.COMMUNITY, None, ())
    command = lucheng.unit("command-330302")
    got = routing.assign_to_unit(command, None, None)
    assert (got.tier, got.at_command) == (v.DISTRICT, True)


# -- who may order ------------------------------------------------------------------------------


def _user(role: str) -> a.Principal:
    return a.Principal(a.USER, "u1", "someone", "k-1", role=role)


@pytest.mark.parametrize("kind", v.ORDER_KINDS)
def test_the_command_center_and_admins_give_every_order_a_leader_only_comments(kind):
    assert a.may_give_order(_user(a.ADMIN), kind)
    assert a.may_give_order(_user(a.COMMAND_CENTER), kind)
    assert a.may_give_order(_user(a.LEADER), kind) == (kind == v.ORDER_COMMENT)
    for role in (a.DEPARTMENT, a.STREET, a.COMMUNITY, a.GRID_WORKER):
        assert not a.may_give_order(_user(role), kind)
    key = a.Principal(a.HOLDER_KEY, "k", "urban_management", "k-2", scope="urban_management")
    assert not a.may_give_order(key, kind)


# -- the holder's pending request ---------------------------------------------------------------


def test_the_latest_request_is_pending_until_decided():
    requested = (v.EXTENSION_REQUESTED, {"decision": lifecycle.EXTENSION_PENDING})
    decided = (v.EXTENSION_REQUESTED, {"decision": "approved"})
    assert lifecycle.pending_request([]) is None
    assert lifecycle.pending_request([requested, (v.NOTE, {})]) == "extension"
    assert lifecycle.pending_request([requested, decided]) is None
    assert lifecycle.pending_request([decided, requested]) == "extension"
