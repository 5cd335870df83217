"""The command center's orders (指令) on a case: intake's service layer.

Intake takes an order in one unit of work: it locks the case's row (two orders on one case
are taken one after the other), asks the lifecycle whether the case can take it as it stands,
writes what changes at once (status, the clock's due and colour in its view, the timeline
entry with who gave the order and why), and announces ``case_order_given`` through its outbox.
Routing (a new assignment), SLA (the clock) and notify (督办) act on that event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.calendar import resumed_due
from gridflow_common.runtime import Work
from gridflow_intake import classifying
from gridflow_intake import handlers as h
from gridflow_intake.models import cases, colours, timeline


def _lock_cases(work: Work, case_ids: list[str]) -> dict[str, Any]:
    """The rows of ``case_ids``, locked in one order (sorted), so that two merges of the same
    two cases, given at once the other way round, wait for each other instead of deadlocking."""
    rows = {}
    for case_id in sorted(set(case_ids)):
        row = work.db.execute(
            sa.select(cases).where(cases.c.case_id == case_id).with_for_update()
        ).first()
        if row is not None:
            rows[case_id] = row
    return rows


def _limit(j: Any, category_code: str | None) -> Any:
    category = j.category(category_code) if category_code else None
    # As SLA starts the clock: a case nobody classified runs the command center's triage clock.
    return category.limit if category is not None else j.triage_limit


def _colour_of(work: Work, assignment_id: str | None) -> str | None:
    if assignment_id is None:
        return None
    announced = work.db.execute(
        sa.select(colours.c.colour).where(colours.c.assignment_id == assignment_id)
    ).scalar()
    return announced or v.GREEN


def _district(j: Any, area_code: str) -> str | None:
    district = j.ancestor(area_code, v.DISTRICT)
    return district.code if district is not None else None


def _check_unit_and_category(j: Any, case: Any, order: dict) -> None:
    problems: dict[str, list[str]] = {}
    if order["kind"] != v.ORDER_ASSIGN:
        return
    unit = j.unit(order["unit"])
    if unit is None:
        problems["unit"] = [f"no unit {order['unit']!r} in the jurisdiction"]
    elif _district(j, unit.area_code) != _district(j, case.area_code):
        problems["unit"] = [f"unit {order['unit']!r} is outside the case's district"]
    if order["category"] is not None and j.category(order["category"]) is None:
        problems["category"] = [f"unknown category {order['category']!r}"]
    if order["category"] is None and case.category is None:
        problems["category"] = [
            "this case has no category yet: an assign order names the category it is handled as"
        ]
    if problems:
        raise h.Rejected(422, problems)


@dataclass(frozen=True)
class Decision:
    """What deciding a holder's request changes: the case row's columns, the order entry's
    detail, the kind of request decided and, for an approved extension, the new due instant."""

    request: str
    values: dict[str, Any]
    detail: dict[str, Any]
    due: dt.datetime | None


def _decide(work: Work, case: Any, kind: str, order: dict, *, by: str) -> Decision:
    """Approve or refuse the holder's pending request (extension, pause): 409 when none is
    pending (``lifecycle.check_decision``) or when an approved extension would no longer move
    the clock's due instant later. The request's timeline entry records the decision."""
    entry = h.latest_request(work, case.case_id)
    pending = h.pending_of(entry, case.assignment_id)
    try:
        lifecycle.check_decision(kind, pending)
    except lifecycle.LifecycleError as exc:
        raise h._refused(exc) from None
    assert pending is not None and entry is not None
    j = work.jurisdiction(case.jurisdiction_version)
    now = work.now
    values: dict[str, Any] = {}
    detail: dict[str, Any] = {"request": pending}
    due = None
    if kind == v.ORDER_APPROVE and pending == lifecycle.REQUEST_EXTENSION:
        due = lifecycle.parse_due((entry.detail or {}).get("due"))
        if due is None or case.due_at is None or due <= case.due_at:
            raise h.Rejected(
                409,
                {
                    "kind": [
                        "the extension asked for no longer moves the clock's due instant later "
                        "(it runs until "
                        + (j.local(case.due_at).isoformat() if case.due_at else "no instant")
                        + "): refuse it and let the holder ask again"
                    ]
                },
            )
        values.update(due_at=due, extensions=cases.c.extensions + 1)
        detail["due"] = j.local(due).isoformat()
    elif kind == v.ORDER_APPROVE:
        # 挂起: the clock stands still until the holder reports resumed.
        values.update(paused_at=now, paused_due_at=case.due_at, due_at=None, colour=None)
    work.db.execute(
        sa.update(timeline)
        .where(timeline.c.id == entry.id)
        .values(
            detail={
                **(entry.detail or {}),
                "decision": lifecycle.DECISIONS[kind],
                "decided_by": by,
                "decided_at": j.local(now).isoformat(),
                **({"refused_because": order["reason"]} if kind == v.ORDER_REFUSE else {}),
            }
        )
    )
    return Decision(pending, values, detail, due)


def give_order(work: Work, case_id: str, order: dict, *, by: str) -> dict:
    """Take ``order`` (``schemas.OrderSchema``) on ``case_id``, given by ``by`` (the principal's
    label); the case's state after it. Raises ``Rejected``: 404 no case (or no case to merge
    into), 409 illegal in the case's state, 422 a unit or category the jurisdiction lacks."""
    kind = order["kind"]
    into = order.get("into")
    rows = _lock_cases(work, [case_id] + ([into] if into else []))
    case = rows.get(case_id)
    if case is None:
        raise h.Rejected(404, {"case_id": [f"no case {case_id!r}"]})
    target = rows.get(into) if into else None
    j = work.jurisdiction(case.jurisdiction_version)
    holder = j.unit(case.holder) if case.holder else None
    try:
        lifecycle.check_order(
            kind,
            case.status,
            at_top=holder is not None and holder.kind == v.COMMAND_CENTER,
            into=into,
            into_status=target.status if target is not None else None,
            case_id=case_id,
        )
    except lifecycle.LifecycleError as exc:
        raise h._refused(exc) from None
    _check_unit_and_category(j, case, order)
    outcome = lifecycle.apply_order(kind, case.status, case.held_from)
    now = work.now
    values: dict[str, Any] = {}
    decided = _decide(work, case, kind, order, by=by) if kind in lifecycle.DECISIONS else None
    if decided is not None:
        values.update(decided.values)
    if outcome.status != case.status:
        values["status"] = outcome.status
    if outcome.clock_stops:
        values.update(due_at=None, colour=None)
    if outcome.finished:
        values.update(closed_at=now, held_at=None, held_from=None, held_due_at=None)
    if outcome.clock_stops or outcome.reassigns:
        # The clock a pause stopped is gone (finished, or replaced by the new assignment's).
        values.update(paused_at=None, paused_due_at=None)
    if kind == v.ORDER_HOLD:
        values.update(held_at=now, held_from=case.status, held_due_at=case.due_at)
        if case.paused_at is not None:
            # Put on the long-term list while paused (挂起): the clock has stood still since the
            # pause, so release resumes it as from then.
            values.update(held_at=case.paused_at, held_due_at=case.paused_due_at)
    elif kind == v.ORDER_RELEASE:
        values.update(held_at=None, held_from=None, held_due_at=None)
        if case.held_due_at is not None and case.held_at is not None:
            values["due_at"] = resumed_due(
                case.held_due_at, case.held_at, now, _limit(j, case.category), j.calendar
            )
        if lifecycle.has_running_clock(outcome.status):
            values["colour"] = _colour_of(work, case.assignment_id)
    elif kind == v.ORDER_REOPEN:
        values["closed_at"] = None
    elif kind == v.ORDER_COMMENT:
        values["comments"] = cases.c.comments + 1
    if values:
        work.db.execute(sa.update(cases).where(cases.c.case_id == case_id).values(**values))
    detail = {
        "order": kind,
        "by": by,
        "reason": order.get("reason"),
        "unit": order.get("unit"),
        "category": order.get("category"),
        "into": into,
        "status_before": case.status,
        **(decided.detail if decided is not None else {}),
    }
    h._note(work, case_id, v.ENTRY_ORDER, now, **{k: x for k, x in detail.items() if x})
    # An order naming a category reclassifies the case: classification learns it.
    classifying.learn(
        work, case_id, case.description, order.get("category"), classifying.SOURCE_ORDERED
    )
    if target is not None:
        # The reports of the merged case count on the one it joined (合并).
        work.db.execute(
            sa.update(cases)
            .where(cases.c.case_id == target.case_id)
            .values(reporters=cases.c.reporters + case.reporters)
        )
        h._note(
            work,
            target.case_id,
            v.ENTRY_MERGED_FROM,
            now,
            merged=case_id,
            by=by,
            reason=order.get("reason"),
        )
    work.emit(
        c.CASE_ORDER_GIVEN,
        {
            "order_id": uuid.uuid4().hex,
            "case_id": case_id,
            "assignment_id": case.assignment_id,
            "kind": kind,
            "unit": order.get("unit"),
            "category": order.get("category"),
            "into": into,
            # Free text: it may hold the resident's number (the timeline keeps it).
            "reason": h._masked_note(work, case_id, order.get("reason")),
            "by": by,
            "status_before": case.status,
            "status": outcome.status,
            "holder": case.holder,
            "jurisdiction_version": case.jurisdiction_version,
            # approve / refuse: the request decided, and the due instant an approved extension
            # gives the clock.
            "request": decided.request if decided is not None else None,
            "due": decided.due.isoformat() if decided is not None and decided.due else None,
        },
    )
    return {"case_id": case_id, "kind": kind, "status": outcome.status}
