"""Departments' service layer: give each assignment to the units that must act on it, through
the adapter the city's data names for each (``deliveries``), and tell them of later changes.

The holder gets the case as *lead*; each assisting department gets it too, marked *assisting*,
at its station in the case's street when it has one there, else at its bureau in the district.
``case_dispatched`` says who got what (``deliveries``) and when the holder's work is due.
"""

from __future__ import annotations

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.adapters import ASSISTING, CHANGE_CLOSED, CHANGE_COLOUR, KIND_CASE, LEAD
from gridflow_common.domain import privacy
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_common.logging import get_logger
from gridflow_common.runtime import Work
from gridflow_common.service import ServiceDefinition
from gridflow_departments import deliveries as d
from gridflow_departments.models import (
    DELIVERED,
    OWN_TABLES,
    PENDING,
    deliveries,
    dispatches,
    metadata,
)
from gridflow_departments.worker import run_deliveries

log = get_logger(__name__)


def queue_key(payload: dict) -> str:
    return payload["lead"] or payload["holder"]


def units_for(j: Jurisdiction, p: dict) -> list[tuple[str, str | None, str]]:
    """(unit, department, role) of everyone given this assignment: the holder as lead, then
    each assisting department's unit nearest the case (none for the lead's own department)."""
    holder = j.unit(p["holder"])
    lead_department = holder.department_code if holder else None
    targets = [(p["holder"], lead_department, LEAD)]
    street = j.ancestor(p["area_code"], "street")
    district = j.ancestor(p["area_code"], "district")
    for department in p["assisting"]:
        if department in (p["lead"], lead_department):
            continue
        unit = (street and j.station(department, street.code)) or (
            district and j.bureau(department, district.code)
        )
        if unit is None:
            log.warning(
                "assisting_department_has_no_unit",
                case_id=p["case_id"],
                department=department,
                area_code=p["area_code"],
            )
            continue
        if any(unit.code == t[0] for t in targets):
            continue
        targets.append((unit.code, department, ASSISTING))
    return targets


def on_case_routed(work: Work, event: c.Event) -> None:
    # Masked since intake (domain.privacy); masked again here, the last hop before systems
    # outside Gridflow, for announcements made before intake masked (idempotent).
    p = {
        **event.payload,
        "description": privacy.mask_personal_numbers(event.payload["description"]),
    }
    version = p["jurisdiction_version"]
    j = work.jurisdiction(version)
    queue = c.department_queue(queue_key(p))
    work.db.execute(
        sa.insert(dispatches),
        dict(
            assignment_id=p["assignment_id"],
            case_id=p["case_id"],
            holder=p["holder"],
            queue=queue,
            dispatched_at=event.occurred_at,
        ),
    )
    d.withdraw_previous_lead(work, event, p["holder"])
    due_at = d.due(j, p["category"], event.occurred_at, p.get("time_limit"))
    given = []
    for unit, department, role in units_for(j, p):
        message = d.case_message(
            j,
            p,
            unit=unit,
            department=department,
            role=role,
            dispatched=event.occurred_at,
            due_at=due_at,
        )
        given.append(
            d.record(
                work,
                j,
                version,
                message,
                case_id=p["case_id"],
                assignment_id=p["assignment_id"],
                unit=unit,
                department=department,
                role=role,
                kind=KIND_CASE,
            )
        )
    work.emit(
        c.CASE_DISPATCHED,
        {**p, "queue": queue, "deliveries": given, "due_at": due_at},
        occurred_at=event.occurred_at,
    )


def on_case_colour_changed(work: Work, event: c.Event) -> None:
    """The holder's SLA colour changed: the holder's unit is told."""
    p = event.payload
    if p["colour"] is None:  # a clock that stopped: nothing for the unit to act on
        return
    lead = d.case_deliveries(
        work,
        p["case_id"],
        deliveries.c.assignment_id == p["assignment_id"],
        deliveries.c.role == LEAD,
        deliveries.c.state.in_((PENDING, DELIVERED)),
    )
    for row in lead:
        d.change(work, row, CHANGE_COLOUR, event, colour=p["colour"])


def _tell_current_units(work: Work, case_id: str, event: c.Event, status: str) -> None:
    """Every unit still working on the case's assignment in force (lead and assisting) is told
    it is finished; earlier holders were told when the case was taken from them."""
    rows = d.case_deliveries(work, case_id)
    leads = [row for row in rows if row.role == LEAD]
    if not leads:
        return
    current = leads[-1].assignment_id
    for row in rows:
        if row.assignment_id == current and row.state in (PENDING, DELIVERED):
            d.change(work, row, CHANGE_CLOSED, event, status=status)


def on_case_verified(work: Work, event: c.Event) -> None:
    """Verified and closed: every unit still working on the case (lead and assisting) is told.
    A failed verification comes back as a new assignment (rework), announced as a case."""
    p = event.payload
    if not p["passed"]:
        return
    _tell_current_units(work, p["case_id"], event, "closed")


def on_case_order_given(work: Work, event: c.Event) -> None:
    """A case the command center finished by order (rejected, 不予立案; merged into another)
    is closed for the units working on it, as a verified one is. The orders that move a case
    reach them as a new assignment (routing); the others change nothing of theirs."""
    p = event.payload
    if p["kind"] in (v.ORDER_REJECT, v.ORDER_MERGE):
        _tell_current_units(work, p["case_id"], event, p["status"])


DEFINITION = ServiceDefinition(
    name=c.DEPARTMENTS,
    metadata=metadata,
    handlers={
        "on_case_routed": on_case_routed,
        "on_case_colour_changed": on_case_colour_changed,
        "on_case_verified": on_case_verified,
        "on_case_order_given": on_case_order_given,
    },
    periodic=run_deliveries,
    own_tables=OWN_TABLES,
)
