"""Assessment (考核) and hotspots (热点) over intake's own tables.

The assessment sums a period in SQL, grouped by the one column the grouping reads (the case's
lead department, its holder, or its area), so a city's year of cases reaches Python as one row
per department, unit or grid; ``gridflow_common.domain.assessment`` turns the sums into
figures and the score, and rolls grids up into communities and streets.

Attribution: a case counts for the department that leads it and the unit that holds it *now*
(for a closed case: the one that closed it), and for the area it lies in. Returns (退回) count
for the unit that sent the case back (the timeline entry's sender); escalations for the case.

Hotspots are counted as cases are registered: one upsert per level (grid, community) into
``intake_hotspots`` per new case, the count coming back from the same statement; the
registration that brings the count to the threshold marks the row alerted and announces
``hotspot_detected`` through the outbox, in its own transaction, once per (category, area,
window) however many reports race.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gridflow_common import contracts as c
from gridflow_common.domain import access as a
from gridflow_common.domain import assessment as asm
from gridflow_common.domain import vocabulary as v
from gridflow_common.runtime import Work
from gridflow_intake.models import cases, hotspots, timeline

# -- scope -----------------------------------------------------------------------------------


def sees_everything(principal: a.Principal) -> bool:
    """An admin, or a command center of the whole city: no case is outside its scope."""
    return principal.has_role(a.ADMIN) or (
        principal.has_role(a.COMMAND_CENTER) and principal.scope is None
    )


def scope_clause(principal: a.Principal, j: Any) -> sa.ColumnElement[bool]:
    """The cases ``principal`` may read, as a WHERE clause on ``intake_cases``."""
    if sees_everything(principal):
        return sa.true()
    # Imported here: the scope module is the cases list's, and this one must load without it.
    from gridflow_intake.scope import case_scope_clause

    return case_scope_clause(principal, j)


def own_department(principal: a.Principal, j: Any) -> str | None:
    """The department a department user or a department's leader answers for (its rows are
    the only department and unit rows it sees); None for everyone else."""
    if principal.has_role(a.DEPARTMENT) or principal.kind == a.HOLDER_KEY:
        code = principal.scope
    elif principal.has_role(a.LEADER):
        unit = j.unit(principal.scope or "")
        code = unit.department_code if unit else None
    else:
        return None
    if code is None:
        return None
    if j.department(code) is not None:
        return code
    unit = j.unit(code)
    return unit.department_code if unit else None


# -- the period's sums ------------------------------------------------------------------------


def _epoch(work: Work, column: Any) -> Any:
    """Seconds since the epoch of a stored instant, in the dialect at hand."""
    if work.db.dialect.name == "postgresql":
        return sa.extract("epoch", column)
    return sa.func.julianday(column) * 86400.0


def _group_column(by: str) -> Any:
    if by == asm.BY_DEPARTMENT:
        return cases.c.lead
    if by == asm.BY_UNIT:
        return cases.c.holder
    return cases.c.area_code


def tallies(
    work: Work, by: str, start: dt.datetime, end: dt.datetime, scope: Any
) -> dict[str | None, asm.Tally]:
    """The period's sums by the grouping's column (lead, holder or area code), in SQL."""
    group = _group_column(by)
    out: dict[str | None, asm.Tally] = {}
    if work.db.dialect.name == "postgresql":
        # A year's sums are a few plain passes; PostgreSQL's JIT compiles them for longer (over
        # a second measured at a million closed cases) than it saves. For this transaction only.
        work.db.execute(sa.text("SET LOCAL jit = off"))

    def tally(key: str | None) -> asm.Tally:
        return out.setdefault(key, asm.Tally())

    registered = sa.select(group, sa.func.count()).where(
        cases.c.registered_at >= start, cases.c.registered_at < end, scope
    )
    for key, n in work.db.execute(registered.group_by(group)):
        tally(key).registered = n

    # Cases first dispatched in the period: a dispatch in it, none before it, i.e. the case's
    # earliest dispatch before the period's end lies in the period. One pass over the period's
    # dispatches (the (kind, at) index), grouped by case, instead of a lookup per dispatch.
    firsts = (
        sa.select(timeline.c.case_id)
        .where(timeline.c.kind == v.DISPATCHED, timeline.c.at < end)
        .group_by(timeline.c.case_id)
        .having(sa.func.min(timeline.c.at) >= start)
        .subquery("firsts")
    )
    dispatched = (
        sa.select(group, sa.func.count())
        .select_from(cases.join(firsts, firsts.c.case_id == cases.c.case_id))
        .where(scope)
    )
    for key, n in work.db.execute(dispatched.group_by(group)):
        tally(key).dispatched = n

    # The cases closed in the period, one row each, then summed. What each case's timeline
    # says is read once per kind, grouped by case (an index-only pass over
    # ix_intake_timeline_kind_case_at for most kinds), and joined to the cases, instead of
    # five look-ups per case: the earliest late warning, rework and extension (an entry "at or
    # before the close" exists exactly when the earliest one is), the first dispatch and the
    # latest resolution. Only a case resolved again after its close needs its own look-up of
    # its last resolution before it.
    in_period = sa.and_(cases.c.closed_at >= start, cases.c.closed_at < end, scope)
    kind = timeline.c.kind

    def per_case(aggregate: Any, condition: Any, name: str) -> Any:
        return (
            sa.select(timeline.c.case_id, aggregate(timeline.c.at).label("at"))
            .where(condition)
            .group_by(timeline.c.case_id)
            .subquery(name)
        )

    late_warning = sa.and_(
        kind == v.ENTRY_WARNING,
        timeline.c.detail["colour"].as_string().in_(asm.LATE_COLOURS),
    )
    late_at = per_case(sa.func.min, late_warning, "late_at")
    reworked_at = per_case(sa.func.min, kind.in_(asm.REWORK_ENTRY_KINDS), "reworked_at")
    extended_at = per_case(sa.func.min, kind == v.EXTENSION_REQUESTED, "extended_at")
    first_dispatch = per_case(sa.func.min, kind == v.DISPATCHED, "first_dispatch")
    resolved_at = per_case(sa.func.max, kind == v.RESOLVED, "last_resolved")
    resolved = timeline.alias("resolved")
    resolved_before_close = (
        sa.select(sa.func.max(resolved.c.at))
        .where(
            resolved.c.case_id == cases.c.case_id,
            resolved.c.kind == v.RESOLVED,
            resolved.c.at <= cases.c.closed_at,
        )
        .scalar_subquery()
    )
    last_resolved = sa.case(
        (resolved_at.c.at <= cases.c.closed_at, resolved_at.c.at),
        (resolved_at.c.at.is_not(None), resolved_before_close),
    )
    handling = _epoch(work, sa.func.coalesce(last_resolved, cases.c.closed_at)) - _epoch(
        work, first_dispatch.c.at
    )
    joined: sa.FromClause = cases
    for sub in (late_at, reworked_at, extended_at, first_dispatch, resolved_at):
        joined = joined.outerjoin(sub, sub.c.case_id == cases.c.case_id)

    def before_close(instant: Any) -> Any:
        return sa.func.sum(sa.case((instant <= cases.c.closed_at, 1), else_=0))

    closed = (
        sa.select(
            group,
            sa.func.count(),
            before_close(late_at.c.at),
            before_close(reworked_at.c.at),
            before_close(extended_at.c.at),
            sa.func.sum(handling),
            sa.func.count(handling),
            sa.func.sum(cases.c.satisfaction),
            sa.func.count(cases.c.satisfaction),
        )
        .select_from(joined)
        .where(in_period)
        .group_by(group)
    )
    for key, n, late, rework, extension, seconds, handled, sat, evaluated in work.db.execute(
        closed
    ):
        t = tally(key)
        t.closed, t.closed_late, t.reworked, t.extended = n, late or 0, rework or 0, extension or 0
        t.handling_seconds, t.handled = float(seconds or 0), handled
        t.satisfaction_sum, t.evaluated = sat or 0, evaluated

    # Returns: for the unit that sent the case back, or the case's area.
    sender = timeline.c.detail["sender"].as_string()
    returned_key = sender if by in (asm.BY_DEPARTMENT, asm.BY_UNIT) else group
    returned = (
        sa.select(returned_key, sa.func.count())
        .select_from(timeline.join(cases, cases.c.case_id == timeline.c.case_id))
        .where(timeline.c.kind == v.RETURNED, timeline.c.at >= start, timeline.c.at < end, scope)
        .group_by(returned_key)
    )
    for key, n in work.db.execute(returned):
        tally(key).returned = n

    escalated = (
        sa.select(group, sa.func.count())
        .select_from(timeline.join(cases, cases.c.case_id == timeline.c.case_id))
        .where(
            timeline.c.kind == v.ENTRY_ROUTED,
            timeline.c.at >= start,
            timeline.c.at < end,
            timeline.c.detail["reason"].as_string() == v.REASON_ESCALATED,
            scope,
        )
        .group_by(group)
    )
    for key, n in work.db.execute(escalated):
        tally(key).escalations = n
    return out


def _department_of(j: Any, code: str) -> str | None:
    if j.department(code) is not None:
        return code
    unit = j.unit(code)
    return unit.department_code if unit else None


def key_of(j: Any, by: str) -> Any:
    """What a grouping column's value counts for: a department, a unit, or an area's ancestor
    at the grouping's level."""
    if by == asm.BY_DEPARTMENT:
        return lambda code: _department_of(j, code)
    if by == asm.BY_UNIT:
        return lambda code: code
    level = asm.AREA_GROUPINGS[by]

    def area_at(code: str) -> str | None:
        area = j.ancestor(code, level) if j.area(code) else None
        return area.code if area else None

    return area_at


