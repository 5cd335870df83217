"""Deliveries: one message for one unit, recorded in ``departments_deliveries`` and sent the way
the city's data says that unit is reached (``Jurisdiction.adapter_for``).

Two ways out, chosen by the adapter:

- *at once*, in the transaction that records the delivery: ``amqp`` (the default) publishes
  through the service's outbox (``Work.send_to_unit``), ``inbox`` has nothing to send (intake's
  inbox shows the case from ``case_dispatched``). The row is ``delivered`` when it commits.
- *by the delivery worker* (``worker.py``), for every other adapter (webhook, e-mail, Open311,
  a city's own): the row is ``pending`` and pushed after the commit, in ``seq`` order per unit,
  with retries on operational time.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError

from gridflow_common import contracts as c
from gridflow_common.adapters import (
    CHANGE_WITHDRAWN,
    KIND_CASE,
    KIND_CHANGE,
    LEAD,
    AdapterConfig,
)
from gridflow_common.domain.calendar import TimeLimit
from gridflow_common.domain.calendar import due_at as calendar_due_at
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_common.runtime import Work
from gridflow_departments.models import DELIVERED, PENDING, WITHDRAWN, deliveries

AMQP = "amqp"
INBOX = "inbox"


def delivered_at_once(config: AdapterConfig) -> bool:
    """Whether a delivery through ``config`` is complete when the transaction recording it
    commits: the inbox, and AMQP on Gridflow's own broker (the outbox carries it). AMQP to a
    broker of the department's own (an endpoint given) is pushed by the worker like the rest."""
    return config.adapter == INBOX or (config.adapter == AMQP and not config.endpoint)


_MESSAGE = c.DepartmentMessageV2()


def delivery_id(assignment_id: str, unit: str, role: str) -> str:
    return f"{assignment_id}/{unit}/{role}"


def change_delivery_id(base: str, change: str, event_id: str) -> str:
    # One change delivery per event that caused it: a redelivered event makes the same id.
    return f"{base}/{change}/{event_id}"


def validated(message: dict) -> dict:
    """``message`` if it keeps the department message contract; ``ValueError`` naming what is
    wrong otherwise, which fails the unit of work (the event is retried, then dead-lettered)
    instead of handing a department a message it cannot read."""
    try:
        _MESSAGE.load(message)
    except ValidationError as exc:
        raise ValueError(
            f"department message does not match its contract: {exc.messages}"
        ) from None
    return message


def place(j: Jurisdiction, area_code: str, location: dict | None) -> dict:
    """Where the case is, for a department: the point, the grid, community and street it lies
    in, and a readable address (the reporter's, else the areas' names)."""
    location = location or {}
    point = None
    if location.get("lat") is not None and location.get("lon") is not None:
        point = {"lat": float(location["lat"]), "lon": float(location["lon"])}
    found = {level: j.ancestor(area_code, level) for level in ("street", "community", "grid")}
    address = location.get("address")
    if not address:
        names = [
            area.name
            for area in (j.ancestor(area_code, "district"), *found.values())
            if area is not None and area.name
        ]
        address = "".join(names) or None
    return {
        "point": point,
        "grid": found["grid"].code if found["grid"] else None,
        "community": found["community"].code if found["community"] else None,
        "street": found["street"].code if found["street"] else None,
        "address": address,
    }


def due(
    j: Jurisdiction,
    category_code: str | None,
    dispatched: dt.datetime,
    rule_limit: dict | None = None,
) -> str | None:
    """The holder's due instant in the city's zone, as SLA's clock counts it from dispatch:
    the category's time limit, or a city rule's for this assignment (``rule_limit``, the
    routing decision's ``time_limit``); null with no category (a triage clock is the command
    center's, not a department's) or beyond the calendar the city gave."""
    category = j.category(category_code) if category_code else None
    if category is None:
        return None
    limit = TimeLimit(rule_limit["amount"], rule_limit["unit"]) if rule_limit else category.limit
    try:
        return j.local(calendar_due_at(dispatched, limit, j.calendar)).isoformat()
    except ValueError:
        return None


def reporter_contact_url(
    j: Jurisdiction, payload: dict, department: str | None, role: str
) -> str | None:
    """Where the lead department reads the reporters whole, when the city's data lets it
    (``departments.csv`` sees_reporter, ``domain.privacy.may_see_reporter``): the case, read
    with the department's own credential over HTTPS. Null for everyone else."""
    if role != LEAD or department is None or department != payload["lead"]:
        return None
    known = j.department(department)
    if known is None or not known.sees_reporter:
        return None
    return f"/api/v1/cases/{payload['case_id']}"


