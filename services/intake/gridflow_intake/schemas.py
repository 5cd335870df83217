"""The public HTTP API's request bodies. Every error names the field (dotted path) and why."""

from __future__ import annotations

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

MAX_BODY_BYTES = 64 * 1024


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be empty")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class LocationSchema(_Strict):
    lat = fields.Float(validate=validate.Range(-90, 90), allow_nan=False)
    lon = fields.Float(validate=validate.Range(-180, 180), allow_nan=False)
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
                ["give only one of a point {lat, lon}, a grid_code or an address"])


class ReporterSchema(_Strict):
    name = fields.String(validate=validate.Length(max=64), allow_none=True)
    phone = fields.String(
        validate=validate.Regexp(r"^\+?[0-9][0-9 -]{2,19}$", error="not a phone number"),
        allow_none=True,
    )


class ReportSchema(_Strict):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    external_id = fields.String(validate=[validate.Length(1, 128), _not_blank], allow_none=True,
                                load_default=None)
    description = fields.String(required=True, validate=[validate.Length(1, 2000), _not_blank])
    category = fields.String(validate=validate.Length(1, 100), allow_none=True, load_default=None)
    location = fields.Nested(LocationSchema, required=True)
    reporter = fields.Nested(ReporterSchema, allow_none=True, load_default=None)


class StatusUpdateSchema(_Strict):
    sender = fields.String(required=True, data_key="from", validate=[validate.Length(1, 100),
                                                                     _not_blank])
    status = fields.String(required=True, validate=validate.OneOf(UPDATE_STATUSES))
    note = fields.String(validate=validate.Length(max=2000), allow_none=True, load_default=None)
    category = fields.String(validate=validate.Length(1, 100), allow_none=True, load_default=None)


class VerificationSchema(_Strict):
    passed = fields.Boolean(required=True, truthy={True}, falsy={False})
    note = fields.String(validate=validate.Length(max=2000), allow_none=True, load_default=None)


class EvaluationSchema(_Strict):
    satisfaction = fields.Integer(required=True, strict=True, validate=validate.Range(1, 5))
    note = fields.String(validate=validate.Length(max=2000), allow_none=True, load_default=None)


class ClockSchema(_Strict):
    now = fields.AwareDateTime(required=True)


class ResetSchema(_Strict):
    now = fields.AwareDateTime(load_default=None)


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
