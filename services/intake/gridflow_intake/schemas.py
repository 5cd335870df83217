"""The public HTTP API's request bodies. Every error names the field (dotted path) and why."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from gridflow_common.contracts import CHANNELS, UPDATE_STATUSES
from gridflow_common.domain import access, lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.intake_batch import MAX_PHOTOS_PER_REPORT
from gridflow_common.domain.lifecycle import MAX_EXTENSION_HOURS

# Every body but a jurisdiction upload: a report with a 2,000-character Chinese description is
# about 7 KB, so 64 KiB leaves room without letting anyone park megabytes in the process.
MAX_BODY_BYTES = 64 * 1024
# A jurisdiction upload is a whole city: Lucheng's eight CSV files are 29 KB for 90 areas and 150
# people; a city of ten districts down to 30,000 grids with their polygons and 50,000 people is
# about 8 MB. Twice that is the cap.
MAX_JURISDICTION_BYTES = 16 * 1024 * 1024

# A unit's inbox: at most this many deliveries a page, and a long-poll waits at most this long
# (a proxy's idle timeout is commonly 60 s; a client asks again at once).
MAX_INBOX_PAGE = 200
MAX_INBOX_WAIT_SECONDS = 30

# The instants a clock (and a reset) may be set to. Outside them the SLA arithmetic overflows
# (year 9999 plus a time limit is past datetime.max) or the city's calendar has no meaning.
EARLIEST_INSTANT = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
LATEST_INSTANT = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be empty")


class StrictFloat(fields.Float):
    """A JSON number and nothing else: marshmallow's Float also takes "28.0" and true."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictInteger(fields.Integer):
    """A JSON integer: marshmallow's strict Integer still takes true as 1, and refuses 3.0,
    which JSON (and the OpenAPI document's JSON Schema) counts as the integer 3."""

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """true or false: marshmallow compares with ``in {True}``, where 1 == True is found."""

    default_error_messages = {"invalid": "Not a boolean: give true or false."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _sane_instant(value: dt.datetime) -> None:
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise ValidationError(
            f"{value.isoformat()} is outside the range a Gridflow clock takes "
            f"({EARLIEST_INSTANT.year} to {LATEST_INSTANT.year - 1})"
        )


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class LocationSchema(_Strict):
    lat = StrictFloat(validate=validate.Range(-90, 90), allow_nan=False)
    lon = StrictFloat(validate=validate.Range(-180, 180), allow_nan=False)
    grid_code = fields.String(validate=[validate.Length(1, 32), _not_blank])
    address = fields.String(validate=[validate.Length(1, 500), _not_blank])

    @validates_schema
    def exactly_one_form(self, data: dict, **_: object) -> None:
        has_point = "lat" in data or "lon" in data
        if has_point and ("lat" not in data or "lon" not in data):
            missing = "lon" if "lat" in data else "lat"
            raise ValidationError({missing: ["a point needs both lat and lon"]})
        forms = [has_point, "grid_code" in data, "address" in data]
        if sum(forms) == 0:
            raise ValidationError(["give a point {lat, lon}, a grid_code or an address"])
        if sum(forms) > 1:
            raise ValidationError(
                ["give only one of a point {lat, lon}, a grid_code or an address"]
            )


class ReporterSchema(_Strict):
    name = fields.String(validate=validate.Length(max=64), allow_none=True)
    phone = fields.String(
        validate=validate.Regexp(r"^\+?[0-9][0-9 -]{2,19}$", error="not a phone number"),
        allow_none=True,
    )
    # Added with the channels (Open311's email): optional. ``wechat_openid`` is set only by the
    # WeChat callback (gridflow_intake/wechat_api.py), never taken from the public JSON API.
    email = fields.Email(validate=validate.Length(max=254), allow_none=True)


class ReportSchema(_Strict):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    external_id = fields.String(
        validate=[validate.Length(1, 128), _not_blank], allow_none=True, load_default=None
    )
    description = fields.String(required=True, validate=[validate.Length(1, 2000), _not_blank])
    category = fields.String(validate=validate.Length(1, 100), allow_none=True, load_default=None)
    location = fields.Nested(LocationSchema, required=True)
    reporter = fields.Nested(ReporterSchema, allow_none=True, load_default=None)
    # When the reporter saw it (a phone's queued report arrives later); bounds against the
    # city's clock in gridflow_common.domain.intake_batch. Photos: ids from POST /api/v1/photos.
    observed_at = fields.AwareDateTime(allow_none=True, load_default=None, validate=_sane_instant)
    photos = fields.List(
        fields.String(validate=validate.Length(1, 40)),
        validate=validate.Length(max=MAX_PHOTOS_PER_REPORT),
        load_default=list,
    )


class StatusUpdateSchema(_Strict):
    # Optional: a credential that answers for one department or unit sends as that one; when
    # given, it is checked against the credential, never taken on its word.
    sender = fields.String(
        data_key="from", validate=[validate.Length(1, 100), _not_blank], load_default=None
    )
    status = fields.String(required=True, validate=validate.OneOf(UPDATE_STATUSES))
    note = fields.String(validate=validate.Length(max=2000), allow_none=True, load_default=None)
    category = fields.String(validate=validate.Length(1, 100), allow_none=True, load_default=None)
    # An extension request (extension_requested) names one of these: how many more hours, or
    # the due instant asked for (the shared scenarios' form). Checked against the status in
    # lifecycle.check_extension.
    hours = StrictInteger(
        validate=validate.Range(1, MAX_EXTENSION_HOURS), allow_none=True, load_default=None
    )
    due = fields.AwareDateTime(validate=_sane_instant, allow_none=True, load_default=None)


class VerificationSchema(_Strict):
    passed = StrictBoolean(required=True)
    note = fields.String(validate=validate.Length(max=2000), allow_none=True, load_default=None)


class EvaluationSchema(_Strict):
    satisfaction = StrictInteger(required=True, validate=validate.Range(1, 5))
    note = fields.String(validate=validate.Length(max=2000), allow_none=True, load_default=None)


class OrderSchema(_Strict):
    """A command-center order (指令) on a case: POST /api/v1/cases/{id}/orders."""

    kind = fields.String(required=True, validate=validate.OneOf(v.ORDER_KINDS))
    # assign: the unit that takes the case; category: optional reclassification.
    unit = fields.String(validate=[validate.Length(1, 100), _not_blank], load_default=None)
    category = fields.String(validate=[validate.Length(1, 100), _not_blank], load_default=None)
    # merge: the case this one joins.
    into = fields.String(validate=[validate.Length(1, 40), _not_blank], load_default=None)
    reason = fields.String(
        validate=[validate.Length(1, lifecycle.MAX_ORDER_REASON), _not_blank], load_default=None
    )

    @validates_schema
    def what_the_kind_needs(self, data: dict, **_: object) -> None:
        kind = data.get("kind")
        problems: dict[str, list[str]] = {}
        if kind == v.ORDER_ASSIGN and data.get("unit") is None:
            problems["unit"] = ["an assign order names the unit that takes the case"]
        if kind == v.ORDER_MERGE and data.get("into") is None:
            problems["into"] = ["a merge order names the case this one joins"]
        if kind in lifecycle.ORDERS_NEEDING_REASON and data.get("reason") is None:
            problems["reason"] = [f"a {kind} order ({v.zh(kind)}) must say why"]
        for name, only_for in (
            ("unit", v.ORDER_ASSIGN),
            ("category", v.ORDER_ASSIGN),
            ("into", v.ORDER_MERGE),
        ):
            if data.get(name) is not None and kind != only_for:
                problems.setdefault(name, []).append(f"only the {only_for} order takes {name}")
        if problems:
            raise ValidationError(problems)


class ClockSchema(_Strict):
    now = fields.AwareDateTime(required=True, validate=_sane_instant)


class ResetSchema(_Strict):
    now = fields.AwareDateTime(load_default=None, validate=_sane_instant)


class JurisdictionUploadSchema(_Strict):
    files = fields.Dict(keys=fields.String(), values=fields.String(), required=True)

    @validates("files")
    def not_empty(self, value: dict, **_: object) -> None:
        if not value:
            raise ValidationError("no files")


def flatten_errors(messages: object, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"location.lat": ["..."]}; schema-level ones under the
    parent's name (or "_body")."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            for k, v in flatten_errors(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out[prefix or "_body"] = list(messages)
        else:
            for i, m in enumerate(messages):
                for k, v in flatten_errors(m, f"{prefix}.{i}" if prefix else str(i)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "_body"] = [str(messages)]
    return out


# -- access ------------------------------------------------------------------------------------


# A user name (gridflow_intake/identity.py checks it again when the user is made).
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$"
# A rate limit as ratelimit.parse_limit reads it ("30/min", "20/10s"): 1 to 1,000,000 requests
# in a window of at most 366 days. parse_limit also takes upper case, decimals and longer spellings
# of the same windows, which the document leaves out.
_COUNT = r"([1-9][0-9]{0,5}|1000000)"
_UP_TO_999 = r"[1-9][0-9]{0,2}"
_UP_TO_366 = r"([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-6])"
RATE_LIMIT_PATTERN = (
    rf"^\s*{_COUNT}\s*/\s*"
    rf"(({_UP_TO_999})?\s*(s|sec|second|seconds|m|min|minute|minutes|h|hour|hours)"
    rf"|({_UP_TO_366})?\s*(d|day|days))\s*$"
)


class UserCreateSchema(_Strict):
    username = fields.String(
        required=True,
        validate=[
            validate.Length(2, 64),
            validate.Regexp(
                USERNAME_PATTERN,
                error="2 to 64 letters, digits or . _ @ -, starting with a letter or digit",
            ),
        ],
    )
    role = fields.String(required=True, validate=validate.OneOf(access.ROLES))
    scope = fields.String(validate=validate.Length(1, 100), allow_none=True, load_default=None)
    display_name = fields.String(
        validate=[validate.Length(1, 100), _not_blank], allow_none=True, load_default=None
    )
    password = fields.String(validate=validate.Length(10, 256), load_default=None)


class KeyCreateSchema(_Strict):
    """A channel client's key (``channel``) or a department's or unit's credential (``holder``)."""

    channel = fields.String(validate=validate.OneOf(CHANNELS), load_default=None)
    holder = fields.String(validate=validate.Length(1, 100), load_default=None)
    label = fields.String(validate=[validate.Length(1, 100), _not_blank], load_default=None)
    expires_in_days = StrictInteger(validate=validate.Range(1, 3650), load_default=None)
    rate_limit = fields.String(
        validate=validate.Length(1, 32),
        load_default=None,
        metadata={"pattern": RATE_LIMIT_PATTERN, "description": "e.g. 30/min or 20/10s"},
    )
    # A sensor's key names its device (the alerts' device is the key's, never the body's) and
    # may carry the device's registered place (gridflow_intake/sensors_api.py).
    device = fields.String(
        validate=[validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"), _not_blank],
        load_default=None,
    )
    device_place = fields.Nested(LocationSchema, load_default=None)

    @validates_schema
    def one_subject(self, data: dict, **_: object) -> None:
        if (data.get("channel") is None) == (data.get("holder") is None):
            raise ValidationError(["give exactly one of channel (a channel's key) or holder"])
        if data.get("channel") == "sensor" and data.get("device") is None:
            raise ValidationError({"device": ["a sensor's key names its device"]})
        if data.get("device") is not None and data.get("channel") != "sensor":
            raise ValidationError({"device": ["only a sensor's key (channel sensor) has a device"]})
        if data.get("device_place") is not None and data.get("device") is None:
            raise ValidationError({"device_place": ["a place belongs to a device"]})


class EmptySchema(_Strict):
    pass


class RotateSchema(_Strict):
    # How long the old key keeps working beside the new one (0: not at all).
    grace_hours = StrictInteger(validate=validate.Range(0, 24 * 30), load_default=24)


class AuditQuerySchema(_Strict):
    actor = fields.String(validate=validate.Length(1, 200), load_default=None)
    action = fields.String(validate=validate.Length(1, 60), load_default=None)
    since = fields.AwareDateTime(validate=_sane_instant, load_default=None)
    # A query string's values are text: these take "25" as 25.
    before = fields.Integer(validate=validate.Range(1, 2**62), load_default=None)
    limit = fields.Integer(validate=validate.Range(1, 500), load_default=100)


class InboxQuerySchema(_Strict):
    """GET /api/v1/units/{code}/inbox: the deliveries after a cursor, how many, how long to
    wait for one when there is none yet, and whether only the cases still to work on."""

    after = fields.Integer(validate=validate.Range(0, 2**62), load_default=0)
    limit = fields.Integer(validate=validate.Range(1, MAX_INBOX_PAGE), load_default=50)
    wait = fields.Float(
        validate=validate.Range(0, MAX_INBOX_WAIT_SECONDS), allow_nan=False, load_default=0.0
    )
    open_only = fields.Boolean(
        data_key="open", truthy={"true"}, falsy={"false"}, load_default=False
    )


# -- signing in, and a user's own credentials (gridflow_intake/sessions.py) ------------------------


class SignInSchema(_Strict):
    # The lengths bound the work before the password hash: a username no user can have and a
    # password no user can have set are refused by name, before argon2 is asked.
    username = fields.String(required=True, validate=validate.Length(1, 64))
    password = fields.String(required=True, validate=validate.Length(1, 256))


class SignInLinkQuerySchema(_Strict):
    token = fields.String(required=True, validate=validate.Length(1, 100))


class PasswordChangeSchema(_Strict):
    current_password = fields.String(validate=validate.Length(1, 256), load_default=None)
    password = fields.String(required=True, validate=validate.Length(10, 256))


class OwnTokenCreateSchema(_Strict):
    """A user's bearer token for their scripts: at most a year, so a forgotten one ends."""

    label = fields.String(validate=[validate.Length(1, 100), _not_blank], load_default=None)
    expires_in_days = StrictInteger(validate=validate.Range(1, 365), load_default=90)
