"""Intake's service layer: register reports as cases, take holders' status reports,
verification and evaluation, and project what the other services did onto the case view.

The SQL lives here; the rules live in the domain: ``lifecycle`` (statuses, reports,
verification, evaluation, projections) and ``merging`` (合并).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gridflow_common import contracts as c
from gridflow_common.domain import lifecycle, merging, privacy
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.calendar import resumed_due
from gridflow_common.domain.intake_batch import observed_detail, photo_path
from gridflow_common.logging import get_logger
from gridflow_common.runtime import Handler, Work
from gridflow_common.service import ServiceDefinition
from gridflow_intake import assessment, classifying, locating
from gridflow_intake.device_merge import open_case_of_device
from gridflow_intake.figures import open_cases
from gridflow_intake.models import (
    OWN_TABLES,
    cases,
    colours,
    inbox,
    metadata,
    reports,
    timeline,
)

log = get_logger(__name__)

# routing's current assignment of a case (assignment_id, holder, lead, tier, assisting,
# category, seq), or None: the authority on who holds it.
HolderOf = Callable[[str], dict | None]


class Rejected(Exception):
    """A request that cannot be taken: ``status`` and field -> messages."""

    def __init__(self, status: int, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.status = status
        self.errors = errors


# Letters only in the random part (no 0/O, 1/I): an id never reads as a phone or ID number, so
# log masking leaves it alone, and it survives being read out on the phone.
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def _new_case_id(local_now: dt.datetime) -> str:
    """``local_now``: the registration instant in the jurisdiction's zone, so the date in the
    id is the city's date."""
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
    return f"GF-{local_now:%Y%m%d}-{suffix}"


def _insert(work: Work, table: sa.Table) -> Any:
    """An INSERT that can say what to do on a conflict, in the dialect at hand (PostgreSQL in
    the real topology, SQLite in the embedded default)."""
    dialect = postgresql if work.db.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _note(work: Work, case_id: str, kind: str, at: dt.datetime, **detail: Any) -> None:
    work.db.execute(sa.insert(timeline), dict(case_id=case_id, at=at, kind=kind, detail=detail))


def _note_fact(work: Work, event: c.Event, kind: str, *fact: str, **detail: Any) -> None:
    """A timeline entry for what ``event`` announces, recorded once however often it is
    announced: ``kind`` and ``fact`` name it."""
    work.db.execute(
        _insert(work, timeline).on_conflict_do_nothing(),
        dict(
            case_id=event.payload["case_id"],
            at=event.occurred_at,
            kind=kind,
            detail=detail,
            fact_key=":".join((kind, *fact)),
        ),
    )


def resolve_location(j: Any, location: dict) -> tuple[str, float | None, float | None]:
    """The grid (or, failing that, the deepest area) a report's location denotes, and its
    point: the one given, or an address's (its listed point or its grid's centroid); none for
    a grid code (such reports are merged by grid)."""
    if "lat" in location:
        area = j.locate_point(location["lat"], location["lon"])
        if area is None:
            raise Rejected(
                422,
                {
                    "location": [
                        f"the point ({location['lat']}, {location['lon']}) "
                        "is outside the jurisdiction"
                    ]
                },
            )
        return area.code, location["lat"], location["lon"]
    if "grid_code" in location:
        area = j.area(location["grid_code"])
        if area is None:
            raise Rejected(
                422, {"location.grid_code": [f"unknown grid code {location['grid_code']!r}"]}
            )
        return area.code, None, None
    # The address list (addresses.csv), else the areas' names: docs/addresses.md.
    return locating.resolve_address(j, location["address"], Rejected)


def _place_columns(j: Any, area_code: str) -> dict[str, str | None]:
    """The street and community a case's area lies in (itself, at that level), for the lists."""
    street = j.ancestor(area_code, "street")
    community = j.ancestor(area_code, "community")
    return {
        "street_code": street.code if street else None,
        "community_code": community.code if community else None,
    }


