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
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as WsgiResponse

from gridflow_common import contracts as c
from gridflow_common import metrics
from gridflow_common import reset as r
from gridflow_common.clock import ClockRefused
from gridflow_common.domain import access as a
from gridflow_common.domain.intake_batch import MAX_BATCH_BODY_BYTES, PHOTO_TYPES
from gridflow_common.domain.jurisdiction import DEFAULT_TIME_ZONE
from gridflow_common.domain.jurisdiction_files import JurisdictionError
from gridflow_common.jurisdictions import NoJurisdiction
from gridflow_common.logging import get_logger, mask_personal_numbers
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import answers as ans
from gridflow_intake import bodies
from gridflow_intake import handlers as h
from gridflow_intake import inbox as ib
from gridflow_intake import open311_answers as o311
from gridflow_intake import progress as pg
from gridflow_intake import schemas as s
from gridflow_intake.access import (
    SAFE_METHODS,
    Access,
    Caller,
    Forbidden,
    RateLimited,
    Unauthenticated,
    signin_url,
)
from gridflow_intake.assessment_api import (
    CSV_TYPE,
    XLSX_TYPE,
    AssessmentEndpoints,
    AssessmentQuerySchema,
    HotspotQuerySchema,
)
from gridflow_intake.batch import take_report
from gridflow_intake.batch_api import BatchAnswerSchema, BatchEndpoints, BatchSchema
from gridflow_intake.board_api import BoardEndpoints
from gridflow_intake.cases_api import CaseListEndpoints
from gridflow_intake.department_api import DepartmentEndpoints
from gridflow_intake.docs_api import DocsEndpoints
from gridflow_intake.identity import SIGNIN, SIGNIN_TTL, IdentityError
from gridflow_intake.links_api import LinkEndpoints, LinkTokenConverter
from gridflow_intake.open311_api import Open311Endpoints
from gridflow_intake.orders_api import OrderEndpoints
from gridflow_intake.peers import Peers, PeerUnavailable
from gridflow_intake.photos_api import PhotoEndpoints, PhotoSchema
from gridflow_intake.ratelimit import parse_limit
from gridflow_intake.routing_api import CaseRoutingSchema, RoutingEndpoints
from gridflow_intake.sensors_api import SensorAlertSchema, SensorAnswerSchema, SensorEndpoints
from gridflow_intake.sessions import AUDITS_ITSELF, SessionEndpoints
from gridflow_intake.wechat_api import WeChatEndpoints

log = get_logger(__name__)
# Built once: a marshmallow schema is reusable, and building one per request costs more than
# loading the body with it.
_CLOCK_SCHEMA = s.ClockSchema()
_EVALUATION_SCHEMA = s.EvaluationSchema()
_JURISDICTION_UPLOAD_SCHEMA = s.JurisdictionUploadSchema()
_REPORT_SCHEMA = s.ReportSchema()
_RESET_SCHEMA = s.ResetSchema()
_STATUS_UPDATE_SCHEMA = s.StatusUpdateSchema()
_VERIFICATION_SCHEMA = s.VerificationSchema()
_USER_CREATE_SCHEMA = s.UserCreateSchema()
_KEY_CREATE_SCHEMA = s.KeyCreateSchema()
_EMPTY_SCHEMA = s.EmptySchema()
_ROTATE_SCHEMA = s.RotateSchema()
_AUDIT_QUERY_SCHEMA = s.AuditQuerySchema()
_INBOX_QUERY_SCHEMA = s.InboxQuerySchema()


# Who may call a route at all (the endpoint then decides on the case, the channel, the unit):
OPEN = "open"  # no credential is asked: health, metrics, signing in, a reporter's own link
ANYONE = "anyone"  # a credential is optional and decides what is allowed (reports)
SIGNED_IN = "signed_in"  # a user or a department's or unit's credential, not a channel key
STAFF = "staff"  # a signed-in user
COMMAND = "command"  # the command center or an admin
ADMIN = "admin"  # an admin
# Any credential at all, a channel key's too: asking who one is (GET /api/v1/me) is the one
# thing every principal may do, and a client checking its key must not need another.
ANY_CREDENTIAL = "any_credential"
# A department's system: its signature (checked by the endpoint, which knows the department from
# the path) or a credential of a department or unit (or a department user); nobody else.
DEPARTMENT_SYSTEM = "department_system"
POLICIES = (OPEN, ANYONE, SIGNED_IN, STAFF, COMMAND, ADMIN, ANY_CREDENTIAL, DEPARTMENT_SYSTEM)
# The operators' doors, asked by probes and scrapers every few seconds: never rate limited.
UNLIMITED = ("healthz", "get_metrics")


@dataclass(frozen=True)
class Route:
    """One endpoint: what the OpenAPI document will be built from. ``body_limit`` is None for a
    route that reads no body; ``access`` is who may call it at all."""

    method: str
    path: str
    endpoint: str
    access: str
    body_limit: int | None = None
    # What the OpenAPI document says of it (gridflow_intake/openapi.py builds the document from
    # ROUTES): a one-line summary, the marshmallow schema of its JSON body and of its query, the
    # schema of its success answer, and the content types its body may come in.
    summary: str = ""
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    # A class, or an instance with many=True for an answer that is a list (Open311's).
    answer: type[Schema] | Schema | None = None
    content_types: tuple[str, ...] = ("application/json",)
    # The success statuses, the refusals beyond those its access, body and parameters imply
    # (openapi.error_statuses), and the content types its answer comes in.
    ok: tuple[int, ...] = (200,)
    errors: tuple[int, ...] = ()
    answer_types: tuple[str, ...] = ("application/json",)

    @property
    def admin(self) -> bool:
        return self.access == ADMIN


