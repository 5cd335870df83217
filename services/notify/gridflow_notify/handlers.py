"""Notify's service layer: record the notification to whoever must act.

Who that is and what they read is decided in ``gridflow_common.domain.recipients``; this layer
reads the jurisdiction and writes the rows. This first version records what would be sent (SMS
to the person's phone); delivery channels (e-mail, SMS gateway, WeChat Work) come as plugins
later.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import recipients
from gridflow_common.domain import vocabulary as v
from gridflow_common.runtime import Work
from gridflow_common.service import ServiceDefinition
from gridflow_notify.models import OWN_TABLES, metadata, notifications


def _record(
    work: Work,
    event: c.Event,
    notices: list[recipients.Notice],
    *,
    case_id: str | None = None,
    assignment_id: str | None = None,
) -> None:
    p = event.payload
    for notice in notices:
        person = notice.person
        work.db.execute(
            sa.insert(notifications),
            dict(
                case_id=case_id or p["case_id"],
                assignment_id=assignment_id or p["assignment_id"],
                person_id=person.id,
                role=person.role,
                channel=v.NOTICE_SMS,
                address=person.phone or person.email or "",
                reason=notice.reason,
                text=notice.text,
                created_at=event.occurred_at,
            ),
        )


def on_case_dispatched(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    category = j.category(p["category"]) if p["category"] else None
    name = category.name_zh if category else None
    assisting_units = [d["unit"] for d in p.get("deliveries") or () if d["role"] == v.ASSISTING]
    _record(
        work,
        event,
        recipients.dispatched(j, p["case_id"], p["holder"], p["reason"], name)
        + recipients.assisting(j, p["case_id"], assisting_units, p["lead"], p["holder"], name),
    )


def on_case_undeliverable(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    _record(
        work,
        event,
        recipients.undeliverable(j, p["case_id"], p["unit"], p["role"], p["attempts"]),
    )


def on_case_colour_changed(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    _record(
        work,
        event,
        recipients.colour_changed(j, p["case_id"], p["holder"], p["colour"], p["action"]),
    )


def on_case_awaiting_order(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    _record(work, event, recipients.awaiting_order(j, p["case_id"], p["holder"], p["cause"]))


def on_hotspot_detected(work: Work, event: c.Event) -> None:
    """The command center hears of a hotspot. The notice is filed under the hotspot's id (in
    place of a case's and an assignment's): it is about the place, not one case, and no case's
    list of notices gains one it did not cause."""
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    category = j.category(p["category"])
    notices = recipients.hotspot(
        j, p["area_code"], category.name_zh if category else None, p["count"], p["window_minutes"]
    )
    _record(work, event, notices, case_id=p["hotspot_id"], assignment_id=p["hotspot_id"])


def on_case_order_given(work: Work, event: c.Event) -> None:
    p = event.payload
    if p["kind"] != v.ORDER_SUPERVISE or p["assignment_id"] is None:
        return
    j = work.jurisdiction(p["jurisdiction_version"])
    _record(work, event, recipients.supervised(j, p["case_id"], p["holder"], p["reason"]))


def notifications_for(work: Work, case_id: str) -> list[dict]:
    rows = (
        work.db.execute(
            sa.select(notifications)
            .where(notifications.c.case_id == case_id)
            .order_by(notifications.c.id)
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def case_notices(work: Work, case_id: str) -> dict:
    """What intake's case page shows of the notices sent for ``case_id``: the latest
    ``recipients.MAX_LISTED``, oldest first, each shaped by ``recipients.listed_notice`` (the
    contact masked: a person's phone or e-mail never leaves notify whole); ``more`` says older
    ones were left out. Instants in UTC, ISO 8601 (the asker shows them in its city's time)."""
    rows = (
        work.db.execute(
            sa.select(
                notifications.c.created_at,
                notifications.c.reason,
                notifications.c.person_id,
                notifications.c.role,
                notifications.c.channel,
                notifications.c.address,
            )
            .where(notifications.c.case_id == case_id)
            .order_by(notifications.c.id.desc())
            .limit(recipients.MAX_LISTED + 1)
        )
        .mappings()
        .all()
    )
    more = len(rows) > recipients.MAX_LISTED
    rows = list(reversed(rows[: recipients.MAX_LISTED]))
    # Names from the rules in force: a notice is about a person, and the people's file names
    # them now as then (a person who left is named by id).
    j = work.jurisdiction() if rows else None
    items = [
        recipients.listed_notice(
            j,
            at=r["created_at"].astimezone(dt.timezone.utc).isoformat(),
            reason=r["reason"],
            person_id=r["person_id"],
            role=r["role"],
            channel=r["channel"],
            address=r["address"],
        )
        for r in rows
    ]
    return {"items": items, "more": more}


DEFINITION = ServiceDefinition(
    name=c.NOTIFY,
    metadata=metadata,
    handlers={
        "on_case_dispatched": on_case_dispatched,
        "on_case_colour_changed": on_case_colour_changed,
        "on_case_awaiting_order": on_case_awaiting_order,
        "on_case_undeliverable": on_case_undeliverable,
        "on_hotspot_detected": on_hotspot_detected,
        "on_case_order_given": on_case_order_given,
    },
    own_tables=OWN_TABLES,
)