def register_report(
    work: Work, report: dict, progress_token_hash: str | None = None
) -> tuple[int, dict]:
    """201 and a new case, or 200 and the case the report repeats or joins.

    ``progress_token_hash`` (the reporter's progress link, gridflow_intake/progress.py) is kept
    on the report's row, in this transaction: a report taken has its link and a link has its
    report. A resubmission stores nothing, so its hash is dropped (outcome ``resubmission``)."""
    version, j = work.active_jurisdiction()
    if report.get("external_id"):
        existing = work.db.execute(
            sa.select(reports.c.case_id).where(
                reports.c.channel == report["channel"],
                reports.c.external_id == report["external_id"],
            )
        ).scalar()
        if existing:
            return 200, {"case_id": existing, "outcome": v.OUTCOME_RESUBMISSION}

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
    classified, classification = False, None
    if category is None:  # a supplied category wins; else the text's, or None for triage
        classification = classifying.classify_report(work, j, report["description"])
        category, classified = classification.category, classification.category is not None

    # A sensor's alert joins its device's open case first (gridflow_intake/device_merge.py).
    joined = open_case_of_device(work, report) or _open_duplicate(
        work, category, lat, lon, locating.merge_grid(j, area_code)
    )
    case_id = joined or _new_case_id(j.local(work.now))
    if joined:
        work.db.execute(
            sa.update(cases)
            .where(cases.c.case_id == case_id)
            .values(reporters=cases.c.reporters + 1)
        )
        _note(work, case_id, v.ENTRY_REPORT_JOINED, work.now, channel=report["channel"])
    else:
        work.db.execute(
            sa.insert(cases),
            dict(
                case_id=case_id,
                status=v.REGISTERED,
                category=category,
                description=report["description"],
                area_code=area_code,
                lat=lat,
                lon=lon,
                assisting=[],
                escalations=0,
                reporters=1,
                jurisdiction_version=version,
                registered_at=work.now,
                **_place_columns(j, area_code),
                channel=report["channel"],
                address=report["location"].get("address"),
                observed_at=report.get("observed_at"),
            ),
        )
        _note(
            work,
            case_id,
            v.REGISTERED,
            work.now,
            channel=report["channel"],
            category=category,
            classified=classified,
            area_code=area_code,
            **classifying.timeline_detail(classification),
            **observed_detail(report),
        )
        # What leaves intake is masked (routing, departments and every department system read
        # it); the case row and the report keep the original for those who may see it.
        work.emit(
            c.CASE_REGISTERED,
            {
                "case_id": case_id,
                "category": category,
                "area_code": area_code,
                "description": privacy.mask_free_text(
                    report["description"], [(report.get("reporter") or {}).get("name")]
                ),
                "jurisdiction_version": version,
                "location": {"lat": lat, "lon": lon} if lat is not None else None,
                "reporter": privacy.mask_reporter(report.get("reporter")),
                "channel": report["channel"],  # the city's rules may route by it
                # Photos (paths under the API, read with the case's rights) and the instant the
                # report was observed (gridflow_intake/batch.py).
                "photos": [photo_path(p) for p in report.get("photos") or []],
                **observed_detail(report),
            },
        )
        # Many new cases of one kind in one place within a short window (热点): one upsert per
        # level, in this transaction.
        assessment.count_new_case(work, j, version, case_id, category, area_code)
    work.db.execute(
        sa.insert(reports),
        dict(
            case_id=case_id,
            channel=report["channel"],
            external_id=report.get("external_id"),
            description=report["description"],
            reporter=report.get("reporter"),
            received_at=work.now,
            progress_token_hash=progress_token_hash,
            device=report.get("device"),
            observed_at=report.get("observed_at"),
        ),
    )
    if joined:
        return 200, {"case_id": case_id, "outcome": v.OUTCOME_JOINED}
    return 201, {"case_id": case_id, "outcome": v.OUTCOME_REGISTERED}


def _serialise_merge_decision(work: Work, keys: tuple[int, ...]) -> None:
    """Hold the merge decision's keys until this transaction ends: two reports of one place
    decide one after the other, and the second sees the case the first registered (each
    statement reads what is committed when it starts, under PostgreSQL's read committed).

    SQLite has no such locks and needs none here: the embedded default runs one unit of work at
    a time under its runtime lock."""
    if work.db.dialect.name != "postgresql":
        return
    # In the order given (sorted), so no two reports each hold a key the other waits for.
    for key in keys:
        work.db.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def _open_duplicate(
    work: Work,
    category: str | None,
    lat: float | None,
    lon: float | None,
    grid_code: str | None = None,
) -> str | None:
    if lat is None or lon is None:
        # Located by a grid only (its code or its name): merged within the grid.
        return locating.open_duplicate_in_grid(work, category, grid_code)
    if not merging.mergeable(category, lat, lon):
        return None
    assert lat is not None and lon is not None  # mergeable() said so
    _serialise_merge_decision(work, merging.lock_keys(category, lat, lon))
    box = merging.search_box(lat, lon)
    rows = work.db.execute(
        sa.select(
            cases.c.case_id,
            cases.c.category,
            cases.c.status,
            cases.c.lat,
            cases.c.lon,
            cases.c.registered_at,
        ).where(
            cases.c.category == category,
            cases.c.status.in_(lifecycle.OPEN_STATUSES),
            cases.c.lat.between(box.min_lat, box.max_lat),
            cases.c.lon.between(box.min_lon, box.max_lon),
        )
    ).all()
    return merging.case_to_join(
        (
            merging.Candidate(r.case_id, r.category, r.status, r.lat, r.lon, r.registered_at)
            for r in rows
        ),
        category,
        lat,
        lon,
    )


def _case(work: Work, case_id: str, *, lock: bool = False) -> Any:
    query = sa.select(cases).where(cases.c.case_id == case_id)
    row = work.db.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise Rejected(404, {"case_id": [f"no case {case_id!r}"]})
    return row


def _refused(exc: lifecycle.LifecycleError) -> Rejected:
    status = 400 if isinstance(exc, lifecycle.InvalidRequest) else 409
    if isinstance(exc, lifecycle.Unprocessable):
        status = 422
    return Rejected(status, {exc.field: [exc.message]})


def clock_limit(j: Any, category_code: str | None) -> Any:
    """The time limit of a case's clock, as SLA starts it: the category's, or the command
    center's triage limit for a case nobody classified."""
    category = j.category(category_code) if category_code else None
    return category.limit if category is not None else j.triage_limit