B = s.MAX_BODY_BYTES
# The answer types of a page and of a route that answers a browser with a page and a script
# with JSON (by its Accept header).
HTML = ("text/html",)
HTML_OR_JSON = ("text/html", "application/json")
# Open311 answers XML by default and JSON with a .json suffix (the spec's formats).
OPEN311_TYPES = ("text/xml", "application/json")
ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/api/v1/reports",
        "post_report",
        ANYONE,
        B,
        summary="Report a problem (报件): registered as a case, or joined to an open one nearby",
        body=s.ReportSchema,
        answer=ans.ReportAnswer,
        ok=(201, 200),
        errors=(422,),
    ),
    # A phone's reports after a day offline, one answer per item; photos for reports, read with
    # the rights of their case (gridflow_intake/batch_api.py, photos_api.py).
    Route(
        "POST",
        "/api/v1/reports/batch",
        "post_reports_batch",
        ANYONE,
        MAX_BATCH_BODY_BYTES,
        summary="Send up to 100 reports at once (a phone after a day offline), one answer each",
        body=BatchSchema,
        answer=BatchAnswerSchema,
    ),
    Route(
        "POST",
        "/api/v1/photos",
        "post_photo",
        ANY_CREDENTIAL,
        summary="Upload a photo (raw JPEG, PNG or WebP body) for a report to name",
        answer=PhotoSchema,
        content_types=PHOTO_TYPES,
        ok=(201,),
        errors=(400, 413, 415, 422),
    ),
    Route(
        "GET",
        "/api/v1/photos/<photo_id>",
        "get_photo",
        ANY_CREDENTIAL,
        summary="A photo, with the rights of reading its case (or its uploader's, unattached)",
        answer_types=PHOTO_TYPES,
        errors=(410,),
    ),
    # Finding cases and the board's summary, cut to the caller's scope (cases_api.py).
    Route(
        "GET",
        "/api/v1/cases",
        "get_cases",
        SIGNED_IN,
        summary="Find cases: filters, sort, cursor paging, totals by colour",
        query=ans.CaseListQuerySchema,
        answer=ans.CaseListAnswer,
    ),
    Route(
        "GET",
        "/api/v1/board/summary",
        "get_board_summary",
        SIGNED_IN,
        summary="The board's counts of open cases and its late list",
        query=ans.CaseFilterQuerySchema,
        answer=ans.BoardSummaryAnswer,
    ),
    Route(
        "GET",
        "/api/v1/cases/<case_id>",
        "get_case",
        SIGNED_IN,
        summary="A case with its timeline",
        answer=ans.CaseAnswer,
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/updates",
        "post_update",
        SIGNED_IN,
        B,
        summary="A department or unit says what it did with a case",
        body=s.StatusUpdateSchema,
        answer=ans.CaseStatusAnswer,
        ok=(202, 200),
        errors=(409, 422),
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/verification",
        "post_verify",
        STAFF,
        B,
        summary="Verify (核查) a case the department says is done",
        body=s.VerificationSchema,
        answer=ans.CaseStatusAnswer,
        errors=(409,),
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/evaluation",
        "post_evaluate",
        COMMAND,
        B,
        summary="Record the reporter's satisfaction (评价) with a closed case",
        body=s.EvaluationSchema,
        answer=ans.EvaluationAnswer,
        errors=(409,),
    ),
    # The command center's orders (指令); a leader's comment (gridflow_intake/orders_api.py).
    Route(
        "POST",
        "/api/v1/cases/<case_id>/orders",
        "post_order",
        STAFF,
        B,
        summary="Give an order (指令) on a case, or comment (点评) as a leader",
        body=s.OrderSchema,
        answer=ans.CaseAnswer,
        ok=(202,),
        errors=(409, 422),
    ),
    # Status back from a department's system (gridflow_intake/department_api.py).
    Route(
        "POST",
        "/api/v1/departments/<code>/updates",
        "post_department_update",
        DEPARTMENT_SYSTEM,
        B,
        summary="A department's system reports on a case (signed, or with its credential)",
        body=c.StatusMessageV1,
        answer=ans.DepartmentUpdateAnswer,
        ok=(202, 200),
        errors=(409, 422),
    ),
    # A unit's inbox (gridflow_intake/inbox.py): paged by cursor, long-polled with ?wait=.
    Route(
        "GET",
        "/api/v1/units/<code>/inbox",
        "get_inbox",
        SIGNED_IN,
        summary="A unit's inbox of cases sent to it, after a cursor, long-polled with wait",
        query=s.InboxQuerySchema,
        answer=ans.InboxAnswer,
    ),
    # Assessment (考核) and hotspots (热点) of the caller's scope (assessment_api.py).
    Route(
        "GET",
        "/api/v1/assessment",
        "get_assessment",
        STAFF,
        summary="Assessment (考核) figures of a period, as JSON, CSV or Excel",
        query=AssessmentQuerySchema,
        answer=ans.AssessmentAnswer,
        answer_types=("application/json", CSV_TYPE.split(";")[0], XLSX_TYPE),
    ),
    Route(
        "GET",
        "/api/v1/hotspots",
        "get_hotspots",
        STAFF,
        summary="Hotspots (热点): places with many open cases in the last hours",
        query=HotspotQuerySchema,
        answer=ans.HotspotsAnswer,
    ),
    Route(
        "GET",
        "/api/v1/admin/clock",
        "get_clock",
        COMMAND,
        summary="Gridflow's clock, and whether it is simulated",
        answer=ans.ClockAnswer,
    ),
    Route(
        "PUT",
        "/api/v1/admin/clock",
        "put_clock",
        ADMIN,
        B,
        summary="Move the simulated clock",
        body=s.ClockSchema,
        answer=ans.ClockAnswer,
        errors=(409,),
    ),
    Route(
        "POST",
        "/api/v1/admin/reset",
        "post_reset",
        ADMIN,
        B,
        summary="Empty every service (simulated clock only); the jurisdiction stays",
        body=s.ResetSchema,
        answer=ans.ResetAnswer,
        errors=(409,),
    ),
    Route(
        "PUT",
        "/api/v1/admin/jurisdiction",
        "put_jurisdiction",
        ADMIN,
        s.MAX_JURISDICTION_BYTES,
        summary="Install a jurisdiction (the city's CSV files) as the new version",
        body=s.JurisdictionUploadSchema,
        answer=ans.JurisdictionAnswer,
    ),
    Route(
        "GET",
        "/api/v1/admin/jurisdiction",
        "get_jurisdiction",
        COMMAND,
        summary="The jurisdiction in force",
        answer=ans.JurisdictionAnswer,
    ),
    Route(
        "GET",
        "/api/v1/admin/users",
        "get_users",
        ADMIN,
        summary="The users",
        answer=ans.UsersAnswer,
    ),
    Route(
        "POST",
        "/api/v1/admin/users",
        "post_user",
        ADMIN,
        B,
        summary="Create a user (with a password, or a one-time sign-in link)",
        body=s.UserCreateSchema,
        answer=ans.UserCreatedAnswer,
        ok=(201,),
        errors=(409, 422),
    ),
    Route(
        "POST",
        "/api/v1/admin/users/<username>/disable",
        "post_user_disable",
        ADMIN,
        B,
        summary="Disable a user: every credential of theirs stops working",
        body=s.EmptySchema,
        answer=ans.UserDisabledAnswer,
    ),
    Route(
        "POST",
        "/api/v1/admin/users/<username>/signin-link",
        "post_signin_link",
        ADMIN,
        B,
        summary="A new one-time sign-in link for a user (24 h)",
        body=s.EmptySchema,
        answer=ans.SigninLinkAnswer,
        ok=(201,),
    ),
    Route(
        "GET",
        "/api/v1/admin/keys",
        "get_keys",
        ADMIN,
        summary="Channel keys and department or unit credentials (never their secrets)",
        answer=ans.KeysAnswer,
    ),
    Route(
        "POST",
        "/api/v1/admin/keys",
        "post_key",
        ADMIN,
        B,
        summary="Issue a channel's key or a department's or unit's credential",
        body=s.KeyCreateSchema,
        answer=ans.KeyIssuedAnswer,
        ok=(201,),
        errors=(422,),
    ),
    Route(
        "DELETE",
        "/api/v1/admin/keys/<credential_id>",
        "delete_key",
        ADMIN,
        summary="Revoke a key",
        answer=ans.RevokedAnswer,
    ),
    Route(
        "POST",
        "/api/v1/admin/keys/<credential_id>/rotate",
        "post_key_rotate",
        ADMIN,
        B,
        summary="Rotate a key: a new secret, the old one working for a grace period",
        body=s.RotateSchema,
        answer=ans.KeyIssuedAnswer,
        ok=(201,),
    ),
    Route(
        "GET",
        "/api/v1/admin/audit",
        "get_audit",
        ADMIN,
        summary="The audit log, newest first, paged by id",
        query=s.AuditQuerySchema,
        answer=ans.AuditAnswer,
    ),
    # Signing in and out, and a user's own credentials (gridflow_intake/sessions.py).
    Route(
        "POST",
        "/api/v1/session",
        "post_session",
        OPEN,
        B,
        summary="Sign in with user name and password: starts a browser session (cookies)",
        body=s.SignInSchema,
        answer=ans.SessionAnswer,
        errors=(401, 429),
    ),
    Route(
        "DELETE",
        "/api/v1/session",
        "delete_session",
        STAFF,
        summary="Sign out (the session in the cookie)",
        answer=ans.SignedOutAnswer,
        errors=(400,),
    ),
    Route(
        "GET",
        "/api/v1/session/link",
        "get_session_link",
        OPEN,
        summary="Spend a one-time sign-in link: starts a session and sends the browser on",
        query=s.SignInLinkQuerySchema,
        answer=ans.SessionAnswer,
        ok=(303,),
        errors=(401,),
    ),
    Route(
        "GET",
        "/api/v1/me",
        "get_me",
        ANY_CREDENTIAL,
        summary="Who the credential in use stands for",
        answer=ans.MeAnswer,
    ),
    Route(
        "PUT",
        "/api/v1/me/password",
        "put_my_password",
        STAFF,
        B,
        summary="Set or change one's password; one's other sessions end",
        body=s.PasswordChangeSchema,
        answer=ans.PasswordSetAnswer,
        errors=(404,),
    ),
    Route(
        "POST",
        "/api/v1/me/tokens",
        "post_my_token",
        STAFF,
        B,
        summary="A bearer token for one's scripts",
        body=s.OwnTokenCreateSchema,
        answer=ans.OwnTokenAnswer,
        ok=(201,),
    ),
    Route(
        "GET",
        "/api/v1/me/tokens",
        "get_my_tokens",
        STAFF,
        summary="One's sessions and tokens (never a secret)",
        answer=ans.OwnTokensAnswer,
    ),
    Route(
        "DELETE",
        "/api/v1/me/tokens/<credential_id>",
        "delete_my_token",
        STAFF,
        summary="Revoke one of one's tokens or sessions",
        answer=ans.RevokedAnswer,
    ),
    # The reporter's link: the token in the path is the credential (gridflow_intake/progress.py).
    Route(
        "GET",
        "/api/v1/progress/<progress_token:token>",
        "get_progress",
        OPEN,
        summary="A reporter follows their case (the token is the credential)",
        answer=ans.ProgressAnswer,
        errors=(404, 429, 503),
    ),
    Route(
        "POST",
        "/api/v1/progress/<progress_token:token>/evaluation",
        "post_progress_evaluation",
        OPEN,
        B,
        summary="A reporter rates how their case was handled",
        body=s.EvaluationSchema,
        answer=ans.EvaluationAnswer,
        errors=(404, 409),
    ),
    # A signed action link from an e-mail: the token is the credential; GET shows, POST does
    # (gridflow_intake/links_api.py). No body is read: the link says everything.
    Route(
        "GET",
        "/api/v1/links/<link_token:token>",
        "get_link",
        OPEN,
        summary="What an e-mailed action link would do (a page, or JSON by Accept)",
        answer=ans.LinkAnswer,
        errors=(404, 409, 410),
        answer_types=HTML_OR_JSON,
    ),
    Route(
        "POST",
        "/api/v1/links/<link_token:token>",
        "post_link",
        OPEN,
        summary="Do what an e-mailed action link says (accept or decline a case)",
        answer=ans.LinkAnswer,
        ok=(200, 202),
        errors=(404, 409, 410),
        answer_types=HTML_OR_JSON,
    ),
    # The command center's board and case page (gridflow_intake/board_api.py): the pages and
    # their assets hold no data (every figure comes from the scoped API), so they are open.
    Route("GET", "/", "get_board_page", OPEN, summary="The board (page)", answer_types=HTML),
    Route(
        "GET",
        "/cases/<case_id>",
        "get_case_page",
        OPEN,
        summary="A case's page (its data comes from the API)",
        answer_types=HTML,
    ),
    Route(
        "GET",
        "/static/<path:path>",
        "get_static",
        OPEN,
        summary="The pages' scripts, styles and images",
        answer_types=("text/css", "text/javascript", "image/svg+xml"),
    ),
    # The board's live feed (server-sent events) and a case's place on the map: scoped.
    Route(
        "GET",
        "/api/v1/board/events",
        "get_board_events",
        SIGNED_IN,
        summary="The board's live feed (server-sent events; Last-Event-ID resumes)",
        errors=(400,),
        answer_types=("text/event-stream",),
    ),
    Route(
        "GET",
        "/api/v1/cases/<case_id>/place",
        "get_case_place",
        SIGNED_IN,
        summary="A case's area, its neighbours and its point, for the map",
        answer=ans.CasePlaceAnswer,
    ),
    # The notices sent for a case (notify's record, asked of notify): scoped as the case is.
    Route(
        "GET",
        "/api/v1/cases/<case_id>/notifications",
        "get_case_notifications",
        SIGNED_IN,
        summary="Who was told what about a case (notify's record)",
        answer=ans.NotificationsAnswer,
    ),
    # Why the case went where it went: the rule that fired and its version (routing_api.py).
    Route(
        "GET",
        "/api/v1/cases/<case_id>/routing",
        "get_case_routing",
        SIGNED_IN,
        summary="The case's routing decisions, explained (rule fired, rule version)",
        answer=CaseRoutingSchema,
    ),
    # Channels behind keys (docs/channels.md). Open311 GeoReport v2: reading is public, posting
    # needs the form's api_key (an open311 channel key; checked by the endpoint, which reads the
    # form itself). Paths without a format suffix answer XML, the spec's default.
    *(
        Route(
            "GET",
            f"/open311/v2/{name}{suffix}",
            endpoint,
            OPEN,
            summary=summary,
            answer=answer,
            content_types=(),
            answer_types=OPEN311_TYPES,
            errors=(400, 404),
        )
        for name, endpoint, summary, answer in (
            (
                "discovery",
                "get_open311_discovery",
                "Open311 GeoReport v2 discovery",
                o311.Open311Discovery,
            ),
            (
                "services",
                "get_open311_services",
                "Open311 services: the city's categories",
                o311.SERVICES,
            ),
            (
                "requests",
                "get_open311_requests",
                "Open311 service requests, filtered",
                o311.REQUESTS,
            ),
        )
        for suffix in ("", ".<fmt>")
    ),
    *(
        Route(
            "POST",
            f"/open311/v2/requests{suffix}",
            "post_open311_request",
            OPEN,
            summary="Open311: post a service request (form-encoded, api_key required)",
            answer=o311.CREATED,
            content_types=("application/x-www-form-urlencoded",),
            answer_types=OPEN311_TYPES,
            ok=(200, 201),
            errors=(400, 403, 404, 415, 429),
        )
        for suffix in ("", ".<fmt>")
    ),
    Route(
        "GET",
        "/open311/v2/services/<code>",
        "get_open311_service",
        OPEN,
        summary="Open311 service definition ({code}.xml or {code}.json)",
        answer=o311.Open311ServiceDefinition,
        content_types=(),
        answer_types=OPEN311_TYPES,
    ),
    Route(
        "GET",
        "/open311/v2/requests/<request_id>",
        "get_open311_request",
        OPEN,
        summary="Open311: one service request ({id}.xml or {id}.json)",
        answer=o311.REQUESTS,
        content_types=(),
        answer_types=OPEN311_TYPES,
    ),
    Route(
        "GET",
        "/open311/v2/tokens/<token>",
        "get_open311_token",
        OPEN,
        summary="Open311: the service request a token became",
        answer=o311.CREATED,
        content_types=(),
        answer_types=OPEN311_TYPES,
    ),
    # The WeChat official account's callback: the platform's signature is the credential.
    Route(
        "GET",
        "/wechat/callback",
        "get_wechat_callback",
        OPEN,
        summary="WeChat callback URL check (echostr)",
        content_types=(),
        answer_types=("text/plain",),
        errors=(400, 401, 403, 404),
    ),
    Route(
        "POST",
        "/wechat/callback",
        "post_wechat_callback",
        OPEN,
        summary="WeChat message callback: a resident's text or location becomes a report",
        content_types=("text/xml",),
        answer_types=("application/xml", "text/plain"),
        errors=(400, 401, 403, 404, 413, 415, 429),
    ),
    # Sensors: a device's key (a sensor channel key naming its device).
    Route(
        "POST",
        "/api/v1/sensors/alerts",
        "post_sensor_alert",
        ANYONE,
        B,
        summary="A sensor's alert, merged per device while its case is open",
        body=SensorAlertSchema,
        answer=SensorAnswerSchema,
        ok=(201, 200),
        errors=(422,),
    ),
    Route("GET", "/healthz", "healthz", OPEN, summary="Is intake up", answer=ans.HealthAnswer),
    Route(
        "GET",
        "/metrics",
        "get_metrics",
        OPEN,
        summary="Prometheus metrics",
        answer_types=("text/plain",),
    ),
    # This API described (gridflow_intake/openapi.py), and a page to read it (web/docs.html).
    Route(
        "GET",
        "/api/v1/openapi.json",
        "get_openapi",
        OPEN,
        summary="This document: OpenAPI 3.1",
    ),
    Route(
        "GET",
        "/api/v1/docs",
        "get_docs_page",
        OPEN,
        summary="The page to read it",
        answer_types=HTML,
    ),
)

