from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from gridflow_common.domain.calendar import (
    CST,
    SlaClock,
    TimeLimit,
    TimeUnit,
    WarningLevel,
    WorkingCalendar,
    advance,
    colour_for,
    due_at,
    measure,
    parse_time_unit,
)

HOUR = 3600.0

# A slice of the Lucheng calendar.csv: the autumn 调休 and the National Day week.
LUCHENG = WorkingCalendar(
    holidays=frozenset(
        [date(2026, 9, 25), date(2026, 9, 26), date(2026, 9, 27)]
        + [date(2026, 10, day) for day in range(1, 8)]
    ),
    workdays=frozenset([date(2026, 9, 20), date(2026, 10, 10)]),
    office_hours=((time(8, 30), time(12, 0)), (time(14, 0), time(17, 30))),
)

# Deliberately unsorted: the order in a city's CSV must not matter.
LEVELS = [
    WarningLevel("orange", 1.0, "supervise"),
    WarningLevel("green", 0.0, "none"),
    WarningLevel("red", 1.5, "escalate"),
    WarningLevel("yellow", 0.75, "remind_handler"),
]

ONE_WORKING_DAY = TimeLimit(1, TimeUnit.WORKING_DAYS)
FOUR_WORKING_HOURS = TimeLimit(4, TimeUnit.WORKING_HOURS)
TWO_HOURS = TimeLimit(2, TimeUnit.HOURS)


def cst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CST)


# --- the fixture README's worked example ---------------------------------------------------


def test_one_working_day_from_friday_afternoon_is_due_on_makeup_sunday_close():
    assert due_at(cst(2026, 9, 18, 16), ONE_WORKING_DAY, LUCHENG) == cst(2026, 9, 20, 17, 30)


def test_worked_example_total_is_friday_remainder_plus_makeup_sunday():
    clock = SlaClock.start(cst(2026, 9, 18, 16), ONE_WORKING_DAY, LUCHENG)
    assert clock.due == cst(2026, 9, 20, 17, 30)
    assert clock.total_seconds == 8.5 * HOUR


@pytest.mark.parametrize(
    ("now", "elapsed_hours", "colour"),
    [
        (cst(2026, 9, 20, 16), 7.0, "yellow"),
        (cst(2026, 9, 21, 9), 9.0, "orange"),
        (cst(2026, 9, 21, 16), 14.0, "red"),
    ],
)
def test_worked_example_fraction_and_colour(now, elapsed_hours, colour):
    clock = SlaClock.start(cst(2026, 9, 18, 16), ONE_WORKING_DAY, LUCHENG)
    assert clock.elapsed(now, LUCHENG) == elapsed_hours * HOUR
    fraction = clock.fraction(now, LUCHENG)
    assert fraction == pytest.approx(elapsed_hours / 8.5)
    assert colour_for(fraction, LEVELS).colour == colour


def test_worked_example_fractions_round_as_in_readme():
    clock = SlaClock.start(cst(2026, 9, 18, 16), ONE_WORKING_DAY, LUCHENG)
    assert round(clock.fraction(cst(2026, 9, 20, 16), LUCHENG), 2) == 0.82
    assert round(clock.fraction(cst(2026, 9, 21, 9), LUCHENG), 2) == 1.06
    assert round(clock.fraction(cst(2026, 9, 21, 16), LUCHENG), 2) == 1.65


def test_worked_example_reaches_red_monday_afternoon():
    clock = SlaClock.start(cst(2026, 9, 18, 16), ONE_WORKING_DAY, LUCHENG)
    assert clock.instant_of_fraction(1.5, LUCHENG) == cst(2026, 9, 21, 14, 45)


