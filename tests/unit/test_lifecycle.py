"""The case lifecycle as plain functions: no database, no broker, no clock."""

from __future__ import annotations

import datetime as dt

import pytest

from gridflow_common.domain import lifecycle as lc
from gridflow_common.domain import vocabulary as v

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone.utc)
ASSIGNMENT = {
    "assignment_id": "GF-1-2",
    "holder": "police-330302104",
    "lead": "police",
    "tier": v.STREET,
    "assisting": [],
    "category": "event.noise",
    "seq": 2,
}


def test_every_status_has_its_successors_and_finished_cases_have_none():
    assert set(lc.NEXT_STATUSES) == set(v.CASE_STATUSES)
    for finished in (v.CLOSED, v.REJECTED, v.ON_HOLD):
        assert not lc.is_open(finished)
        assert lc.NEXT_STATUSES[finished] == ()
    assert lc.may_follow(v.REGISTERED, v.DISPATCHED)
    assert not lc.may_follow(v.REGISTERED, v.ACCEPTED)
    assert lc.may_follow(v.RESOLVED, v.CLOSED)
    assert not lc.may_follow(v.CLOSED, v.DISPATCHED)


def test_open_running_clock_and_holder_statuses():
    assert lc.OPEN_STATUSES == (v.REGISTERED, v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED)
    assert [s for s in v.CASE_STATUSES if lc.has_running_clock(s)] == [
        v.DISPATCHED,
        v.ACCEPTED,
        v.IN_PROGRESS,
    ]
    # Awaiting verification, nobody holds the case and its clock stands.
    assert not lc.has_running_clock(v.RESOLVED) and not lc.has_holder(v.RESOLVED)
    assert lc.has_holder(v.DISPATCHED) and not lc.has_holder(v.REGISTERED)


def test_every_report_a_holder_makes_leads_to_a_status_the_lifecycle_allows():
    for current in lc.HOLDER_STATUSES:
        for update in v.UPDATE_STATUSES:
            try:
                outcome = lc.apply_update(current, update)
            except lc.Conflict:
                continue
            assert outcome.status == current or lc.may_follow(current, outcome.status)


@pytest.mark.parametrize(
    ("current", "update", "status"),
    [
        (v.DISPATCHED, v.ACCEPTED, v.ACCEPTED),
        (v.DISPATCHED, v.IN_PROGRESS, v.IN_PROGRESS),
        (v.ACCEPTED, v.IN_PROGRESS, v.IN_PROGRESS),
        (v.DISPATCHED, v.RESOLVED, v.RESOLVED),
        (v.IN_PROGRESS, v.RESOLVED, v.RESOLVED),
    ],
)
def test_a_holders_progress_becomes_the_cases_status(current, update, status):
    outcome = lc.apply_update(current, update)
    assert (outcome.status, outcome.hands_back) == (status, False)


@pytest.mark.parametrize("update", [v.RETURNED, v.BEYOND_AUTHORITY])
def test_returning_or_escalating_keeps_the_status_until_routing_reassigns(update):
    outcome = lc.apply_update(v.ACCEPTED, update)
    assert (outcome.status, outcome.hands_back) == (v.ACCEPTED, True)


@pytest.mark.parametrize(
    ("current", "update"),
    [
        (v.ACCEPTED, v.ACCEPTED),
        (v.IN_PROGRESS, v.ACCEPTED),
        (v.RESOLVED, v.IN_PROGRESS),
        (v.RESOLVED, v.RETURNED),
        (v.REGISTERED, v.ACCEPTED),
        (v.CLOSED, v.RESOLVED),
    ],
)
def test_a_report_the_case_cannot_take_now_is_a_conflict_on_status(current, update):
    with pytest.raises(lc.Conflict) as refused:
        lc.apply_update(current, update)
    assert refused.value.field == "status"
    assert current in refused.value.message and update in refused.value.message


@pytest.mark.parametrize("update", [v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED])
def test_a_category_beside_a_report_that_keeps_the_case_is_refused_naming_category(update):
    with pytest.raises(lc.InvalidRequest) as refused:
        lc.check_update(update, "event.noise")
    assert refused.value.field == "category"
    assert v.RETURNED in refused.value.message


@pytest.mark.parametrize("update", [v.RETURNED, v.BEYOND_AUTHORITY])
def test_a_category_beside_a_return_or_escalation_keeps_its_meaning(update):
    lc.check_update(update, "event.noise")
    lc.check_update(v.ACCEPTED, None)


def test_the_holder_or_its_leading_department_holds_the_case():
    assert lc.holds("police-330302104", "police-330302104", "police")
    assert lc.holds("police", "police-330302104", "police")
    assert not lc.holds("environment", "police-330302104", "police")
    assert not lc.holds("police", None, None)


