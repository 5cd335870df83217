"""The case lifecycle (闭环): which status may follow which, what a holder's report, a
verification and an evaluation do to a case, and how the other services' announcements of an
assignment are projected onto intake's view of it. Standard library only.

Intake's service layer reads a case, asks these functions what follows, and writes the answer;
nothing here touches a database, a broker or a clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gridflow_common.domain import vocabulary as v

# A case is open from registration until it is closed, rejected (不予立案) or put on the
# long-term tracking list (挂账): only open cases take reports, merges and holders' answers.
OPEN_STATUSES = (v.REGISTERED, v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED)
# The assignment's clock runs while the holder works on the case; awaiting verification it stops.
CLOCK_RUNNING_STATUSES = (v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS)
# The statuses in which some unit holds the case and may report on it.
HOLDER_STATUSES = (v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS)

# Which status may follow which. ``dispatched`` follows every open status after registration:
# a new assignment (escalation, return, rework) hands the case to a holder afresh. Orders from
# the command center (hold, release, reject, reopen) extend this later.
NEXT_STATUSES: dict[str, tuple[str, ...]] = {
    v.REGISTERED: (v.DISPATCHED,),
    v.DISPATCHED: (v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED),
    v.ACCEPTED: (v.DISPATCHED, v.IN_PROGRESS, v.RESOLVED),
    v.IN_PROGRESS: (v.DISPATCHED, v.RESOLVED),
    v.RESOLVED: (v.DISPATCHED, v.CLOSED),
    v.CLOSED: (),
    v.REJECTED: (),
    v.ON_HOLD: (),
}

# What a holder may report, from which status of the case.
_UPDATE_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    v.ACCEPTED: (v.DISPATCHED,),
    v.IN_PROGRESS: (v.DISPATCHED, v.ACCEPTED),
    v.RESOLVED: HOLDER_STATUSES,
    v.RETURNED: HOLDER_STATUSES,
    v.BEYOND_AUTHORITY: HOLDER_STATUSES,
}
# The reports that give the case up: routing finds the next holder, whose dispatch then sets the
# status; until then the case keeps the status it had.
HANDING_BACK = (v.RETURNED, v.BEYOND_AUTHORITY)
# The reports that leave the case as it is (协同): a note, and a request for more time, which
# waits for the command center's decision. A case takes them until it is finished.
# A pause request (挂起) and the holder's word that the pause is over (resumed) keep it too.
KEEPING_STATUS = (v.NOTE, v.EXTENSION_REQUESTED, v.PAUSE_REQUESTED, v.RESUMED)
FINISHED_STATUSES = (v.CLOSED, v.REJECTED)
# What an assisting department (协办) may send: notes. Everything else is the holder's.
ASSISTING_MAY_SEND = (v.NOTE,)
# How many more hours a holder may ask for at once (90 days): more is a case to put on the
# long-term list (挂账), which is the command center's order, not an extension.
MAX_EXTENSION_HOURS = 24 * 90
# An extension request's decision until the command center gives one (its orders: issue 10).
EXTENSION_PENDING = "pending"
# A holder names a category only when it gives the case back because it is misclassified (退回)
# or beyond its reach in that category; see ``check_update``.
UPDATES_NAMING_A_CATEGORY = HANDING_BACK


def is_open(status: str) -> bool:
    return status in OPEN_STATUSES


def has_running_clock(status: str) -> bool:
    return status in CLOCK_RUNNING_STATUSES


def has_holder(status: str) -> bool:
    return status in HOLDER_STATUSES


def may_follow(current: str, new: str) -> bool:
    return new in NEXT_STATUSES.get(current, ())


class LifecycleError(Exception):
    """A request the lifecycle refuses: ``field`` names the part of the request at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class InvalidRequest(LifecycleError):
    """Wrong whatever state the case is in (an HTTP 400)."""


class Conflict(LifecycleError):
    """Wrong for the case as it stands now (an HTTP 409)."""


class Unprocessable(LifecycleError):
    """Well formed, and refused for what it asks (an HTTP 422): an extension to an instant that
    has passed, or that would move the due instant backwards."""


def holds(sender: str, holder: str | None, lead: str | None) -> bool:
    """A unit holds a case when it is the holder, or the department leading it (a department
    system answers with its department code for whichever of its stations holds the case)."""
    return sender in (holder, lead) and sender is not None


