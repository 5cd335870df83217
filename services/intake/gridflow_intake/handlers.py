"""Intake's service layer: register reports as cases, take handlers' status reports, verification
and evaluation, and project what the other services did onto the case view."""

from __future__ import annotations

import datetime as dt
import math
import secrets
from typing import Any

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain.calendar import CST
from gridflow_common.domain.classify import classify
from gridflow_common.domain.geo import distance_m
from gridflow_common.runtime import Work
from gridflow_common.service import ServiceDefinition
from gridflow_intake.models import OWN_TABLES, cases, colours, metadata, reports, timeline

# Two reports of one category within this distance of an open case are one case (合并).
DUPLICATE_RADIUS_M = 50.0
OPEN_STATUSES = ("registered", "dispatched", "accepted", "in_progress", "resolved")
CLOCK_RUNNING_STATUSES = ("dispatched", "accepted", "in_progress")
HOLDER_STATUSES = ("dispatched", "accepted", "in_progress")


class Rejected(Exception):
    """A request that cannot be taken: ``status`` and field -> messages."""

    def __init__(self, status: int, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.status = status
        self.errors = errors


# Letters only in the random part (no 0/O, 1/I): an id never reads as a phone or ID number, so
# log masking leaves it alone, and it survives being read out on the phone.
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def _new_case_id(now: dt.datetime) -> str:
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
    return f"GF-{now.astimezone(CST):%Y%m%d}-{suffix}"


def _note(work: Work, case_id: str, kind: str, at: dt.datetime, **detail: Any) -> None:
    work.db.execute(sa.insert(timeline), dict(case_id=case_id, at=at, kind=kind, detail=detail))


def resolve_location(j: Any, location: dict) -> tuple[str, float | None, float | None]:
    """The grid (or, failing that, the deepest area) a report's location denotes."""
    if "lat" in location:
        area = j.locate_point(location["lat"], location["lon"])
        if area is None:
            raise Rejected(422, {"location": [
                f"the point ({location['lat']}, {location['lon']}) is outside the jurisdiction"]})
        return area.code, location["lat"], location["lon"]
    if "grid_code" in location:
        area = j.area(location["grid_code"])
        if area is None:
            raise Rejected(422, {"location.grid_code": [
                f"unknown grid code {location['grid_code']!r}"]})
        return area.code, None, None
    address = location["address"]
    # A first version: the deepest area whose name the address mentions. Geocoding comes later.
    best = None
    for level in ("grid", "community", "street", "district"):
        for area in j.areas_at(level):
            if area.name and area.name in address:
                best = area
                break
        if best:
            break
    if best is None:
        raise Rejected(422, {"location.address": [
            "no street, community or grid of the jurisdiction is named in the address"]})
    return best.code, None, None


def register_report(work: Work, report: dict) -> tuple[int, dict]:
    """201 and a new case, or 200 and the case the report repeats or joins."""
    version, j = work.active_jurisdiction()
    if report.get("external_id"):
        existing = work.db.execute(
            sa.select(reports.c.case_id).where(
                reports.c.channel == report["channel"],
                reports.c.external_id == report["external_id"],
            )
        ).scalar()
        if existing:
            return 200, {"case_id": existing, "outcome": "resubmission"}

    problems: dict[str, list[str]] = {}
    try:
        area_code, lat, lon = resolve_location(j, report["location"])
    except Rejected as exc:
        problems.update(exc.errors)
    category = report.get("category")
    if category is not None and j.category(category) is None:
        problems["category"] = [f"unknown category {category!r}"]
    if problems:
        raise Rejected(422, problems)
    classified = False
    if category is None:
        category = classify(report["description"], j.categories)
        classified = category is not None

    joined = _open_duplicate(work, category, lat, lon)
    case_id = joined or _new_case_id(work.now)
    if joined:
        work.db.execute(
            sa.update(cases).where(cases.c.case_id == case_id)
            .values(reporters=cases.c.reporters + 1)
        )
        _note(work, case_id, "report_joined", work.now, channel=report["channel"])
    else:
        work.db.execute(sa.insert(cases), dict(
            case_id=case_id, status="registered", category=category,
            description=report["description"], area_code=area_code, lat=lat, lon=lon,
            assisting=[], escalations=0, reporters=1, jurisdiction_version=version,
            registered_at=work.now,
        ))
        _note(work, case_id, "registered", work.now, channel=report["channel"],
              category=category, classified=classified, area_code=area_code)
        work.emit(c.CASE_REGISTERED, {
            "case_id": case_id, "category": category, "area_code": area_code,
            "description": report["description"], "jurisdiction_version": version,
            "location": {"lat": lat, "lon": lon} if lat is not None else None,
        })
    work.db.execute(sa.insert(reports), dict(
        case_id=case_id, channel=report["channel"], external_id=report.get("external_id"),
        description=report["description"], reporter=report.get("reporter"),
        received_at=work.now,
    ))
    if joined:
        return 200, {"case_id": case_id, "outcome": "joined"}
    return 201, {"case_id": case_id, "outcome": "registered"}


def _open_duplicate(work: Work, category: str | None, lat: float | None,
                    lon: float | None) -> str | None:
    if category is None or lat is None or lon is None:
        return None
    # A bounding box on the indexed columns first, the exact distance after.
    dlat = DUPLICATE_RADIUS_M / 111_000
    dlon = DUPLICATE_RADIUS_M / (111_000 * max(math.cos(math.radians(lat)), 0.01))
    rows = work.db.execute(
        sa.select(cases.c.case_id, cases.c.lat, cases.c.lon).where(
            cases.c.category == category, cases.c.status.in_(OPEN_STATUSES),
            cases.c.lat.between(lat - dlat, lat + dlat),
            cases.c.lon.between(lon - dlon, lon + dlon),
        ).order_by(cases.c.registered_at)
    ).all()
    for row in rows:
        if distance_m(lat, lon, row.lat, row.lon) <= DUPLICATE_RADIUS_M:
            return row.case_id
    return None


def _case(work: Work, case_id: str, *, lock: bool = False) -> Any:
    query = sa.select(cases).where(cases.c.case_id == case_id)
    row = work.db.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise Rejected(404, {"case_id": [f"no case {case_id!r}"]})
    return row


_ALLOWED_FROM = {
    "accepted": ("dispatched",),
    "in_progress": ("dispatched", "accepted"),
    "resolved": HOLDER_STATUSES,
    "returned": HOLDER_STATUSES,
    "beyond_authority": HOLDER_STATUSES,
}


def report_status(work: Work, case_id: str, update: dict) -> tuple[int, dict]:
    case = _case(work, case_id, lock=True)
    sender, status = update["sender"], update["status"]
    if sender not in (case.handler, case.lead):
        raise Rejected(409, {"from": [
            f"{sender!r} does not hold this case (held by {case.handler}"
            + (f", department {case.lead})" if case.lead else ")")]})
    if case.status not in _ALLOWED_FROM[status]:
        raise Rejected(409, {"status": [f"a case that is {case.status} cannot become {status}"]})
    version, j = work.active_jurisdiction()
    if update.get("category") and j.category(update["category"]) is None:
        raise Rejected(422, {"category": [f"unknown category {update['category']!r}"]})
    if status in ("accepted", "in_progress", "resolved"):
        work.db.execute(sa.update(cases).where(cases.c.case_id == case_id)
                        .values(status=status))
    _note(work, case_id, status, work.now, sender=sender, note=update.get("note"),
          category=update.get("category"))
    work.emit(c.CASE_STATUS_REPORTED, {
        "case_id": case_id, "assignment_id": case.assignment_id, "sender": sender,
        "status": status, "note": update.get("note"), "category": update.get("category"),
        "jurisdiction_version": version,
    })
    return 202, {"case_id": case_id, "status": status}


def verify(work: Work, case_id: str, verification: dict) -> tuple[int, dict]:
    case = _case(work, case_id, lock=True)
    if case.status != "resolved":
        raise Rejected(409, {"case_id": [
            f"only a resolved case is verified; this one is {case.status}"]})
    passed = verification["passed"]
    status = "closed" if passed else "dispatched"
    work.db.execute(sa.update(cases).where(cases.c.case_id == case_id).values(
        status=status, closed_at=work.now if passed else None))
    _note(work, case_id, "verified" if passed else "verification_failed", work.now,
          note=verification.get("note"))
    work.emit(c.CASE_VERIFIED, {
        "case_id": case_id, "passed": passed, "note": verification.get("note"),
        "jurisdiction_version": case.jurisdiction_version,
    })
    return 200, {"case_id": case_id, "status": status}


def evaluate(work: Work, case_id: str, evaluation: dict) -> tuple[int, dict]:
    case = _case(work, case_id, lock=True)
    if case.status != "closed":
        raise Rejected(409, {"case_id": [
            f"a case is evaluated once closed; this one is {case.status}"]})
    work.db.execute(sa.update(cases).where(cases.c.case_id == case_id)
                    .values(satisfaction=evaluation["satisfaction"]))
    _note(work, case_id, "evaluated", work.now, satisfaction=evaluation["satisfaction"],
          note=evaluation.get("note"))
    return 200, {"case_id": case_id, "satisfaction": evaluation["satisfaction"]}


def case_view(work: Work, case_id: str) -> dict:
    case = _case(work, case_id)
    colour = None
    if case.status in CLOCK_RUNNING_STATUSES and case.assignment_id:
        colour = work.db.execute(
            sa.select(colours.c.colour).where(colours.c.assignment_id == case.assignment_id)
        ).scalar()
        if colour is None and case.category is not None:
            # The SLA service announces colours from yellow on; a categorised assignment's clock
            # starts green (an uncategorised one has no clock).
            colour = "green"
    events = work.db.execute(
        sa.select(timeline).where(timeline.c.case_id == case_id).order_by(timeline.c.id)
    ).all()
    return {
        "case_id": case.case_id,
        "status": case.status,
        "category": case.category,
        "description": case.description,
        "area_code": case.area_code,
        "location": {"lat": case.lat, "lon": case.lon} if case.lat is not None else None,
        "tier": case.tier,
        "handler": case.handler,
        "lead": case.lead,
        "assisting": list(case.assisting or []),
        "colour": colour,
        "escalations": case.escalations,
        "reporters": case.reporters,
        "satisfaction": case.satisfaction,
        "registered_at": case.registered_at.isoformat(),
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "timeline": [
            {"at": e.at.isoformat(), "kind": e.kind, **(e.detail or {})} for e in events
        ],
    }


# -- projections of the other services' events ---------------------------------------------------

def on_case_dispatched(work: Work, event: c.Event) -> None:
    p = event.payload
    values: dict[str, Any] = dict(
        tier=p["tier"], handler=p["holder"], lead=p["lead"], assisting=list(p["assisting"]),
        assignment_id=p["assignment_id"], category=p["category"], escalations=p["escalations"])
    # Rework goes back to the same holder: intake already set it dispatched when verification
    # failed, and the holder may have answered since; a late projection must not undo that.
    if p["reason"] != "rework":
        values["status"] = sa.case(
            (cases.c.status.in_(("closed", "rejected", "on_hold")), cases.c.status),
            else_="dispatched")
    updated = work.db.execute(
        sa.update(cases).where(cases.c.case_id == p["case_id"]).values(**values)).rowcount
    if not updated:
        return
    # case_dispatched carries routing's decision too: one projection per hop, not two.
    work.db.execute(sa.insert(timeline), [
        dict(case_id=p["case_id"], at=event.occurred_at, kind="routed", detail=dict(
            reason=p["reason"], tier=p["tier"], handler=p["holder"], lead=p["lead"],
            assisting=p["assisting"], explanation=p["explanation"])),
        dict(case_id=p["case_id"], at=event.occurred_at, kind="dispatched",
             detail=dict(handler=p["holder"], queue=p["queue"])),
    ])


def on_case_colour_changed(work: Work, event: c.Event) -> None:
    p = event.payload
    current = work.db.execute(
        sa.select(colours.c.at).where(colours.c.assignment_id == p["assignment_id"])
        .with_for_update()
    ).first()
    if current is None:
        work.db.execute(sa.insert(colours), dict(
            assignment_id=p["assignment_id"], case_id=p["case_id"], colour=p["colour"],
            at=event.occurred_at))
    elif current.at <= event.occurred_at:
        # Colour events of one clock may be handled out of order; the later instant wins.
        work.db.execute(sa.update(colours).where(
            colours.c.assignment_id == p["assignment_id"]).values(colour=p["colour"],
                                                                   at=event.occurred_at))
    if p["colour"] and p["colour"] != "green":
        _note(work, p["case_id"], "warning", event.occurred_at, colour=p["colour"],
              action=p["action"], fraction=p["fraction"])


HANDLERS = {
    "on_case_dispatched": on_case_dispatched,
    "on_case_colour_changed": on_case_colour_changed,
}


DEFINITION = ServiceDefinition(name=c.INTAKE, metadata=metadata, handlers=HANDLERS,
                               own_tables=OWN_TABLES)