def latest_request(work: Work, case_id: str) -> Any:
    """The timeline entry of the case's latest holder's request (extension or pause), or None;
    ``lifecycle.pending_request`` says whether it still awaits a decision."""
    return work.db.execute(
        sa.select(timeline)
        .where(timeline.c.case_id == case_id, timeline.c.kind.in_(tuple(lifecycle.REQUESTS)))
        .order_by(timeline.c.at.desc(), timeline.c.id.desc())
        .limit(1)
    ).first()


def pending_of(entry: Any, assignment_id: str | None) -> str | None:
    """The kind of request ``entry`` (``latest_request``) holds while it awaits a decision on
    the case's current assignment ``assignment_id``."""
    if entry is None:
        return None
    return lifecycle.pending_request([(entry.kind, entry.detail or {})], assignment_id)


def _current_seq(case: Any) -> int | None:
    # Rows written before intake kept the sequence still name their assignment.
    return lifecycle.assignment_seq(case.case_id, case.assignment_id, case.assignment_seq)


def _not_holding(sender: str, holder: str | None, lead: str | None) -> Rejected:
    return Rejected(
        409,
        {
            "from": [
                f"{sender!r} does not hold this case (held by {holder}"
                + (f", department {lead})" if lead else ")")
            ]
        },
    )


def _ask_routing(case_id: str, sender: str, holder_of: HolderOf | None) -> dict | None:
    """Routing's current assignment of the case, for a sender intake's view does not show
    holding it (the announcement of the dispatch has not reached intake yet). Routing commits
    an assignment before any department can hear of it, so whoever answers a case it has just
    received is known there."""
    if holder_of is None:
        return None
    try:
        return holder_of(case_id)
    except Exception as exc:
        log.warning("holder_unconfirmed", case_id=case_id, error=repr(exc))
        raise Rejected(
            503,
            {
                "from": [
                    f"intake does not show {sender!r} holding this case and could not ask routing "
                    "just now; send the update again"
                ]
            },
        ) from None


def _columns_of(assignment: dict) -> dict[str, Any]:
    """Intake's case columns for an assignment as routing states it (``current_assignment``,
    or an announcement of it)."""
    return dict(
        tier=assignment["tier"],
        holder=assignment["holder"],
        lead=assignment["lead"],
        assisting=list(assignment.get("assisting") or []),
        assignment_id=assignment["assignment_id"],
        assignment_seq=assignment["seq"],
        category=assignment.get("category"),
    )


def _sender_department(j: Any, sender: str) -> str | None:
    """The department ``sender`` is or belongs to, in the city's data."""
    if j.department(sender) is not None:
        return sender
    unit = j.unit(sender)
    return unit.department_code if unit else None


def _role(sender: str, department: str | None, view: Any) -> str | None:
    """The sender's part (lead, assisting or none) in ``view``: the case row, or routing's
    assignment as a dict."""
    get = view.get if isinstance(view, dict) else lambda name: getattr(view, name)
    return lifecycle.role_in_case(
        sender, get("holder"), get("lead"), tuple(get("assisting") or ()), department
    )


