"""Departments' service layer: push each assignment to its department system's durable queue.

A department system subscribes to ``gridflow.department.<department code>`` (bound to the direct
exchange ``gridflow.departments``) with any AMQP client; a unit with no department (a community
office, the command center) has a queue of its own code. The push and the ``case_dispatched``
event leave through the outbox in one transaction, the push first.
"""

from __future__ import annotations

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import privacy
from gridflow_common.runtime import Work
from gridflow_common.service import ServiceDefinition
from gridflow_departments.models import OWN_TABLES, dispatches, metadata

DEPARTMENT_MESSAGE_VERSION = 1


def queue_key(payload: dict) -> str:
    return payload["lead"] or payload["holder"]


def on_case_routed(work: Work, event: c.Event) -> None:
    # Masked since intake (domain.privacy); masked again here, the last hop before systems
    # outside Gridflow, for announcements made before intake masked (idempotent).
    p = {
        **event.payload,
        "description": privacy.mask_personal_numbers(event.payload["description"]),
    }
    key = queue_key(p)
    queue = c.department_queue(key)
    j = work.jurisdiction(p["jurisdiction_version"])
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
    work.send_to_department(
        key,
        {
            "message_version": DEPARTMENT_MESSAGE_VERSION,
            "case_id": p["case_id"],
            "assignment_id": p["assignment_id"],
            "reason": p["reason"],
            "handler": p["holder"],
            "tier": p["tier"],
            "lead": p["lead"],
            "assisting": p["assisting"],
            "category": p["category"],
            "area_code": p["area_code"],
            "description": p["description"],
            "location": p["location"],
            "reporter": p["reporter"],
            "dispatched_at": j.local(event.occurred_at).isoformat(),
            "reply_to": "/api/v1/cases/{case_id}/updates".format(case_id=p["case_id"]),
        },
    )
    work.emit(c.CASE_DISPATCHED, {**p, "queue": queue}, occurred_at=event.occurred_at)


DEFINITION = ServiceDefinition(
    name=c.DEPARTMENTS,
    metadata=metadata,
    handlers={"on_case_routed": on_case_routed},
    own_tables=OWN_TABLES,
)
