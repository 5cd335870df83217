"""Notify's service layer: record the notification to whoever must act.

Who that is and what they read is decided in ``gridflow_common.domain.recipients``; this layer
reads the jurisdiction and writes the rows. This first version records what would be sent (SMS
to the person's phone); delivery channels (e-mail, SMS gateway, WeChat Work) come as plugins
later.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gridflow_common import contracts as c
from gridflow_common import notify_templates
from gridflow_common.domain import notify_plan as np
from gridflow_common.domain import recipients
from gridflow_common.domain import vocabulary as v
from gridflow_common.runtime import Work
from gridflow_common.service import ServiceDefinition
from gridflow_notify import delivery
from gridflow_notify.models import OWN_TABLES, attempts, case_facts, metadata, notifications


def _remember(work: Work, case_id: str, category: str | None, area_code: str | None) -> None:
    """Keep what an event told of a case (its category, its place) for the events that do not
    say: a colour change, a return, an undeliverable case. A later word wins; a word left out
    (an unclassified registration, an order naming no category) keeps what was known."""
    if category is None and area_code is None:
        return
    dialect = postgresql if work.db.dialect.name == "postgresql" else sqlite
    row = {"case_id": case_id, "category": category, "area_code": area_code}
    insert = dialect.insert(case_facts).values(**row, updated_at=work.now)
    work.db.execute(
        insert.on_conflict_do_update(
            index_elements=["case_id"],
            set_={
                "category": sa.func.coalesce(insert.excluded.category, case_facts.c.category),
                "area_code": sa.func.coalesce(insert.excluded.area_code, case_facts.c.area_code),
                "updated_at": insert.excluded.updated_at,
            },
        )
    )


def _known(work: Work, p: dict) -> dict:
    """The payload, with the category and place notify was told earlier where it gives none."""
    if p.get("category") and p.get("area_code"):
        return p
    known = work.db.execute(
        sa.select(case_facts.c.category, case_facts.c.area_code).where(
            case_facts.c.case_id == p["case_id"]
        )
    ).first()
    if known is None:
        return p
    return {
        **p,
        "category": p.get("category") or known.category,
        "area_code": p.get("area_code") or known.area_code,
    }


def _names(work: Work, j: Any, p: dict) -> dict[str, Any]:
    """What every template may name: the case, its category, place and holder, in Chinese
    (the category and place as the event says, else as notify was told before)."""
    p = _known(work, p)
    category = j.category(p["category"]) if p.get("category") else None
    area = j.area(p["area_code"]) if p.get("area_code") else None
    holder = j.unit(p["holder"]) if p.get("holder") else None
    return {
        "case_id": p["case_id"],
        "category": category.name_zh if category else recipients.UNCLASSIFIED_ZH,
        "place": area.name if area else "",
        "unit": holder.name if holder else "",
    }


def _due(j: Any, text: str | None) -> str:
    if not text:
        return ""
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        return ""
    return f"{j.local(instant):%m月%d日 %H:%M}"


def _record(
    work: Work,
    event: c.Event,
    notices: list[recipients.Notice],
    *,
    kind: str,
    context: dict[str, Any],
    cause: str,
    case_id: str | None = None,
    assignment_id: str | None = None,
    category: str | None = None,
) -> None:
    """One message row per person told, keyed (person, case, cause): a redelivered event or a
    second replica inserts nothing more. Text from the kind's template; quiet hours decided
    now (city time), so a message at night waits for the morning unless it is urgent."""
    p = event.payload
    j = work.jurisdiction(p.get("jurisdiction_version"))
    plan = j.notify_plan
    urgent = plan.is_urgent(kind, category)
    hold = np.hold_until(j.local(event.occurred_at), plan.quiet_hours, urgent)
    available = delivery.configured(work.runtime)
    case = case_id or p["case_id"]
    for notice in dict.fromkeys(notices):
        person = notice.person
        subject, text = notify_templates.render(kind, {**context, "person": person.name}, plan)
        channels = plan.channels_for(person.id, kind, person.phone, person.email)
        status = delivery.PENDING if set(channels) & available else delivery.RECORDED
        if status == delivery.RECORDED:
            delivery.recorded_unsent(work.runtime)
        _insert(
            work,
            dict(
                message_key=f"{person.id}|{case}|{cause}"[:240],
                case_id=case,
                assignment_id=assignment_id or p.get("assignment_id") or case,
                person_id=person.id,
                role=person.role,
                channel=channels[0][:20] if channels else v.NOTICE_SMS,
                address=person.phone or person.email or "",
                reason=notice.reason,
                kind=kind,
                subject=subject,
                text=text,
                # The contacts people.csv gave, and the name a webhook's receiver is told.
                context={
                    "contacts": {"phone": person.phone, "email": person.email},
                    "person": person.name,
                },
                channels=list(channels),
                urgent=urgent,
                status=status,
                not_before=hold.astimezone(dt.timezone.utc) if hold else None,
                created_at=event.occurred_at,
            ),
        )


def _record_resident(work: Work, event: c.Event, kind: str, context: dict[str, Any]) -> None:
    """The case's reporter hears back (``resident_<kind>``): who they are and how to reach
    them is intake's, asked when the message is sent (contacts never travel in events)."""
    p = event.payload
    j = work.jurisdiction(p.get("jurisdiction_version"))
    plan = j.notify_plan
    resident_kind = np.RESIDENT_PREFIX + kind
    hold = np.hold_until(j.local(event.occurred_at), plan.quiet_hours, False)
    available = delivery.configured(work.runtime)
    subject = notify_templates.SUBJECTS[resident_kind]
    status = delivery.PENDING if available & delivery.RESIDENT_CHANNELS else delivery.RECORDED
    if status == delivery.RECORDED:
        delivery.recorded_unsent(work.runtime)
    _insert(
        work,
        dict(
            message_key=f"{delivery.REPORTER}|{p['case_id']}|{resident_kind}",
            case_id=p["case_id"],
            assignment_id=p.get("assignment_id") or p["case_id"],
            person_id=delivery.REPORTER,
            role=delivery.REPORTER,
            channel=v.NOTICE_SMS,
            address="",
            reason=resident_kind,
            kind=resident_kind,
            subject=subject,
            text="",
            context=context,
            channels=None,
            urgent=False,
            status=status,
            not_before=hold.astimezone(dt.timezone.utc) if hold else None,
            created_at=event.occurred_at,
        ),
    )