def role_in_case(
    sender: str,
    holder: str | None,
    lead: str | None,
    assisting: tuple[str, ...] | list[str],
    sender_department: str | None,
) -> str | None:
    """The sender's part in a case: ``lead`` when it holds it (``holds``), ``assisting`` when
    it is one of the case's assisting departments or one of their units (``sender_department``:
    the department the sender's code belongs to, from the city's data), else None."""
    if holds(sender, holder, lead):
        return v.LEAD
    if sender in assisting or (sender_department is not None and sender_department in assisting):
        return v.ASSISTING
    return None


def may_send(update_status: str, role: str | None) -> bool:
    """Whether a sender with ``role`` in the case (``role_in_case``) may send ``update_status``."""
    if role == v.LEAD:
        return True
    return role == v.ASSISTING and update_status in ASSISTING_MAY_SEND


def check_sender(update_status: str, role: str | None) -> None:
    """Refuse an assisting department's report that is the holder's to make (a sender with no
    part in the case is refused by the caller, which knows who holds it)."""
    if role != v.ASSISTING or may_send(update_status, role):
        return
    if update_status == v.RESOLVED:
        why = "only the lead department resolves a case (主办单位办结)"
    else:
        why = f"{update_status} ({v.zh(update_status)}) is the holder's to report"
    raise Conflict("status", f"{why}; an assisting department (协办) adds notes (status {v.NOTE})")


def check_update(update_status: str, category: str | None) -> None:
    """Refuse what no case could take: ``category`` beside a report that keeps the case.

    A holder that accepts (or works on, or resolves) a case while naming another category would
    reclassify it without anyone deciding who should hold it now or which time limit applies;
    silently dropping the category (as before) hid the holder's mistake. A holder that finds a
    case misclassified returns it (or reports it beyond its authority) with the category, and
    routing decides from there, so the field is refused everywhere else with a 400 naming it.
    """
    if category is not None and update_status not in UPDATES_NAMING_A_CATEGORY:
        allowed = " or ".join(UPDATES_NAMING_A_CATEGORY)
        raise InvalidRequest(
            "category",
            (
                f"a category is only taken with status {allowed} (routing then finds the holder "
                f"for it); a holder that reports {update_status} keeps the case as it is classified"
            ),
        )


def check_extension(
    update_status: str, hours: int | None, due: dt.datetime | None, now: dt.datetime
) -> None:
    """An extension request names how much more time: ``hours`` more, or the ``due`` instant
    asked for (later than ``now``, at most ``MAX_EXTENSION_HOURS`` ahead), exactly one of them;
    no other report names either."""
    if update_status != v.EXTENSION_REQUESTED:
        for name, value in (("hours", hours), ("due", due)):
            if value is not None:
                raise InvalidRequest(
                    name, f"only an {v.EXTENSION_REQUESTED} update asks for time; drop {name}"
                )
        return
    if (hours is None) == (due is None):
        raise InvalidRequest(
            "hours",
            f"an {v.EXTENSION_REQUESTED} update names either hours (how many more, 1 to "
            f"{MAX_EXTENSION_HOURS}) or due (the instant asked for), one of them",
        )
    if hours is not None and not 1 <= hours <= MAX_EXTENSION_HOURS:
        raise InvalidRequest("hours", f"ask for 1 to {MAX_EXTENSION_HOURS} hours, not {hours}")
    if due is not None:
        if due <= now:
            # Well formed, and refused for what it asks: more time that has already run out.
            raise Unprocessable("due", "the instant asked for has already passed")
        if due - now > dt.timedelta(hours=MAX_EXTENSION_HOURS):
            raise InvalidRequest(
                "due", f"the instant asked for is more than {MAX_EXTENSION_HOURS} hours ahead"
            )


@dataclass(frozen=True)
class UpdateOutcome:
    """What a holder's report does to intake's view of the case."""

    status: str  # the case's status afterwards
    hands_back: bool  # the holder gives the case up; routing decides where it goes


