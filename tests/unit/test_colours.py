"""The colour walk (四色预警) as a pure function: no database, no clock read."""

from __future__ import annotations

import datetime as dt

import pytest

from gridflow_common.domain import colours
from gridflow_common.domain.calendar import (
    CST,
    SlaClock,
    TimeLimit,
    TimeUnit,
    WarningLevel,
    WorkingCalendar,
)
from gridflow_common.domain.vocabulary import (
    ACTION_ESCALATE,
    ACTION_NONE,
    ACTION_REMIND,
    ACTION_SUPERVISE,
    GREEN,
    ORANGE,
    RED,
    YELLOW,
)

LEVELS = (
    WarningLevel(GREEN, 0.0, ACTION_NONE),
    WarningLevel(YELLOW, 0.75, ACTION_REMIND),
    WarningLevel(ORANGE, 1.0, ACTION_SUPERVISE),
    WarningLevel(RED, 1.5, ACTION_ESCALATE),
)
CALENDAR = WorkingCalendar()
MONDAY_9 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)
TWO_HOURS = TimeLimit(2, TimeUnit.HOURS)


def _started(limit: TimeLimit = TWO_HOURS, at: dt.datetime = MONDAY_9) -> colours.Started:
    started = colours.start(at, limit, LEVELS, CALENDAR)
    assert started is not None
    return started


def _walk(clock: SlaClock, colour: str, next_at: dt.datetime | None, until: dt.datetime):
    return colours.walk(clock, colour, next_at, until, LEVELS, CALENDAR)


def test_a_clock_starts_green_with_its_next_colour_due_at_the_yellow_fraction():
    started = _started()
    assert started.colour == GREEN
    assert started.next_at == MONDAY_9 + dt.timedelta(minutes=90)


def test_a_jump_enters_every_colour_in_between_in_order_each_at_its_own_instant():
    started = _started()
    walked = _walk(started.clock, started.colour, started.next_at, MONDAY_9 + dt.timedelta(days=3))
    assert [(e.colour, e.action, e.at - MONDAY_9) for e in walked.entered] == [
        (YELLOW, ACTION_REMIND, dt.timedelta(minutes=90)),
        (ORANGE, ACTION_SUPERVISE, dt.timedelta(hours=2)),
        (RED, ACTION_ESCALATE, dt.timedelta(hours=3)),
    ]
    assert [e.fraction for e in walked.entered] == pytest.approx([0.75, 1.0, 1.5])
    assert (walked.colour, walked.next_at) == (RED, None)


def test_a_walk_stops_at_until_and_resumes_from_where_it_stands():
    started = _started()
    first = _walk(
        started.clock, started.colour, started.next_at, MONDAY_9 + dt.timedelta(minutes=100)
    )
    assert [e.colour for e in first.entered] == [YELLOW]
    assert (first.colour, first.next_at) == (YELLOW, MONDAY_9 + dt.timedelta(hours=2))
    again = _walk(started.clock, first.colour, first.next_at, MONDAY_9 + dt.timedelta(minutes=100))
    assert again.entered == ()
    rest = _walk(started.clock, first.colour, first.next_at, MONDAY_9 + dt.timedelta(hours=3))
    assert [e.colour for e in rest.entered] == [ORANGE, RED]


def test_an_instant_exactly_at_a_threshold_enters_that_colour():
    started = _started()
    walked = _walk(started.clock, started.colour, started.next_at, MONDAY_9 + dt.timedelta(hours=2))
    assert [e.colour for e in walked.entered] == [YELLOW, ORANGE]


def test_working_time_colours_skip_nights_and_weekends():
    # 1 working day from Friday 16:00: due Monday 17:30 (8.5 working hours).
    friday = dt.datetime(2026, 3, 6, 16, 0, tzinfo=CST)
    started = _started(TimeLimit(1, TimeUnit.WORKING_DAYS), friday)
    walked = _walk(started.clock, started.colour, started.next_at, friday + dt.timedelta(days=7))
    assert all(e.at.weekday() < 5 for e in walked.entered)
    assert [e.colour for e in walked.entered] == [YELLOW, ORANGE, RED]
    assert walked.entered[1].at == dt.datetime(2026, 3, 9, 17, 30, tzinfo=CST)


def test_a_paused_clock_enters_nothing():
    started = _started()
    clock = started.clock
    clock.pause(MONDAY_9 + dt.timedelta(minutes=30), CALENDAR)
    paused_at = MONDAY_9 + dt.timedelta(minutes=30)
    next_at = colours.next_colour_at(clock, paused_at, LEVELS, CALENDAR)
    walked = _walk(clock, GREEN, next_at, MONDAY_9 + dt.timedelta(days=30))
    assert (walked.entered, walked.colour, walked.next_at) == ((), GREEN, None)


@pytest.mark.parametrize(
    "limit",
    [
        TimeLimit(1, TimeUnit.WORKING_DAYS),
        TimeLimit(40, TimeUnit.WORKING_HOURS),
        TimeLimit(72, TimeUnit.HOURS),
    ],
)
def test_a_clock_beyond_the_calendars_range_is_refused_quietly(limit):
    assert (
        colours.start(dt.datetime(9999, 12, 31, 16, 0, tzinfo=CST), limit, LEVELS, CALENDAR) is None
    )


def test_a_walk_that_would_leave_the_calendars_range_stops_without_raising():
    # Started close to the end of time: yellow and orange are still representable in CST, red
    # (midnight into year 10000) is not.
    start = dt.datetime(9999, 12, 31, 13, 0, tzinfo=dt.timezone.utc)  # 21:00 in CST
    clock = SlaClock.start(start, TimeLimit(2, TimeUnit.HOURS), CALENDAR)
    walked = _walk(
        clock,
        GREEN,
        start + dt.timedelta(minutes=90),
        dt.datetime.max.replace(tzinfo=dt.timezone.utc),
    )
    assert [e.colour for e in walked.entered] == [YELLOW, ORANGE]
    assert (walked.colour, walked.next_at) == (ORANGE, None)