def _insert(work: Work, row: dict) -> None:
    dialect = postgresql if work.db.dialect.name == "postgresql" else sqlite
    work.db.execute(
        dialect.insert(notifications).on_conflict_do_nothing(index_elements=["message_key"]),
        row,
    )


def on_case_registered(work: Work, event: c.Event) -> None:
    """The grid worker of the case's grid is told of a new case there; the reporter that it
    is registered, with its number and progress link."""
    p = event.payload
    _remember(work, p["case_id"], p.get("category"), p.get("area_code"))
    j = work.jurisdiction(p["jurisdiction_version"])
    context = _names(work, j, p)
    workers = list(j.people_for(p["area_code"], (v.ROLE_GRID_WORKER,)))
    notices = [recipients.Notice(w, np.REGISTERED, "") for w in workers]
    _record(work, event, notices, kind=np.REGISTERED, context=context, cause=np.REGISTERED)
    _record_resident(work, event, np.REGISTERED, context)


def on_case_verified(work: Work, event: c.Event) -> None:
    """A case verified and closed: its reporter is told, and invited to evaluate."""
    p = event.payload
    if not p["passed"]:
        return
    j = work.jurisdiction(p["jurisdiction_version"])
    context = _names(work, j, p)
    _record_resident(work, event, np.RESOLVED, context)
    _record_resident(work, event, np.EVALUATION, context)


def on_case_dispatched(work: Work, event: c.Event) -> None:
    p = event.payload
    _remember(work, p["case_id"], p.get("category"), p.get("area_code"))
    j = work.jurisdiction(p["jurisdiction_version"])
    category = j.category(p["category"]) if p["category"] else None
    name = category.name_zh if category else None
    context = {**_names(work, j, p), "due": _due(j, p.get("due_at"))}
    context["reason"] = "" if p["reason"] == v.REASON_NEW else v.zh(p["reason"])
    assisting_units = [d["unit"] for d in p.get("deliveries") or () if d["role"] == v.ASSISTING]
    cause = p["assignment_id"]
    _record(
        work,
        event,
        recipients.dispatched(j, p["case_id"], p["holder"], p["reason"], name),
        kind=np.DISPATCHED,
        context=context,
        cause=f"dispatched:{cause}",
        category=p["category"],
    )
    lead = j.department(p["lead"]) if p.get("lead") else None
    _record(
        work,
        event,
        recipients.assisting(j, p["case_id"], assisting_units, p["lead"], p["holder"], name),
        kind=np.ASSISTING,
        context={**context, "lead": lead.name_zh if lead else context["unit"]},
        cause=f"assisting:{cause}",
        category=p["category"],
    )
    if p["reason"] == v.REASON_NEW:
        _record_resident(work, event, np.DISPATCHED, context)