def report_status(
    work: Work, case_id: str, update: dict, holder_of: HolderOf | None = None
) -> tuple[int, dict]:
    """A report on a case (202) from its holder (or its lead department), or a note (备注) from
    one of its assisting departments (协同); refused with 400 (what no case takes), 404, 409
    (the sender does not hold the case, an assisting department sent what is the holder's, or
    the case cannot take this report now), 422, or 503 (routing had to be asked and could not
    answer).

    ``holder_of`` (routing's ``current_assignment``) is asked only when intake's view would
    refuse the sender; when routing's assignment is newer and gives the sender its part,
    intake's view moves to it and the report is taken against it.

    A note and an extension request (申请延期) leave the case's status as it is; the request
    waits in the timeline for the command center, whose decision comes with its orders."""
    sender, status, category = update["sender"], update["status"], update.get("category")
    hours, due = update.get("hours"), update.get("due")
    try:
        lifecycle.check_update(status, category)
        lifecycle.check_extension(status, hours, due, work.now)
    except lifecycle.LifecycleError as exc:
        raise _refused(exc) from None
    version, j = work.active_jurisdiction()
    department = _sender_department(j, sender)
    # Routing is asked before the case's row is locked: the projections of this case need not
    # wait for a remote call.
    peek = _case(work, case_id)
    assignment = None
    if not lifecycle.may_send(status, _role(sender, department, peek)):
        assignment = _ask_routing(case_id, sender, holder_of)
    case = _case(work, case_id, lock=True)
    values: dict[str, Any] = {}
    current_status, assignment_id = case.status, case.assignment_id
    role = _role(sender, department, case)
    if not lifecycle.may_send(status, role) and assignment is not None:
        role_there = _role(sender, department, assignment)
        if lifecycle.may_send(status, role_there) and lifecycle.takes_assignment(
            case.status, _current_seq(case), assignment
        ):
            role = role_there
            assignment_id = assignment["assignment_id"]
            # As the dispatch's projection would have: its later arrival finds the same
            # assignment and leaves the status this report sets (lifecycle.project_dispatch).
            current_status = v.DISPATCHED
            values.update(_columns_of(assignment), status=current_status)
    if role is None:
        shown = assignment or {"holder": case.holder, "lead": case.lead}
        raise _not_holding(sender, shown.get("holder"), shown.get("lead"))
    try:
        lifecycle.check_sender(status, role)
    except lifecycle.LifecycleError as exc:
        # An assisting department sees the case, so it is told who holds it, as any sender
        # the case names (the holder's report is that unit's to make).
        shown = assignment or {"holder": case.holder, "lead": case.lead}
        refused = _refused(exc)
        refused.errors.update(_not_holding(sender, shown.get("holder"), shown.get("lead")).errors)
        raise refused from None
    try:
        outcome = lifecycle.apply_update(current_status, status)
    except lifecycle.LifecycleError as exc:
        raise _refused(exc) from None
    if category and j.category(category) is None:
        raise Rejected(422, {"category": [f"unknown category {category!r}"]})
    same_clock = assignment_id == case.assignment_id
    state = lifecycle.ClockState(
        status=outcome.status,
        # A newer assignment taken on routing's word has a clock intake has not seen yet.
        due=case.due_at if same_clock else None,
        paused=case.paused_at is not None and same_clock,
        pending=(
            pending_of(latest_request(work, case_id), assignment_id)
            if status in lifecycle.REQUESTS
            else None
        ),
    )
    try:
        asked = lifecycle.check_request(
            status, state, hours=hours, due=due, note=update.get("note")
        )
    except lifecycle.LifecycleError as exc:
        raise _refused(exc) from None
    if outcome.status != case.status:
        values["status"] = outcome.status
    if not same_clock:
        # Routing's newer assignment, ahead of its announcement: its due instant comes with it.
        values.update(_clock_values(work, outcome.status, assignment_id, None))
        values.update(paused_at=None, paused_due_at=None)
    elif "status" in values and not lifecycle.has_running_clock(outcome.status):
        values.update(due_at=None, colour=None, paused_at=None, paused_due_at=None)
    elif status == v.RESUMED:
        # The pause is over: the clock runs on with the time it had left (SLA does the same
        # with its clock); the time paused counts on neither side.
        values.update(paused_at=None, paused_due_at=None)
        if case.paused_due_at is not None:
            values["due_at"] = resumed_due(
                case.paused_due_at,
                case.paused_at,
                work.now,
                clock_limit(j, case.category),
                j.calendar,
            )
        values.update(_clock_values(work, outcome.status, assignment_id, values.get("due_at")))
    if values:
        work.db.execute(sa.update(cases).where(cases.c.case_id == case_id).values(**values))
    detail: dict[str, Any] = dict(sender=sender, note=update.get("note"), category=category)
    if status in lifecycle.KEEPING_STATUS:
        detail["role"] = role
    if status in lifecycle.REQUESTS:
        # The command center decides (approve / refuse orders): until then the request is
        # pending, and the case's clock runs on as it was. An extension records the instant it
        # asks for (``hours`` after the current due instant, when it names hours).
        detail.update(decision=lifecycle.EXTENSION_PENDING, assignment_id=assignment_id)
        if status == v.EXTENSION_REQUESTED:
            assert asked is not None
            detail.update(hours=hours, due=j.local(asked).isoformat())
    elif status == v.RESUMED and values.get("due_at") is not None:
        detail["due"] = j.local(values["due_at"]).isoformat()
    _note(work, case_id, status, work.now, **detail)
    # A department's return names the category it should have been: classification learns it.
    classifying.learn(work, case_id, case.description, category, classifying.SOURCE_RETURNED)
    work.emit(
        c.CASE_STATUS_REPORTED,
        {
            "case_id": case_id,
            "assignment_id": assignment_id,
            "sender": sender,
            "status": status,
            # A note is free text: it may hold the resident's number (the timeline keeps it).
            "note": _masked_note(work, case_id, update.get("note")),
            "category": category,
            "jurisdiction_version": version,
            "hours": hours,
            "due": asked.isoformat() if asked else None,
        },
    )
    return 202, {"case_id": case_id, "status": status}


def _reporter_names(reporters: Any) -> list[str | None]:
    return [(r or {}).get("name") for r in reporters]


def _masked_note(work: Work, case_id: str, note: str | None) -> str | None:
    """A note as it leaves intake: free text, it may name a reporter or hold a number."""
    if not note:
        return note
    reporters = work.db.execute(
        sa.select(reports.c.reporter).where(reports.c.case_id == case_id)
    ).scalars()
    return privacy.mask_free_text(note, _reporter_names(reporters))


