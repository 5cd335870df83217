"""SLA's service layer: start, pause and stop assignment clocks, and turn the four colours.

Each colour a clock enters is announced once, at the instant it was entered, with the action the
city attached to it (remind the handler, supervise, escalate). Moving the simulated clock across
days makes every colour in between happen in order.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common import metrics
from gridflow_common.domain.calendar import SlaClock, TimeLimit, TimeUnit, colour_for
from gridflow_common.runtime import ServiceRuntime, Work
from gridflow_common.service import ServiceDefinition
from gridflow_sla.models import OWN_TABLES, clocks, metadata

SWEEP_BATCH = 500


def _domain_clock(row) -> SlaClock:
    return SlaClock(
        started_at=row.started_at, limit=TimeLimit(row.limit_amount, TimeUnit(row.limit_unit)),
        due=row.due, total_seconds=row.total_seconds, elapsed_before=row.elapsed_before,
        running_since=row.running_since,
    )


def _announce(work: Work, row, colour: str | None, action: str, fraction: float | None,
              at: dt.datetime) -> None:
    work.emit(c.CASE_COLOUR_CHANGED, {
        "case_id": row.case_id, "assignment_id": row.assignment_id, "colour": colour,
        "action": action, "fraction": fraction, "holder": row.handler,
        "jurisdiction_version": row.jurisdiction_version,
    }, occurred_at=at)


def _advance(work: Work, assignment_id: str, until: dt.datetime) -> None:
    """Announce every colour the clock has entered up to ``until``; store where it stands."""
    row = work.db.execute(
        sa.select(clocks).where(clocks.c.assignment_id == assignment_id).with_for_update()
    ).first()
    if row is None or not row.active or row.next_transition_at is None:
        return
    j = work.jurisdiction(row.jurisdiction_version)
    clock = _domain_clock(row)
    colour = row.colour
    at = row.next_transition_at
    while at is not None and at <= until:
        level = colour_for(clock.fraction(at, j.calendar), j.warning_levels)
        if level.colour != colour:
            colour = level.colour
            _announce(work, row, colour, level.action, clock.fraction(at, j.calendar), at)
        nxt = clock.next_transition(at, j.warning_levels, j.calendar)
        at = nxt[0] if nxt else None
    work.db.execute(sa.update(clocks).where(clocks.c.assignment_id == assignment_id)
                    .values(colour=colour, next_transition_at=at))


def on_case_dispatched(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    # A new assignment replaces the clock of the one before (a new case has none).
    if p["reason"] != "new":
        work.db.execute(sa.update(clocks).where(clocks.c.case_id == p["case_id"])
                        .values(active=False, next_transition_at=None))
    category = j.category(p["category"]) if p["category"] else None
    if category is None:
        return  # no limit known until the command center classifies it: no clock runs
    started = event.occurred_at
    clock = SlaClock.start(started, category.limit, j.calendar)
    clock.running_since = started
    level = colour_for(0.0, j.warning_levels)
    nxt = clock.next_transition(started, j.warning_levels, j.calendar)
    work.db.execute(sa.insert(clocks), dict(
        assignment_id=p["assignment_id"], case_id=p["case_id"], handler=p["holder"],
        jurisdiction_version=p["jurisdiction_version"], started_at=started,
        limit_amount=category.limit.amount, limit_unit=category.limit.unit.value,
        due=clock.due, total_seconds=clock.total_seconds, elapsed_before=0.0,
        running_since=started, colour=level.colour, active=True,
        next_transition_at=nxt[0] if nxt else None,
    ))
    # Every clock starts green: that is not announced (it would be one more message per case
    # for every consumer); intake shows green for a running clock it has no colour for.
    # Dispatched in the past of the running clock (an escalation found by a sweep over a jump):
    # catch up to now at once.
    if nxt is not None and nxt[0] <= (city_now := work.city_now()):
        _advance(work, p["assignment_id"], city_now)


def on_case_status_reported(work: Work, event: c.Event) -> None:
    p = event.payload
    if p["status"] != "resolved":
        return
    # Awaiting verification: the clock stands still.
    row = work.db.execute(sa.select(clocks).where(
        clocks.c.case_id == p["case_id"], clocks.c.active).with_for_update()).first()
    if row is None or row.running_since is None:
        return
    j = work.jurisdiction(row.jurisdiction_version)
    clock = _domain_clock(row)
    clock.pause(event.occurred_at, j.calendar)
    work.db.execute(sa.update(clocks).where(clocks.c.assignment_id == row.assignment_id)
                    .values(elapsed_before=clock.elapsed_before, running_since=None,
                                 next_transition_at=None))


def on_case_verified(work: Work, event: c.Event) -> None:
    # Passed: the case is closed. Failed: routing reassigns it for rework, with a new clock.
    work.db.execute(sa.update(clocks).where(clocks.c.case_id == event.payload["case_id"])
                    .values(active=False, next_transition_at=None))


def sweep(work: Work, until: dt.datetime, batch: int = SWEEP_BATCH) -> int:
    due = work.db.execute(
        sa.select(clocks.c.assignment_id).where(
            clocks.c.active, clocks.c.next_transition_at <= until)
        .order_by(clocks.c.next_transition_at).limit(batch)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    for assignment_id in due:
        _advance(work, assignment_id, until)
    return len(due)


def on_clock_advanced(work: Work, event: c.Event) -> None:
    until = event.payload["now"]
    while sweep(work, until):
        pass


def periodic(runtime: ServiceRuntime) -> int:
    now = runtime.clock.now()
    with runtime.work(now=now) as work:
        swept = sweep(work, now)
        # The command center's dashboard: running clocks by colour.
        counts = dict(work.db.execute(
            sa.select(clocks.c.colour, sa.func.count()).where(clocks.c.active)
            .group_by(clocks.c.colour)).all())
    for colour in c.COLOURS:
        metrics.OPEN_CLOCKS.labels(colour).set(counts.get(colour, 0))
    return swept


DEFINITION = ServiceDefinition(
    name=c.SLA,
    metadata=metadata,
    handlers={
        "on_case_dispatched": on_case_dispatched,
        "on_case_status_reported": on_case_status_reported,
        "on_case_verified": on_case_verified,
        "on_clock_advanced": on_clock_advanced,
    },
    periodic=periodic,
    own_tables=OWN_TABLES,
)
