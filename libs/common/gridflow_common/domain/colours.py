"""The colour walk (四色预警): which colours a clock enters between two instants, in order, each
with the instant it was entered, the action the city attached to it and the elapsed fraction
there. Built on ``calendar.py``; standard library only, and the instants are passed in.

A clock whose arithmetic would leave the calendar's range (dates past year 9999, reached by a
clock set absurdly far ahead) has no next colour: it is not an error that could stop a sweep of
every other clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gridflow_common.domain.calendar import (
    SlaClock,
    TimeLimit,
    WarningLevel,
    WorkingCalendar,
    colour_for,
)

# Python's datetime cannot go past year 9999; calendar arithmetic near it overflows.
BEYOND_CALENDAR = (OverflowError,)


@dataclass(frozen=True)
class ColourEntered:
    colour: str
    action: str
    fraction: float
    at: datetime


@dataclass(frozen=True)
class Walk:
    """What a walk found: the colours entered, where the clock stands, when its next one is due
    (None: no colour is left to enter, the clock is paused, or it lies beyond the calendar)."""

    entered: tuple[ColourEntered, ...]
    colour: str
    next_at: datetime | None


@dataclass(frozen=True)
class Started:
    clock: SlaClock
    colour: str
    next_at: datetime | None


def start(
    started_at: datetime,
    limit: TimeLimit,
    levels: Sequence[WarningLevel],
    calendar: WorkingCalendar,
) -> Started | None:
    """A running clock from ``started_at``, its first colour and when its next is due; None when
    its due instant lies beyond the calendar (no clock can be kept for it)."""
    try:
        clock = SlaClock.start(started_at, limit, calendar)
    except BEYOND_CALENDAR:
        return None
    first = colour_for(0.0, levels)
    return Started(clock, first.colour, next_colour_at(clock, started_at, levels, calendar))


def next_colour_at(
    clock: SlaClock, after: datetime, levels: Sequence[WarningLevel], calendar: WorkingCalendar
) -> datetime | None:
    try:
        found = clock.next_transition(after, levels, calendar)
    except BEYOND_CALENDAR:
        return None
    return found[0] if found else None


def walk(
    clock: SlaClock,
    colour: str,
    next_at: datetime | None,
    until: datetime,
    levels: Sequence[WarningLevel],
    calendar: WorkingCalendar,
) -> Walk:
    """Every colour the clock enters after standing at ``colour`` (its next colour due at
    ``next_at``) up to and including ``until``, in order."""
    entered: list[ColourEntered] = []
    at = next_at
    while at is not None and at <= until:
        try:
            fraction = clock.fraction(at, calendar)
        except BEYOND_CALENDAR:
            at = None
            break
        level = colour_for(fraction, levels)
        if level.colour != colour:
            colour = level.colour
            entered.append(ColourEntered(level.colour, level.action, fraction, at))
        at = next_colour_at(clock, at, levels, calendar)
    return Walk(tuple(entered), colour, at)
