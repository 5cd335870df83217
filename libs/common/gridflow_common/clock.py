"""The one clock every service reads.

``GRIDFLOW_CLOCK=real`` (the default) is the wall clock. ``GRIDFLOW_CLOCK=simulated`` keeps the
current instant in the platform table ``gridflow_clock``, so every service, in one process or
many, reads the same time; it stands still between moves and only an operator (or a scenario
replay) moves it.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Protocol

import sqlalchemy as sa

from gridflow_common.db import clock_table

REAL = "real"
SIMULATED = "simulated"
DEFAULT_SIMULATED_START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


class ClockRefused(Exception):
    """The clock cannot be moved that way (real clock, or backwards outside a reset)."""


class Clock(Protocol):
    simulated: bool

    def now(self, connection: sa.Connection | None = None) -> dt.datetime:
        """The city's time. Inside a unit of work pass its connection: the simulated clock then
        reads there instead of asking the pool for a second connection (which deadlocks a
        busy service whose every worker already holds one)."""
        ...

    def set(self, now: dt.datetime, *, allow_backwards: bool = False) -> dt.datetime: ...


class RealClock:
    simulated = False

    def now(self, connection: sa.Connection | None = None) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def set(self, now: dt.datetime, *, allow_backwards: bool = False) -> dt.datetime:
        raise ClockRefused(
            "this Gridflow runs on the real clock; start it with "
            "GRIDFLOW_CLOCK=simulated to move time"
        )


class SimulatedClock:
    simulated = True

    def __init__(self, engine: sa.Engine):
        self._engine = engine

    _read = sa.select(clock_table.c.now).where(clock_table.c.id == 1)

    def now(self, connection: sa.Connection | None = None) -> dt.datetime:
        if connection is not None:
            value = connection.execute(self._read).scalar()
        else:
            with self._engine.connect() as conn:
                value = conn.execute(self._read).scalar()
        if value is None:
            return DEFAULT_SIMULATED_START
        return value

    def set(self, now: dt.datetime, *, allow_backwards: bool = False) -> dt.datetime:
        if now.tzinfo is None:
            raise ClockRefused("the instant needs a UTC offset")
        with self._engine.begin() as conn:
            current = conn.execute(
                sa.select(clock_table.c.now).where(clock_table.c.id == 1).with_for_update()
            ).scalar()
            if current is None:
                conn.execute(sa.insert(clock_table).values(id=1, now=now))
                return now
            if not allow_backwards and now < current:
                raise ClockRefused(
                    f"the clock only moves forward (now {current.isoformat()}); "
                    "a reset may set it back"
                )
            conn.execute(sa.update(clock_table).where(clock_table.c.id == 1).values(now=now))
        return now


def clock_mode() -> str:
    mode = os.environ.get("GRIDFLOW_CLOCK", REAL)
    if mode not in (REAL, SIMULATED):
        raise ValueError(f"GRIDFLOW_CLOCK must be '{REAL}' or '{SIMULATED}', not {mode!r}")
    return mode


def make_clock(engine: sa.Engine, mode: str | None = None) -> Clock:
    return SimulatedClock(engine) if (mode or clock_mode()) == SIMULATED else RealClock()