def verify(work: Work, case_id: str, verification: dict) -> tuple[int, dict]:
    case = _case(work, case_id, lock=True)
    try:
        outcome = lifecycle.verify(case.status, verification["passed"])
    except lifecycle.LifecycleError as exc:
        raise _refused(exc) from None
    if outcome.closed:  # the category it was closed under teaches classification
        classifying.learn(
            work, case_id, case.description, case.category, classifying.SOURCE_VERIFIED
        )
    work.db.execute(
        sa.update(cases)
        .where(cases.c.case_id == case_id)
        .values(
            status=outcome.status,
            closed_at=work.now if outcome.closed else None,
            # Rework runs a new clock, whose due instant comes with its dispatch.
            **_clock_values(work, outcome.status, case.assignment_id, None),
        )
    )
    _note(
        work,
        case_id,
        v.ENTRY_VERIFIED if outcome.closed else v.ENTRY_VERIFICATION_FAILED,
        work.now,
        note=verification.get("note"),
    )
    work.emit(
        c.CASE_VERIFIED,
        {
            "case_id": case_id,
            "passed": verification["passed"],
            "note": _masked_note(work, case_id, verification.get("note")),
            "jurisdiction_version": case.jurisdiction_version,
        },
    )
    return 200, {"case_id": case_id, "status": outcome.status}


def evaluate(
    work: Work, case_id: str, evaluation: dict, *, by: str | None = None
) -> tuple[int, dict]:
    """The case's one evaluation. ``by`` says in the timeline who gave it when that is not the
    staff calling back (``reporter``: through the reporter's progress link); never who they are."""
    case = _case(work, case_id, lock=True)
    try:
        lifecycle.check_evaluation(case.status, case.satisfaction)
    except lifecycle.LifecycleError as exc:
        raise _refused(exc) from None
    # The row lock above orders two evaluations; the condition keeps the first even where
    # there is no row lock (SQLite).
    written = work.db.execute(
        sa.update(cases)
        .where(cases.c.case_id == case_id, cases.c.satisfaction.is_(None))
        .values(satisfaction=evaluation["satisfaction"])
    ).rowcount
    if not written:
        raise Rejected(409, {"satisfaction": ["this case was already evaluated"]})
    _note(
        work,
        case_id,
        v.ENTRY_EVALUATED,
        work.now,
        satisfaction=evaluation["satisfaction"],
        note=evaluation.get("note"),
        **({"by": by} if by else {}),
    )
    return 200, {"case_id": case_id, "satisfaction": evaluation["satisfaction"]}


def case_access(work: Work, case_id: str) -> Any:
    """What an access decision needs of a case (where it is, who holds, leads and assists it),
    or None when there is no such case."""
    return work.db.execute(
        sa.select(
            cases.c.area_code,
            cases.c.holder,
            cases.c.lead,
            cases.c.assisting,
            cases.c.jurisdiction_version,
        ).where(cases.c.case_id == case_id)
    ).first()


def case_view(work: Work, case_id: str, *, reveal_reporters: bool = False) -> dict:
    """The case as ``GET /cases/{id}`` shows it. Its reporters' names and phone numbers, and the
    personal numbers in its description and in the notes of its timeline, are masked unless
    ``reveal_reporters`` (the caller may see them: ``access.sees_reporter``)."""
    case = _case(work, case_id)
    j = work.jurisdiction(case.jurisdiction_version)
    announced = None
    if lifecycle.has_running_clock(case.status) and case.assignment_id:
        announced = work.db.execute(
            sa.select(colours.c.colour).where(colours.c.assignment_id == case.assignment_id)
        ).scalar()
    events = work.db.execute(
        # By instant: a projection may record what happened before an entry written earlier
        # (a dispatch announced after its holder already answered); the id keeps ties in order.
        sa.select(timeline)
        .where(timeline.c.case_id == case_id)
        .order_by(timeline.c.at, timeline.c.id)
    ).all()
    received = work.db.execute(
        sa.select(
            reports.c.channel, reports.c.received_at, reports.c.reporter, reports.c.observed_at
        )
        .where(reports.c.case_id == case_id)
        .order_by(reports.c.id)
    ).all()
    names = _reporter_names(r.reporter for r in received)

    def shown(text: str) -> str:
        return text if reveal_reporters else privacy.mask_free_text(text, names)

    category = j.category(case.category) if case.category else None
    area = j.area(case.area_code) if case.area_code else None
    return {
        "case_id": case.case_id,
        "status": case.status,
        "category": case.category,
        "description": shown(case.description),
        "area_code": case.area_code,
        "location": {"lat": case.lat, "lon": case.lon} if case.lat is not None else None,
        "tier": case.tier,
        "handler": case.holder,
        "lead": case.lead,
        "assisting": list(case.assisting or []),
        # The names a reader needs beside the codes, from the case's own jurisdiction version;
        # None where the jurisdiction does not know the code.
        "category_name": category.name_zh if category else None,
        "handler_name": j.holder_name(case.holder),
        "lead_name": j.holder_name(case.lead),
        "assisting_names": [j.holder_name(code) for code in case.assisting or []],
        "area_name": area.name if area else None,
        "colour": lifecycle.colour_shown(
            case.status, case.assignment_id is not None, announced, case.paused_at is not None
        ),
        # The running clock's due instant; null when no clock runs (on hold, awaiting
        # verification, finished).
        "due": (
            j.local(case.due_at).isoformat()
            if case.due_at is not None
            and lifecycle.has_running_clock(case.status)
            and case.paused_at is None
            else None
        ),
        # The holder's request awaiting the command center's decision (extension or pause).
        "pending": (
            None
            if case.status in lifecycle.FINISHED_STATUSES
            else lifecycle.pending_request(
                [(e.kind, e.detail or {}) for e in events], case.assignment_id
            )
        ),
        "extensions": case.extensions,
        # Since when an approved pause (挂起) stops the clock; null while it runs.
        "paused_since": j.local(case.paused_at).isoformat() if case.paused_at else None,
        "comments": case.comments,
        "escalations": case.escalations,
        "reporters": case.reporters,
        "reports": [
            {
                "channel": r.channel,
                "received_at": j.local(r.received_at).isoformat(),
                "observed_at": j.local(r.observed_at).isoformat() if r.observed_at else None,
                "reporter": r.reporter if reveal_reporters else privacy.mask_reporter(r.reporter),
            }
            for r in received
        ],
        "satisfaction": case.satisfaction,
        # Why the text was read as its category (score, reasons); null when the report named it.
        "classification": classifying.shown(events),
        # Every instant leaves Gridflow in the city's zone.
        "registered_at": j.local(case.registered_at).isoformat(),
        # When its first report was observed (null when it did not say), and its photos.
        "observed_at": j.local(case.observed_at).isoformat() if case.observed_at else None,
        "photos": case_photos(work, case_id),
        "closed_at": j.local(case.closed_at).isoformat() if case.closed_at else None,
        "timeline": [
            {"at": j.local(e.at).isoformat(), "kind": e.kind, **_detail(e.detail, shown)}
            for e in events
        ],
    }


