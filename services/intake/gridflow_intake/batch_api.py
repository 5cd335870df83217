"""``POST /api/v1/reports/batch``: what a grid worker's phone sends after a day offline.
``IntakeApi`` inherits the endpoint; what each item does is ``gridflow_intake.batch``.

The body is ``{"items": [report, ...]}``: 1 to ``MAX_BATCH_ITEMS`` (100) reports shaped as for
``POST /api/v1/reports``, each with its ``external_id``; more items is a 413 naming ``items``.
Who may send what is decided per item as for a single report (a channel key its own channel, a
grid worker the grid app and the public channels, no credential the public channels only).

The answer is 200 whenever the batch was read: ``results`` holds one answer per item, in order
(``outcome`` registered, joined, resubmission or refused; ``status`` as a single report would
have had; ``case_id``; ``progress_url`` for a registered or joined item; ``errors`` named
``items.<index>.<field>`` for a refused one) and ``summary`` counts the outcomes. A refused item
leaves no row; the others stand. The same batch sent again answers every item ``resubmission``
and changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields
from sqlalchemy.exc import OperationalError

from gridflow_common import metrics
from gridflow_common.domain import intake_batch as ib
from gridflow_common.domain import vocabulary as v
from gridflow_common.logging import get_logger
from gridflow_intake import batch, bodies
from gridflow_intake import handlers as h
from gridflow_intake import progress as pg

if TYPE_CHECKING:
    from gridflow_intake.access import Access
    from gridflow_intake.api import Answer, Call


log = get_logger(__name__)
# A batch rolled back by a deadlock or a serialisation failure is run again this many times in
# all.
RETRIES = 3
# deadlock_detected, serialization_failure
_CONFLICTS = ("40P01", "40001")


def _pgcode(exc: OperationalError) -> str | None:
    return getattr(exc.orig, "pgcode", None)


def _conflict(exc: OperationalError) -> bool:
    return _pgcode(exc) in _CONFLICTS


class BatchSchema(Schema):
    """The body (for the OpenAPI document; items are loaded one by one, so one bad item is
    refused on its own)."""

    items = fields.List(fields.Nested(batch.BatchItemSchema), required=True)


class BatchResultSchema(Schema):
    index = fields.Integer(required=True)
    outcome = fields.String(required=True)
    status = fields.Integer(required=True)
    case_id = fields.String(allow_none=True, required=True)
    progress_url = fields.String(allow_none=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class BatchAnswerSchema(Schema):
    results = fields.List(fields.Nested(BatchResultSchema), required=True)
    summary = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


def _items(body: bytes) -> list[Any]:
    data = bodies.parse_json_object(body)
    # What no item could hold is refused with its item (load_item); anything else, the whole body.
    outside = {
        name: why
        for name, why in bodies.untakeable_values(
            {k: v for k, v in data.items() if k != "items"}
        ).items()
    }
    if outside:
        raise h.Rejected(400, outside)
    unknown = sorted(set(data) - {"items"})
    if unknown:
        raise h.Rejected(400, {name: ["Unknown field."] for name in unknown})
    items = data.get("items")
    if not isinstance(items, list):
        raise h.Rejected(400, {"items": ["give the reports as a list"]})
    if not items:
        raise h.Rejected(400, {"items": ["the batch is empty"]})
    if len(items) > ib.MAX_BATCH_ITEMS:
        raise h.Rejected(
            413,
            {"items": [f"{len(items)} items; at most {ib.MAX_BATCH_ITEMS} are taken in one batch"]},
        )
    return items


class BatchEndpoints:
    # Provided by IntakeApi.
    runtime: Any
    access: Access

    if TYPE_CHECKING:

        def _audit_within(self, work: Any, call: Call, status: int) -> None: ...

    def post_reports_batch(self, call: Call) -> Answer:
        from gridflow_intake.api import Answer

        items = _items(call.body)
        if call.principal is None:
            # The public form's budget is per report, whether they come one by one or together.
            for _ in items:
                self.access.limit_public_report(call.caller)
        for attempt in range(1, RETRIES + 1):
            try:
                with self.runtime.work() as work:
                    results = batch.take_batch(work, items, call.principal, pg.new_progress_token)
                    self._audit_within(work, call, 200)
                break
            except OperationalError as exc:
                # Two batches of one neighbourhood each hold merge locks (and hotspot rows) the
                # other's next item needs: PostgreSQL breaks the deadlock by rolling one back
                # whole, which is then sent again (nothing of it was committed).
                if attempt == RETRIES or not _conflict(exc):
                    raise
                log.info("batch_retried", attempt=attempt, pgcode=_pgcode(exc))
        host = call.request.host_url
        summary = {
            o: 0
            for o in (v.OUTCOME_REGISTERED, v.OUTCOME_JOINED, v.OUTCOME_RESUBMISSION, batch.REFUSED)
        }
        for result in results:
            summary[result["outcome"]] += 1
            token = result.pop("progress_token", None)
            if token is not None:
                result["progress_url"] = pg.progress_url(host, token)
            if result["outcome"] == v.OUTCOME_REGISTERED:
                metrics.CASES_REGISTERED.labels(items[result["index"]]["channel"]).inc()
        return Answer(200, {"results": results, "summary": summary})
