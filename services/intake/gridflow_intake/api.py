"""Gridflow's public HTTP API on a werkzeug routing table, free of any web server: the nameko
``@http`` entrypoint and the embedded default's WSGI app both hand ``IntakeApi.respond`` a
werkzeug ``Request`` and send back the ``Response`` it returns, so body limits, content types and
every refusal are decided in this one place.

Every request either succeeds whole or changes nothing: the body is read within its limit and
validated before the unit of work writes anything, and a failure inside rolls the unit back.
Every answer, refusals included (404, 405, 413, 415), is JSON.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as WsgiResponse

from gridflow_common import contracts as c
from gridflow_common import metrics
from gridflow_common import reset as r
from gridflow_common.clock import ClockRefused
from gridflow_common.domain.jurisdiction import DEFAULT_TIME_ZONE
from gridflow_common.domain.jurisdiction_files import JurisdictionError
from gridflow_common.jurisdictions import NoJurisdiction
from gridflow_common.logging import get_logger
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import bodies
from gridflow_intake import handlers as h
from gridflow_intake import schemas as s
from gridflow_intake.peers import Peers, PeerUnavailable

log = get_logger(__name__)
ADMIN_TOKEN_ENV = "GRIDFLOW_ADMIN_TOKEN"
# Built once: a marshmallow schema is reusable, and building one per request costs more than
# loading the body with it.
_CLOCK_SCHEMA = s.ClockSchema()
_EVALUATION_SCHEMA = s.EvaluationSchema()
_JURISDICTION_UPLOAD_SCHEMA = s.JurisdictionUploadSchema()
_REPORT_SCHEMA = s.ReportSchema()
_RESET_SCHEMA = s.ResetSchema()
_STATUS_UPDATE_SCHEMA = s.StatusUpdateSchema()
_VERIFICATION_SCHEMA = s.VerificationSchema()


@dataclass(frozen=True)
class Route:
    """One endpoint: what the OpenAPI document will be built from. ``body_limit`` is None for a
    route that reads no body."""

    method: str
    path: str
    endpoint: str
    admin: bool = False
    body_limit: int | None = None


ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/v1/reports", "post_report", body_limit=s.MAX_BODY_BYTES),
    Route("GET", "/api/v1/cases/<case_id>", "get_case"),
    Route("POST", "/api/v1/cases/<case_id>/updates", "post_update", body_limit=s.MAX_BODY_BYTES),
    Route(
        "POST", "/api/v1/cases/<case_id>/verification", "post_verify", body_limit=s.MAX_BODY_BYTES
    ),
    Route(
        "POST", "/api/v1/cases/<case_id>/evaluation", "post_evaluate", body_limit=s.MAX_BODY_BYTES
    ),
    Route("GET", "/api/v1/admin/clock", "get_clock"),
    Route("PUT", "/api/v1/admin/clock", "put_clock", admin=True, body_limit=s.MAX_BODY_BYTES),
    Route("POST", "/api/v1/admin/reset", "post_reset", admin=True, body_limit=s.MAX_BODY_BYTES),
    Route(
        "PUT",
        "/api/v1/admin/jurisdiction",
        "put_jurisdiction",
        admin=True,
        body_limit=s.MAX_JURISDICTION_BYTES,
    ),
    Route("GET", "/api/v1/admin/jurisdiction", "get_jurisdiction"),
    Route("GET", "/healthz", "healthz"),
    Route("GET", "/metrics", "get_metrics"),
)

# strict_slashes and merge_slashes off: a redirect is not an answer this API gives; a path
# either names an endpoint or is a 404.
URL_MAP = Map(
    [Rule(route.path, methods=[route.method], endpoint=route) for route in ROUTES],
    strict_slashes=False,
    merge_slashes=False,
)
_URLS = URL_MAP.bind("gridflow")


@dataclass
class Answer:
    status: int
    body: Any
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")

    def response(self) -> WsgiResponse:
        return WsgiResponse(
            self.encoded(), status=self.status, content_type=self.content_type, headers=self.headers
        )


def _errors(status: int, errors: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"errors": errors}, headers=headers or {})


def _as_utc(instant: dt.datetime) -> dt.datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.timezone.utc)


class IntakeApi:
    def __init__(self, runtime: ServiceRuntime, peers: Peers, admin_token: str | None = None):
        self.runtime = runtime
        self.peers = peers
        self.admin_token = (
            admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV) or None
        )

    # -- dispatch ----------------------------------------------------------------------------

    def respond(self, request: Request) -> WsgiResponse:
        return self.answer(request).response()

    def handle(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        """One request in process, without a server (tests, tools); a body without a
        Content-Type is sent as JSON."""
        headers = dict(headers or {})
        if body and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = bodies.JSON_MEDIA_TYPE
        environ = EnvironBuilder(
            path=path, method=method, data=body, headers=list(headers.items())
        ).get_environ()
        return self.answer(Request(environ))

    def answer(self, request: Request) -> Answer:
        route: Route | None = None
        try:
            route, values = _URLS.match(request.path, method=request.method)
            answer = self._dispatch(route, values, request)
        except MethodNotAllowed as exc:
            allowed = sorted(exc.valid_methods or [])
            answer = _errors(
                405,
                {
                    "method": [
                        f"{request.method} is not allowed on {request.path}; "
                        f"use {', '.join(allowed)}"
                    ]
                },
                headers={"Allow": ", ".join(allowed)},
            )
        except NotFound:
            answer = _errors(404, {"path": [f"no such endpoint: {request.path}"]})
        except h.Rejected as exc:
            answer = _errors(exc.status, exc.errors)
        except NoJurisdiction as exc:
            answer = _errors(503, {"jurisdiction": [str(exc)]})
        except PeerUnavailable as exc:
            answer = _errors(503, {exc.service: [exc.why]})
        except Exception:
            log.exception("request_failed", method=request.method, path=request.path)
            answer = _errors(500, {"_server": ["internal error; nothing was changed"]})
        metrics.HTTP_REQUESTS.labels(
            route.endpoint if route else "unmatched", str(answer.status)
        ).inc()
        return answer

    def _dispatch(self, route: Route, values: Mapping[str, Any], request: Request) -> Answer:
        if route.admin and not self._authorised(request):
            return _errors(
                401,
                {
                    "authorization": [
                        f"admin calls need 'Authorization: Bearer <{ADMIN_TOKEN_ENV}>'"
                    ]
                },
            )
        for name, value in values.items():
            problems = bodies.untakeable_values({name: value})
            if problems:
                raise h.Rejected(400, problems)
        body = b""
        if route.body_limit is not None and bodies.has_body(request):
            # Neither check reads a byte of the body: a refused one is never taken in.
            bodies.check_content_type(request)
            body = bodies.read_body(request, route.body_limit)
        return getattr(self, route.endpoint)(body, **values)

    def _authorised(self, request: Request) -> bool:
        if not self.admin_token:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.admin_token}".encode())

    @staticmethod
    def _load(schema: Schema, body: bytes) -> dict:
        data = bodies.load_json_object(body)
        try:
            return schema.load(data)
        except ValidationError as exc:
            raise h.Rejected(400, s.flatten_errors(exc.messages)) from None

    def _local(self, instant: dt.datetime) -> str:
        """An instant as the city's clocks show it, ISO 8601 with the offset."""
        try:
            return self.runtime.jurisdictions.active()[1].local(_as_utc(instant)).isoformat()
        except NoJurisdiction:
            return _as_utc(instant).astimezone(ZoneInfo(DEFAULT_TIME_ZONE)).isoformat()

    # -- cases -------------------------------------------------------------------------------

    def post_report(self, body: bytes) -> Answer:
        report = self._load(_REPORT_SCHEMA, body)
        for attempt in (1, 2):
            try:
                with self.runtime.work() as work:
                    status, answer = h.register_report(work, report)
                break
            except IntegrityError:
                # Two copies of one (channel, external_id) raced; the loser answers as a resend.
                if attempt == 2:
                    raise
        if status == 201:
            metrics.CASES_REGISTERED.labels(report["channel"]).inc()
        return Answer(status, answer)

    def get_case(self, body: bytes, case_id: str) -> Answer:
        with self.runtime.work() as work:
            return Answer(200, h.case_view(work, case_id))

    def post_update(self, body: bytes, case_id: str) -> Answer:
        update = self._load(_STATUS_UPDATE_SCHEMA, body)
        with self.runtime.work() as work:
            # Routing is asked only when intake's view disagrees with the sender (defect 9):
            # the department may hear of a case before intake's view does.
            return Answer(
                *h.report_status(work, case_id, update, holder_of=self.peers.current_assignment)
            )

    def post_verify(self, body: bytes, case_id: str) -> Answer:
        verification = self._load(_VERIFICATION_SCHEMA, body)
        with self.runtime.work() as work:
            return Answer(*h.verify(work, case_id, verification))

    def post_evaluate(self, body: bytes, case_id: str) -> Answer:
        evaluation = self._load(_EVALUATION_SCHEMA, body)
        with self.runtime.work() as work:
            return Answer(*h.evaluate(work, case_id, evaluation))

    # -- administration ------------------------------------------------------------------------

    def get_clock(self, body: bytes) -> Answer:
        return Answer(
            200,
            {
                "now": self._local(self.runtime.clock.now()),
                "simulated": self.runtime.clock.simulated,
            },
        )

    def put_clock(self, body: bytes) -> Answer:
        now = self._load(_CLOCK_SCHEMA, body)["now"]
        try:
            self.runtime.clock.set(now)
        except ClockRefused as exc:
            return _errors(409, {"now": [str(exc)]})
        # Time-driven work between the old and the new instant happens in the SLA service.
        with self.runtime.work(now=now) as work:
            work.emit(c.CLOCK_ADVANCED, {"now": now.isoformat()})
        return Answer(200, {"now": self._local(now)})

    def post_reset(self, body: bytes) -> Answer:
        """All or nothing (see ``gridflow_common.reset``): every service, intake included, first
        says it can take part, else nothing is emptied; the jurisdiction stays in force."""
        now = self._load(_RESET_SCHEMA, body or b"{}")["now"]
        if not self.runtime.clock.simulated:
            return _errors(
                409,
                {
                    "clock": [
                        "only a Gridflow on the simulated clock can be reset "
                        "(GRIDFLOW_CLOCK=simulated)"
                    ]
                },
            )
        order = r.ResetOrder.new()
        # Round one changes nothing; a refusal there empties nothing anywhere. Round two runs
        # only when everyone said yes; intake is emptied in it even when another service failed
        # in between (its projection of their emptied state would be wrong), and a repeated
        # reset finishes the job.
        rounds = (
            (self.peers.prepare_reset, r.why_not_ready, "nothing was emptied: {} {}"),
            (self.peers.execute_reset, r.execute, "{} was not reset: {}; run the reset again"),
        )
        for ask_peers, ask_intake, message in rounds:
            refusals = ask_peers(order)
            own = ask_intake(self.runtime, order)
            if own:
                refusals[c.INTAKE] = own
            if refusals:
                log.warning("reset_refused", reset_id=order.reset_id, refusals=refusals)
                return _errors(503, {"reset": sorted(message.format(*i) for i in refusals.items())})
        if now is not None:
            self.runtime.clock.set(now, allow_backwards=True)
        return Answer(
            200,
            {
                "reset": True,
                "reset_id": order.reset_id,
                "now": self._local(self.runtime.clock.now()),
            },
        )

    def put_jurisdiction(self, body: bytes) -> Answer:
        files = self._load(_JURISDICTION_UPLOAD_SCHEMA, body)["files"]
        try:
            version = self.runtime.jurisdictions.install(files)
        except JurisdictionError as exc:
            return _errors(400, exc.as_dicts())
        return Answer(200, self._jurisdiction_summary(version))

    def get_jurisdiction(self, body: bytes) -> Answer:
        version = self.runtime.jurisdictions.active_version()
        return Answer(200, self._jurisdiction_summary(version))

    def _jurisdiction_summary(self, version: int) -> dict:
        j = self.runtime.jurisdictions.get(version)
        loaded_at = self.runtime.jurisdictions.loaded_at(version)
        return {
            "version": version,
            "name": j.name,
            "time_zone": j.time_zone,
            "loaded_at": j.local(_as_utc(loaded_at)).isoformat() if loaded_at else None,
            "categories": [x.code for x in j.categories],
        }

    def healthz(self, body: bytes) -> Answer:
        return Answer(200, {"ok": True, "service": c.INTAKE})

    def get_metrics(self, body: bytes) -> Answer:
        payload, content_type = metrics.exposition()
        return Answer(200, payload, content_type)