def case_photos(work: Work, case_id: str) -> list[dict]:
    from gridflow_intake.photos import of_case  # photos imports this module

    return of_case(work, case_id)


def _detail(detail: dict | None, shown: Callable[[str], str]) -> dict:
    # A note is free text a holder, a verifier or the resident typed: it may hold a number.
    detail = dict(detail or {})
    # An order's reason too (指令的理由).
    for name in ("note", "reason"):
        if isinstance(detail.get(name), str):
            detail[name] = shown(detail[name])
    return detail


# -- projections of the other services' events ---------------------------------------------------
# Idempotent by content, not only by message id: the same fact announced twice (two replicas,
# a republished batch) or facts arriving out of order end in the same view.


def _clock_values(
    work: Work, status: str, assignment_id: str | None, due: dt.datetime | None
) -> dict[str, Any]:
    """``due_at`` and ``colour`` of a case row in ``status`` under ``assignment_id``: its
    clock's due instant and the colour announced for that assignment (a colour may overtake its
    dispatch), green until one is; both None when no clock runs."""
    announced = None
    if assignment_id is not None and lifecycle.has_running_clock(status):
        announced = work.db.execute(
            sa.select(colours.c.colour).where(colours.c.assignment_id == assignment_id)
        ).scalar()
    due_at, colour = lifecycle.clock_columns(status, assignment_id is not None, due, announced)
    return {"due_at": due_at, "colour": colour}


def on_case_dispatched(work: Work, event: c.Event) -> None:
    p = event.payload
    case = work.db.execute(
        sa.select(
            cases.c.status,
            cases.c.case_id,
            cases.c.assignment_id,
            cases.c.assignment_seq,
            cases.c.due_at,
            cases.c.paused_at,
        )
        .where(cases.c.case_id == p["case_id"])
        .with_for_update()
    ).first()
    if case is None:
        return
    seq = lifecycle.assignment_seq(p["case_id"], p["assignment_id"], p.get("seq"))
    projection = lifecycle.project_dispatch(case.status, _current_seq(case), seq, p["reason"])
    values: dict[str, Any] = {}
    if projection.take_assignment:
        values.update(_columns_of({**p, "seq": seq}), escalations=p["escalations"])
        same = seq is not None and seq == _current_seq(case)
        if not same:
            # A new assignment runs a new clock: a pause of the one before ends with it.
            values.update(paused_at=None, paused_due_at=None)
        if not (same and (case.due_at is not None or case.paused_at is not None)):
            # The same dispatch announced again leaves a clock an order moved (an approved
            # extension or pause, a release) as the order left it.
            values.update(
                _clock_values(
                    work,
                    projection.status,
                    p["assignment_id"],
                    lifecycle.parse_due(p.get("due_at")),
                )
            )
    if projection.status != case.status:
        values["status"] = projection.status
        if not lifecycle.has_running_clock(projection.status):
            values.update(due_at=None, colour=None)
    if values:
        work.db.execute(sa.update(cases).where(cases.c.case_id == p["case_id"]).values(**values))
    # case_dispatched carries routing's decision too: one projection per hop, not two. History
    # is recorded even for an assignment the case has already left.
    assignment_id = p["assignment_id"]
    _note_fact(
        work,
        event,
        v.ENTRY_ROUTED,
        assignment_id,
        reason=p["reason"],
        tier=p["tier"],
        handler=p["holder"],
        lead=p["lead"],
        assisting=p["assisting"],
        explanation=p["explanation"],
        # GET /api/v1/cases/{id}/routing reads the decisions back from here (routing_api).
        rule_id=p.get("rule_id"),
        rule_version=p.get("rule_version"),
        time_limit=p.get("time_limit"),
    )
    _note_fact(work, event, v.DISPATCHED, assignment_id, handler=p["holder"], queue=p["queue"])
    _project_inbox(work, event)