def test_worked_example_transitions_follow_the_levels_in_order():
    clock = SlaClock.start(cst(2026, 9, 18, 16), ONE_WORKING_DAY, LUCHENG)
    yellow_at, yellow = clock.next_transition(cst(2026, 9, 18, 16), LEVELS, LUCHENG)
    # 0.75 * 8.5 h = 6.375 h: 1.5 h on Friday, then 4.875 h into Sunday.
    assert (yellow.colour, yellow_at) == (
        "yellow",
        cst(2026, 9, 20, 15, 22) + timedelta(seconds=30),
    )
    orange_at, orange = clock.next_transition(cst(2026, 9, 20, 16), LEVELS, LUCHENG)
    assert (orange.colour, orange_at) == ("orange", cst(2026, 9, 20, 17, 30))
    red_at, red = clock.next_transition(cst(2026, 9, 21, 9), LEVELS, LUCHENG)
    assert (red.colour, red_at) == ("red", cst(2026, 9, 21, 14, 45))
    assert clock.next_transition(cst(2026, 9, 21, 16), LEVELS, LUCHENG) is None


def test_running_clock_reaches_fraction_one_exactly_at_due():
    clock = SlaClock.start(cst(2026, 9, 18, 16), ONE_WORKING_DAY, LUCHENG)
    assert clock.instant_of_fraction(1.0, LUCHENG) == clock.due


# --- working hours --------------------------------------------------------------------------


def test_working_hours_dispatched_in_lunch_break_start_counting_at_afternoon_opening():
    assert due_at(cst(2026, 5, 11, 12), FOUR_WORKING_HOURS, LUCHENG) == cst(2026, 5, 12, 9)


def test_working_hours_fractions_across_the_night():
    clock = SlaClock.start(cst(2026, 5, 11, 12), FOUR_WORKING_HOURS, LUCHENG)
    assert clock.total_seconds == 4 * HOUR
    monday_evening = clock.fraction(cst(2026, 5, 11, 17, 20), LUCHENG)
    assert monday_evening == pytest.approx((3 + 20 / 60) / 4)
    assert colour_for(monday_evening, LEVELS).colour == "yellow"
    tuesday_morning = clock.fraction(cst(2026, 5, 12, 10), LUCHENG)
    assert tuesday_morning == pytest.approx(5 / 4)
    assert colour_for(tuesday_morning, LEVELS).colour == "orange"


def test_business_time_running_out_at_a_close_returns_that_close():
    friday_four_pm = cst(2026, 9, 18, 16)
    assert LUCHENG.add_business_seconds(friday_four_pm, 1.5 * HOUR) == cst(2026, 9, 18, 17, 30)


def test_adding_zero_business_seconds_returns_start_even_outside_office_hours():
    midnight = cst(2026, 9, 19, 0)
    assert LUCHENG.add_business_seconds(midnight, 0) == midnight


def test_adding_business_seconds_outside_office_hours_starts_at_next_opening():
    saturday = cst(2026, 9, 19, 10)
    assert LUCHENG.add_business_seconds(saturday, 60) == cst(2026, 9, 20, 8, 31)


def test_negative_business_seconds_are_rejected():
    with pytest.raises(ValueError):
        LUCHENG.add_business_seconds(cst(2026, 9, 18, 9), -1)


def test_business_seconds_between_is_zero_when_end_not_after_start():
    assert LUCHENG.business_seconds_between(cst(2026, 9, 18, 10), cst(2026, 9, 18, 9)) == 0.0
    assert LUCHENG.business_seconds_between(cst(2026, 9, 18, 10), cst(2026, 9, 18, 10)) == 0.0


def test_business_seconds_count_only_office_hours():
    # Friday 10:00 -> Monday 15:00: 2 + 3.5 (Fri) + 7 (makeup Sunday) + 3.5 + 1 (Mon).
    seconds = LUCHENG.business_seconds_between(cst(2026, 9, 18, 10), cst(2026, 9, 21, 15))
    assert seconds == 17 * HOUR


def test_business_arithmetic_accepts_other_zones_and_answers_in_cst():
    utc_dispatch = datetime(2026, 5, 11, 4, 0, tzinfo=UTC)  # 12:00 CST
    due = due_at(utc_dispatch, FOUR_WORKING_HOURS, LUCHENG)
    assert due == cst(2026, 5, 12, 9)
    assert due.tzinfo is CST


def test_naive_datetimes_are_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(datetime(2026, 5, 11, 12), FOUR_WORKING_HOURS, LUCHENG)