def apply_update(current_status: str, update_status: str) -> UpdateOutcome:
    """The effect of a holder's report on a case that is ``current_status``."""
    if update_status in KEEPING_STATUS:
        if current_status in FINISHED_STATUSES:
            raise Conflict(
                "status",
                f"a case that is {current_status} takes no {update_status} "
                f"({v.zh(update_status)}): it is finished",
            )
        return UpdateOutcome(current_status, hands_back=False)
    allowed_from = _UPDATE_ALLOWED_FROM.get(update_status)
    if allowed_from is None:
        raise InvalidRequest("status", f"{update_status!r} is not something a holder reports")
    if current_status not in allowed_from:
        raise Conflict("status", f"a case that is {current_status} cannot become {update_status}")
    if update_status in HANDING_BACK:
        return UpdateOutcome(current_status, hands_back=True)
    return UpdateOutcome(update_status, hands_back=False)


@dataclass(frozen=True)
class VerificationOutcome:
    status: str
    closed: bool  # the loop is closed (结案): the case records when
    rework: bool  # failed: back to the same holder (返工), as a new assignment with a fresh clock


def verify(current_status: str, passed: bool) -> VerificationOutcome:
    if current_status != v.RESOLVED:
        raise Conflict("case_id", f"only a resolved case is verified; this one is {current_status}")
    if passed:
        return VerificationOutcome(v.CLOSED, closed=True, rework=False)
    return VerificationOutcome(v.DISPATCHED, closed=False, rework=True)


def check_evaluation(current_status: str, satisfaction: int | None) -> None:
    """A closed case is evaluated once: the resident's first answer stands."""
    if current_status != v.CLOSED:
        raise Conflict("case_id", f"a case is evaluated once closed; this one is {current_status}")
    if satisfaction is not None:
        raise Conflict(
            "satisfaction",
            (
                f"this case was already evaluated (satisfaction {satisfaction}); "
                "an evaluation is given once"
            ),
        )


# The requests a holder makes that wait for the command center's decision, by timeline kind.
REQUEST_EXTENSION = "extension"
REQUEST_PAUSE = "pause"
REQUESTS = {v.EXTENSION_REQUESTED: REQUEST_EXTENSION, v.PAUSE_REQUESTED: REQUEST_PAUSE}
# A request's ``decision`` in its timeline entry: pending until the command center's order.
DECISION_APPROVED = "approved"
DECISION_REFUSED = "refused"
DECISIONS = {v.ORDER_APPROVE: DECISION_APPROVED, v.ORDER_REFUSE: DECISION_REFUSED}


@dataclass(frozen=True)
class ClockState:
    """What a holder's request is checked against: the case's running clock as intake sees it.
    ``due``: the running clock's due instant (None when no clock runs); ``paused``: an approved
    pause (挂起) stopped it; ``pending``: the kind of the request awaiting a decision."""

    status: str
    due: dt.datetime | None
    paused: bool
    pending: str | None


def requested_due(
    current_due: dt.datetime, hours: int | None, due: dt.datetime | None
) -> dt.datetime:
    """The due instant an extension request asks for: ``due`` when it names one, else ``hours``
    (natural hours) after the clock's current due instant."""
    if due is not None:
        return due
    assert hours is not None  # check_extension: exactly one of them
    return current_due + dt.timedelta(hours=hours)


def check_request(
    update_status: str,
    state: ClockState,
    *,
    hours: int | None = None,
    due: dt.datetime | None = None,
    note: str | None = None,
) -> dt.datetime | None:
    """Refuse a holder's request (extension, pause) or ``resumed`` that the case cannot take as
    it stands; for an extension, the due instant it asks for. Other reports pass (None).

    - one request at a time: a second waits until the first is decided (409);
    - extension and pause need a running clock, not paused (409: on hold, awaiting
      verification, already paused);
    - an extension moves the due instant later: one at or before the current due instant is
      refused (422, naming ``due`` or ``hours``);
    - a pause says why (400 ``note``);
    - ``resumed`` ends an approved pause: with none in effect it is refused (409)."""
    if update_status == v.RESUMED:
        if not state.paused:
            raise Conflict(
                "status",
                "the clock of this case is not paused (挂起): there is nothing to resume",
            )
        return None
    if update_status not in REQUESTS:
        return None
    if update_status == v.PAUSE_REQUESTED and not (note and note.strip()):
        raise InvalidRequest("note", "a pause request (申请挂起) says why the work must wait")
    if state.pending is not None:
        raise Conflict(
            "status",
            f"a request ({state.pending}) already awaits the command center's decision; "
            "one request at a time",
        )
    if state.paused:
        raise Conflict("status", "the clock is paused (挂起); report resumed before asking more")
    if state.due is None or not has_running_clock(state.status):
        what = "extend" if update_status == v.EXTENSION_REQUESTED else "pause"
        raise Conflict(
            "status",
            f"no clock runs on a case that is {state.status} ({v.zh(state.status)}): "
            f"there is no time limit to {what}",
        )
    if update_status != v.EXTENSION_REQUESTED:
        return None
    asked = requested_due(state.due, hours, due)
    if asked <= state.due:
        raise Unprocessable(
            "due" if due is not None else "hours",
            f"an extension moves the due instant later: {asked.isoformat()} is not after the "
            f"current due instant {state.due.isoformat()}",
        )
    return asked


