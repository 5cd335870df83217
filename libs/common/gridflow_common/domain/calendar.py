"""Working calendars, time limits and the SLA clock of an assignment.

Pure functions of their inputs: the current time is always passed in, never read here, so the
same code can be replayed deterministically in tests and scenario runs.

All arithmetic on a calendar happens in its zone (``WorkingCalendar.zone``, the jurisdiction's
time zone, China Standard Time unless the city says otherwise), the time its office hours and
holidays are written in; every datetime a calendar returns is aware and in that zone.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

__all__ = [
    "CST",
    "SlaClock",
    "TimeLimit",
    "TimeUnit",
    "WarningLevel",
    "WorkingCalendar",
    "advance",
    "colour_for",
    "due_at",
    "measure",
    "parse_time_unit",
]

CST: tzinfo = ZoneInfo("Asia/Shanghai")

_ONE_DAY = timedelta(days=1)
_SATURDAY = 5


def _to_zone(moment: datetime, zone: tzinfo) -> datetime:
    # A naive datetime would be silently read as the host's local time, which is exactly the
    # kind of bug that only shows up on a server in another zone; refuse it instead.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(zone)


def _to_cst(moment: datetime) -> datetime:
    return _to_zone(moment, CST)


def _span(start: datetime, end: datetime) -> timedelta:
    # Subtracting two datetimes that share a tzinfo compares wall clocks, not instants; going
    # through UTC keeps the result an exact elapsed duration whatever zone rules apply.
    return end.astimezone(UTC) - start.astimezone(UTC)


def _after(start: datetime, duration: timedelta) -> datetime:
    # Same reason as _span: wall-clock addition would be wrong across an offset change. The
    # result is in the zone ``start`` is in.
    assert start.tzinfo is not None
    return (start.astimezone(UTC) + duration).astimezone(start.tzinfo)


class TimeUnit(str, enum.Enum):
    MINUTES = "minutes"
    HOURS = "hours"
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"

    @property
    def is_business(self) -> bool:
        """True when the unit counts only office hours on working days."""
        return self in (TimeUnit.WORKING_HOURS, TimeUnit.WORKING_DAYS)


def parse_time_unit(text: str) -> TimeUnit:
    """Read a unit as written in a jurisdiction's spreadsheet (``categories.csv``)."""
    # Spreadsheets routinely carry stray spaces and capitals; those are not meaningful.
    cleaned = text.strip().lower()
    try:
        return TimeUnit(cleaned)
    except ValueError:
        allowed = ", ".join(unit.value for unit in TimeUnit)
        raise ValueError(f"unknown time unit {text!r}; expected one of: {allowed}") from None


@dataclass(frozen=True)
class TimeLimit:
    amount: int
    unit: TimeUnit

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"time limit amount must be an int, got {self.amount!r}")
        if self.amount < 0:
            raise ValueError(f"time limit amount must not be negative, got {self.amount}")
        if not isinstance(self.unit, TimeUnit):
            # Lets callers pass the raw CSV text while keeping the field strictly typed.
            object.__setattr__(self, "unit", parse_time_unit(self.unit))


_DEFAULT_OFFICE_HOURS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(14, 0), time(17, 30)),
)