# strict_slashes and merge_slashes off: a redirect is not an answer this API gives; a path
# either names an endpoint or is a 404.
URL_MAP = Map(
    [Rule(route.path, methods=[route.method], endpoint=route) for route in ROUTES],
    strict_slashes=False,
    merge_slashes=False,
    converters={"progress_token": pg.TokenConverter, "link_token": LinkTokenConverter},
)
_URLS = URL_MAP.bind("gridflow")


class _OnceInAWhile:
    """A warning logged at most once every ``seconds``: a flood of requests during an outage
    must not become a flood of log lines."""

    def __init__(self, event: str, seconds: float = 10.0):
        self.event, self.seconds, self.last = event, seconds, -seconds
        self.missed = 0

    def warn(self) -> None:
        now = time.monotonic()
        if now - self.last < self.seconds:
            self.missed += 1
            return
        log.warning(self.event, refused_since_last=self.missed)
        self.last, self.missed = now, 0


_DB_OUTAGE_LOG = _OnceInAWhile("api_database_unavailable")


@dataclass
class Answer:
    status: int
    body: Any
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # Set-Cookie headers, one per cookie (a dict cannot hold two): each the keyword arguments of
    # werkzeug's Response.set_cookie.
    cookies: list[dict[str, Any]] = field(default_factory=list)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")

    @property
    def streamed(self) -> bool:
        """A body written piece by piece as it is made (the board's live feed)."""
        return isinstance(self.body, Iterator)

    def response(self) -> WsgiResponse:
        response = WsgiResponse(
            self.body if self.streamed else self.encoded(),
            status=self.status,
            content_type=self.content_type,
            headers=self.headers,
            direct_passthrough=self.streamed,
        )
        for cookie in self.cookies:
            response.set_cookie(**cookie)
        return response