def check_decision(kind: str, pending: str | None) -> None:
    """An approval or refusal decides the holder's pending request: with none, 409."""
    if kind in DECISIONS and pending is None:
        raise Conflict(
            "kind",
            f"{kind} ({v.zh(kind)}) decides a holder's request, and none awaits a decision",
        )


def pending_request(
    entries: list[tuple[str, dict]], assignment_id: str | None = None
) -> str | None:
    """The kind of the holder's request still awaiting a decision (``extension`` or ``pause``),
    or None: ``entries`` are the case's timeline (kind, detail), oldest first; the latest
    request counts, and only while its decision is pending and, when ``assignment_id`` (the
    case's current one) is given, while the case is still on the assignment the request was made
    for: a request lapses when the case moves to another holder (with another clock)."""
    for kind, detail in reversed(entries):
        if kind in REQUESTS:
            if detail.get("decision") != EXTENSION_PENDING:
                return None
            made_for = detail.get("assignment_id")
            if assignment_id is not None and made_for is not None and made_for != assignment_id:
                return None
            return REQUESTS[kind]
    return None


# -- intake's view of an assignment ----------------------------------------------------------------


def assignment_seq(case_id: str, assignment_id: str | None, seq: int | None = None) -> int | None:
    """The assignment's place in its case's sequence (1 for the first holder, then one more per
    reassignment). Routing states it; an announcement that does not carry it has it as the
    suffix of routing's assignment id ``<case_id>-<seq>``."""
    if seq is not None:
        return seq
    if assignment_id is None or not assignment_id.startswith(case_id + "-"):
        return None
    suffix = assignment_id[len(case_id) + 1 :]
    return int(suffix) if suffix.isdigit() else None


@dataclass(frozen=True)
class DispatchProjection:
    take_assignment: bool  # write the announced assignment's holder, tier, ... into the view
    status: str  # the case's status afterwards


def project_dispatch(
    current_status: str, current_seq: int | None, announced_seq: int | None, reason: str
) -> DispatchProjection:
    """What an announced dispatch does to intake's view, whatever order announcements and
    holders' reports arrive in, however often each arrives.

    - An older assignment never overwrites a newer one.
    - The assignment intake already shows (a holder's report may have brought it forward, see
      ``fast_forward``, or the announcement came twice) is written again, the same content, but
      never regresses a status its holder reported since.
    - A newer one makes the case ``dispatched``, except for rework (verification already put
      the case back to ``dispatched`` and its holder may have answered since) and a case that is
      no longer open.
    """
    newer = current_seq is None or (announced_seq is not None and announced_seq > current_seq)
    if not newer:
        same = announced_seq is not None and announced_seq == current_seq
        return DispatchProjection(take_assignment=same, status=current_status)
    if reason == v.REASON_REWORK or not is_open(current_status):
        return DispatchProjection(take_assignment=True, status=current_status)
    return DispatchProjection(take_assignment=True, status=v.DISPATCHED)


def fast_forward(
    current_status: str, current_seq: int | None, sender: str, assignment: dict
) -> bool:
    """Whether a report from ``sender``, whom intake's view does not show as the holder, is
    taken on routing's word: ``assignment`` is routing's current assignment of the case (keys
    holder, lead, seq, ...), which routing commits before any department can hear of it.
    Intake's view then moves to that assignment as if its dispatch had been projected."""
    if not holds(sender, assignment.get("holder"), assignment.get("lead")):
        return False
    return takes_assignment(current_status, current_seq, assignment)


def takes_assignment(current_status: str, current_seq: int | None, assignment: dict) -> bool:
    """Whether intake's view of an open case moves to routing's ``assignment`` (keys holder,
    lead, assisting, seq, ...) ahead of its announcement: routing's is newer than the view's."""
    if not is_open(current_status):
        return False
    seq = assignment.get("seq")
    return seq is not None and (current_seq is None or seq > current_seq)