# The lock that gives out the inbox's cursors in commit order (PostgreSQL): held from the first
# cursor a transaction takes until it commits, so the next one starts above every committed
# row and a reader past cursor n never misses a row committed later. Two 32-bit keys: a key
# space apart from the merge decision's 64-bit ones. SQLite needs none: it has one writer.
INBOX_LOCK = (0x67666C77, 1)


def _deliveries(work: Work, p: dict) -> list[dict]:
    """The units the dispatch gave the case to; an announcement naming none gave it to the
    holder alone, as lead."""
    if p.get("deliveries"):
        return list({d["delivery_id"]: d for d in p["deliveries"]}.values())
    unit = work.jurisdiction(p["jurisdiction_version"]).unit(p["holder"])
    return [
        {
            "unit": p["holder"],
            "department": unit.department_code if unit else p.get("lead"),
            "role": v.LEAD,
            "adapter": None,
            # The same announcement names the same delivery: a repeat finds its row.
            "delivery_id": f"{p['assignment_id']}:{p['holder']}",
        }
    ]


def _project_inbox(work: Work, event: c.Event) -> None:
    """Each unit's inbox row for the case (GET /api/v1/units/{code}/inbox), once per delivery
    however often the dispatch is announced. Written last in the unit of work: the cursor lock
    is then held only until the commit that follows."""
    p = event.payload
    deliveries = _deliveries(work, p)
    known = set(
        work.db.execute(
            sa.select(inbox.c.delivery_id).where(
                inbox.c.delivery_id.in_([d["delivery_id"] for d in deliveries])
            )
        ).scalars()
    )
    new = [d for d in deliveries if d["delivery_id"] not in known]
    if not new:
        return
    if work.db.dialect.name == "postgresql":
        work.db.execute(sa.select(sa.func.pg_advisory_xact_lock(*INBOX_LOCK)))
    last = work.db.execute(sa.select(sa.func.coalesce(sa.func.max(inbox.c.cursor), 0))).scalar_one()
    work.db.execute(
        # Only a delivery already there is skipped (two announcements racing past the check
        # above); a clash of cursors would be a fault, and fails the unit of work.
        _insert(work, inbox).on_conflict_do_nothing(index_elements=[inbox.c.delivery_id]),
        [
            dict(
                delivery_id=d["delivery_id"],
                cursor=last + i,
                unit=d["unit"],
                department=d.get("department"),
                role=d["role"],
                case_id=p["case_id"],
                assignment_id=p["assignment_id"],
                adapter=d.get("adapter"),
                due_at=p.get("due_at"),
                at=event.occurred_at,
            )
            for i, d in enumerate(new, start=1)
        ],
    )


def inbox_page(
    work: Work, code: str, *, whole_department: bool, after: int, limit: int, open_only: bool
) -> dict:
    """A unit's deliveries after ``after``, oldest first, at most ``limit``, each with its
    case's summary; ``whole_department``: every delivery to a unit of department ``code``.
    ``open_only``: only the cases still to work on (open, and this delivery's assignment still
    the case's). ``next`` is the cursor to ask after next time (``after`` when there is
    nothing new)."""
    owner = inbox.c.department if whole_department else inbox.c.unit
    query = (
        sa.select(
            inbox,
            cases.c.status,
            cases.c.category,
            cases.c.description,
            cases.c.area_code,
            cases.c.lat,
            cases.c.lon,
            cases.c.tier,
            cases.c.holder,
            cases.c.lead,
            cases.c.assisting,
            cases.c.assignment_id.label("current_assignment_id"),
            cases.c.jurisdiction_version,
            colours.c.colour,
        )
        .select_from(
            inbox.join(cases, cases.c.case_id == inbox.c.case_id).outerjoin(
                colours, colours.c.assignment_id == cases.c.assignment_id
            )
        )
        .where(owner == code, inbox.c.cursor > after)
        .order_by(inbox.c.cursor)
        .limit(limit + 1)
    )
    if open_only:
        query = query.where(
            cases.c.status.in_(lifecycle.OPEN_STATUSES),
            inbox.c.assignment_id == cases.c.assignment_id,
        )
    rows = work.db.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    names: dict[str, list[str | None]] = {}
    if rows:
        for case_id, reporter in work.db.execute(
            sa.select(reports.c.case_id, reports.c.reporter).where(
                reports.c.case_id.in_({r.case_id for r in rows})
            )
        ):
            names.setdefault(case_id, []).append((reporter or {}).get("name"))
    return {
        "items": [_inbox_item(work, r, names.get(r.case_id, [])) for r in rows],
        # Never past a row ``open_only`` left out: a case on hold (挂账) is released with the
        # same assignment, and its delivery must still be found then.
        "next": rows[-1].cursor if rows else after,
        "more": more,
    }