def on_case_undeliverable(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    unit = j.unit(p["unit"])
    _record(
        work,
        event,
        recipients.undeliverable(j, p["case_id"], p["unit"], p["role"], p["attempts"]),
        kind=np.UNDELIVERABLE,
        context={
            **_names(work, j, p),
            "unit": unit.name if unit else p["unit"],
            "role": v.zh(p["role"]),
            "attempts": p["attempts"],
        },
        cause=f"undeliverable:{p['delivery_id']}",
    )


def on_case_colour_changed(work: Work, event: c.Event) -> None:
    p = event.payload
    kind = np.warning_kind(p["colour"], p["action"]) if p["colour"] else None
    if kind is None:
        return
    j = work.jurisdiction(p["jurisdiction_version"])
    _record(
        work,
        event,
        recipients.colour_changed(j, p["case_id"], p["holder"], p["colour"], p["action"]),
        kind=kind,
        context={**_names(work, j, p), "due": ""},
        # One message per person per warning: the assignment's colour, however often announced.
        cause=f"warning:{p['assignment_id']}:{p['colour']}",
        category=_known(work, p).get("category"),
    )


def on_case_awaiting_order(work: Work, event: c.Event) -> None:
    p = event.payload
    j = work.jurisdiction(p["jurisdiction_version"])
    kind = np.RETURNED if p["cause"] == v.RETURNED else np.AWAITING_ORDER
    _record(
        work,
        event,
        recipients.awaiting_order(j, p["case_id"], p["holder"], p["cause"]),
        kind=kind,
        context={
            **_names(work, j, p),
            "reason": v.zh(p["cause"]),
            "note": p.get("explanation") or "",
        },
        cause=f"awaiting:{p['assignment_id']}:{event.event_id}",
    )


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
    area = j.area(p["area_code"])
    _record(
        work,
        event,
        notices,
        kind=np.HOTSPOT,
        context={
            "case_id": p["hotspot_id"],
            "category": category.name_zh if category else recipients.UNCLASSIFIED_ZH,
            "place": area.name if area else p["area_code"],
            "count": p["count"],
            "window_minutes": p["window_minutes"],
        },
        cause="hotspot",
        case_id=p["hotspot_id"],
        assignment_id=p["hotspot_id"],
    )


def on_case_order_given(work: Work, event: c.Event) -> None:
    p = event.payload
    # A reclassification names the new category: later warnings name it too.
    _remember(work, p["case_id"], p.get("category"), None)
    if p["kind"] != v.ORDER_SUPERVISE or p["assignment_id"] is None:
        return
    j = work.jurisdiction(p["jurisdiction_version"])
    _record(
        work,
        event,
        recipients.supervised(j, p["case_id"], p["holder"], p["reason"]),
        kind=np.SUPERVISION,
        context={**_names(work, j, p), "note": p["reason"] or ""},
        cause=f"supervision:{p['order_id']}",
        category=p["category"],
    )


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
                notifications.c.status,
                notifications.c.id,
            )
            # A reporters' message made into one per reporter is listed as those.
            .where(notifications.c.case_id == case_id, notifications.c.status != delivery.EXPANDED)
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
    log: dict[int, list[dict]] = {}
    if rows:
        a = attempts.c
        for t in work.db.execute(
            sa.select(a.notification_id, a.at, a.channel, a.outcome, a.error)
            .where(a.notification_id.in_([r["id"] for r in rows]))
            .order_by(a.id)
        ):
            log.setdefault(t.notification_id, []).append(
                {
                    "at": t.at.astimezone(dt.timezone.utc).isoformat(),
                    "channel": t.channel,
                    "outcome": t.outcome,
                    "error": t.error,
                }
            )
    items = [
        {
            **recipients.listed_notice(
                j,
                at=r["created_at"].astimezone(dt.timezone.utc).isoformat(),
                reason=r["reason"],
                person_id=r["person_id"],
                role=r["role"],
                channel=r["channel"],
                address=r["address"],
                status=r["status"],
            ),
            # The delivery log: every try, when (operational time), how, what came of it.
            "attempts": log.get(r["id"], []),
        }
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
        "on_case_registered": on_case_registered,
        "on_case_verified": on_case_verified,
    },
    periodic=delivery.run_deliveries,
    own_tables=OWN_TABLES,
)
