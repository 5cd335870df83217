"""Open311 GeoReport v2 server under ``/open311/v2/`` (open311_format.py says what maps to
what). Reading is public, as the spec has it; posting needs ``api_key``, which is an access-issue
channel key of channel ``open311`` (``POST /api/v1/admin/keys {"channel": "open311"}``), spent
against that key's rate limit. A posted request becomes a report through the same path as
``POST /api/v1/reports``.

Only cases that an Open311 request created or joined are listed and read here: a resident who
called the hotline did not publish their case to every Open311 client.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa

from gridflow_common.domain import privacy
from gridflow_common.domain import vocabulary as v
from gridflow_intake import bodies
from gridflow_intake import handlers as h
from gridflow_intake import open311_format as of
from gridflow_intake import progress as pg
from gridflow_intake.access import public_url
from gridflow_intake.channels import ChannelIntake, ChannelKeyRefused
from gridflow_intake.models import cases, reports, timeline

CHANNEL = "open311"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# A request's form: a description of 2,000 Chinese characters is 18 KB percent-encoded.
MAX_FORM_BYTES = 64 * 1024
TOKEN_PREFIX = "o311-"


def _answer(fmt: str, status: int, root: str, item: str | None, data: Any) -> Any:
    from gridflow_intake.api import Answer

    if fmt == of.JSON:
        return Answer(status, data, of.MEDIA_TYPES[of.JSON])
    return Answer(status, of.to_xml(root, item, data), of.MEDIA_TYPES[of.XML])


def _refusal(fmt: str, error: of.Open311Error) -> Any:
    return _answer(fmt, error.status, "errors", "error", error.items())


def _fmt(fmt: str | None) -> str:
    if fmt is None:
        return of.XML
    if fmt not in of.FORMATS:
        raise of.Open311Error(404, [("format", f"{fmt!r} is not a format here; xml or json")])
    return fmt


def _utc(instant: dt.datetime) -> dt.datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


class Open311Endpoints(ChannelIntake):
    """Mixed into IntakeApi."""

    def _open311(self, fmt: str | None, work_fn: Any) -> Any:
        try:
            fmt = _fmt(fmt)
        except of.Open311Error as exc:
            return _refusal(of.XML, exc)
        try:
            return work_fn(fmt)
        except of.Open311Error as exc:
            return _refusal(fmt, exc)
        except ChannelKeyRefused as exc:
            # The spec answers a missing or bad api_key with 403 (the error list says why).
            return _refusal(fmt, of.Open311Error(403, [(exc.field, str(exc))]))
        except h.Rejected as exc:
            return _refusal(
                fmt,
                of.Open311Error(
                    exc.status,
                    [(f, why) for f, whys in exc.errors.items() for why in whys],
                ),
            )

    # -- discovery and services ----------------------------------------------------------------

    def get_open311_discovery(self, call: Any, fmt: str | None = None) -> Any:
        def run(fmt: str) -> Any:
            version = self.runtime.jurisdictions.active_version()
            loaded = self.runtime.jurisdictions.loaded_at(version) or dt.datetime.now(dt.UTC)
            data = of.discovery(
                public_url(call.request.host_url),
                _utc(loaded),
                "Gridflow 指挥中心 (command center)",
            )
            return _answer(fmt, 200, "discovery", None, data)

        return self._open311(fmt, run)

    def get_open311_services(self, call: Any, fmt: str | None = None) -> Any:
        def run(fmt: str) -> Any:
            j = self._jurisdiction()  # type: ignore[attr-defined]
            return _answer(fmt, 200, "services", "service", [of.service(c) for c in j.categories])

        return self._open311(fmt, run)

    def get_open311_service(self, call: Any, code: str) -> Any:
        code, fmt = of.split_format(code)

        def run(fmt: str) -> Any:
            category = self._jurisdiction().category(code)  # type: ignore[attr-defined]
            if category is None:
                raise of.Open311Error(404, [("service_code", "no such service")])
            return _answer(fmt, 200, "service_definition", None, of.service_definition(category))

        return self._open311(fmt, run)

    # -- posting a request -------------------------------------------------------------------------

    def post_open311_request(self, call: Any, fmt: str | None = None) -> Any:
        return self._open311(fmt, lambda fmt: self._post_request(call, fmt))

    def _post_request(self, call: Any, fmt: str) -> Any:
        request = call.request
        if request.mimetype != FORM_MEDIA_TYPE:
            given = request.headers.get("Content-Type")
            raise of.Open311Error(
                415,
                [
                    (
                        "content_type",
                        f"{given!r} is not taken; send {FORM_MEDIA_TYPE}"
                        if given
                        else f"no Content-Type was given; send {FORM_MEDIA_TYPE}",
                    )
                ],
            )
        try:
            body = bodies.read_body(request, MAX_FORM_BYTES)
        except h.Rejected as exc:
            raise of.Open311Error(
                exc.status, [(f, w) for f, ws in exc.errors.items() for w in ws]
            ) from None
        form = _form(body)
        # The key first: nobody learns what the form lacks without a key of this channel.
        self.channel_caller(call, form.get("api_key"), CHANNEL, "api_key")
        j = self._jurisdiction()  # type: ignore[attr-defined]
        report = of.report_from_form(form, {c.code: c for c in j.categories})
        media_url = report.pop("media_url", None)
        found: dict[str, Any] = {}

        def remember(work: Any, status: int, answer: dict) -> None:
            # The report's row id is the token (tokens/{token}); a photo's URL stays on the
            # case's timeline as a note.
            found["id"] = work.db.execute(
                sa.select(sa.func.max(reports.c.id)).where(
                    reports.c.case_id == answer["case_id"], reports.c.channel == CHANNEL
                )
            ).scalar()
            if media_url:
                work.db.execute(
                    sa.insert(timeline),
                    dict(
                        case_id=answer["case_id"],
                        at=work.now,
                        kind=v.NOTE,
                        detail={
                            "note": f"Open311 图片 (media_url): {media_url}",
                            "channel": CHANNEL,
                        },
                    ),
                )

        status, answer, token = self.register_channel_report(call, report, remember)
        linked = pg.link_in_answer(answer, request.host_url, token)
        notice = f"已受理，案件编号 {answer['case_id']}" + (
            f"；进度查询 {linked['progress_url']}" if linked.get("progress_url") else ""
        )
        item = {
            "service_request_id": answer["case_id"],
            "token": f"{TOKEN_PREFIX}{found.get('id')}",
            "service_notice": notice,
            "account_id": None,
        }
        # The spec answers 201 for a request made; one that joined an open case is made too.
        return _answer(
            fmt, 201 if status in (200, 201) else status, "service_requests", "request", [item]
        )

    # -- reading requests ----------------------------------------------------------------------

    def get_open311_requests(self, call: Any, fmt: str | None = None) -> Any:
        return self._open311(fmt, lambda fmt: self._requests(call, fmt))

    def _requests(self, call: Any, fmt: str) -> Any:
        args = {k: call.request.args.getlist(k) for k in call.request.args}
        problems = [(k, "give this parameter once") for k, vs in args.items() if len(vs) > 1]
        query = {k: vs[0] for k, vs in args.items()}
        for key, whys in bodies.untakeable_values(query).items():
            problems.extend((key, why) for why in whys)
        known = {
            "service_request_id",
            "service_code",
            "start_date",
            "end_date",
            "status",
            "jurisdiction_id",
            "page",
            "page_size",
        }
        problems.extend((k[:64], "not a filter of GET requests") for k in query if k not in known)
        if problems:
            raise of.Open311Error(400, problems)
        where: list[Any] = []
        ids = [i.strip() for i in query.get("service_request_id", "").split(",") if i.strip()]
        if len(ids) > of.MAX_IDS:
            raise of.Open311Error(400, [("service_request_id", f"at most {of.MAX_IDS} ids")])
        if ids:
            # The spec: a list of ids overrides every other filter.
            where.append(cases.c.case_id.in_(ids))
        else:
            codes = [c.strip() for c in query.get("service_code", "").split(",") if c.strip()]
            if codes:
                where.append(cases.c.category.in_(codes))
            statuses = [s.strip() for s in query.get("status", "").split(",") if s.strip()]
            wrong = [s for s in statuses if s not in (of.OPEN, of.CLOSED)]
            if wrong:
                raise of.Open311Error(400, [("status", f"{wrong[0][:20]!r}: open or closed")])
            if statuses and set(statuses) != {of.OPEN, of.CLOSED}:
                closed = cases.c.status.in_(of.CLOSED_STATUSES)
                where.append(closed if statuses == [of.CLOSED] else sa.not_(closed))
            start = (
                of.parse_instant(query["start_date"], "start_date")
                if "start_date" in query
                else None
            )
            end = of.parse_instant(query["end_date"], "end_date") if "end_date" in query else None
            if start and end and end < start:
                raise of.Open311Error(400, [("end_date", "before start_date")])
            span = dt.timedelta(days=of.MAX_RANGE_DAYS)
            if start and end and end - start > span:
                raise of.Open311Error(
                    400, [("end_date", f"a range spans at most {of.MAX_RANGE_DAYS} days")]
                )
            if start is None:
                # Without a start: the 90 days before the end (or before now, with no end).
                start = (end or _utc(self.runtime.clock.now())) - span
            elif end is None:
                end = start + span
            where.append(cases.c.registered_at >= start)
            if end is not None:
                where.append(cases.c.registered_at <= end)
        with self.runtime.work() as work:
            items = self._request_items(work, where)
        return _answer(fmt, 200, "service_requests", "request", items)

    def get_open311_request(self, call: Any, request_id: str) -> Any:
        request_id, fmt = of.split_format(request_id)

        def run(fmt: str) -> Any:
            with self.runtime.work() as work:
                items = self._request_items(work, [cases.c.case_id == request_id])
            if not items:
                # What was asked is not repeated: a path can hold anything, a secret too.
                raise of.Open311Error(404, [("service_request_id", "no such service request")])
            return _answer(fmt, 200, "service_requests", "request", items)

        return self._open311(fmt, run)

    def get_open311_token(self, call: Any, token: str) -> Any:
        token, fmt = of.split_format(token)

        def run(fmt: str) -> Any:
            number = token[len(TOKEN_PREFIX) :] if token.startswith(TOKEN_PREFIX) else ""
            case_id = None
            if number.isdigit() and len(number) < 19:
                with self.runtime.work() as work:
                    case_id = work.db.execute(
                        sa.select(reports.c.case_id).where(
                            reports.c.id == int(number), reports.c.channel == CHANNEL
                        )
                    ).scalar()
            if case_id is None:
                raise of.Open311Error(404, [("token", "no such token")])
            item = {"service_request_id": case_id, "token": token}
            return _answer(fmt, 200, "service_requests", "request", [item])

        return self._open311(fmt, run)

    def _request_items(self, work: Any, where: list[Any]) -> list[dict]:
        through_open311 = sa.select(reports.c.case_id).where(reports.c.channel == CHANNEL)
        rows = work.db.execute(
            sa.select(cases)
            .where(cases.c.case_id.in_(through_open311), *where)
            .order_by(cases.c.registered_at.desc(), cases.c.case_id)
            .limit(of.MAX_REQUESTS)
        ).all()
        if not rows:
            return []
        ids = [r.case_id for r in rows]
        updated = dict(
            work.db.execute(
                sa.select(timeline.c.case_id, sa.func.max(timeline.c.at))
                .where(timeline.c.case_id.in_(ids))
                .group_by(timeline.c.case_id)
            ).all()
        )
        j = self._jurisdiction()  # type: ignore[attr-defined]

        def local(instant: dt.datetime | None) -> str | None:
            return j.local(_utc(instant)).isoformat() if instant is not None else None

        items = []
        for r in rows:
            category = j.category(r.category) if r.category else None
            unit = j.unit(r.holder) if r.holder else None
            status = of.status_of(r.status)
            items.append(
                {
                    "service_request_id": r.case_id,
                    "status": status,
                    "status_notes": v.zh(r.status),
                    "service_name": category.name_zh if category else None,
                    "service_code": r.category or "unclassified",
                    # Free text a person typed: personal numbers masked for the public.
                    "description": privacy.mask_free_text(r.description)[:4000],
                    "agency_responsible": unit.name if unit else None,
                    "service_notice": None,
                    "requested_datetime": local(r.registered_at),
                    "updated_datetime": local(
                        r.closed_at
                        if status == of.CLOSED and r.closed_at
                        else updated.get(r.case_id)
                    ),
                    "expected_datetime": local(r.due_at),
                    "address": r.address,
                    "address_id": None,
                    "zipcode": None,
                    "lat": r.lat,
                    "long": r.lon,
                    "media_url": None,
                }
            )
        return items


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise of.Open311Error(
            400, [("_body", f"not UTF-8: {exc.reason} at byte {exc.start}")]
        ) from None
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=of.MAX_FORM_FIELDS,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise of.Open311Error(400, [("_body", f"not a form: {str(exc)[:100]}")]) from None
    form: dict[str, str] = {}
    repeated: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in form:
            repeated.append((key[:64], "give this field once"))
        form[key] = value
    for key, whys in bodies.untakeable_values(form).items():
        repeated.extend((key[:64], why) for why in whys)
    if repeated:
        raise of.Open311Error(400, repeated)
    return form