def name_of(j: Any, by: str, key: str) -> str:
    if by == asm.BY_DEPARTMENT:
        department = j.department(key)
        return department.name_zh if department else key
    if by == asm.BY_UNIT:
        unit = j.unit(key)
        return unit.name if unit else key
    area = j.area(key)
    name = area.name if area else key
    if by == asm.BY_GRID_WORKER:
        workers = [p.name for p in j.people_for(key, (v.ROLE_GRID_WORKER,))]
        if workers:
            return f"{name}（{'、'.join(workers)}）"
    return name


def rows(
    work: Work,
    j: Any,
    by: str,
    start: dt.datetime,
    end: dt.datetime,
    principal: a.Principal,
) -> list[dict[str, Any]]:
    """The assessment's rows for the caller: its scope's cases, and for a department's users
    only their own department's rows."""
    sums = tallies(work, by, start, end, scope_clause(principal, j))
    grouped = asm.roll_up(sums, key_of(j, by))
    mine = own_department(principal, j) if by in (asm.BY_DEPARTMENT, asm.BY_UNIT) else None
    out = []
    for key in sorted(grouped):
        if mine is not None and _department_of(j, key) != mine:
            continue
        out.append(
            {
                "key": key,
                "name": name_of(j, by, key),
                **asm.figures(grouped[key], j.assessment_weights),
            }
        )
    return out


