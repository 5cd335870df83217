"""Gridflow's public HTTP API, free of any web framework: nameko's ``@http`` entrypoint and the
embedded default's server both hand it (method, path, body, headers) and send back what it returns.

Every request either succeeds whole or changes nothing: validation runs before the unit of work
writes anything, and a failure inside rolls the unit back.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError
from sqlalchemy.exc import IntegrityError

from gridflow_common import contracts as c
from gridflow_common import metrics
from gridflow_common.clock import ClockRefused
from gridflow_common.domain.jurisdiction_files import JurisdictionError
from gridflow_common.jurisdictions import NoJurisdiction
from gridflow_common.logging import get_logger
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import schemas as s

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


@dataclass
class Response:
    status: int
    body: Any
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def _errors(status: int, errors: Any) -> Response:
    return Response(status, {"errors": errors})


class IntakeApi:
    def __init__(self, runtime: ServiceRuntime, reset_others: Callable[[], None],
                 admin_token: str | None = None):
        self.runtime = runtime
        self.reset_others = reset_others
        self.admin_token = admin_token if admin_token is not None else os.environ.get(
            ADMIN_TOKEN_ENV) or None

    # (method, path pattern, handler method name, admin only), compiled once for every instance.
    ROUTES: tuple[tuple[str, re.Pattern, str, bool], ...] = tuple(
        (method, re.compile(pattern + "$"), name, admin) for method, pattern, name, admin in (
            ("POST", r"/api/v1/reports", "post_report", False),
            ("GET", r"/api/v1/cases/(?P<case_id>[^/]+)", "get_case", False),
            ("POST", r"/api/v1/cases/(?P<case_id>[^/]+)/updates", "post_update", False),
            ("POST", r"/api/v1/cases/(?P<case_id>[^/]+)/verification", "post_verify", False),
            ("POST", r"/api/v1/cases/(?P<case_id>[^/]+)/evaluation", "post_evaluate", False),
            ("GET", r"/api/v1/admin/clock", "get_clock", False),
            ("PUT", r"/api/v1/admin/clock", "put_clock", True),
            ("POST", r"/api/v1/admin/reset", "post_reset", True),
            ("PUT", r"/api/v1/admin/jurisdiction", "put_jurisdiction", True),
            ("GET", r"/api/v1/admin/jurisdiction", "get_jurisdiction", False),
            ("GET", r"/healthz", "healthz", False),
            ("GET", r"/metrics", "get_metrics", False),
        ))

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Response:
        route = self._route(method, path)
        try:
            response = self._dispatch(route, method, path, body, headers)
        except h.Rejected as exc:
            response = _errors(exc.status, exc.errors)
        except NoJurisdiction as exc:
            response = _errors(503, {"jurisdiction": [str(exc)]})
        except Exception:
            log.exception("request_failed", method=method, path=path)
            response = _errors(500, {"_server": ["internal error; nothing was changed"]})
        name = route[0] if route and route[0] else "unmatched"
        metrics.HTTP_REQUESTS.labels(name, str(response.status)).inc()
        return response

    def _route(self, method: str, path: str) -> tuple[str | None, Any, bool, list[str]]:
        """(handler name, path match, admin only, methods the path allows): looked up once."""
        allowed = []
        for m, pattern, name, admin in self.ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            if m == method:
                return name, match, admin, allowed
            allowed.append(m)
        return None, None, False, allowed

    def _dispatch(self, route: tuple[str | None, Any, bool, list[str]], method: str, path: str,
                  body: bytes, headers: dict[str, str]) -> Response:
        name, match, admin, allowed = route
        if name is None:
            if allowed:
                return _errors(405, {"method": [f"{method} is not allowed here; use {allowed}"]})
            return _errors(404, {"path": [f"no such endpoint: {path}"]})
        if admin and not self._authorised(headers):
            return _errors(401, {"authorization": [
                f"admin calls need 'Authorization: Bearer <{ADMIN_TOKEN_ENV}>'"]})
        if len(body) > s.MAX_BODY_BYTES:
            return _errors(413, {"_body": [
                f"the body is {len(body)} bytes; at most {s.MAX_BODY_BYTES} are taken"]})
        return getattr(self, name)(body, **match.groupdict())

    def _authorised(self, headers: dict[str, str]) -> bool:
        if not self.admin_token:
            return True
        given = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        return hmac.compare_digest(given, f"Bearer {self.admin_token}")

    @staticmethod
    def _load(schema: Schema, body: bytes) -> dict:
        try:
            data = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise h.Rejected(400, {"_body": [f"not valid JSON: {exc}"]}) from None
        if not isinstance(data, dict):
            raise h.Rejected(400, {"_body": ["the body must be a JSON object"]})
        try:
            return schema.load(data)
        except ValidationError as exc:
            raise h.Rejected(400, s.flatten_errors(exc.messages)) from None

    # -- cases -------------------------------------------------------------------------------

    def post_report(self, body: bytes) -> Response:
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
        return Response(status, answer)

    def get_case(self, body: bytes, case_id: str) -> Response:
        with self.runtime.work() as work:
            return Response(200, h.case_view(work, case_id))

    def post_update(self, body: bytes, case_id: str) -> Response:
        update = self._load(_STATUS_UPDATE_SCHEMA, body)
        with self.runtime.work() as work:
            return Response(*h.report_status(work, case_id, update))

    def post_verify(self, body: bytes, case_id: str) -> Response:
        verification = self._load(_VERIFICATION_SCHEMA, body)
        with self.runtime.work() as work:
            return Response(*h.verify(work, case_id, verification))

    def post_evaluate(self, body: bytes, case_id: str) -> Response:
        evaluation = self._load(_EVALUATION_SCHEMA, body)
        with self.runtime.work() as work:
            return Response(*h.evaluate(work, case_id, evaluation))

    # -- administration ------------------------------------------------------------------------

    def get_clock(self, body: bytes) -> Response:
        return Response(200, {"now": self.runtime.clock.now().isoformat(),
                              "simulated": self.runtime.clock.simulated})

    def put_clock(self, body: bytes) -> Response:
        now = self._load(_CLOCK_SCHEMA, body)["now"]
        try:
            self.runtime.clock.set(now)
        except ClockRefused as exc:
            return _errors(409, {"now": [str(exc)]})
        # Time-driven work between the old and the new instant happens in the SLA service.
        with self.runtime.work(now=now) as work:
            work.emit(c.CLOCK_ADVANCED, {"now": now.isoformat()})
        return Response(200, {"now": now.isoformat()})

    def post_reset(self, body: bytes) -> Response:
        now = self._load(_RESET_SCHEMA, body or b"{}")["now"]
        if not self.runtime.clock.simulated:
            return _errors(409, {"clock": [
                "only a Gridflow on the simulated clock can be reset (GRIDFLOW_CLOCK=simulated)"]})
        self.reset_others()
        self.runtime.reset()
        self.runtime.jurisdictions.clear()
        if now is not None:
            self.runtime.clock.set(now, allow_backwards=True)
        return Response(200, {"reset": True, "now": self.runtime.clock.now().isoformat()})

    def put_jurisdiction(self, body: bytes) -> Response:
        files = self._load(_JURISDICTION_UPLOAD_SCHEMA, body)["files"]
        try:
            version = self.runtime.jurisdictions.install(files)
        except JurisdictionError as exc:
            return _errors(400, exc.as_dicts())
        return Response(200, {"version": version})

    def get_jurisdiction(self, body: bytes) -> Response:
        version, j = self.runtime.jurisdictions.active()
        return Response(200, {"version": version, "name": j.name,
                              "categories": [x.code for x in j.categories]})

    def healthz(self, body: bytes) -> Response:
        return Response(200, {"ok": True, "service": c.INTAKE})

    def get_metrics(self, body: bytes) -> Response:
        payload, content_type = metrics.exposition()
        return Response(200, payload, content_type)
