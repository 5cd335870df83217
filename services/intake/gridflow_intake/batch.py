"""Taking reports one by one and many at once (a grid worker's phone after a day offline, a bulk
import): the service layer around ``handlers.register_report``.

A batch is one unit of work; each item runs in a savepoint of its own, so a refused item (or one
that fails in the database) rolls back to where it started and leaves no row, while the items
before and after it stand. One commit for the whole batch is what makes it cheaper than as many
single reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields, validate
from sqlalchemy.exc import IntegrityError

from gridflow_common.domain import access as a
from gridflow_common.domain import intake_batch as ib
from gridflow_common.domain import vocabulary as v
from gridflow_common.runtime import Work
from gridflow_intake import bodies
from gridflow_intake import handlers as h
from gridflow_intake import photos as ph
from gridflow_intake import schemas as s
from gridflow_intake.models import reports

REFUSED = "refused"


def _resubmitted(work: Work, report: dict) -> str | None:
    if not report.get("external_id"):
        return None
    return work.db.execute(
        sa.select(reports.c.case_id).where(
            reports.c.channel == report["channel"],
            reports.c.external_id == report["external_id"],
        )
    ).scalar()


def take_report(
    work: Work, report: dict, credential_id: str | None, progress_token_hash: str | None
) -> tuple[int, dict]:
    """``register_report`` with what it does not check itself: the observed instant against the
    city's clock and the photos the report names (the reporting credential's, unattached). A
    resubmission is answered as one before either is looked at, so sending the same report again
    later (its photos now attached, its observed instant older) still changes nothing."""
    existing = _resubmitted(work, report)
    if existing:
        return 200, {"case_id": existing, "outcome": v.OUTCOME_RESUBMISSION}
    problems: dict[str, list[str]] = {}
    observed = ib.observed_problems(report.get("observed_at"), work.now)
    if observed:
        problems["observed_at"] = observed
    problems.update(ph.photo_problems(work, report.get("photos") or [], credential_id))
    if problems:
        raise h.Rejected(422, problems)
    status, answer = h.register_report(work, report, progress_token_hash)
    ph.attach(work, report.get("photos") or [], answer["case_id"])
    return status, answer


def _prefixed(prefix: str, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    # A problem of the whole item (not an object, a rule across its fields) is named by it.
    return {prefix if name == "_body" else f"{prefix}.{name}": why for name, why in errors.items()}


class BatchItemSchema(s.ReportSchema):
    """A batch item: a report, whose ``external_id`` is required (without it a resent batch
    could not be told from a new one)."""

    external_id = fields.String(required=True, validate=[validate.Length(1, 128), s._not_blank])


_ITEM_SCHEMA = BatchItemSchema()


def load_item(item: Any) -> dict:
    """One batch item loaded as a single report is, with ``external_id`` required."""
    if not isinstance(item, dict):
        raise h.Rejected(400, {"_body": ["must be a report object"]})
    problems = bodies.untakeable_values(item)
    if problems:
        raise h.Rejected(400, problems)
    try:
        return _ITEM_SCHEMA.load(item)
    except ValidationError as exc:
        raise h.Rejected(400, s.flatten_errors(exc.messages)) from None


def take_batch(
    work: Work,
    items: list[Any],
    principal: a.Principal | None,
    new_token: Callable[[], tuple[str, str]],
) -> list[dict]:
    """Each item answered on its own, in order: ``index``, ``outcome`` (registered, joined,
    resubmission or refused), ``status`` (the HTTP status a single report would have had),
    ``case_id`` and, when refused, ``errors`` named ``items.<index>.<field>``; a registered or
    joined item carries its ``progress_token`` (the answer turns it into the link)."""
    credential_id = principal.credential_id if principal else None
    results: list[dict] = []
    for index, item in enumerate(items):
        prefix = f"items.{index}"
        savepoint = work.db.begin_nested()
        # Events an item emitted are forgotten with its rows if it is rolled back: the relay
        # must never publish a case the database does not hold.
        emitted = len(work.outboxed)
        try:
            report = load_item(item)
            allowed, status, why = a.may_report(principal, report["channel"])
            if not allowed:
                raise h.Rejected(status, {"channel": [why]})
            token, token_hash = new_token()
            status, answer = take_report(work, report, credential_id, token_hash)
            savepoint.commit()
        except h.Rejected as exc:
            savepoint.rollback()
            del work.outboxed[emitted:]
            results.append(
                {
                    "index": index,
                    "outcome": REFUSED,
                    "status": exc.status,
                    "case_id": None,
                    "errors": _prefixed(prefix, exc.errors),
                }
            )
            continue
        except IntegrityError:
            # The same (channel, external_id) committed by another request meanwhile: this
            # copy is a resend of it.
            savepoint.rollback()
            del work.outboxed[emitted:]
            existing = _resubmitted(work, report)
            if existing is None:
                raise
            status, answer = 200, {"case_id": existing, "outcome": v.OUTCOME_RESUBMISSION}
            token = None
        result = {"index": index, "status": status, **answer}
        if answer["outcome"] != v.OUTCOME_RESUBMISSION:
            result["progress_token"] = token
        results.append(result)
    return results