# -- hotspots -----------------------------------------------------------------------------------


def _insert(work: Work) -> Any:
    dialect = postgresql if work.db.dialect.name == "postgresql" else sqlite
    return dialect.insert(hotspots)


def count_new_case(
    work: Work, j: Any, version: int, case_id: str, category: str | None, area_code: str
) -> list[str]:
    """Count a newly registered case towards its grid's and community's hotspots; announce the
    ones it brings to their threshold. Returns their ids."""
    if category is None:
        return []
    alerted = []
    for level in asm.HOTSPOT_LEVELS:
        rule = j.hotspot_rules.rule(category, level)
        area = j.ancestor(area_code, level) if j.area(area_code) else None
        if rule is None or area is None:
            continue
        start = asm.window_start(work.now, rule.window_minutes)
        hotspot_id = asm.hotspot_id(category, level, area.code, start, rule.window_minutes)
        insert = _insert(work)
        # One statement: the row is created or its count raised, and the count comes back;
        # PostgreSQL holds the row's lock until this transaction ends, so two registrations
        # count one after the other.
        row = work.db.execute(
            insert.values(
                hotspot_id=hotspot_id,
                category=category,
                level=level,
                area_code=area.code,
                window_start=start,
                window_minutes=rule.window_minutes,
                threshold=rule.threshold,
                count=1,
                first_at=work.now,
                last_at=work.now,
            )
            .on_conflict_do_update(
                index_elements=[hotspots.c.hotspot_id],
                set_=dict(count=hotspots.c.count + 1, last_at=insert.excluded.last_at),
            )
            .returning(hotspots.c.count, hotspots.c.threshold, hotspots.c.alerted_at)
        ).one()
        if row.count < row.threshold or row.alerted_at is not None:
            continue
        marked = work.db.execute(
            sa.update(hotspots)
            .where(hotspots.c.hotspot_id == hotspot_id, hotspots.c.alerted_at.is_(None))
            .values(alerted_at=work.now)
        ).rowcount
        if not marked:
            continue
        alerted.append(hotspot_id)
        work.emit(
            c.HOTSPOT_DETECTED,
            {
                "hotspot_id": hotspot_id,
                "category": category,
                "level": level,
                "area_code": area.code,
                "count": row.count,
                "threshold": row.threshold,
                "window_minutes": rule.window_minutes,
                "window_start": start.isoformat(),
                "case_id": case_id,
                "jurisdiction_version": version,
            },
        )
    return alerted