def _errors(status: int, errors: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"errors": errors}, headers=headers or {})


def _as_utc(instant: dt.datetime) -> dt.datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.timezone.utc)


@dataclass
class Call:
    """One request as an endpoint sees it: its body (read within the route's limit), who made
    it, and the request itself (headers, query, cookies)."""

    body: bytes
    caller: Caller
    request: Request
    route: Route | None = None
    # Set when the endpoint wrote the request's audit line inside its own unit of work.
    audited: bool = False

    @property
    def principal(self) -> a.Principal | None:
        return self.caller.principal


def _unauthenticated(message: str) -> Answer:
    return _errors(401, {"authorization": [message]}, headers={"WWW-Authenticate": "Bearer"})


def _forbidden(message: str, field_name: str = "authorization") -> Answer:
    return _errors(403, {field_name: [message]})


def _audited(route: Route, caller: Caller, status: int) -> bool:
    """What the audit log keeps: every admin call, every refusal of a credential or role, every
    use of a key, and every write by someone known (updates, verifications, orders)."""
    principal = caller.principal
    if route.endpoint in AUDITS_ITSELF:
        return False
    return (
        route.access == ADMIN
        or status in (401, 403)
        or (principal is not None and (not principal.is_user or route.method not in SAFE_METHODS))
    )


