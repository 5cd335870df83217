"""Status back from department systems (issue 7): one path for every way a department says
something of a case, whatever carried it.

- ``POST /api/v1/departments/{code}/updates``, signed with the department's secret or sent with
  its credential (``department_api.py``);
- a message on the status exchange, from the department's own RabbitMQ user
  (``status_consumer.py``), answered on its reply queue;
- a polling adapter's word, announced by the departments service (``case_status_received``).

Each proves who sent it first (``code``: a department or a unit); this module then takes the
message as that code says it: its ``unit`` must be the code or one of the code's units (a
department answers for its stations and its bureau), its word is taken with the city's table
(``domain.status_words``), and a recognised status goes the way of every holder's report
(``handlers.report_status``), so every refusal of that path holds here too: 404 for a case that
does not exist or that the sender has nothing to do with (alike), 409 when the sender does not
hold the case or the case cannot take the report now, 503 when routing had to be asked and did
not answer.

**A word nobody mapped** is kept on the case's timeline (``status_unrecognised``, with the word
and the note), logged with its sender, and answered 202 ``{"recognised": false, ...}`` (over
AMQP: ``accepted`` with ``status`` null and ``recognised`` false). Not a 4xx: the message was
taken (it is on the case, where the command center sees it), and a department system that
retries every 4xx, or gives up on it as malformed, would do the wrong thing with it; the answer
says plainly that the case's status did not change and what to ask the city for (a line in
adapters.csv). The word is not guessed.

**Idempotency**: a message with an id (the ``Idempotency-Key`` header, else the body's
``message_id``) is answered once; a repeat within ``ANSWER_KEPT`` gets the first answer and
changes nothing. Only answers that took the message are kept: a refusal changed nothing, so the
same message sent again is looked at afresh (a case that could not take it then may now).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gridflow_common.domain import access as a
from gridflow_common.domain import status_words as sw
from gridflow_common.logging import get_logger
from gridflow_common.runtime import Work
from gridflow_intake import handlers as h
from gridflow_intake.access import Caller
from gridflow_intake.models import department_messages

log = get_logger(__name__)

# How long the first answer to a message with an id is kept (wall-clock time).
ANSWER_KEPT = dt.timedelta(hours=24)
# A claimed message whose answer is not written yet (its unit of work is still running).
_CLAIMED = 0
# The credential id of a department proven by a signature or by its RabbitMQ user: not a key of
# the identity store, so nothing can revoke or look it up there.
SIGNED = "signed"
AMQP = "amqp"


def department_principal(code: str, proven_by: str) -> a.Principal:
    """A department or unit proven by its signature (``SIGNED``) or its RabbitMQ user
    (``AMQP``): a holder's credential scoped to ``code``, so every access rule treats it as
    that department's own system."""
    return a.Principal(
        kind=a.HOLDER_KEY, id=code, name=code, credential_id=f"{proven_by}:{code}", scope=code
    )


@dataclass
class DepartmentCaller(Caller):
    """A caller that proved it is ``department`` without a credential of the identity store: the
    audit log names it ``department:<code>``."""

    department: str = ""

    @property
    def actor(self) -> str:
        return f"department:{self.department}"


def known_code(j: Any, code: str) -> bool:
    return j.department(code) is not None or j.unit(code) is not None


def unit_of_message(j: Any, code: str, message: Mapping[str, Any]) -> str:
    """The unit a message speaks as: its ``unit`` (default the code), which must be the code or
    one of the code's units; a 403 naming ``unit`` otherwise."""
    unit = message.get("unit") or code
    if not a.speaks_for(department_principal(code, SIGNED), unit, j):
        raise h.Rejected(
            403,
            {"unit": [f"{code!r} does not answer for {unit!r}: name {code} or one of its units"]},
        )
    return unit


def message_key(idempotency_key: str | None, message: Mapping[str, Any]) -> str | None:
    key = (idempotency_key or "").strip() or message.get("message_id")
    return key[:200] if key else None


def _insert(work: Work) -> Any:
    dialect = postgresql if work.db.dialect.name == "postgresql" else sqlite
    return dialect.insert(department_messages)


