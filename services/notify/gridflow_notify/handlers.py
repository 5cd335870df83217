"""Notify's service layer: decide who must act and record the notification.

This first version records what would be sent (SMS to the person's phone); delivery channels
(e-mail, SMS gateway, WeChat Work) come as plugins later.
"""

from __future__ import annotations

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.runtime import Work
from gridflow_common.service import ServiceDefinition
from gridflow_notify.models import OWN_TABLES, metadata, notifications

# The duty role of each kind of unit (from people.csv's roles).
DUTY_ROLE = {
    "station": "station_duty",
    "bureau": "bureau_duty",
    "command_center": "command_duty",
    "street_center": "street_duty",
    "community_office": "community_staff",
}
ROLES_FOR_ACTION = {
    "remind_handler": ("duty",),
    "supervise": ("duty", "leader"),
    "escalate": ("leader",),
}


def recipients(j, unit_code: str, who: tuple[str, ...]):
    unit = j.unit(unit_code)
    if unit is None:
        return []
    roles = [DUTY_ROLE[unit.kind] if w == "duty" else w for w in who]
    return j.people_for(unit_code, roles)


def _record(work: Work, event: c.Event, people, reason: str, text: str) -> None:
    p = event.payload
    for person in people:
        work.db.execute(sa.insert(notifications), dict(
            case_id=p["case_id"], assignment_id=p["assignment_id"], person_id=person.id,
            role=person.role, channel="sms", address=person.phone or person.email or "",
            reason=reason, text=text, created_at=event.occurred_at))


def on_case_dispatched(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    category = j.category(p["category"]) if p["category"] else None
    what = category.name_zh if category else "待分类事项"
    _record(work, event, recipients(j, p["holder"], ("duty",)), "dispatched",
            f"【网格化管理】新案件 {p['case_id']}（{what}）已派至贵单位，请及时签收处置。")


def on_case_colour_changed(work: Work, event: c.Event) -> None:
    p = event.payload
    who = ROLES_FOR_ACTION.get(p["action"])
    if not who or not p["holder"]:
        return
    j = work.jurisdiction(p["jurisdiction_version"])
    _record(work, event, recipients(j, p["holder"], who), p["action"],
            f"【网格化管理】案件 {p['case_id']} 处置时限预警：{p['colour']}，请尽快办理。")


def notifications_for(work: Work, case_id: str) -> list[dict]:
    rows = work.db.execute(sa.select(notifications).where(
        notifications.c.case_id == case_id).order_by(notifications.c.id)).mappings().all()
    return [dict(r) for r in rows]


DEFINITION = ServiceDefinition(
    name=c.NOTIFY,
    metadata=metadata,
    handlers={
        "on_case_dispatched": on_case_dispatched,
        "on_case_colour_changed": on_case_colour_changed,
    },
    own_tables=OWN_TABLES,
)