def test_long_spans_are_computed_by_whole_days():
    # About a decade of working days; stepping by minutes would take far too long here.
    start = cst(2026, 1, 5, 8, 30)
    later = LUCHENG.add_business_seconds(start, 2500 * 7 * HOUR)
    assert LUCHENG.business_seconds_between(start, later) == 2500 * 7 * HOUR


# --- working days ---------------------------------------------------------------------------


def test_one_working_day_dispatched_before_opening_is_due_next_day_close():
    clock = SlaClock.start(cst(2026, 6, 1, 8), ONE_WORKING_DAY, LUCHENG)
    assert clock.due == cst(2026, 6, 2, 17, 30)
    assert clock.total_seconds == 14 * HOUR
    assert clock.elapsed(cst(2026, 6, 2, 15), LUCHENG) == 11.5 * HOUR


def test_working_days_skip_national_day_holidays():
    assert due_at(cst(2026, 9, 30, 10), ONE_WORKING_DAY, LUCHENG) == cst(2026, 10, 8, 17, 30)


def test_working_days_count_makeup_saturday():
    three_days = TimeLimit(3, TimeUnit.WORKING_DAYS)
    assert due_at(cst(2026, 9, 30, 10), three_days, LUCHENG) == cst(2026, 10, 10, 17, 30)


def test_working_days_skip_holiday_friday_and_weekend():
    two_days = TimeLimit(2, TimeUnit.WORKING_DAYS)
    assert due_at(cst(2026, 9, 24, 10), two_days, LUCHENG) == cst(2026, 9, 29, 17, 30)


def test_working_hours_continue_after_holiday_week():
    one_hour = TimeLimit(1, TimeUnit.WORKING_HOURS)
    assert due_at(cst(2026, 9, 30, 17), one_hour, LUCHENG) == cst(2026, 10, 8, 9)


def test_dispatch_day_never_counts_even_from_a_weekend():
    # Dispatched on a non-working Saturday: the first working day after it is the makeup Sunday.
    assert due_at(cst(2026, 9, 19, 9), ONE_WORKING_DAY, LUCHENG) == cst(2026, 9, 20, 17, 30)


def test_close_of_nth_working_day_requires_positive_n():
    with pytest.raises(ValueError):
        LUCHENG.close_of_nth_working_day_after(cst(2026, 9, 18, 9), 0)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 9, 18), True),  # ordinary Friday
        (date(2026, 9, 19), False),  # ordinary Saturday
        (date(2026, 9, 20), True),  # makeup Sunday
        (date(2026, 9, 25), False),  # holiday Friday
        (date(2026, 10, 10), True),  # makeup Saturday
    ],
)
def test_is_working_day(day, working):
    assert LUCHENG.is_working_day(day) is working


def test_calendar_rejects_a_date_that_is_both_holiday_and_workday():
    with pytest.raises(ValueError):
        WorkingCalendar(holidays=frozenset([date(2026, 9, 20)]), workdays={date(2026, 9, 20)})


def test_calendar_rejects_empty_or_overlapping_office_hours():
    with pytest.raises(ValueError):
        WorkingCalendar(office_hours=())
    with pytest.raises(ValueError):
        WorkingCalendar(office_hours=((time(8), time(12)), (time(11), time(17))))


def test_calendar_office_hours_come_from_the_data():
    # A city with one long period: 1 working day from Friday is Monday's close.
    long_day = WorkingCalendar(office_hours=((time(9), time(18)),))
    clock = SlaClock.start(cst(2026, 5, 15, 17), ONE_WORKING_DAY, long_day)
    assert clock.due == cst(2026, 5, 18, 18)
    assert clock.total_seconds == 10 * HOUR


# --- natural time ---------------------------------------------------------------------------


def test_natural_hours_ignore_the_calendar():
    saturday_night = cst(2026, 9, 19, 23)
    assert due_at(saturday_night, TWO_HOURS, LUCHENG) == cst(2026, 9, 20, 1)


def test_natural_minutes_run_through_a_holiday():
    ninety = TimeLimit(90, TimeUnit.MINUTES)
    assert due_at(cst(2026, 10, 1, 23), ninety, LUCHENG) == cst(2026, 10, 2, 0, 30)