@dataclass(frozen=True)
class WorkingCalendar:
    """Which days are worked and during which hours, in the city's zone."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    office_hours: tuple[tuple[time, time], ...] = _DEFAULT_OFFICE_HOURS
    zone: tzinfo = CST

    def __post_init__(self) -> None:
        # Callers may hand over sets or lists; normalising keeps the instance hashable.
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "workdays", frozenset(self.workdays))
        periods = tuple((opens, closes) for opens, closes in self.office_hours)
        object.__setattr__(self, "office_hours", periods)

        both = self.holidays & self.workdays
        if both:
            raise ValueError(f"dates are both holiday and workday: {sorted(both)}")
        # Without any open time, adding business time could never finish.
        if not periods:
            raise ValueError("office_hours must contain at least one period")
        previous_close: time | None = None
        for opens, closes in periods:
            if any(moment.tzinfo is not None for moment in (opens, closes)):
                raise ValueError("office hours are local times of the zone and must be naive")
            if not opens < closes:
                raise ValueError(f"office period must open before it closes: {opens}-{closes}")
            if previous_close is not None and opens < previous_close:
                raise ValueError("office periods must be in order and must not overlap")
            previous_close = closes

    def local(self, moment: datetime) -> datetime:
        """``moment`` in the calendar's zone (refusing a naive datetime)."""
        return _to_zone(moment, self.zone)

    def is_working_day(self, d: date) -> bool:
        if d in self.holidays:
            return False
        return d.weekday() < _SATURDAY or d in self.workdays

    def _periods_on(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        if not self.is_working_day(day):
            return
        for opens, closes in self.office_hours:
            yield datetime.combine(day, opens, self.zone), datetime.combine(day, closes, self.zone)

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        start, end = self.local(start), self.local(end)
        if end <= start:
            return 0.0
        first, last = start.date(), end.date()
        # Accumulating timedeltas keeps the sum exact to the microsecond; floats would drift.
        total = self._open_between(start, end, first)
        if last > first:
            total += self._open_between(start, end, last)
            # The whole days in between are counted, not walked: a span of centuries (a clock
            # moved to year 9999) costs as little as a span of a week.
            total += self._day_length() * self._working_days_in(first + _ONE_DAY, last - _ONE_DAY)
        return total.total_seconds()

    def _open_between(self, start: datetime, end: datetime, day: date) -> timedelta:
        total = timedelta()
        for opens, closes in self._periods_on(day):
            low, high = max(start, opens), min(end, closes)
            if high > low:
                total += _span(low, high)
        return total

    def _day_length(self) -> timedelta:
        # Zones change their offset at night (Asia/Shanghai has not since 1991), never inside
        # office hours, so every working day is open for the same length of time.
        anyday = date(2000, 1, 3)
        return sum(
            (
                datetime.combine(anyday, c) - datetime.combine(anyday, o)
                for o, c in self.office_hours
            ),
            timedelta(),
        )

    def _working_days_in(self, first: date, last: date) -> int:
        """How many working days ``first`` to ``last`` (both included) hold."""
        if last < first:
            return 0
        weeks, extra = divmod((last - first).days + 1, 7)
        count = weeks * 5
        count += sum(1 for i in range(extra) if (first.weekday() + i) % 7 < _SATURDAY)
        count -= sum(1 for d in self.holidays if first <= d <= last and d.weekday() < _SATURDAY)
        count += sum(1 for d in self.workdays if first <= d <= last and d.weekday() >= _SATURDAY)
        return count

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant at which ``seconds`` of business time have passed since start.

        Running out exactly at a period's close returns that close rather than the next opening,
        so a limit never appears to last longer than it does.
        """
        if seconds < 0 or math.isnan(seconds):
            raise ValueError(f"seconds must be a non-negative number, got {seconds}")
        start = self.local(start)
        remaining = timedelta(seconds=seconds)
        if not remaining:
            return start
        day = start.date()
        # Terminates: office hours are non-empty and holidays finite, so open time keeps coming.
        while True:
            for opens, closes in self._periods_on(day):
                if closes <= start:
                    continue
                low = max(opens, start)
                available = _span(low, closes)
                if remaining <= available:
                    return _after(low, remaining)
                remaining -= available
            day += _ONE_DAY

    def close_of_nth_working_day_after(self, start: datetime, n: int) -> datetime:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        day = self.local(start).date()
        found = 0
        while found < n:
            day += _ONE_DAY
            if self.is_working_day(day):
                found += 1
        return datetime.combine(day, self.office_hours[-1][1], self.zone)


def due_at(dispatched_at: datetime, limit: TimeLimit, calendar: WorkingCalendar) -> datetime:
    """When an assignment dispatched at ``dispatched_at`` must be finished.

    A limit of 0 (in any unit) is due at the moment of dispatch.
    """
    dispatched_at = calendar.local(dispatched_at)
    if limit.amount == 0:
        return dispatched_at
    if limit.unit is TimeUnit.MINUTES:
        return _after(dispatched_at, timedelta(minutes=limit.amount))
    if limit.unit is TimeUnit.HOURS:
        return _after(dispatched_at, timedelta(hours=limit.amount))
    if limit.unit is TimeUnit.WORKING_HOURS:
        return calendar.add_business_seconds(dispatched_at, limit.amount * 3600)
    return calendar.close_of_nth_working_day_after(dispatched_at, limit.amount)


def measure(start: datetime, end: datetime, limit: TimeLimit, calendar: WorkingCalendar) -> float:
    """Seconds from start to end in the limit's own kind of time; 0.0 if end <= start."""
    if limit.unit.is_business:
        return calendar.business_seconds_between(start, end)
    return max(_span(calendar.local(start), calendar.local(end)).total_seconds(), 0.0)


def advance(
    start: datetime, seconds: float, limit: TimeLimit, calendar: WorkingCalendar
) -> datetime:
    """The instant at which ``seconds`` of the limit's kind of time have passed since start."""
    if limit.unit.is_business:
        return calendar.add_business_seconds(start, seconds)
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"seconds must be a non-negative number, got {seconds}")
    return _after(calendar.local(start), timedelta(seconds=seconds))


def resumed_due(
    due: datetime,
    paused_at: datetime,
    resumed_at: datetime,
    limit: TimeLimit,
    calendar: WorkingCalendar,
) -> datetime:
    """The due instant of a clock paused at ``paused_at`` (挂账, or an approved pause) and
    resumed at ``resumed_at``: the time on hold counts on neither side, so the due instant moves
    later by the time spent on hold, measured in the limit's own kind of time (working time for
    a limit in working hours or days: a weekend on hold moves nothing)."""
    on_hold = measure(paused_at, resumed_at, limit, calendar)
    return calendar.local(advance(due, on_hold, limit, calendar))