# -- colours ---------------------------------------------------------------------------------------

# Severity: green 0 up to red 3; no colour (or an unknown one) ranks below green, at -1.
COLOUR_RANK = {colour: rank for rank, colour in enumerate(v.COLOURS)}
NO_COLOUR_RANK = -1


def colour_rank(colour: str | None) -> int:
    return COLOUR_RANK.get(colour, NO_COLOUR_RANK) if colour is not None else NO_COLOUR_RANK


def supersedes(
    stored_at: dt.datetime,
    stored_colour: str | None,
    announced_at: dt.datetime,
    announced_colour: str | None,
) -> bool:
    """Whether an announced colour replaces the stored one of the same clock. The later
    instant wins; at one instant the more severe colour (a walk that passes several colours at
    once ends on the last), so the outcome is the same in whatever order they arrive."""
    if announced_at != stored_at:
        return announced_at > stored_at
    return colour_rank(announced_colour) > colour_rank(stored_colour)


def colour_shown(
    status: str, has_assignment: bool, announced: str | None, paused: bool = False
) -> str | None:
    """The colour the case view shows: the last colour announced for the running clock, and
    green for a running clock whose first colour has not been announced yet (SLA announces from
    yellow on), whether or not the case has a category: an unclassified case at the command
    center runs a triage clock too. A clock stopped by an approved pause (``paused``) shows
    none."""
    if not (has_running_clock(status) and has_assignment) or paused:
        return None
    return announced or v.GREEN


# -- the command center's orders (指令) ------------------------------------------------------------

# The statuses each order may be given in. An order refused here changes nothing (HTTP 409).
# The orders that act on the case's assignment and clock wait for its first dispatch (a case
# is ``registered`` only for the moment routing takes to decide): until then there is neither.
_WORKING = (v.REGISTERED, v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS)
ORDER_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    # A case awaiting verification (resolved) is verified first: failed, it goes back for rework.
    v.ORDER_ASSIGN: HOLDER_STATUSES,
    v.ORDER_ESCALATE: HOLDER_STATUSES,
    v.ORDER_HOLD: HOLDER_STATUSES,
    v.ORDER_RELEASE: (v.ON_HOLD,),
    # Refusing to register (不予立案) finishes a case that is not finished: a case on the
    # long-term list too.
    v.ORDER_REJECT: (*OPEN_STATUSES, v.ON_HOLD),
    v.ORDER_REOPEN: (v.CLOSED,),
    v.ORDER_MERGE: (*OPEN_STATUSES, v.ON_HOLD),
    # A reminder needs someone holding the case.
    v.ORDER_SUPERVISE: HOLDER_STATUSES,
    # A leader may comment on any case, finished ones included (考核 reads them).
    v.ORDER_COMMENT: v.CASE_STATUSES,
    # Deciding a holder's request: approving acts on the running clock of a case being worked on;
    # refusing clears a request from any case that is not finished.
    v.ORDER_APPROVE: HOLDER_STATUSES,
    v.ORDER_REFUSE: (*OPEN_STATUSES, v.ON_HOLD),
}
# The orders that must say why (the reporter is told a rejection's reason).
ORDERS_NEEDING_REASON = (v.ORDER_HOLD, v.ORDER_REJECT, v.ORDER_COMMENT, v.ORDER_REFUSE)
# The orders that routing answers with a new assignment (a new holder and a new clock).
ORDERS_REASSIGNING = (v.ORDER_ASSIGN, v.ORDER_ESCALATE, v.ORDER_REOPEN)
MAX_ORDER_REASON = 500

_WHY_NOT: dict[str, str] = {
    v.ORDER_ASSIGN: (
        "only a dispatched case being worked on is assigned (a resolved case is verified first)"
    ),
    v.ORDER_ESCALATE: "only a dispatched case being worked on is escalated",
    v.ORDER_HOLD: "only a dispatched case being worked on goes on the long-term list (挂账)",
    v.ORDER_RELEASE: "only a case on the long-term list (挂账) is released",
    v.ORDER_REJECT: "the case is already finished",
    v.ORDER_REOPEN: "only a closed case is reopened",
    v.ORDER_MERGE: "a finished case is not merged",
    v.ORDER_SUPERVISE: "only a case a unit holds is supervised (督办)",
    v.ORDER_APPROVE: "only a request on a case being worked on is approved",
    v.ORDER_REFUSE: "the case is finished",
}