def test_natural_time_measures_and_advances_wall_seconds():
    start = cst(2026, 10, 3, 12)
    assert measure(start, cst(2026, 10, 3, 13), TWO_HOURS, LUCHENG) == HOUR
    assert measure(start, cst(2026, 10, 3, 11), TWO_HOURS, LUCHENG) == 0.0
    assert advance(start, 1800, TWO_HOURS, LUCHENG) == cst(2026, 10, 3, 12, 30)


def test_natural_clock_fraction_over_a_weekend():
    clock = SlaClock.start(cst(2026, 9, 19, 23), TWO_HOURS, LUCHENG)
    assert clock.total_seconds == 2 * HOUR
    assert clock.fraction(cst(2026, 9, 20, 0, 30), LUCHENG) == 0.75
    assert clock.instant_of_fraction(1.5, LUCHENG) == cst(2026, 9, 20, 2)


def test_measure_and_advance_are_inverse_for_business_time():
    start = cst(2026, 9, 18, 11)
    later = advance(start, 9 * HOUR, ONE_WORKING_DAY, LUCHENG)
    # 1 h + 3.5 h on Friday, then 3.5 h + 1 h on the makeup Sunday.
    assert later == cst(2026, 9, 20, 15)
    assert measure(start, later, ONE_WORKING_DAY, LUCHENG) == 9 * HOUR


def test_zero_limit_is_due_at_dispatch_and_then_overdue():
    clock = SlaClock.start(cst(2026, 9, 18, 10), TimeLimit(0, TimeUnit.HOURS), LUCHENG)
    assert clock.due == cst(2026, 9, 18, 10)
    assert clock.fraction(cst(2026, 9, 18, 10), LUCHENG) == 1.0
    assert clock.fraction(cst(2026, 9, 18, 10, 1), LUCHENG) == float("inf")
    red_at, red = clock.next_transition(cst(2026, 9, 18, 10), LEVELS, LUCHENG)
    assert red.colour == "red"
    assert clock.fraction(red_at, LUCHENG) >= 1.5
    assert clock.next_transition(cst(2026, 9, 18, 10, 1), LEVELS, LUCHENG) is None


# --- pausing --------------------------------------------------------------------------------


def test_paused_stretch_counts_neither_as_elapsed_nor_towards_due():
    clock = SlaClock.start(cst(2026, 5, 11, 12), FOUR_WORKING_HOURS, LUCHENG)
    clock.pause(cst(2026, 5, 11, 15), LUCHENG)  # 1 h used
    assert clock.elapsed(cst(2026, 5, 12, 11), LUCHENG) == HOUR
    assert clock.instant_of_fraction(1.0, LUCHENG) is None
    assert clock.next_transition(cst(2026, 5, 12, 11), LEVELS, LUCHENG) is None

    clock.resume(cst(2026, 5, 12, 9))
    assert clock.elapsed(cst(2026, 5, 12, 10), LUCHENG) == 2 * HOUR
    assert clock.fraction(cst(2026, 5, 12, 10), LUCHENG) == 0.5
    # 3 h still to run from Tuesday 09:00: 3 h until 12:00.
    assert clock.instant_of_fraction(1.0, LUCHENG) == cst(2026, 5, 12, 12)
    assert clock.total_seconds == 4 * HOUR
    assert clock.due == cst(2026, 5, 12, 9)  # the instant computed at start stays on record


def test_pause_and_resume_are_idempotent():
    clock = SlaClock.start(cst(2026, 9, 18, 16), TWO_HOURS, LUCHENG)
    clock.pause(cst(2026, 9, 18, 16, 30), LUCHENG)
    clock.pause(cst(2026, 9, 18, 17), LUCHENG)
    assert clock.elapsed_before == 1800
    clock.resume(cst(2026, 9, 18, 18))
    clock.resume(cst(2026, 9, 18, 19))
    assert clock.running_since == cst(2026, 9, 18, 18)
    assert clock.elapsed(cst(2026, 9, 18, 18, 30), LUCHENG) == HOUR