def _area_codes(j: Any, code: str) -> list[str]:
    """The area and every area within it."""
    out, todo = [], [code]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(child.code for child in j.children(current))
    return out


def open_hotspots(
    work: Work, j: Any, since: dt.datetime, principal: a.Principal
) -> list[dict[str, Any]]:
    """Alerts whose window saw a case since ``since``, newest first; for a caller who does not
    see everything, only alerts with a case in its scope, and only those cases."""
    scope = scope_clause(principal, j)
    alerts = work.db.execute(
        sa.select(hotspots)
        .where(hotspots.c.alerted_at.is_not(None), hotspots.c.last_at >= since)
        .order_by(hotspots.c.last_at.desc(), hotspots.c.hotspot_id)
        .limit(200)
    ).all()
    items = []
    for alert in alerts:
        end = alert.window_start + dt.timedelta(minutes=alert.window_minutes)
        case_ids = list(
            work.db.execute(
                sa.select(cases.c.case_id)
                .where(
                    cases.c.category == alert.category,
                    cases.c.area_code.in_(_area_codes(j, alert.area_code)),
                    cases.c.registered_at >= alert.window_start,
                    cases.c.registered_at < end,
                    scope,
                )
                .order_by(cases.c.registered_at, cases.c.case_id)
                .limit(500)
            ).scalars()
        )
        if not case_ids and not sees_everything(principal):
            continue
        category = j.category(alert.category)
        area = j.area(alert.area_code)
        items.append(
            {
                "id": alert.hotspot_id,
                "category": alert.category,
                "category_name": category.name_zh if category else None,
                "area_code": alert.area_code,
                "area_name": area.name if area else None,
                "level": alert.level,
                "count": alert.count,
                "window_minutes": alert.window_minutes,
                "threshold": alert.threshold,
                "window_start": j.local(alert.window_start).isoformat(),
                "first_at": j.local(alert.first_at).isoformat(),
                "last_at": j.local(alert.last_at).isoformat(),
                "detected_at": j.local(alert.alerted_at).isoformat(),
                "case_ids": case_ids,
            }
        )
    return items
