"""``GET /api/v1/assessment`` (考核) and ``GET /api/v1/hotspots`` (热点). ``IntakeApi`` inherits
the endpoints; the sums are ``gridflow_intake.assessment``'s, the figures the domain's.

Who may ask: any signed-in user (STAFF). The figures are of the caller's scope: the command
center and admins see every case (of their district), a street, community or grid worker the
cases of their area, a department's users and leaders the cases their department holds, leads
or assists, and of the department and unit rows only their own department's.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from marshmallow import fields, validate

from gridflow_common.domain import assessment as asm
from gridflow_intake import assessment as queries
from gridflow_intake import handlers as h
from gridflow_intake import schemas as s

if TYPE_CHECKING:
    from gridflow_intake.api import Answer, Call

MAX_HOTSPOT_HOURS = 24 * 30


class AssessmentQuerySchema(s._Strict):
    by = fields.String(validate=validate.OneOf(asm.GROUPINGS), load_default=asm.BY_DEPARTMENT)
    # Local dates of the jurisdiction; checked by the domain, which names the field.
    from_ = fields.String(data_key="from", load_default=None, validate=validate.Length(1, 40))
    to = fields.String(load_default=None, validate=validate.Length(1, 40))
    format = fields.String(validate=validate.OneOf(asm.FORMATS), load_default="json")


class HotspotQuerySchema(s._Strict):
    hours = fields.Integer(validate=validate.Range(1, MAX_HOTSPOT_HOURS), load_default=24)


_ASSESSMENT_QUERY = AssessmentQuerySchema()
_HOTSPOT_QUERY = HotspotQuerySchema()

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _answer(status: int, body: Any, **options: Any) -> Answer:
    from gridflow_intake.api import Answer

    return Answer(status, body, **options)


def workbook(rows: list[dict[str, Any]], title: str) -> bytes:
    """The rows as an Excel workbook: a header row, frozen; numbers as numbers."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    for line in asm.table(rows):
        sheet.append(line)
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class AssessmentEndpoints:
    # Provided by IntakeApi.
    runtime: Any

    def get_assessment(self, call: Call) -> Answer:
        query = self._load_query(_ASSESSMENT_QUERY, call.request)  # type: ignore[attr-defined]
        principal = call.principal
        assert principal is not None
        j = self._jurisdiction()  # type: ignore[attr-defined]
        today = j.local(self.runtime.clock.now()).date()
        try:
            last = asm.parse_date("to", query["to"]) if query["to"] else today
            first = (
                asm.parse_date("from", query["from_"]) if query["from_"] else last.replace(day=1)
            )
            start, end = asm.period(first, last, j.zone)
        except asm.AssessmentRefused as exc:
            raise h.Rejected(400, {exc.field: [exc.message]}) from None
        by = query["by"]
        with self.runtime.work() as work:
            rows = queries.rows(work, j, by, start, end, principal)
        body = {
            "by": by,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "weights": j.assessment_weights.as_dict(),
            "rows": rows,
        }
        name = f"assessment-{by}-{first.isoformat()}-{last.isoformat()}"
        if query["format"] == "csv":
            return _answer(
                200,
                asm.to_csv(rows),
                content_type=CSV_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        if query["format"] == "xlsx":
            return _answer(
                200,
                workbook(rows, f"考核-{by}"),
                content_type=XLSX_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
            )
        return _answer(200, body)

    def get_hotspots(self, call: Call) -> Answer:
        query = self._load_query(_HOTSPOT_QUERY, call.request)  # type: ignore[attr-defined]
        principal = call.principal
        assert principal is not None
        j = self._jurisdiction()  # type: ignore[attr-defined]
        since = self.runtime.clock.now() - dt.timedelta(hours=query["hours"])
        with self.runtime.work() as work:
            items = queries.open_hotspots(work, j, since, principal)
        return _answer(200, {"items": items, "hours": query["hours"]})