def _claim(work: Work, sender: str, key: str, case_id: str) -> tuple[int, dict] | None:
    """The first answer to (sender, key) when it is still kept; else None, and the key is this
    unit's until it commits (a concurrent copy waits on the row, then finds the answer)."""
    table = department_messages
    now = work.runtime.operational_now()
    claimed = work.db.execute(
        _insert(work).on_conflict_do_nothing(),
        dict(
            sender=sender,
            message_key=key,
            case_id=case_id,
            answer_status=_CLAIMED,
            answer={},
            received_at=now,
        ),
    ).rowcount
    if claimed:
        return None
    row = work.db.execute(
        sa.select(table.c.answer_status, table.c.answer, table.c.received_at).where(
            table.c.sender == sender, table.c.message_key == key
        )
    ).first()
    if row is not None and row.answer_status != _CLAIMED and now - row.received_at < ANSWER_KEPT:
        return row.answer_status, dict(row.answer)
    # Older than what is kept (or a claim left by nothing that committed): taken afresh.
    work.db.execute(
        sa.update(table)
        .where(table.c.sender == sender, table.c.message_key == key)
        .values(case_id=case_id, answer_status=_CLAIMED, answer={}, received_at=now)
    )
    return None


def _remember(work: Work, sender: str, key: str, status: int, answer: dict) -> None:
    table = department_messages
    work.db.execute(
        sa.update(table)
        .where(table.c.sender == sender, table.c.message_key == key)
        .values(answer_status=status, answer=answer)
    )


def forget_old_answers(work: Work) -> int:
    """Drop answers older than ``ANSWER_KEPT``; how many went."""
    cutoff = work.runtime.operational_now() - ANSWER_KEPT
    table = department_messages
    return work.db.execute(sa.delete(table).where(table.c.received_at < cutoff)).rowcount


FORGET_EVERY_SECONDS = 60.0
_NEXT_FORGET = "department_answers_next_forget"


def forget_old_answers_now_and_then(runtime: Any) -> int:
    """Intake's periodic work (once a second): at most once a minute, the answers past
    ``ANSWER_KEPT`` go (one indexed delete), so the table holds about a day of messages."""
    now = time.monotonic()
    if now < runtime.extras.get(_NEXT_FORGET, 0.0):
        return 0
    runtime.extras[_NEXT_FORGET] = now + FORGET_EVERY_SECONDS
    with runtime.work() as work:
        return forget_old_answers(work)


def _readable_by(work: Work, principal: a.Principal, case_id: str, j: Any) -> bool:
    row = h.case_access(work, case_id)
    if row is None:
        return False
    facts = a.CaseFacts(row.area_code, row.holder, row.lead, tuple(row.assisting or ()))
    return a.may_read_case(principal, facts, j)


def _no_case(case_id: str) -> h.Rejected:
    # The same answer for a case that does not exist and one the sender has nothing to do with.
    return h.Rejected(404, {"case_id": [f"no case {case_id!r}"]})


def take_status_message(
    work: Work,
    code: str,
    principal: a.Principal,
    message: Mapping[str, Any],
    *,
    key: str | None = None,
    holder_of: h.HolderOf | None = None,
) -> tuple[int, dict]:
    """Take a status message from ``code`` (proven), sent with ``principal`` (its own credential,
    or ``department_principal``): (202, answer), or ``Rejected`` with nothing written."""
    j = work.jurisdiction()
    unit = unit_of_message(j, code, message)
    case_id = message["case_id"]
    if key is not None:
        first = _claim(work, code, key, case_id)
        if first is not None:
            return first
    taken = sw.take_department_word(j, unit, message["status"])
    if taken.recognised:
        status, answer = _apply(work, principal, unit, message, taken, j, holder_of)
    else:
        status, answer = _keep_unrecognised(work, principal, unit, message, taken, j)
    if key is not None:
        _remember(work, code, key, status, answer)
    return status, answer


def _apply(
    work: Work,
    principal: a.Principal,
    unit: str,
    message: Mapping[str, Any],
    taken: sw.TakenWord,
    j: Any,
    holder_of: h.HolderOf | None,
) -> tuple[int, dict]:
    case_id = message["case_id"]
    update = {
        "sender": unit,
        "status": taken.status,
        "note": message.get("note"),
        "category": message.get("category"),
    }
    if message.get("hours") is not None:
        # An extension request's hours (issue 7): the lifecycle that takes extension requests
        # reads them from the update.
        update["hours"] = message["hours"]
    try:
        status, answer = h.report_status(work, case_id, update, holder_of=holder_of)
    except h.Rejected as exc:
        if exc.status == 404:
            raise _no_case(case_id) from None
        # Not naming who holds a case to a sender who has nothing to do with it.
        if (
            exc.status == 409
            and "from" in exc.errors
            and not _readable_by(work, principal, case_id, j)
        ):
            raise _no_case(case_id) from None
        raise
    answer = {**answer, "recognised": True, "word": taken.word, "unit": unit}
    if taken.word != taken.status:
        answer["taken_as"] = f"{taken.status} ({taken.source})"
    return status, answer