@dataclass(frozen=True)
class OrderOutcome:
    """What an order does to intake's view at once. The rest follows by events: routing's new
    assignment (assign, escalate, reopen), the clock (SLA), the notices (notify)."""

    status: str  # the case's status afterwards
    clock_stops: bool  # no clock runs afterwards: due and colour are null
    finished: bool  # the case is finished (rejected, or merged into another): closed_at is set
    reassigns: bool  # routing gives the case a new assignment


def check_order(
    kind: str,
    status: str,
    *,
    at_top: bool = False,
    into: str | None = None,
    into_status: str | None = None,
    case_id: str | None = None,
) -> None:
    """Refuse an order that the case cannot take as it stands (``Conflict``, naming why).

    ``at_top``: the case is held by the command center, which has nowhere higher to send it.
    ``into`` / ``into_status``: the case a merge joins this one to, and its status (None when no
    such case exists)."""
    allowed = ORDER_ALLOWED_FROM.get(kind)
    if allowed is None:
        raise InvalidRequest("kind", f"{kind!r} is not an order")
    if status not in allowed:
        raise Conflict(
            "kind",
            f"a case that is {status} ({v.zh(status)}) cannot be given "
            f"{kind} ({v.zh(kind)}): {_WHY_NOT.get(kind, '')}".rstrip(": "),
        )
    if kind == v.ORDER_ESCALATE and at_top:
        raise Conflict(
            "kind",
            "the command center already holds this case: there is no tier higher; assign it to a "
            "unit instead",
        )
    if kind == v.ORDER_MERGE:
        if into is None:
            raise InvalidRequest("into", "a merge names the case this one joins (into)")
        if into == case_id:
            raise Conflict("into", "a case cannot be merged into itself")
        if into_status is None:
            raise Conflict("into", f"no case {into!r} to merge into")
        if into_status in FINISHED_STATUSES:
            raise Conflict(
                "into",
                f"case {into} is {into_status} ({v.zh(into_status)}): merge into an open one",
            )


def apply_order(kind: str, status: str, held_from: str | None = None) -> OrderOutcome:
    """The effect of a (checked) order on a case that is ``status``; ``held_from``: the status a
    case on hold had before it (release returns it there)."""
    if kind == v.ORDER_HOLD:
        return OrderOutcome(v.ON_HOLD, clock_stops=True, finished=False, reassigns=False)
    if kind == v.ORDER_RELEASE:
        back = held_from if held_from in _WORKING else v.DISPATCHED
        return OrderOutcome(back, clock_stops=False, finished=False, reassigns=False)
    if kind == v.ORDER_REJECT:
        return OrderOutcome(v.REJECTED, clock_stops=True, finished=True, reassigns=False)
    if kind == v.ORDER_MERGE:
        return OrderOutcome(v.CLOSED, clock_stops=True, finished=True, reassigns=False)
    if kind == v.ORDER_REOPEN:
        # Back to the unit that last held it, as rework; the new clock comes with its dispatch.
        return OrderOutcome(v.DISPATCHED, clock_stops=True, finished=False, reassigns=True)
    if kind in (v.ORDER_ASSIGN, v.ORDER_ESCALATE):
        # The status and the clock change when the new assignment is dispatched.
        return OrderOutcome(status, clock_stops=False, finished=False, reassigns=True)
    return OrderOutcome(status, clock_stops=False, finished=False, reassigns=False)


def clock_columns(
    status: str,
    has_assignment: bool,
    due: dt.datetime | None,
    announced: str | None,
    paused: bool = False,
) -> tuple[dt.datetime | None, str | None]:
    """The case row's ``due_at`` and ``colour`` (the lists filter and sort by them): the running
    clock's due instant and the colour shown (``colour_shown``); both None when no clock runs."""
    colour = colour_shown(status, has_assignment, announced, paused)
    return (due if colour is not None else None), colour


def parse_due(text: str | None) -> dt.datetime | None:
    """An announced due instant (ISO 8601 with its offset), or None when it is absent or not
    one (an instant with no offset is no instant)."""
    if not text:
        return None
    try:
        due = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return due if due.tzinfo is not None else None