def case_message(
    j: Jurisdiction,
    payload: dict,
    *,
    unit: str,
    department: str | None,
    role: str,
    dispatched: dt.datetime,
    due_at: str | None,
) -> dict:
    category = j.category(payload["category"]) if payload["category"] else None
    return validated(
        {
            "message_version": c.DEPARTMENT_MESSAGE_VERSION,
            "kind": KIND_CASE,
            "change": None,
            "delivery_id": delivery_id(payload["assignment_id"], unit, role),
            "case_id": payload["case_id"],
            "assignment_id": payload["assignment_id"],
            "role": role,
            "unit": unit,
            "department": department,
            "handler": payload["holder"],
            "lead": payload["lead"],
            "assisting": list(payload["assisting"]),
            "tier": payload["tier"],
            "reason": payload["reason"],
            "category": payload["category"],
            "category_name": category.name_zh if category else None,
            "description": payload["description"],
            "location": place(j, payload["area_code"], payload["location"]),
            "area_code": payload["area_code"],
            "due_at": due_at,
            "colour": "green" if due_at else None,
            # Masked, as the event carries it: the clear name and number never ride the broker
            # (its queues are persistent, and read by whoever administers it).
            "reporter": payload["reporter"],
            "reporter_contact_url": reporter_contact_url(j, payload, department, role),
            "dispatched_at": j.local(dispatched).isoformat(),
            "status_back": {
                "exchange": c.STATUS_EXCHANGE,
                "routing_key": unit,
                "reply_queue": c.reply_queue(unit),
                "http": f"/api/v1/departments/{unit}/updates",
            },
        }
    )


def record(
    work: Work,
    j: Jurisdiction,
    version: int,
    message: dict,
    *,
    case_id: str,
    assignment_id: str,
    unit: str,
    department: str | None,
    role: str,
    kind: str,
) -> dict:
    """Record one delivery and send it the unit's way, in this unit of work; what
    ``case_dispatched`` says of it."""
    config = j.adapter_for(unit)
    adapter = config.adapter
    now = work.runtime.operational_now()
    at_once = delivered_at_once(config)
    if adapter == AMQP and at_once:
        work.send_to_unit(department, unit, message)
    work.db.execute(
        sa.insert(deliveries),
        dict(
            delivery_id=message["delivery_id"],
            case_id=case_id,
            assignment_id=assignment_id,
            unit=unit,
            department=department,
            role=role,
            kind=kind,
            adapter=adapter,
            jurisdiction_version=version,
            message=json.dumps(message, ensure_ascii=False),
            state=DELIVERED if at_once else PENDING,
            attempts=1 if at_once else 0,
            next_attempt_at=None if at_once else now,
            created_at=now,
            delivered_at=now if at_once else None,
        ),
    )
    return {
        "unit": unit,
        "department": department,
        "role": role,
        "adapter": adapter,
        "delivery_id": message["delivery_id"],
    }


def change(
    work: Work,
    original: Any,
    change_name: str,
    event: c.Event,
    **fields: Any,
) -> None:
    """A later change of a case, for the unit that was given it (``original``: its case
    delivery's row), the same way as its case and after it."""
    version, j = work.active_jurisdiction()
    message = {
        **json.loads(original.message),
        "kind": KIND_CHANGE,
        "change": change_name,
        "delivery_id": change_delivery_id(original.delivery_id, change_name, event.event_id),
        **fields,
    }
    record(
        work,
        j,
        version,
        validated(message),
        case_id=original.case_id,
        assignment_id=original.assignment_id,
        unit=original.unit,
        department=original.department,
        role=original.role,
        kind=KIND_CHANGE,
    )


def case_deliveries(work: Work, case_id: str, *conditions: Any) -> list[Any]:
    return list(
        work.db.execute(
            sa.select(deliveries)
            .where(deliveries.c.case_id == case_id, deliveries.c.kind == KIND_CASE, *conditions)
            .order_by(deliveries.c.seq)
        ).all()
    )


def withdraw_previous_lead(work: Work, event: c.Event, new_holder: str) -> None:
    """A new assignment takes the case from the previous lead unit: a delivery still waiting is
    withdrawn (never pushed); one already delivered is followed by a ``withdrawn`` change,
    unless the case stays with that unit (its new case message says why: rework)."""
    p = event.payload
    previous = case_deliveries(
        work,
        p["case_id"],
        deliveries.c.role == LEAD,
        deliveries.c.assignment_id != p["assignment_id"],
        deliveries.c.state.in_((PENDING, DELIVERED)),
    )
    now = work.runtime.operational_now()
    for row in previous:
        if row.state == PENDING:
            # Not while a worker holds it for a push: that push may already have reached the
            # unit, which then needs the change like any delivered case.
            withdrawn = work.db.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.seq == row.seq,
                    deliveries.c.state == PENDING,
                    sa.or_(deliveries.c.leased_until.is_(None), deliveries.c.leased_until < now),
                )
                .values(state=WITHDRAWN, last_error="withdrawn before it was pushed")
            ).rowcount
            if withdrawn:
                continue
        if row.unit != new_holder:
            change(work, row, CHANGE_WITHDRAWN, event)