def _no_case(case_id: str) -> h.Rejected:
    """The answer for a case that does not exist and for one the caller may not see alike, so
    that nobody learns which case ids exist by asking."""
    return h.Rejected(404, {"case_id": [f"no case {case_id!r}"]})


class IntakeApi(
    Open311Endpoints,
    WeChatEndpoints,
    SensorEndpoints,
    SessionEndpoints,
    LinkEndpoints,
    DepartmentEndpoints,
    AssessmentEndpoints,
    CaseListEndpoints,
    BoardEndpoints,
    OrderEndpoints,
    DocsEndpoints,
    RoutingEndpoints,
    BatchEndpoints,
    PhotoEndpoints,
):
    def __init__(
        self, runtime: ServiceRuntime, peers: Peers, inbox_waiters: ib.Waiters | None = None
    ):
        self.runtime = runtime
        self.peers = peers
        self.access = Access.for_runtime(runtime)
        # One per process, shared by every request (the embedded default's when none is given).
        self.inbox_waiters = inbox_waiters or runtime.extras.setdefault(
            "inbox_waiters", ib.Waiters(ib.EMBEDDED_WAITERS)
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
        # Until the credential is read: anonymous, from the request's address (a refusal at the
        # door is audited with it).
        caller = Caller(None, self.access.address(request))
        call: Call | None = None
        try:
            route, values = _URLS.match(request.path, method=request.method)
            try:
                caller = self._caller(route, request)
            except Unauthenticated:
                self.access.limit_failed_credential(self.access.address(request))
                raise
            # A signed request is limited once its signature says whose it is (the endpoint).
            signed = route.access == DEPARTMENT_SYSTEM and caller.principal is None
            if route.endpoint not in UNLIMITED and not signed:
                self.access.limit(caller)
            call = Call(b"", caller, request, route)
            answer = self._dispatch(route, values, call)
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
        except Unauthenticated as exc:
            answer = _unauthenticated(str(exc))
        except RateLimited as exc:
            answer = _errors(
                429, {"rate_limit": [str(exc)]}, headers={"Retry-After": str(exc.retry_after)}
            )
        except Forbidden as exc:
            caller = exc.caller or caller
            answer = _forbidden(str(exc), exc.field)
        except h.Rejected as exc:
            answer = _errors(exc.status, exc.errors)
        except IdentityError as exc:
            answer = _errors(exc.status, {exc.field: [str(exc)]})
        except NoJurisdiction as exc:
            answer = _errors(503, {"jurisdiction": [str(exc)]})
        except PeerUnavailable as exc:
            answer = _errors(503, {exc.service: [exc.why]})
        except OperationalError:
            # The database is out of reach (down, restarting, refusing connections): nothing
            # was written, and trying again later is the answer, not an internal error.
            _DB_OUTAGE_LOG.warn()
            answer = _errors(
                503,
                {"_server": ["the database cannot be reached; nothing was changed; try again"]},
                headers={"Retry-After": "5"},
            )
        except Exception:
            log.exception("request_failed", method=request.method, path=request.path)
            answer = _errors(500, {"_server": ["internal error; nothing was changed"]})
        if call is not None:
            # The endpoint may have learnt who is calling (a department's signature).
            caller = call.caller
        already = call is not None and call.audited and answer.status < 400
        if route is not None and not already and _audited(route, caller, answer.status):
            self.access.audit(
                caller,
                route.endpoint,
                "ok" if answer.status < 400 else "refused",
                # A path may hold a token (a progress or sign-in link): cut to its prefix.
                target=mask_personal_numbers(request.path),
                method=request.method,
                status=answer.status,
            )
        metrics.HTTP_REQUESTS.labels(
            route.endpoint if route else "unmatched", str(answer.status)
        ).inc()
        return answer

    def _caller(self, route: Route, request: Request) -> Caller:
        """Who is calling, and whether they may call this route at all."""
        if route.access == OPEN:
            return Caller(None, self.access.address(request))
        caller = self.access.authenticate(request)
        principal = caller.principal
        if route.access == ANYONE:
            return caller
        if route.access == DEPARTMENT_SYSTEM:
            if (
                principal is None
                or principal.kind == a.HOLDER_KEY
                or principal.has_role(a.DEPARTMENT)
            ):
                return caller
            raise Forbidden(
                "only a department's or unit's system posts here (its credential or its signature)",
                caller=caller,
            )
        if principal is None:
            raise Unauthenticated(
                "sign in, or give 'Authorization: Bearer TOKEN' (a user's token or your "
                "department's credential)"
            )
        if route.access == SIGNED_IN and principal.kind == a.CHANNEL_KEY:
            raise Forbidden("a channel's key may only send reports", caller=caller)
        if route.access == STAFF and not principal.is_user:
            raise Forbidden("this needs a signed-in user", caller=caller)
        if route.access == COMMAND and not principal.has_role(a.ADMIN, a.COMMAND_CENTER):
            raise Forbidden("this needs the command center's or an admin's role", caller=caller)
        if route.access == ADMIN and not principal.has_role(a.ADMIN):
            raise Forbidden("this needs the admin role", caller=caller)
        return caller

    def _dispatch(self, route: Route, values: Mapping[str, Any], call: Call) -> Answer:
        for name, value in values.items():
            problems = bodies.untakeable_values({name: value})
            if problems:
                raise h.Rejected(400, problems)
        request = call.request
        if route.body_limit is not None and bodies.has_body(request):
            # Neither check reads a byte of the body: a refused one is never taken in.
            bodies.check_content_type(request)
            call.body = bodies.read_body(request, route.body_limit)
        return getattr(self, route.endpoint)(call, **values)

    def _audit_within(self, work: Any, call: Call, status: int) -> None:
        """The request's audit line, written in its own unit of work when it succeeds: the line
        and the write it records commit together, and the hot path pays no commit of its own.
        (A refusal raised later rolls both back; answer() then records the refusal.)"""
        route = call.route
        if route is None or not _audited(route, call.caller, status):
            return
        self.access.audit(
            call.caller,
            route.endpoint,
            "ok",
            target=mask_personal_numbers(call.request.path),
            conn=work.db,
            method=route.method,
            status=status,
        )
        call.audited = True

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

    def _jurisdiction(self, version: int | None = None) -> Any:
        if version is None:
            return self.runtime.jurisdictions.active()[1]
        return self.runtime.jurisdictions.get(version)

    # -- cases -------------------------------------------------------------------------------

    def post_report(self, call: Call) -> Answer:
        report = self._load(_REPORT_SCHEMA, call.body)
        allowed, status, why = a.may_report(call.principal, report["channel"])
        if not allowed:
            if status == 401:
                raise Unauthenticated(why)
            raise Forbidden(why, field="channel")
        if call.principal is None:
            self.access.limit_public_report(call.caller)
        for attempt in (1, 2):
            token, token_hash = pg.new_progress_token()
            try:
                with self.runtime.work() as work:
                    credential_id = call.principal.credential_id if call.principal else None
                    status, answer = take_report(work, report, credential_id, token_hash)
                    self._audit_within(work, call, status)
                break
            except IntegrityError:
                # Two copies of one (channel, external_id) raced; the loser answers as a resend.
                if attempt == 2:
                    raise
        if status == 201:
            metrics.CASES_REGISTERED.labels(report["channel"]).inc()
        return Answer(status, pg.link_in_answer(answer, call.request.host_url, token))

    def _readable_case(self, work: Any, call: Call, case_id: str) -> tuple[a.CaseFacts, Any]:
        """The case's access facts and its jurisdiction, when the caller may see the case; else
        the same 404 as for a case that does not exist."""
        principal = call.principal
        assert principal is not None
        row = h.case_access(work, case_id)
        if row is None:
            raise _no_case(case_id)
        facts = a.CaseFacts(row.area_code, row.holder, row.lead, tuple(row.assisting or ()))
        j = work.jurisdiction(row.jurisdiction_version)
        if not a.may_read_case(principal, facts, j):
            raise _no_case(case_id)
        return facts, j

    def get_case(self, call: Call, case_id: str) -> Answer:
        principal = call.principal
        assert principal is not None
        with self.runtime.work() as work:
            facts, j = self._readable_case(work, call, case_id)
            reveal = a.sees_reporter(principal, facts, j)
            view = h.case_view(work, case_id, reveal_reporters=reveal)
            # A key's read is audited; in this unit of work, not a transaction of its own.
            self._audit_within(work, call, 200)
            return Answer(200, view)

    def post_update(self, call: Call, case_id: str) -> Answer:
        update = self._load(_STATUS_UPDATE_SCHEMA, call.body)
        principal = call.principal
        assert principal is not None
        j = self._jurisdiction()
        sender = update.get("sender") or a.default_sender(principal, j)
        if sender is None:
            raise h.Rejected(400, {"from": ["name the department or unit you answer for"]})
        if not a.speaks_for(principal, sender, j):
            raise Forbidden(f"your credential does not answer for {sender!r}", field="from")
        update["sender"] = sender
        with self.runtime.work() as work:
            # Routing is asked only when intake's view disagrees with the sender (defect 9):
            # the department may hear of a case before intake's view does.
            try:
                status, answer = h.report_status(
                    work, case_id, update, holder_of=self.peers.current_assignment
                )
                self._audit_within(work, call, status)
                return Answer(status, answer)
            except h.Rejected as exc:
                # Not naming who holds a case to a caller who may not see it.
                if exc.status == 409 and "from" in exc.errors:
                    self._readable_case(work, call, case_id)
                if exc.status == 404:
                    raise _no_case(case_id) from None
                raise

    def post_verify(self, call: Call, case_id: str) -> Answer:
        verification = self._load(_VERIFICATION_SCHEMA, call.body)
        principal = call.principal
        assert principal is not None
        if not principal.has_role(a.ADMIN, a.COMMAND_CENTER, a.COMMUNITY, a.GRID_WORKER):
            raise Forbidden(
                "verification is the command center's, the community's or the grid worker's"
            )
        with self.runtime.work() as work:
            facts, j = self._readable_case(work, call, case_id)
            if not a.may_verify(principal, facts, j):
                raise _no_case(case_id)
            status, answer = h.verify(work, case_id, verification)
            self._audit_within(work, call, status)
            return Answer(status, answer)

    def post_evaluate(self, call: Call, case_id: str) -> Answer:
        evaluation = self._load(_EVALUATION_SCHEMA, call.body)
        with self.runtime.work() as work:
            self._readable_case(work, call, case_id)
            status, answer = h.evaluate(work, case_id, evaluation)
            self._audit_within(work, call, status)
            return Answer(status, answer)

    def get_inbox(self, call: Call, code: str) -> Answer:
        query = self._load_query(_INBOX_QUERY_SCHEMA, call.request)
        principal = call.principal
        assert principal is not None
        whole_department = ib.owner_of(principal, code, self._jurisdiction())
        page, turned_away = ib.read(
            self.runtime,
            code,
            query,
            whole_department=whole_department,
            waiters=self.inbox_waiters,
        )
        headers = {"Retry-After": str(ib.RETRY_AFTER_SECONDS)} if turned_away else {}
        return Answer(200, {"code": code, **page}, headers=headers)

    # -- the reporter's progress link -----------------------------------------------------------

    def get_progress(self, call: Call, token: str) -> Answer:
        with self.runtime.work() as work:
            return Answer(200, pg.progress_view(work, token), headers=dict(pg.PRIVATE_HEADERS))

    def post_progress_evaluation(self, call: Call, token: str) -> Answer:
        evaluation = self._load(_EVALUATION_SCHEMA, call.body)
        with self.runtime.work() as work:
            status, answer = pg.evaluate(work, token, evaluation)
        return Answer(status, answer, headers=dict(pg.PRIVATE_HEADERS))

    # -- administration ------------------------------------------------------------------------

    def get_clock(self, call: Call) -> Answer:
        return Answer(
            200,
            {
                "now": self._local(self.runtime.clock.now()),
                "simulated": self.runtime.clock.simulated,
            },
        )

    def put_clock(self, call: Call) -> Answer:
        now = self._load(_CLOCK_SCHEMA, call.body)["now"]
        try:
            self.runtime.clock.set(now)
        except ClockRefused as exc:
            return _errors(409, {"now": [str(exc)]})
        # Time-driven work between the old and the new instant happens in the SLA service.
        with self.runtime.work(now=now) as work:
            work.emit(c.CLOCK_ADVANCED, {"now": now.isoformat()})
        return Answer(200, {"now": self._local(now)})

    def post_reset(self, call: Call) -> Answer:
        """All or nothing (see ``gridflow_common.reset``): every service, intake included, first
        says it can take part, else nothing is emptied; the jurisdiction stays in force."""
        now = self._load(_RESET_SCHEMA, call.body or b"{}")["now"]
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

    def put_jurisdiction(self, call: Call) -> Answer:
        files = self._load(_JURISDICTION_UPLOAD_SCHEMA, call.body)["files"]
        try:
            version = self.runtime.jurisdictions.install(files)
        except JurisdictionError as exc:
            return _errors(400, exc.as_dicts())
        return Answer(200, self._jurisdiction_summary(version))

    def get_jurisdiction(self, call: Call) -> Answer:
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

    # -- users, keys and the audit log ------------------------------------------------------------

    def get_users(self, call: Call) -> Answer:
        return Answer(200, {"users": self.access.store.users()})

    def post_user(self, call: Call) -> Answer:
        data = self._load(_USER_CREATE_SCHEMA, call.body)
        user = self.access.store.create_user(
            self._jurisdiction(),
            data["username"],
            data["role"],
            scope=data["scope"],
            display_name=data["display_name"],
            password=data["password"],
        )
        answer: dict[str, Any] = {"user": user}
        if data["password"] is None:
            answer["signin_link"] = self._signin_link(call, user["user_id"], user["username"])
        return Answer(201, answer)

    def post_user_disable(self, call: Call, username: str) -> Answer:
        self._load(_EMPTY_SCHEMA, call.body or b"{}")
        if not self.access.store.disable_user(username):
            raise h.Rejected(404, {"username": [f"no user {username!r}"]})
        return Answer(200, {"username": username, "disabled": True})

    def post_signin_link(self, call: Call, username: str) -> Answer:
        self._load(_EMPTY_SCHEMA, call.body or b"{}")
        user = self.access.store.user(username)
        if user is None or user["disabled_at"] is not None:
            raise h.Rejected(404, {"username": [f"no user {username!r} who may sign in"]})
        return Answer(201, {"signin_link": self._signin_link(call, user["user_id"], username)})

    def _signin_link(self, call: Call, user_id: str, username: str) -> str:
        """A one-time sign-in link (24 h): how a new user signs in first and sets a password."""
        _, token = self.access.store.issue(
            SIGNIN, label=f"sign-in link for {username}", user_id=user_id, ttl=SIGNIN_TTL
        )
        return signin_url(call.request.host_url, token)

    def get_keys(self, call: Call) -> Answer:
        keys = self.access.store.credentials(kinds=(a.CHANNEL_KEY, a.HOLDER_KEY))
        return Answer(200, {"keys": keys})

    def post_key(self, call: Call) -> Answer:
        data = self._load(_KEY_CREATE_SCHEMA, call.body)
        if data["holder"] is not None:
            j = self._jurisdiction()
            if j.department(data["holder"]) is None and j.unit(data["holder"]) is None:
                raise h.Rejected(
                    422,
                    {"holder": [f"no department or unit {data['holder']!r} in the jurisdiction"]},
                )
        if data["device_place"] is not None:
            try:
                h.resolve_location(self._jurisdiction(), data["device_place"])
            except h.Rejected as exc:
                raise h.Rejected(
                    422, {f"device_place.{k}".rstrip("."): v for k, v in exc.errors.items()}
                ) from None
        if data["rate_limit"] is not None:
            try:
                parse_limit(data["rate_limit"])
            except ValueError as exc:
                raise h.Rejected(400, {"rate_limit": [str(exc)]}) from None
        kind = a.CHANNEL_KEY if data["channel"] else a.HOLDER_KEY
        subject = data["channel"] or data["holder"]
        days = data["expires_in_days"]
        record, token = self.access.store.issue(
            kind,
            label=data["label"] or f"{subject}",
            channel=data["channel"],
            holder=data["holder"],
            ttl=dt.timedelta(days=days) if days else None,
            rate_limit=data["rate_limit"],
            device=data["device"],
            device_place=data["device_place"],
        )
        return Answer(201, {"key": record, "token": token})

    def delete_key(self, call: Call, credential_id: str) -> Answer:
        if not self.access.store.revoke(credential_id):
            raise h.Rejected(404, {"credential_id": [f"no live key {credential_id!r}"]})
        return Answer(200, {"credential_id": credential_id, "revoked": True})

    def post_key_rotate(self, call: Call, credential_id: str) -> Answer:
        grace = self._load(_ROTATE_SCHEMA, call.body or b"{}")["grace_hours"]
        rotated = self.access.store.rotate(credential_id, dt.timedelta(hours=grace))
        if rotated is None:
            raise h.Rejected(404, {"credential_id": [f"no live key {credential_id!r}"]})
        record, token = rotated
        return Answer(201, {"key": record, "token": token, "replaces": credential_id})

    def get_audit(self, call: Call) -> Answer:
        query = self._load_query(_AUDIT_QUERY_SCHEMA, call.request)
        entries = self.access.store.audit_entries(
            actor=query["actor"],
            action=query["action"],
            since=query["since"],
            before_id=query["before"],
            limit=query["limit"],
        )
        return Answer(
            200,
            {
                "entries": [{**e, "at": self._local(e["at"])} for e in entries],
                "next_before": entries[-1]["id"] if len(entries) == query["limit"] else None,
            },
        )

    def _load_query(self, schema: Schema, request: Request) -> dict:
        args = {k: request.args.getlist(k) for k in request.args}
        repeated = sorted(k for k, v in args.items() if len(v) > 1)
        if repeated:
            raise h.Rejected(400, {k: ["give this parameter once"] for k in repeated})
        data = {k: v[0] for k, v in args.items()}
        problems = bodies.untakeable_values(data)
        if problems:
            raise h.Rejected(400, problems)
        try:
            return schema.load(data)
        except ValidationError as exc:
            raise h.Rejected(400, s.flatten_errors(exc.messages)) from None

    def healthz(self, call: Call) -> Answer:
        return Answer(200, {"ok": True, "service": c.INTAKE})

    def get_metrics(self, call: Call) -> Answer:
        payload, content_type = metrics.exposition()
        return Answer(200, payload, content_type)