def _inbox_item(work: Work, row: Any, reporter_names: list[str | None]) -> dict:
    j = work.jurisdiction(row.jurisdiction_version)
    category = j.category(row.category) if row.category else None
    area = j.area(row.area_code)
    current = row.assignment_id == row.current_assignment_id
    return {
        "cursor": row.cursor,
        "delivery_id": row.delivery_id,
        "unit": row.unit,
        "role": row.role,
        "case_id": row.case_id,
        "assignment_id": row.assignment_id,
        # Whether this delivery's assignment is still the case's (the case may have moved on).
        "current": current,
        "delivered_at": j.local(row.at).isoformat(),
        "due_at": row.due_at if current else None,
        "status": row.status,
        "category": row.category,
        "category_name": category.name_zh if category else None,
        # Never the reporter's name or numbers here: a unit reads them, where it may, in the case.
        "description": privacy.mask_free_text(row.description, reporter_names),
        "area_code": row.area_code,
        "area_name": area.name if area else None,
        "location": {"lat": row.lat, "lon": row.lon} if row.lat is not None else None,
        "colour": lifecycle.colour_shown(
            row.status, row.current_assignment_id is not None, row.colour
        ),
        "tier": row.tier,
        "handler": row.holder,
        "lead": row.lead,
        "assisting": list(row.assisting or []),
    }


def _colour_rank_sql(column: Any) -> Any:
    return sa.case(lifecycle.COLOUR_RANK, value=column, else_=lifecycle.NO_COLOUR_RANK)


def on_case_colour_changed(work: Work, event: c.Event) -> None:
    p = event.payload
    # One statement, so two colours of one clock handled at once cannot both find no row and
    # both insert; the stored colour changes only for a later one (lifecycle.supersedes).
    insert = _insert(work, colours)
    work.db.execute(
        insert.on_conflict_do_update(
            index_elements=[colours.c.assignment_id],
            set_=dict(
                colour=insert.excluded.colour,
                at=insert.excluded.at,
                case_id=insert.excluded.case_id,
            ),
            where=sa.or_(
                colours.c.at < insert.excluded.at,
                sa.and_(
                    colours.c.at == insert.excluded.at,
                    _colour_rank_sql(colours.c.colour) < _colour_rank_sql(insert.excluded.colour),
                ),
            ),
        ),
        dict(
            assignment_id=p["assignment_id"],
            case_id=p["case_id"],
            colour=p["colour"],
            at=event.occurred_at,
        ),
    )
    # The case row shows the colour of its current assignment's running clock: whichever colour
    # the upsert above kept for it.
    kept = (
        sa.select(colours.c.colour)
        .where(colours.c.assignment_id == p["assignment_id"])
        .scalar_subquery()
    )
    work.db.execute(
        sa.update(cases)
        .where(
            cases.c.case_id == p["case_id"],
            cases.c.assignment_id == p["assignment_id"],
            cases.c.status.in_(lifecycle.CLOCK_RUNNING_STATUSES),
            cases.c.paused_at.is_(None),
        )
        .values(colour=sa.func.coalesce(kept, v.GREEN))
    )
    if p["colour"] and p["colour"] != v.GREEN:
        instant = event.occurred_at.astimezone(dt.timezone.utc).isoformat()
        _note_fact(
            work,
            event,
            v.ENTRY_WARNING,
            p["assignment_id"],
            p["colour"],
            instant,
            colour=p["colour"],
            action=p["action"],
            fraction=p["fraction"],
        )


def on_case_awaiting_order(work: Work, event: c.Event) -> None:
    # The case stays where it is (routing decided so); its timeline says why nothing moved.
    p = event.payload
    _note(
        work,
        p["case_id"],
        v.AWAITING_ORDER,
        event.occurred_at,
        handler=p["holder"],
        cause=p["cause"],
        explanation=p["explanation"],
    )


def on_case_status_received(work: Work, event: c.Event) -> None:
    """A polling adapter read a department's word for a case: taken as that unit's status
    message (a refusal is recorded, never raised; see ``department_status``)."""
    # Imported here: department_status builds on this module.
    from gridflow_intake.department_status import take_received_status

    take_received_status(work, event.payload)


def on_case_undeliverable(work: Work, event: c.Event) -> None:
    """A unit that could not be reached after the last try: the case's timeline says so, for
    the command center (notify tells its duty people), once per delivery."""
    p = event.payload
    _note_fact(
        work,
        event,
        v.ENTRY_UNDELIVERABLE,
        p["delivery_id"],
        unit=p["unit"],
        department=p["department"],
        role=p["role"],
        adapter=p["adapter"],
        attempts=p["attempts"],
        reason=p["reason"],
        assignment_id=p["assignment_id"],
    )


HANDLERS: dict[str, Handler] = {
    "on_case_undeliverable": on_case_undeliverable,
    "on_case_dispatched": on_case_dispatched,
    "on_case_colour_changed": on_case_colour_changed,
    "on_case_awaiting_order": on_case_awaiting_order,
    "on_case_status_received": on_case_status_received,
}


def periodic(runtime: Any) -> int:
    """Intake's time-driven work: forgetting department messages' answers past their day;
    warming and refreshing the classification model off the request path."""
    from gridflow_intake.department_status import forget_old_answers_now_and_then

    forgotten = forget_old_answers_now_and_then(runtime)
    classifying.refresh(runtime)
    return forgotten


DEFINITION = ServiceDefinition(
    name=c.INTAKE,
    metadata=metadata,
    handlers=HANDLERS,
    periodic=periodic,
    own_tables=OWN_TABLES,
    figures=open_cases,
)
