"""SLA's service layer: start, pause and stop assignment clocks, and turn the four colours.

Each colour a clock enters is announced once, at the instant it was entered, with the action the
city attached to it (remind the holder, supervise, escalate). Moving the simulated clock across
days makes every colour in between happen in order. Which colours those are is the colour walk
(``gridflow_common.domain.colours``); this layer reads and writes the clocks.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common import metrics
from gridflow_common.domain import colours, lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.calendar import (
    SlaClock,
    TimeLimit,
    TimeUnit,
    colour_for,
    extended_total,
    resumed_due,
)
from gridflow_common.logging import get_logger
from gridflow_common.runtime import ServiceRuntime, Work
from gridflow_common.runtime.outage import Outage
from gridflow_common.service import ServiceDefinition
from gridflow_sla.models import OWN_TABLES, clocks, metadata
from gridflow_sla.open_clocks import EXPORTER

log = get_logger(__name__)

# Clocks walked per transaction by the sweep: a crossing of 10,000 clocks at once is processed in
# short transactions, each published as soon as it commits.
SWEEP_BATCH = 500
# How often the nameko service looks for due clocks (its own timer beside the 1 s tick): with
# nothing due a look is one indexed range scan returning no row, so a short interval costs little
# and a crossing is announced within about this much of its instant.
SWEEP_INTERVAL_SECONDS = 0.25


def _domain_clock(row) -> SlaClock:
    return SlaClock(
        started_at=row.started_at,
        limit=TimeLimit(row.limit_amount, TimeUnit(row.limit_unit)),
        due=row.due,
        total_seconds=row.total_seconds,
        elapsed_before=row.elapsed_before,
        running_since=row.running_since,
    )


def _announce(
    work: Work, row, colour: str | None, action: str, fraction: float | None, at: dt.datetime
) -> None:
    work.emit(
        c.CASE_COLOUR_CHANGED,
        {
            "case_id": row.case_id,
            "assignment_id": row.assignment_id,
            "colour": colour,
            "action": action,
            "fraction": fraction,
            "holder": row.holder,
            "jurisdiction_version": row.jurisdiction_version,
        },
        occurred_at=at,
    )


def _advance(work: Work, assignment_id: str, until: dt.datetime) -> None:
    """Announce every colour the clock has entered up to ``until``; store where it stands."""
    row = work.db.execute(
        sa.select(clocks).where(clocks.c.assignment_id == assignment_id).with_for_update()
    ).first()
    if row is None or not row.active or row.next_transition_at is None:
        return
    j = work.jurisdiction(row.jurisdiction_version)
    walked = colours.walk(
        _domain_clock(row), row.colour, row.next_transition_at, until, j.warning_levels, j.calendar
    )
    for entered in walked.entered:
        _announce(work, row, entered.colour, entered.action, entered.fraction, entered.at)
    work.db.execute(
        sa.update(clocks)
        .where(clocks.c.assignment_id == assignment_id)
        .values(colour=walked.colour, next_transition_at=walked.next_at)
    )


def on_case_dispatched(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    # A new assignment replaces the clock of the one before (a new case has none).
    if p["reason"] != v.REASON_NEW:
        work.db.execute(
            sa.update(clocks)
            .where(clocks.c.case_id == p["case_id"])
            .values(active=False, next_transition_at=None)
        )
    category = j.category(p["category"]) if p["category"] else None
    # A case nobody could classify waits for the command center's triage (研判), which has a
    # time limit of its own.
    limit = category.limit if category is not None else j.triage_limit
    if category is not None and p.get("time_limit"):
        # A city rule's limit for this assignment (rules.yaml), carried by routing's decision.
        limit = TimeLimit(p["time_limit"]["amount"], p["time_limit"]["unit"])
    started = event.occurred_at
    begun = colours.start(started, limit, j.warning_levels, j.calendar)
    if begun is None:
        log.warning(
            "clock_beyond_calendar",
            assignment_id=p["assignment_id"],
            started_at=started.isoformat(),
        )
        return
    clock, nxt = begun.clock, begun.next_at
    work.db.execute(
        sa.insert(clocks),
        dict(
            assignment_id=p["assignment_id"],
            case_id=p["case_id"],
            holder=p["holder"],
            jurisdiction_version=p["jurisdiction_version"],
            started_at=started,
            limit_amount=limit.amount,
            limit_unit=limit.unit.value,
            due=clock.due,
            total_seconds=clock.total_seconds,
            elapsed_before=0.0,
            running_since=started,
            colour=begun.colour,
            active=True,
            next_transition_at=nxt,
        ),
    )
    # Every clock starts green: that is not announced (it would be one more message per case
    # for every consumer); intake shows green for a categorised case's running clock. A triage
    # clock is the exception: its case has no category yet, so its green is said.
    if category is None:
        work.emit(
            c.CASE_COLOUR_CHANGED,
            {
                "case_id": p["case_id"],
                "assignment_id": p["assignment_id"],
                "colour": begun.colour,
                "action": v.ACTION_NONE,
                "fraction": 0.0,
                "holder": p["holder"],
                "jurisdiction_version": p["jurisdiction_version"],
            },
            occurred_at=started,
        )
    # Dispatched in the past of the running clock (an escalation found by a sweep over a jump):
    # catch up to now at once.
    if nxt is not None and nxt <= (city_now := work.city_now()):
        _advance(work, p["assignment_id"], city_now)


def on_case_status_reported(work: Work, event: c.Event) -> None:
    p = event.payload
    if p["status"] == v.RESUMED:
        # The holder's word that an approved pause (挂起) is over: as a release.
        _release(work, event)
        return
    if p["status"] != v.RESOLVED:
        return
    # Awaiting verification: the clock stands still.
    row = work.db.execute(
        sa.select(clocks).where(clocks.c.case_id == p["case_id"], clocks.c.active).with_for_update()
    ).first()
    if row is None or row.running_since is None:
        return
    j = work.jurisdiction(row.jurisdiction_version)
    clock = _domain_clock(row)
    try:
        clock.pause(event.occurred_at, j.calendar)
    except colours.BEYOND_CALENDAR:
        # Paused beyond the calendar's range: whatever ran is past its limit; keep it at that.
        clock.elapsed_before, clock.running_since = max(clock.total_seconds, 0.0), None
    work.db.execute(
        sa.update(clocks)
        .where(clocks.c.assignment_id == row.assignment_id)
        .values(elapsed_before=clock.elapsed_before, running_since=None, next_transition_at=None)
    )


def on_case_verified(work: Work, event: c.Event) -> None:
    # Passed: the case is closed. Failed: routing reassigns it for rework, with a new clock.
    work.db.execute(
        sa.update(clocks)
        .where(clocks.c.case_id == event.payload["case_id"])
        .values(active=False, next_transition_at=None)
    )


def _active_clock(work: Work, case_id: str):
    return work.db.execute(
        sa.select(clocks).where(clocks.c.case_id == case_id, clocks.c.active).with_for_update()
    ).first()


def _hold(work: Work, event: c.Event) -> None:
    """挂账 (or an approved pause, 挂起): the clock stops where it stands; its colour is kept for
    when it runs again."""
    row = _active_clock(work, event.payload["case_id"])
    if row is None or row.running_since is None:
        return  # no clock, or already stopped (a redelivered order changes nothing)
    j = work.jurisdiction(row.jurisdiction_version)
    clock = _domain_clock(row)
    try:
        clock.pause(event.occurred_at, j.calendar)
    except colours.BEYOND_CALENDAR:
        clock.elapsed_before = max(clock.total_seconds, 0.0)
    work.db.execute(
        sa.update(clocks)
        .where(clocks.c.assignment_id == row.assignment_id)
        .values(
            elapsed_before=clock.elapsed_before,
            running_since=None,
            paused_at=event.occurred_at,
            next_transition_at=None,
        )
    )


def _release(work: Work, event: c.Event) -> None:
    """Off the long-term list: the clock runs again with the time it had left; its due instant
    moves later by the time on hold."""
    row = _active_clock(work, event.payload["case_id"])
    if row is None or row.running_since is not None or row.paused_at is None:
        return  # not stopped by an order (a redelivered release finds it running)
    j = work.jurisdiction(row.jurisdiction_version)
    clock = _domain_clock(row)
    resumed_at = event.occurred_at
    try:
        due = resumed_due(row.due, row.paused_at, resumed_at, clock.limit, j.calendar)
    except colours.BEYOND_CALENDAR:
        due = row.due
    clock.resume(resumed_at)
    clock.due = due
    nxt = colours.next_colour_at(clock, resumed_at, j.warning_levels, j.calendar)
    _store(work, row.assignment_id, nxt, running_since=resumed_at, due=due, paused_at=None)


def _store(work: Work, assignment_id: str, nxt: Any, **values: Any) -> None:
    """A clock changed by an order: its new values and next colour instant stored, and a
    colour already due by then acted on at once."""
    work.db.execute(
        sa.update(clocks)
        .where(clocks.c.assignment_id == assignment_id)
        .values(next_transition_at=nxt, **values)
    )
    if nxt is not None and nxt <= (city_now := work.city_now()):
        _advance(work, assignment_id, city_now)


def _extend(work: Work, event: c.Event) -> None:
    """An approved extension (延期): the requested instant becomes the clock's due instant; the
    limit becomes the time from dispatch to it in the limit's own time (less any time stopped),
    and the colour is the one the clock has against it now (back to green, it may be)."""
    new_due = lifecycle.parse_due(event.payload.get("due"))
    row = _active_clock(work, event.payload["case_id"])
    if row is None or new_due is None or new_due <= row.due:
        return  # no clock, or already extended this far (a redelivered approval moves nothing)
    j = work.jurisdiction(row.jurisdiction_version)
    clock = _domain_clock(row)
    at = event.occurred_at
    try:
        total = extended_total(row.total_seconds, row.due, new_due, clock.limit, j.calendar)
    except colours.BEYOND_CALENDAR:
        log.warning("extension_beyond_calendar", assignment_id=row.assignment_id)
        return
    clock.total_seconds, clock.due = total, new_due
    colour, nxt = row.colour, None
    if clock.running_since is not None:
        try:
            level = colour_for(clock.fraction(at, j.calendar), j.warning_levels)
        except colours.BEYOND_CALENDAR:
            level = None
        if level is not None and level.colour != row.colour:
            colour = level.colour
            _announce(work, row, colour, level.action, clock.fraction(at, j.calendar), at)
        nxt = colours.next_colour_at(clock, at, j.warning_levels, j.calendar)
    _store(work, row.assignment_id, nxt, due=new_due, total_seconds=total, colour=colour)


def _stop(work: Work, event: c.Event) -> None:
    work.db.execute(
        sa.update(clocks)
        .where(clocks.c.case_id == event.payload["case_id"])
        .values(active=False, next_transition_at=None)
    )


def on_case_order_given(work: Work, event: c.Event) -> None:
    """The clock's part of the command center's orders. A new assignment's clock (assign,
    escalate, reopen) starts with its dispatch (``on_case_dispatched``)."""
    kind = event.payload["kind"]
    if kind == v.ORDER_APPROVE and event.payload.get("request") == "extension":
        _extend(work, event)
    elif kind == v.ORDER_APPROVE and event.payload.get("request") == "pause":
        # 挂起: the clock stops as on hold, until the holder reports resumed.
        _hold(work, event)
    elif kind == v.ORDER_HOLD:
        _hold(work, event)
    elif kind == v.ORDER_RELEASE:
        _release(work, event)
    elif kind in (v.ORDER_REJECT, v.ORDER_MERGE):
        _stop(work, event)


def _colour_payload(row, colour: str | None, action: str, fraction: float | None) -> dict:
    return {
        "case_id": row.case_id,
        "assignment_id": row.assignment_id,
        "colour": colour,
        "action": action,
        "fraction": fraction,
        "holder": row.holder,
        "jurisdiction_version": row.jurisdiction_version,
    }


def sweep(work: Work, until: dt.datetime, batch: int = SWEEP_BATCH) -> int:
    """One batch: at most ``batch`` clocks due by ``until``, earliest first, each walked through
    every colour it entered, in this unit's transaction.

    Rows another replica holds are skipped (SKIP LOCKED), and each clock is walked from the
    colour stored in the row this statement locked (a row changed meanwhile is re-read, and
    dropped when it is no longer due), so a colour is announced once, and a clock's colours in
    order, however many replicas sweep. A handful of statements a batch, whatever its size: the
    locking SELECT, a multi-row insert of every colour into the outbox, one UPDATE of every
    clock."""
    rows = work.db.execute(
        sa.select(clocks)
        .where(clocks.c.active, clocks.c.next_transition_at <= until)
        .order_by(clocks.c.next_transition_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    events: list[tuple[str, dict, dt.datetime | None]] = []
    moved: list[dict] = []
    for row in rows:
        j = work.jurisdiction(row.jurisdiction_version)
        walked = colours.walk(
            _domain_clock(row),
            row.colour,
            row.next_transition_at,
            until,
            j.warning_levels,
            j.calendar,
        )
        for entered in walked.entered:
            payload = _colour_payload(row, entered.colour, entered.action, entered.fraction)
            events.append((c.CASE_COLOUR_CHANGED, payload, entered.at))
        moved.append({"aid": row.assignment_id, "colour": walked.colour, "nxt": walked.next_at})
    work.emit_many(events)
    _store_walked(work, moved)
    return len(rows)


def _store_walked(work: Work, moved: list[dict]) -> None:
    """Where each walked clock stands now, in one statement on PostgreSQL (UPDATE ... FROM
    unnest of arrays); one UPDATE a clock on SQLite (the embedded default's few)."""
    if not moved:
        return
    if work.db.dialect.name != "postgresql":
        work.db.execute(
            sa.update(clocks)
            .where(clocks.c.assignment_id == sa.bindparam("aid"))
            .values(colour=sa.bindparam("colour"), next_transition_at=sa.bindparam("nxt")),
            moved,
        )
        return
    # Three array parameters: one statement text whatever the batch's size, so it is parsed
    # and compiled once, not once per batch as a VALUES list of hundreds of rows would be.
    work.db.execute(
        _STORE_WALKED,
        {
            "aids": [m["aid"] for m in moved],
            "colours": [m["colour"] for m in moved],
            "nxts": [m["nxt"] for m in moved],
        },
    )


_STORE_WALKED = sa.text(
    "UPDATE sla_clocks SET colour = walked.colour, next_transition_at = walked.nxt "
    "FROM unnest(CAST(:aids AS text[]), CAST(:colours AS text[]), "
    "CAST(:nxts AS timestamptz[])) AS walked (aid, colour, nxt) "
    "WHERE sla_clocks.assignment_id = walked.aid"
)


def sweep_due(
    runtime: ServiceRuntime, until: dt.datetime | None = None, batch: int | None = None
) -> int:
    """Every clock due by ``until`` (by default the city's time, read afresh for each batch), in
    batches of ``batch``, each batch its own transaction: 10,000 clocks crossing at once are 20
    short transactions, each published as soon as it commits, never one that holds every row
    lock and every outbox row until the end. With nothing due it is one indexed range scan that
    returns no row."""
    batch = batch or SWEEP_BATCH
    total = 0
    while True:
        with runtime.work(now=until) as work:
            done = sweep(work, work.now, batch)
        total += done
        if done < batch:
            return total


def sweep_on_timer(runtime: ServiceRuntime) -> int:
    """``sweep_due`` for the sweep's own timer: a failure (the database out of reach) is logged
    once per interval with a count, as the tick's are, and the next look tries again."""
    failures = runtime.extras.get(_SWEEP_FAILURES)
    if failures is None:
        failures = runtime.extras[_SWEEP_FAILURES] = Outage("sweep_failed", service=runtime.service)
    try:
        swept = sweep_due(runtime)
    except Exception as exc:
        failures.failed(exc)
        return 0
    failures.recovered()
    return swept


_SWEEP_FAILURES = "sla_sweep_failures"


def on_clock_advanced(work: Work, event: c.Event) -> None:
    """The simulated clock moved: the first batch is walked here, the rest by the sweep
    (``sweep_due``, on the city's time that has already moved), batch by batch, so one message
    never becomes a transaction over every clock of the city."""
    sweep(work, event.payload["now"], SWEEP_BATCH)


def open_clocks(work: Work) -> dict[str, int]:
    """Running clocks by colour, across every replica: the command center's dashboard."""
    return dict(
        work.db.execute(
            sa.select(clocks.c.colour, sa.func.count())
            .where(clocks.c.active)
            .group_by(clocks.c.colour)
        ).all()
    )


# The open-clock gauge is a count over every running clock (a cost that grows with what is
# open, 0.2-0.4 s at a million): the designated exporter counts at most this often, not on every
# tick, and the count is read in a transaction of its own, never holding the sweep's row locks.
OPEN_CLOCKS_EVERY_SECONDS = 15.0
_COUNTED_AT = "sla_open_clocks_counted_at"


def export_open_clocks(runtime: ServiceRuntime) -> None:
    """Set the ``gridflow_sla_open_clocks`` gauge on the designated exporter, at most every
    ``OPEN_CLOCKS_EVERY_SECONDS``; clear it on the other replicas (a sum over replicas counts
    each clock once)."""
    if not EXPORTER.is_exporter(runtime.engine):
        metrics.OPEN_CLOCKS.clear()
        runtime.extras.pop(_COUNTED_AT, None)  # taking the role over counts at once
        return
    counted_at = runtime.extras.get(_COUNTED_AT)
    if counted_at is not None and time.monotonic() - counted_at < OPEN_CLOCKS_EVERY_SECONDS:
        return
    with runtime.work() as work:
        counts = open_clocks(work)
    runtime.extras[_COUNTED_AT] = time.monotonic()
    for colour in v.COLOURS:
        metrics.OPEN_CLOCKS.labels(colour).set(counts.get(colour, 0))


def periodic(runtime: ServiceRuntime) -> int:
    """The tick's work (once a second): the sweep, and the open-clock gauge now and then. Under
    nameko the sweep also runs on a timer of its own, every ``SWEEP_INTERVAL_SECONDS``
    (``gridflow_sla.service``), so a crossing is acted on well within a second."""
    swept = sweep_due(runtime)
    export_open_clocks(runtime)
    return swept


DEFINITION = ServiceDefinition(
    name=c.SLA,
    metadata=metadata,
    handlers={
        "on_case_dispatched": on_case_dispatched,
        "on_case_status_reported": on_case_status_reported,
        "on_case_verified": on_case_verified,
        "on_clock_advanced": on_clock_advanced,
        "on_case_order_given": on_case_order_given,
    },
    periodic=periodic,
    own_tables=OWN_TABLES,
)