def test_next_transition_after_resume_accounts_for_the_pause():
    clock = SlaClock.start(cst(2026, 9, 18, 16), TWO_HOURS, LUCHENG)
    clock.pause(cst(2026, 9, 18, 17), LUCHENG)  # fraction 0.5
    clock.resume(cst(2026, 9, 18, 20))
    at, level = clock.next_transition(cst(2026, 9, 18, 20), LEVELS, LUCHENG)
    assert (level.colour, at) == ("yellow", cst(2026, 9, 18, 20, 30))


def test_fraction_reached_before_a_pause_is_reported_at_the_resume():
    clock = SlaClock.start(cst(2026, 9, 18, 16), TWO_HOURS, LUCHENG)
    clock.pause(cst(2026, 9, 18, 17, 30), LUCHENG)  # 0.75 reached at 17:30
    clock.resume(cst(2026, 9, 18, 20))
    assert clock.instant_of_fraction(0.5, LUCHENG) == cst(2026, 9, 18, 20)


# --- warning levels and units ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "colour"),
    [(0.0, "green"), (0.74, "green"), (0.75, "yellow"), (1.0, "orange"), (1.5, "red"), (9, "red")],
)
def test_colour_for_takes_highest_level_reached(fraction, colour):
    assert colour_for(fraction, LEVELS).colour == colour


def test_colour_for_rejects_fraction_below_every_level():
    with pytest.raises(ValueError):
        colour_for(-0.1, LEVELS)


def test_parse_time_unit_accepts_the_four_units():
    assert parse_time_unit("working_days") is TimeUnit.WORKING_DAYS
    assert parse_time_unit(" Hours ") is TimeUnit.HOURS
    assert TimeUnit.WORKING_HOURS.is_business and not TimeUnit.MINUTES.is_business


def test_parse_time_unit_names_the_allowed_values():
    with pytest.raises(ValueError, match="minutes, hours, working_hours, working_days"):
        parse_time_unit("fortnights")


def test_time_limit_accepts_unit_text_and_rejects_negative_amounts():
    assert TimeLimit(4, "working_hours") == FOUR_WORKING_HOURS
    with pytest.raises(ValueError):
        TimeLimit(-1, TimeUnit.HOURS)


def test_other_offsets_are_the_same_instant():
    plus_nine = timezone(timedelta(hours=9))
    dispatched = datetime(2026, 9, 18, 17, tzinfo=plus_nine)  # Friday 16:00 CST
    assert due_at(dispatched, ONE_WORKING_DAY, LUCHENG) == cst(2026, 9, 20, 17, 30)


# --- the end of the calendar (a clock moved to year 9999) ---------------------------------------


def _walked_business_seconds(cal: WorkingCalendar, start: datetime, end: datetime) -> float:
    """Business time counted day by day, the slow way, to check the fast count against."""
    total = timedelta()
    day = start.date()
    while day <= end.date():
        if cal.is_working_day(day):
            for opens, closes in cal.office_hours:
                low = max(start, datetime.combine(day, opens, CST))
                high = min(end, datetime.combine(day, closes, CST))
                if high > low:
                    total += high - low
        day += timedelta(days=1)
    return total.total_seconds()


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (cst(2026, 9, 18, 16), cst(2026, 10, 12, 9)),  # 调休 Sunday, National Day, workday
        (cst(2026, 9, 20, 12, 30), cst(2026, 9, 20, 15)),  # one day, across lunch
        (cst(2026, 9, 19, 10), cst(2026, 9, 21, 10)),  # starts on a Saturday
        (cst(2026, 1, 1), cst(2027, 3, 3, 11, 11)),  # over a year
    ],
)
def test_long_spans_are_counted_exactly_without_walking_every_day(start, end):
    assert LUCHENG.business_seconds_between(start, end) == _walked_business_seconds(
        LUCHENG, start, end
    )


def test_business_time_up_to_the_last_day_of_the_calendar_neither_overflows_nor_crawls():
    import time as wall

    began = wall.perf_counter()
    seconds = LUCHENG.business_seconds_between(cst(2026, 3, 2, 9), cst(9999, 12, 31, 23, 59))
    assert wall.perf_counter() - began < 0.5
    assert seconds > 2_000_000 * 7 * HOUR  # about 2.08 million working days of 7 hours