def test_verification_and_dispatch_lead_only_to_statuses_the_lifecycle_allows():
    for passed in (True, False):
        assert lc.may_follow(v.RESOLVED, lc.verify(v.RESOLVED, passed).status)
    for current in lc.OPEN_STATUSES:
        projected = lc.project_dispatch(current, 1, 2, v.REASON_ESCALATED).status
        assert projected == current or lc.may_follow(current, projected)


def test_verification_passed_closes_and_failed_is_rework_to_the_same_holder():
    assert lc.verify(v.RESOLVED, True) == lc.VerificationOutcome(v.CLOSED, True, False)
    assert lc.verify(v.RESOLVED, False) == lc.VerificationOutcome(v.DISPATCHED, False, True)
    with pytest.raises(lc.Conflict, match="resolved"):
        lc.verify(v.IN_PROGRESS, True)


def test_a_closed_case_is_evaluated_once():
    lc.check_evaluation(v.CLOSED, None)
    with pytest.raises(lc.Conflict) as refused:
        lc.check_evaluation(v.CLOSED, 4)
    assert refused.value.field == "satisfaction"
    with pytest.raises(lc.Conflict, match="closed"):
        lc.check_evaluation(v.RESOLVED, None)


def test_assignment_sequence_is_routings_or_the_suffix_of_its_id():
    assert lc.assignment_seq("GF-1", "GF-1-3", 3) == 3
    assert lc.assignment_seq("GF-1", "GF-1-3") == 3
    assert lc.assignment_seq("GF-1", "GF-1-12") == 12
    assert lc.assignment_seq("GF-1", None) is None
    assert lc.assignment_seq("GF-1", "other-3") is None


def test_an_older_assignment_never_overwrites_a_newer_one():
    assert lc.project_dispatch(v.ACCEPTED, 3, 2, v.REASON_NEW) == lc.DispatchProjection(
        False, v.ACCEPTED
    )


@pytest.mark.parametrize("reported", [v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED])
def test_the_same_assignment_again_never_regresses_what_its_holder_reported(reported):
    assert lc.project_dispatch(reported, 2, 2, v.REASON_ESCALATED) == lc.DispatchProjection(
        True, reported
    )


def test_a_newer_assignment_dispatches_the_case_but_rework_keeps_the_holders_answer():
    assert lc.project_dispatch(v.ACCEPTED, 1, 2, v.REASON_ESCALATED).status == v.DISPATCHED
    assert lc.project_dispatch(v.REGISTERED, None, 1, v.REASON_NEW).status == v.DISPATCHED
    assert lc.project_dispatch(v.ACCEPTED, 1, 2, v.REASON_REWORK) == lc.DispatchProjection(
        True, v.ACCEPTED
    )
    assert lc.project_dispatch(v.CLOSED, 1, 2, v.REASON_NEW).status == v.CLOSED


def test_fast_forward_only_to_a_newer_assignment_routing_shows_the_sender_holding():
    assert lc.fast_forward(v.REGISTERED, None, "police", ASSIGNMENT)
    assert lc.fast_forward(v.ACCEPTED, 1, "police-330302104", ASSIGNMENT)
    assert not lc.fast_forward(v.REGISTERED, None, "environment", ASSIGNMENT)
    assert not lc.fast_forward(v.DISPATCHED, 2, "police", ASSIGNMENT)
    assert not lc.fast_forward(v.CLOSED, 1, "police", ASSIGNMENT)


def test_the_later_colour_wins_in_whatever_order_colours_arrive():
    later = T0 + dt.timedelta(hours=1)
    assert lc.supersedes(T0, v.RED, later, v.YELLOW)
    assert not lc.supersedes(later, v.YELLOW, T0, v.RED)
    # At one instant the walk ended on the more severe colour.
    assert lc.supersedes(T0, v.ORANGE, T0, v.RED)
    assert not lc.supersedes(T0, v.RED, T0, v.ORANGE)
    assert not lc.supersedes(T0, v.RED, T0, v.RED)
    assert lc.colour_rank(None) < lc.colour_rank(v.GREEN) < lc.colour_rank(v.RED)


def test_a_running_clock_shows_its_colour_or_green_and_no_clock_shows_none():
    assert lc.colour_shown(v.DISPATCHED, True, None) == v.GREEN
    assert lc.colour_shown(v.ACCEPTED, True, v.ORANGE) == v.ORANGE
    assert lc.colour_shown(v.RESOLVED, True, v.ORANGE) is None
    assert lc.colour_shown(v.REGISTERED, False, None) is None
    assert lc.colour_shown(v.CLOSED, True, None) is None
