"""The shapes of the API's success answers, as marshmallow schemas for the OpenAPI document
(``openapi.py``; a ``Route``'s ``answer``). They describe; the endpoints build their answers as
dicts. Each is open (``unknown = INCLUDE``): an answer may gain a field without breaking a
client, and the document says so (additionalProperties is not closed).

Also the query of ``GET /api/v1/cases`` and ``GET /api/v1/board/summary``, which
``case_search.parse_query`` reads by hand (its values are checked against the city's data):
the schemas here say what it takes.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from gridflow_common.domain import vocabulary as v
from gridflow_intake import case_search as cs

_Str = fields.String
_Int = fields.Integer


def _opt_str() -> fields.String:
    return fields.String(allow_none=True)


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class _Object(fields.Dict):
    """A JSON object whose fields are not spelled out here."""


# -- operations ---------------------------------------------------------------------------------


class HealthAnswer(_Open):
    ok = fields.Boolean(required=True)
    service = _Str(required=True)


class ClockAnswer(_Open):
    now = _Str(required=True, metadata={"format": "date-time"})
    simulated = fields.Boolean()


class ResetAnswer(_Open):
    reset = fields.Boolean(required=True)
    reset_id = _Str(required=True)
    now = _Str(required=True, metadata={"format": "date-time"})


class JurisdictionAnswer(_Open):
    version = _Int(required=True)
    name = _Str(required=True)
    time_zone = _Str(required=True)
    loaded_at = _opt_str()
    categories = fields.List(_Str(), required=True)


# -- reports and cases --------------------------------------------------------------------------


class ReportAnswer(_Open):
    case_id = _Str(required=True)
    outcome = _Str(
        required=True,
        metadata={"enum": [v.OUTCOME_REGISTERED, v.OUTCOME_JOINED, v.OUTCOME_RESUBMISSION]},
    )
    progress_url = _Str(
        allow_none=True,
        metadata={
            "description": "The reporter's link to follow the case; null for a resubmission "
            "(the link came with the first answer), with progress_note saying so."
        },
    )
    progress_note = _Str(metadata={"description": "Why a resubmission has no link."})


class CaseStatusAnswer(_Open):
    case_id = _Str(required=True)
    status = _Str(required=True)


class DepartmentUpdateAnswer(_Open):
    """A department's status message, as taken: the word recognised (the case's status after
    it), or kept on the timeline as a word nobody mapped (202, ``recognised`` false, ``status``
    null, the case's status unchanged in ``case_status``)."""

    case_id = _Str(required=True)
    status = _Str(
        required=True,
        allow_none=True,
        metadata={"description": "The status taken; null when the word was not recognised."},
    )
    recognised = fields.Boolean(required=True)
    word = _Str(metadata={"description": "The word as the department sent it."})
    unit = _Str(metadata={"description": "The unit it was taken from."})
    taken_as = _Str(metadata={"description": "The status a word of the city's map stands for."})
    case_status = _opt_str()
    message = _Str(metadata={"description": "What happened to a word not recognised."})


class EvaluationAnswer(_Open):
    case_id = _Str(required=True)
    satisfaction = _Int(required=True)


class CaseAnswer(_Open):
    """A case as GET /api/v1/cases/{case_id} shows it (its reporters masked unless the caller may
    see them)."""

    case_id = _Str(required=True)
    status = _Str(required=True)
    category = _opt_str()
    timeline = fields.List(_Object())


class CaseListAnswer(_Open):
    items = fields.List(_Object(), required=True)
    totals = _Object(required=True)
    next = fields.String(
        allow_none=True, required=True, metadata={"description": "The cursor of the next page."}
    )


class CountAnswer(_Open):
    code = _opt_str()
    name = _opt_str()
    count = _Int(required=True)


class BoardSummaryAnswer(_Open):
    now = _Str(required=True)
    open = _Int(required=True)
    by_colour = fields.Dict(keys=_Str(), values=_Int(), required=True)
    by_tier = fields.Dict(keys=_Str(), values=_Int(), required=True)
    by_department = fields.List(fields.Nested(CountAnswer), required=True)
    by_street = fields.List(fields.Nested(CountAnswer), required=True)
    late = fields.List(_Object(), required=True)


class AreaAnswer(_Open):
    code = _Str(required=True)
    name = _Str()
    level = _Str()
    rings = fields.List(fields.List(fields.List(fields.List(fields.Float()))))


class PointAnswer(_Open):
    lat = fields.Float(required=True)
    lon = fields.Float(required=True)


class CasePlaceAnswer(_Open):
    case_id = _Str(required=True)
    area = fields.Nested(AreaAnswer, allow_none=True, required=True)
    neighbours = fields.List(fields.Nested(AreaAnswer), required=True)
    point = fields.Nested(PointAnswer, allow_none=True, required=True)
    bbox = fields.List(fields.Float(), allow_none=True, required=True)


class NotificationsAnswer(_Open):
    case_id = _Str(required=True)
    items = fields.List(_Object(), required=True)
    more = fields.Boolean(required=True)


class InboxAnswer(_Open):
    code = _Str(required=True)
    items = fields.List(_Object(), required=True)


class AssessmentAnswer(_Open):
    by = _Str(required=True)
    from_ = _Str(data_key="from", required=True)
    to = _Str(required=True)
    weights = _Object()
    rows = fields.List(_Object(), required=True)


class HotspotsAnswer(_Open):
    items = fields.List(_Object(), required=True)
    hours = _Int(required=True)


class ProgressAnswer(_Open):
    case_id = _Str(required=True)
    status = _Str(required=True)
    status_name = _Str()


class LinkAnswer(_Open):
    case_id = _Str(required=True)


# -- users, keys, the audit log, sessions ---------------------------------------------------------


class UserAnswer(_Open):
    user_id = _Str(required=True)
    username = _Str(required=True)
    display_name = _opt_str()
    role = _Str(required=True)
    scope = _opt_str()
    has_password = fields.Boolean()
    created_at = _Str()
    disabled_at = _opt_str()


class UsersAnswer(_Open):
    users = fields.List(fields.Nested(UserAnswer), required=True)


class UserCreatedAnswer(_Open):
    user = fields.Nested(UserAnswer, required=True)
    signin_link = _Str(metadata={"description": "Given when no password was set."})


class UserDisabledAnswer(_Open):
    username = _Str(required=True)
    disabled = fields.Boolean(required=True)


class SigninLinkAnswer(_Open):
    signin_link = _Str(required=True)


class CredentialAnswer(_Open):
    """A credential as listed: never its secret."""

    credential_id = _Str(required=True)
    kind = _Str(required=True)
    label = _opt_str()
    user_id = _opt_str()
    channel = _opt_str()
    holder = _opt_str()
    rate_limit = _opt_str()
    created_at = _opt_str()
    expires_at = _opt_str()
    revoked_at = _opt_str()


class KeysAnswer(_Open):
    keys = fields.List(fields.Nested(CredentialAnswer), required=True)


class KeyIssuedAnswer(_Open):
    key = fields.Nested(CredentialAnswer, required=True)
    token = _Str(required=True, metadata={"description": "The secret: shown this once."})
    replaces = _Str(metadata={"description": "The key a rotation replaces."})


class RevokedAnswer(_Open):
    credential_id = _Str(required=True)
    revoked = fields.Boolean(required=True)


class AuditAnswer(_Open):
    entries = fields.List(_Object(), required=True)
    next_before = fields.Integer(allow_none=True, required=True)


class SessionAnswer(_Open):
    user = fields.Nested(UserAnswer, required=True)
    csrf_token = _Str(required=True)
    expires_at = _opt_str()


class SignedOutAnswer(_Open):
    signed_out = fields.Boolean(required=True)
    credential_id = _Str(required=True)


class MeAnswer(_Open):
    kind = _Str(required=True)
    name = _Str(required=True)
    role = _opt_str()
    scope = _opt_str()
    channel = _opt_str()
    credential_id = _opt_str()
    credential_kind = _Str(required=True)
    expires_at = _opt_str()


class PasswordSetAnswer(_Open):
    password_set = fields.Boolean(required=True)
    sessions_ended = _Int(required=True)


class OwnTokenAnswer(_Open):
    token = _Str(required=True, metadata={"description": "The secret: shown this once."})
    credential = fields.Nested(CredentialAnswer, required=True)


class OwnTokensAnswer(_Open):
    credentials = fields.List(_Object(), required=True)


# -- the case list's query ----------------------------------------------------------------------


def _multi(what: str, choices: tuple[str, ...] | None = None) -> fields.List:
    """A filter's values; ``choices`` when the values are Gridflow's own words (the others are
    the city's codes, known only to its jurisdiction)."""
    item = validate.OneOf(choices) if choices else validate.Length(1, 100)
    return fields.List(
        _Str(validate=item),
        validate=validate.Length(1, cs.MAX_VALUES),
        metadata={"description": f"{what}; repeated or comma-separated (any of them)."},
    )


class CaseFilterQuerySchema(Schema):
    """The filters of GET /api/v1/cases and GET /api/v1/board/summary (case_search.parse_query
    reads them; an unknown parameter or value is refused, naming it)."""

    status = _multi(cs._WHAT["status"], (cs.OPEN, *v.CASE_STATUSES))
    colour = _multi(cs._WHAT["colour"], (*v.COLOURS, cs.NO_COLOUR))
    tier = _multi(cs._WHAT["tier"], v.TIERS)
    department = _multi(cs._WHAT["department"])
    unit = _multi(cs._WHAT["unit"])
    street = _multi(cs._WHAT["street"])
    community = _multi(cs._WHAT["community"])
    grid = _multi(cs._WHAT["grid"])
    category = _multi(cs._WHAT["category"])
    channel = _multi(cs._WHAT["channel"], v.CHANNELS)
    registered_from = _Str(
        metadata={"description": "A date (YYYY-MM-DD, the city's day) or an instant with offset."}
    )
    registered_to = _Str(metadata={"description": "As registered_from; a date includes its day."})
    late = _Str(validate=validate.OneOf(("true", "false")))
    q = _Str(validate=validate.Length(1, cs.MAX_Q), metadata={"description": "Words to find."})


class CaseListQuerySchema(CaseFilterQuerySchema):
    sort = _Str(validate=validate.OneOf(cs.SORTS), metadata={"default": cs.DEFAULT_SORT})
    limit = _Int(validate=validate.Range(1, cs.MAX_LIMIT), metadata={"default": cs.DEFAULT_LIMIT})
    cursor = _Str(
        validate=validate.Length(1, cs.MAX_CURSOR),
        metadata={"description": "The `next` of the page before, with the same filters."},
    )