def _keep_unrecognised(
    work: Work,
    principal: a.Principal,
    unit: str,
    message: Mapping[str, Any],
    taken: sw.TakenWord,
    j: Any,
) -> tuple[int, dict]:
    case_id = message["case_id"]
    if not _readable_by(work, principal, case_id, j):
        raise _no_case(case_id)
    h._note(
        work,
        case_id,
        sw.ENTRY_STATUS_UNRECOGNISED,
        work.now,
        sender=unit,
        word=taken.word,
        note=message.get("note"),
    )
    log.warning(
        "department_status_unrecognised",
        sender=unit,
        case_id=case_id,
        word=taken.word,
        message_id=message.get("message_id"),
    )
    current = work.db.execute(
        sa.select(h.cases.c.status).where(h.cases.c.case_id == case_id)
    ).scalar()
    return 202, {
        "case_id": case_id,
        "status": None,
        "recognised": False,
        "word": taken.word,
        "unit": unit,
        "case_status": current,
        "message": (
            f"{taken.word!r} is not one of Gridflow's statuses nor in the city's status map for "
            f"{unit}; it is kept on the case's timeline and the case's status did not change "
            f"(it is still {current}). Send one of Gridflow's statuses, or ask the city to map "
            "the word (adapters.csv, status_map)."
        ),
    }


# -- what a polling adapter's word does (case_status_received) ---------------------------------


def take_received_status(work: Work, payload: Mapping[str, Any]) -> str:
    """A polling adapter read a department's word for a case (``CaseStatusReceivedV1``): taken
    as that unit's status message. A refusal is recorded on the timeline (``status_refused``)
    and logged, never raised: the department did say it, and raising would only dead-letter
    the fact. A 503 (routing could not be asked) is not a refusal: it is raised, and the message
    is tried again. Returns what happened: ``taken``, ``unrecognised`` or ``refused``."""
    unit = payload["unit"]
    message = {
        "case_id": payload["case_id"],
        "status": payload["word"],
        "note": payload.get("note"),
        "unit": unit,
    }
    principal = department_principal(unit, payload.get("adapter") or "adapter")
    try:
        status, answer = take_status_message(work, unit, principal, message)
    except h.Rejected as exc:
        if exc.status >= 500:
            raise
        log.warning(
            "department_status_refused",
            sender=unit,
            case_id=payload["case_id"],
            word=payload["word"],
            adapter=payload.get("adapter"),
            status=exc.status,
            errors=exc.errors,
        )
        if h.case_access(work, payload["case_id"]) is not None:
            h._note(
                work,
                payload["case_id"],
                sw.ENTRY_STATUS_REFUSED,
                work.now,
                sender=unit,
                word=payload["word"],
                note=payload.get("note"),
                adapter=payload.get("adapter"),
                errors=exc.errors,
            )
        return "refused"
    return "taken" if answer.get("recognised") else "unrecognised"


# -- replies over AMQP -----------------------------------------------------------------------------


def reply_of(
    status: int,
    answer: Mapping[str, Any],
    *,
    correlation_id: str | None,
    message_id: str | None,
    case_id: str | None,
) -> dict:
    """The ``StatusReplyV1`` for an answer given as (HTTP status, body)."""
    if status < 400:
        return {
            "correlation_id": correlation_id,
            "message_id": message_id,
            "case_id": answer.get("case_id", case_id),
            "outcome": "accepted",
            "status": answer.get("status"),
            "recognised": bool(answer.get("recognised", True)),
            "errors": {},
        }
    errors = answer.get("errors", answer)
    return {
        "correlation_id": correlation_id,
        "message_id": message_id,
        "case_id": case_id,
        "outcome": "refused",
        "status": None,
        "recognised": False,
        "errors": {
            str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in errors.items()
        },
    }
