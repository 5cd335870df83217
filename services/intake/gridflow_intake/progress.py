"""The reporter's link (进度查询): every report taken is answered with a link whose token lets
its reporter, and only whoever holds that link, follow the case and evaluate it once.

The token is the credential: 256 random bits (``gfr_`` and 43 URL-safe characters), shown once in
the answer to the report and stored only as its SHA-256 on the report's row, so the case register
gives away no usable link. A resubmission of a report (the same channel and external id) gets no
link: an external id is no secret (a hotline ticket number, a sensor's event id), and whoever knew
one would otherwise be handed somebody else's case.

What the link shows is ``gridflow_common.domain.progress``'s choice: the case's road in Chinese,
none of the city's internal remarks and nobody's personal data. A link that is unknown, malformed
or hostile gets one and the same 404, which names no token and says nothing about any case.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from werkzeug.routing import BaseConverter

from gridflow_common.domain import progress as p
from gridflow_common.domain import vocabulary as v
from gridflow_common.runtime import Work
from gridflow_intake import handlers as h
from gridflow_intake.access import public_url
from gridflow_intake.identity import PREFIXES, REPORTER, new_token, token_hash
from gridflow_intake.models import cases, progress_links, reports, timeline

PROGRESS_PATH = "/api/v1/progress"
# Matched whole (fullmatch): ``$`` would let a trailing newline through.
TOKEN_RE = re.compile(re.escape(PREFIXES[REPORTER]) + r"[A-Za-z0-9_-]{43}")
# A capability URL: no cache between the resident and Gridflow keeps the answer, and a page that
# shows it never sends the link on as a Referer.
PRIVATE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
NO_LINK_NOTE = (
    "a resubmission gets no progress link: the link came with the first answer to this report "
    "(an external id is no secret, so it cannot stand for the reporter)"
)


def new_progress_token() -> tuple[str, str]:
    """A new progress token and the hash the case register keeps of it."""
    token = new_token(REPORTER)
    return token, token_hash(token)


def progress_url(host_url: str, token: str) -> str:
    return f"{public_url(host_url)}{PROGRESS_PATH}/{token}"


def link_in_answer(answer: dict, host_url: str, token: str) -> dict:
    """The report's answer with its progress link; a resubmission's says why it has none."""
    if answer.get("outcome") == v.OUTCOME_RESUBMISSION:
        return {**answer, "progress_url": None, "progress_note": NO_LINK_NOTE}
    return {**answer, "progress_url": progress_url(host_url, token)}


class TokenConverter(BaseConverter):
    """The ``<token:...>`` part of a progress path. Anything that is not a progress token's shape
    (a NUL, 10 KB, letters from another script, a credential of another kind) is read as the
    empty token, which no report has: the endpoint then answers as it does for an unknown token,
    so no shape of input earns a different answer (a 400 naming a NUL, a 404 for the path)."""

    def to_python(self, value: str) -> str:
        return value if TOKEN_RE.fullmatch(value) else ""


def _no_link() -> h.Rejected:
    return h.Rejected(
        404, {"token": ["no case follows this link; use the link from the answer to your report"]}
    )


def _report_of(work: Work, token: str) -> Any:
    if not TOKEN_RE.fullmatch(token):
        raise _no_link()
    row = work.db.execute(
        sa.select(reports.c.case_id, reports.c.received_at).where(
            reports.c.progress_token_hash == token_hash(token)
        )
    ).first()
    if row is None:
        # A link made later for the same report (a resident's message: gridflow_intake.contacts).
        row = work.db.execute(
            sa.select(reports.c.case_id, reports.c.received_at)
            .join(progress_links, progress_links.c.report_id == reports.c.id)
            .where(progress_links.c.token_hash == token_hash(token))
        ).first()
    if row is None:
        raise _no_link()
    return row


def _unit_namer(j: Any) -> Any:
    def name(code: str) -> str | None:
        unit = j.unit(code)
        if unit is not None:
            return unit.name
        department = j.department(code)
        return department.name_zh if department is not None else None

    return name


def progress_view(work: Work, token: str) -> dict:
    """The case's progress as its reporter may read it."""
    report = _report_of(work, token)
    case = work.db.execute(
        sa.select(
            cases.c.case_id,
            cases.c.status,
            cases.c.category,
            cases.c.satisfaction,
            cases.c.jurisdiction_version,
            cases.c.registered_at,
            cases.c.closed_at,
        ).where(cases.c.case_id == report.case_id)
    ).one()
    j = work.jurisdiction(case.jurisdiction_version)
    entries = [
        p.Entry(e.at, e.kind, e.detail or {})
        for e in work.db.execute(
            # The case view's order: by instant, the id keeping ties in order.
            sa.select(timeline.c.at, timeline.c.kind, timeline.c.detail)
            .where(timeline.c.case_id == case.case_id)
            .order_by(timeline.c.at, timeline.c.id)
        ).all()
    ]
    road = p.milestones(entries, _unit_namer(j))
    category = j.category(case.category) if case.category else None
    evaluated = [m for m in road if m.kind == p.MILESTONE_EVALUATED]
    return {
        "case_id": case.case_id,
        "status": case.status,
        "status_name": v.zh(case.status),
        "category": case.category,
        "category_name": category.name_zh if category else None,
        "reported_at": j.local(report.received_at).isoformat(),
        "registered_at": j.local(case.registered_at).isoformat(),
        "closed_at": j.local(case.closed_at).isoformat() if case.closed_at else None,
        "milestones": [
            {"at": j.local(m.at).isoformat(), "kind": m.kind, "name": m.name} for m in road
        ],
        "can_evaluate": p.can_evaluate(case.status, case.satisfaction),
        # The score alone: a note written with it may be another reporter's, in their words.
        "evaluation": (
            {
                "satisfaction": case.satisfaction,
                "at": j.local(evaluated[-1].at).isoformat() if evaluated else None,
            }
            if case.satisfaction is not None
            else None
        ),
    }


def evaluate(work: Work, token: str, evaluation: dict) -> tuple[int, dict]:
    """The reporter's evaluation: the case's one evaluation (``handlers.evaluate``), recorded as
    the reporter's."""
    return h.evaluate(work, _report_of(work, token).case_id, evaluation, by=p.BY_REPORTER)