def extended_total(
    total_seconds: float,
    due: datetime,
    new_due: datetime,
    limit: TimeLimit,
    calendar: WorkingCalendar,
) -> float:
    """The limit of a clock whose due instant an approved extension (延期) moves from ``due`` to
    ``new_due``: the time from dispatch to ``new_due`` in the limit's own kind of time (working
    time for a limit in working hours or days), less whatever the clock spent stopped (挂账,
    挂起), which counts on neither side. ``total_seconds`` is the limit the clock ran against
    until now; the extension adds the time between the two due instants. An instant at or
    before ``due`` adds nothing (an extension never shortens a limit)."""
    return total_seconds + measure(due, new_due, limit, calendar)


@dataclass(frozen=True)
class WarningLevel:
    colour: str
    from_fraction: float
    action: str


def colour_for(fraction: float, levels: Sequence[WarningLevel]) -> WarningLevel:
    """The level with the highest ``from_fraction`` that ``fraction`` has reached."""
    reached = [level for level in levels if level.from_fraction <= fraction]
    if not reached:
        # Guessing a colour here would fire (or suppress) an action the city never configured.
        raise ValueError(f"no warning level starts at or below fraction {fraction}")
    return max(reached, key=lambda level: level.from_fraction)


# A couple of microsecond nudges absorb float rounding in fraction * total / total.
_MAX_NUDGES = 4
_NUDGE_SECONDS = 1e-6


@dataclass
class SlaClock:
    """The clock of one assignment.

    Paused periods count neither as elapsed time nor towards the total, so pausing in effect
    pushes the moment the clock runs out later by the paused stretch; ``due`` keeps the instant
    computed at start.
    """

    started_at: datetime
    limit: TimeLimit
    due: datetime
    total_seconds: float
    elapsed_before: float = 0.0
    running_since: datetime | None = None

    @classmethod
    def start(cls, started_at: datetime, limit: TimeLimit, calendar: WorkingCalendar) -> SlaClock:
        started_at = calendar.local(started_at)
        due = due_at(started_at, limit, calendar)
        return cls(
            started_at=started_at,
            limit=limit,
            due=due,
            total_seconds=measure(started_at, due, limit, calendar),
            running_since=started_at,
        )

    def elapsed(self, now: datetime, calendar: WorkingCalendar) -> float:
        if self.running_since is None:
            return self.elapsed_before
        return self.elapsed_before + measure(self.running_since, now, self.limit, calendar)

    def fraction(self, now: datetime, calendar: WorkingCalendar) -> float:
        """Elapsed share of the limit.

        A zero-length limit is due the moment it starts: its fraction is 1.0 until any time
        has elapsed and ``inf`` from then on, so it reads as due and then overdue, never as
        a division error.
        """
        elapsed = self.elapsed(now, calendar)
        if self.total_seconds > 0:
            return elapsed / self.total_seconds
        return math.inf if elapsed > 0 else 1.0

    def pause(self, now: datetime, calendar: WorkingCalendar) -> None:
        """Stop the clock; pausing a paused clock changes nothing (events may be redelivered)."""
        if self.running_since is None:
            return
        self.elapsed_before = self.elapsed(now, calendar)
        self.running_since = None

    def resume(self, now: datetime) -> None:
        """Restart the clock; resuming a running clock changes nothing."""
        if self.running_since is not None:
            return
        self.running_since = _to_cst(now)

    def instant_of_fraction(self, fraction: float, calendar: WorkingCalendar) -> datetime | None:
        """When the running clock reaches ``fraction``; None while paused.

        A fraction reached before the current running stretch began yields ``running_since``.
        The instant returned always satisfies ``self.fraction(instant) >= fraction`` so a timer
        set for it never fires a moment too early and re-schedules itself for the same level.
        """
        if self.running_since is None:
            return None
        if not math.isfinite(fraction):
            raise ValueError(f"fraction must be finite, got {fraction}")
        still_to_run = max(fraction * self.total_seconds - self.elapsed_before, 0.0)
        instant = self.running_since
        for nudge in range(_MAX_NUDGES):
            instant = advance(
                self.running_since,
                still_to_run + nudge * _NUDGE_SECONDS,
                self.limit,
                calendar,
            )
            if self.fraction(instant, calendar) >= fraction:
                break
        return instant

    def next_transition(
        self, now: datetime, levels: Sequence[WarningLevel], calendar: WorkingCalendar
    ) -> tuple[datetime, WarningLevel] | None:
        """The next level the clock will enter after ``now`` and when; None if paused or none."""
        if self.running_since is None:
            return None
        current = self.fraction(now, calendar)
        ahead = [level for level in levels if level.from_fraction > current]
        if not ahead:
            return None
        level = min(ahead, key=lambda candidate: candidate.from_fraction)
        instant = self.instant_of_fraction(level.from_fraction, calendar)
        assert instant is not None  # running, checked above
        return instant, level
