"""Routing's service layer: decide, record, and announce each assignment of a case.

Routing is the authority on who holds a case: ``current_assignment`` answers it for anyone whose
own view may lag behind (intake asks it through RPC).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import privacy
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.rules import TAXONOMY, Facts
from gridflow_common.runtime import Work
from gridflow_common.service import ServiceDefinition
from gridflow_routing import domain
from gridflow_routing.models import OWN_TABLES, assignments, metadata


def _assignment_id(case_id: str, seq: int) -> str:
    return f"{case_id}-{seq}"


def _announce(work: Work, row: dict, reason: str, event: c.Event) -> None:
    work.emit(
        c.CASE_ROUTED,
        {
            "case_id": row["case_id"],
            "assignment_id": _assignment_id(row["case_id"], row["seq"]),
            "seq": row["seq"],
            "reason": reason,
            "category": row["category"],
            "tier": row["tier"],
            "holder": row["holder"],
            "lead": row["lead"],
            "assisting": list(row["assisting"]),
            "escalations": row["escalations"],
            "area_code": row["area_code"],
            "jurisdiction_version": row["jurisdiction_version"],
            "explanation": row.get("explanation", ""),
            # Which rule decided, under which version of the city's rules (its jurisdiction).
            "rule_id": row.get("rule_id") or TAXONOMY,
            "rule_version": row["jurisdiction_version"],
            "time_limit": row.get("time_limit"),
            # Masked by intake; again here for assignments of cases registered before it did.
            "description": privacy.mask_personal_numbers(row["description"]),
            "location": row["location"],
            "reporter": row.get("reporter"),
        },
        occurred_at=event.occurred_at,
    )


def _fields(a: domain.Assignment) -> dict[str, Any]:
    limit = None
    if a.time_limit is not None:
        limit = {
            "amount": a.time_limit.amount,
            "unit": a.time_limit.unit.value,
            "rule_id": a.limit_rule_id,
        }
    return dict(
        tier=a.tier,
        holder=a.holder,
        lead=a.lead,
        assisting=list(a.assisting),
        at_command=a.at_command,
        rule_id=a.rule_id,
        time_limit=limit,
    )


def _facts(j: Any, row: dict, category: str | None, at: Any) -> Facts:
    """What the city's rules look at in the case: its report's local clock time (the row's,
    else ``at`` for rows from before routing kept it)."""
    return Facts(
        category=category,
        area_code=row["area_code"],
        channel=row.get("channel"),
        local_time=j.local(row.get("registered_at") or at).time(),
        text=row.get("description") or "",
    )


def on_case_registered(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    category = j.category(p["category"]) if p["category"] else None
    facts = Facts(
        category=p["category"],
        area_code=p["area_code"],
        channel=p.get("channel"),
        local_time=j.local(event.occurred_at).time(),
        text=p["description"],
    )
    decision = domain.route_by_rules(j, category, facts)
    row = dict(
        case_id=p["case_id"],
        category=p["category"],
        area_code=p["area_code"],
        description=p["description"],
        location=p["location"],
        reporter=p["reporter"],
        escalations=0,
        returns=0,
        seq=1,
        jurisdiction_version=p["jurisdiction_version"],
        channel=p.get("channel"),
        registered_at=event.occurred_at,
        **_fields(decision),
    )
    work.db.execute(sa.insert(assignments), row)
    _announce(work, {**row, "explanation": decision.explanation}, v.REASON_NEW, event)


def _current(work: Work, case_id: str, *, lock: bool = True) -> dict | None:
    query = sa.select(assignments).where(assignments.c.case_id == case_id)
    row = work.db.execute(query.with_for_update() if lock else query).mappings().first()
    return dict(row) if row else None


def current_assignment(work: Work, case_id: str) -> dict | None:
    """Who holds the case now, as routing decided it; None for a case routing has not seen."""
    row = _current(work, case_id, lock=False)
    if row is None:
        return None
    return {
        "assignment_id": _assignment_id(row["case_id"], row["seq"]),
        "holder": row["holder"],
        "lead": row["lead"],
        "tier": row["tier"],
        "assisting": list(row["assisting"]),
        "category": row["category"],
        "seq": row["seq"],
    }


def _as_assignment(row: dict) -> domain.Assignment:
    return domain.Assignment(
        row["tier"], row["holder"], row["lead"], tuple(row["assisting"]), "", row["at_command"]
    )


def _reassign(
    work: Work, row: dict, decision: domain.Assignment, reason: str, event: c.Event, **changes: Any
) -> None:
    row.update(changes)
    # A rule's time limit holds for every assignment of a case its conditions still match (a
    # reclassified case may leave it); the holder is not a rule's to choose after the first.
    j = work.jurisdiction(row["jurisdiction_version"])
    limit = domain.limit_rule(j, _facts(j, row, row["category"], event.occurred_at))
    # Rework goes back to the same holder: the rule that chose it still stands behind it.
    kept = (row.get("rule_id") or TAXONOMY) if reason == v.REASON_REWORK else TAXONOMY
    decision = domain.with_limit(dataclasses.replace(decision, rule_id=kept), limit)
    row.update(_fields(decision), seq=row["seq"] + 1)
    work.db.execute(
        sa.update(assignments)
        .where(assignments.c.case_id == row["case_id"])
        .values(**{key: value for key, value in row.items() if key != "case_id"})
    )
    _announce(work, {**row, "explanation": decision.explanation}, reason, event)


def _await_order(
    work: Work, row: dict, waits: domain.AwaitsOrder, cause: str, event: c.Event
) -> None:
    # Nothing moves and nothing is counted; the command center (and the case's timeline) hear
    # that the case is theirs to order.
    work.emit(
        c.CASE_AWAITING_ORDER,
        {
            "case_id": row["case_id"],
            "assignment_id": _assignment_id(row["case_id"], row["seq"]),
            "holder": waits.holder,
            "cause": cause,
            "explanation": waits.explanation,
            "jurisdiction_version": row["jurisdiction_version"],
        },
        occurred_at=event.occurred_at,
    )


def _is_current(row: dict, assignment_id: str | None) -> bool:
    # Messages about an assignment the case has already left are history, not instructions.
    return assignment_id is None or assignment_id == _assignment_id(row["case_id"], row["seq"])


def on_case_status_reported(work: Work, event: c.Event) -> None:
    p = event.payload
    if p["status"] not in (v.BEYOND_AUTHORITY, v.RETURNED):
        return
    row = _current(work, p["case_id"])
    if row is None or not _is_current(row, p["assignment_id"]):
        return
    j = work.jurisdiction(row["jurisdiction_version"])
    named = j.category(p["category"]) if p["category"] else None
    decision: domain.Assignment | domain.AwaitsOrder
    if p["status"] == v.BEYOND_AUTHORITY:
        category = named or (j.category(row["category"]) if row["category"] else None)
        decision = domain.escalate(
            j, _as_assignment(row), category, row["area_code"], reclassified=named is not None
        )
        reason = v.REASON_ESCALATED
        changes = dict(
            escalations=row["escalations"] + 1,
            category=category.code if category else row["category"],
        )
    else:
        returns = row["returns"] + 1
        decision = domain.reroute_returned(j, _as_assignment(row), named, row["area_code"], returns)
        reason = v.REASON_RETURNED
        changes = dict(returns=returns, category=named.code if named else row["category"])
    if isinstance(decision, domain.AwaitsOrder):
        _await_order(work, row, decision, p["status"], event)
    else:
        _reassign(work, row, decision, reason, event, **changes)


def on_case_verified(work: Work, event: c.Event) -> None:
    p = event.payload
    if p["passed"]:
        return
    row = _current(work, p["case_id"])
    if row is None:
        return
    # Rework (返工): back to the same holder, as a new assignment with a fresh clock.
    decision = domain.Assignment(
        row["tier"],
        row["holder"],
        row["lead"],
        tuple(row["assisting"]),
        "核查未通过，返工：仍由原处置单位办理",
        row["at_command"],
    )
    _reassign(work, row, decision, v.REASON_REWORK, event)


def on_case_colour_changed(work: Work, event: c.Event) -> None:
    p = event.payload
    if p["action"] != v.ACTION_ESCALATE:
        return
    row = _current(work, p["case_id"])
    if row is None or not _is_current(row, p["assignment_id"]):
        return
    j = work.jurisdiction(row["jurisdiction_version"])
    category = j.category(row["category"]) if row["category"] else None
    decision = domain.escalate(j, _as_assignment(row), category, row["area_code"])
    if isinstance(decision, domain.AwaitsOrder):
        return  # already at the top: supervision goes on, the case stays where it is
    _reassign(work, row, decision, v.REASON_ESCALATED, event, escalations=row["escalations"] + 1)


def on_case_order_given(work: Work, event: c.Event) -> None:
    """The orders that move a case: assign (to the unit named, not an escalation), escalate
    (one tier up, counted), reopen (back to the last holder, as rework). Idempotent: an order
    is acted on once (its id is kept with the assignment it made)."""
    p = event.payload
    kind = p["kind"]
    if kind not in (v.ORDER_ASSIGN, v.ORDER_ESCALATE, v.ORDER_REOPEN):
        return
    row = _current(work, p["case_id"])
    if row is None or row.get("last_order") == p["order_id"]:
        return
    j = work.jurisdiction(row["jurisdiction_version"])
    changes: dict[str, Any] = {"last_order": p["order_id"]}
    decision: domain.Assignment | domain.AwaitsOrder
    if kind == v.ORDER_ASSIGN:
        unit = j.unit(p["unit"]) if p["unit"] else None
        if unit is None:
            return  # intake checked it against the same jurisdiction; a later one lost it
        code = p["category"] or row["category"]
        category = j.category(code) if code else None
        decision = domain.assign_to_unit(unit, category, p["reason"])
        changes["category"] = category.code if category else row["category"]
        reason = v.REASON_ASSIGNED
    elif kind == v.ORDER_ESCALATE:
        category = j.category(row["category"]) if row["category"] else None
        decision = domain.escalate(j, _as_assignment(row), category, row["area_code"])
        if isinstance(decision, domain.AwaitsOrder):
            return  # intake refuses this at the top; nothing higher to go to
        changes["escalations"] = row["escalations"] + 1
        reason = v.REASON_ESCALATED
    else:
        decision = domain.reopen(_as_assignment(row), p["reason"])
        reason = v.REASON_REWORK
    _reassign(work, row, decision, reason, event, **changes)


DEFINITION = ServiceDefinition(
    name=c.ROUTING,
    metadata=metadata,
    handlers={
        "on_case_registered": on_case_registered,
        "on_case_status_reported": on_case_status_reported,
        "on_case_verified": on_case_verified,
        "on_case_colour_changed": on_case_colour_changed,
        "on_case_order_given": on_case_order_given,
    },
    own_tables=OWN_TABLES,
)
