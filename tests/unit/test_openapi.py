"""The OpenAPI document (gridflow_intake/openapi.py): every route in the routing table is
described, and the document is valid OpenAPI 3.1. A route added without its description fails
here until its fields are filled."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from marshmallow import Schema, ValidationError
from openapi_spec_validator import validate

from gridflow_app.folders import LUCHENG
from gridflow_common.domain import access, lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction_files import load_folder
from gridflow_intake import openapi
from gridflow_intake import schemas as s
from gridflow_intake.api import ADMIN, OPEN, ROUTES, UNLIMITED
from gridflow_intake.identity import USERNAME_RE
from gridflow_intake.ratelimit import parse_limit

# Answers of no fixed shape: the document itself (JSON of its own kind).
NO_ANSWER_SCHEMA = {"get_openapi"}


@pytest.fixture(scope="module")
def document():
    return openapi.build()


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)
    json.dumps(document)  # servable as JSON as it is


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.endpoint)
def test_every_route_is_described(route, document):
    assert route.summary.strip(), f"{route.endpoint}: fill Route.summary"
    if route.body_limit is not None and route.content_types == ("application/json",):
        assert route.body is not None, f"{route.endpoint} reads a JSON body: give Route.body"
    if "application/json" in route.answer_types and route.endpoint not in NO_ANSWER_SCHEMA:
        assert route.answer is not None, f"{route.endpoint}: give Route.answer (its schema)"
    op = document["paths"][openapi.openapi_path(route.path)][route.method.lower()]
    assert op["operationId"] == openapi.operation_id(route)
    assert op["operationId"].startswith(route.endpoint)
    assert op["summary"] == route.summary
    for status in route.ok:
        assert str(status) in op["responses"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.endpoint)
def test_every_refusal_the_access_policy_implies_is_documented(route, document):
    responses = document["paths"][openapi.openapi_path(route.path)][route.method.lower()][
        "responses"
    ]
    if route.access != OPEN:
        assert "401" in responses
        assert op_security(document, route)
    else:
        assert op_security(document, route) == []
    if route.body_limit is not None:
        assert {"400", "413", "415"} <= set(responses)
    if route.endpoint not in UNLIMITED:
        assert "429" in responses
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            schema = response["content"]["application/json"]["schema"]
            if route.path.startswith("/open311/"):
                # GeoReport v2 refuses in its own shape: [{code, description}].
                assert schema == openapi.OPEN311_ERROR
            else:
                assert schema["$ref"] == "#/components/schemas/Error"


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def op_security(document, route):
    return document["paths"][openapi.openapi_path(route.path)][route.method.lower()]["security"]


def test_an_admin_route_takes_only_credentials_and_a_signature_is_a_department_systems():
    document = openapi.build()
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {
        openapi.BEARER,
        openapi.API_KEY,
        openapi.SESSION,
        openapi.SIGNATURE,
    }
    for route in ROUTES:
        security = op_security(document, route)
        named = {name for requirement in security for name in requirement}
        if route.access == ADMIN:
            assert {} not in security and openapi.SIGNATURE not in named
        if openapi.SIGNATURE in named:
            assert route.endpoint == "post_department_update"


def test_a_route_outside_the_api_with_other_content_types_is_described_generically():
    from marshmallow import Schema, fields

    from gridflow_intake.api import Route

    class Form(Schema):
        api_key = fields.String(required=True)

    route = Route(
        "POST",
        "/open311/v2/requests.<fmt>",
        "post_open311_request",
        OPEN,
        1024,
        summary="Post a service request",
        body=Form,
        content_types=("application/x-www-form-urlencoded",),
        answer_types=("application/json", "text/xml"),
        ok=(201,),
    )
    document = openapi.build((route,))
    validate(document)
    op = document["paths"]["/open311/v2/requests.{fmt}"]["post"]
    assert op["tags"] == ["open311"]
    body = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert body == {"$ref": "#/components/schemas/Form"}
    assert set(op["responses"]["201"]["content"]) == {"application/json", "text/xml"}
    assert set(op["responses"]["400"]["content"]) == {"application/json", "text/xml"}


# -- rules across fields: the document's oneOf takes exactly what the API takes ------------------

NOW = dt.datetime(2029, 12, 1, tzinfo=dt.timezone.utc)


def _bodies(fixed: dict, optional: dict) -> list[dict]:
    """``fixed`` with every subset of ``optional``."""
    names = list(optional)
    return [
        {**fixed, **{n: optional[n] for n in chosen}}
        for size in range(len(names) + 1)
        for chosen in itertools.combinations(names, size)
    ]


def _api_takes(schema: Schema, body: dict, *checks) -> bool:
    try:
        loaded = schema.load(body)
        for check in checks:
            check(loaded)
    except (ValidationError, lifecycle.LifecycleError):
        return False
    return True


def _document_takes(document: dict, name: str, body: dict) -> bool:
    return Draft202012Validator(document["components"]["schemas"][name]).is_valid(body)


LOCATIONS = _bodies({}, {"lat": 28.0, "lon": 120.6, "grid_code": "g1", "address": "五马街"})
ORDERS = [
    body
    for kind in v.ORDER_KINDS
    for body in _bodies(
        {"kind": kind}, {"unit": "u1", "category": "c1", "into": "GF-1", "reason": "因为"}
    )
]
UPDATES = [
    body
    for status in v.UPDATE_STATUSES
    for body in _bodies(
        {"status": status},
        {"category": "c1", "hours": 5, "due": "2029-12-20T00:00:00Z", "note": "好"},
    )
] + [{"status": v.EXTENSION_REQUESTED, "hours": 5, "due": None, "category": None}]
KEYS = _bodies({"label": "k"}, {"channel": "web", "holder": "police"}) + [
    {"channel": "web", "holder": None}
]


def _update_checks(loaded: dict) -> None:
    lifecycle.check_update(loaded["status"], loaded.get("category"))
    lifecycle.check_extension(loaded["status"], loaded.get("hours"), loaded.get("due"), NOW)


@pytest.mark.parametrize(
    ("name", "schema", "bodies", "checks"),
    [
        ("Location", s.LocationSchema(), LOCATIONS, ()),
        ("Order", s.OrderSchema(), ORDERS, ()),
        ("StatusUpdate", s.StatusUpdateSchema(), UPDATES, (_update_checks,)),
        ("KeyCreate", s.KeyCreateSchema(), KEYS, ()),
    ],
)
def test_the_document_takes_exactly_the_combinations_the_api_takes(
    document, name, schema, bodies, checks
):
    taken = [b for b in bodies if _api_takes(schema, b, *checks)]
    assert taken, "the API takes none of them: the bodies tried say nothing"
    assert len(taken) < len(bodies)
    disagree = [
        (b, _api_takes(schema, b, *checks))
        for b in bodies
        if _document_takes(document, name, b) != _api_takes(schema, b, *checks)
    ]
    assert disagree == [], (
        f"(body, what the API does) where the document says otherwise: {disagree}"
    )


def test_a_text_that_must_not_be_blank_says_so(document):
    description = document["components"]["schemas"]["Report"]["properties"]["description"]
    assert description["pattern"] == r"\S"
    assert not Draft202012Validator(description).is_valid("   ")
    with pytest.raises(ValidationError):
        s.ReportSchema().load(
            {"channel": "web", "description": "   ", "location": {"grid_code": "g"}}
        )


def test_an_integer_is_taken_as_json_writes_it():
    # JSON Schema counts 3.0 as the integer 3, so the document promises it: the API takes it.
    assert s.EvaluationSchema().load({"satisfaction": 3.0}) == {"satisfaction": 3, "note": None}
    for not_one in (3.5, True, "3", float("inf")):
        with pytest.raises(ValidationError):
            s.EvaluationSchema().load({"satisfaction": not_one})


@settings(max_examples=200, derandomize=True, database=None)
@given(text=st.from_regex(s.RATE_LIMIT_PATTERN))
def test_every_rate_limit_the_document_allows_is_taken(text):
    if len(text) <= 32:
        limit = parse_limit(text)
        assert limit.count >= 1


@settings(max_examples=200, derandomize=True, database=None)
@given(text=st.from_regex(s.USERNAME_PATTERN))
def test_every_user_name_the_document_allows_is_taken(text):
    assert USERNAME_RE.match(text)
    assert "username" not in s.UserCreateSchema().validate({"username": text, "role": "admin"})


@pytest.mark.parametrize(
    ("body", "taken"),
    [
        ({"username": "ab", "role": "admin"}, True),
        ({"username": "ab", "role": "admin", "scope": "330302"}, False),
        ({"username": "ab", "role": "command_center"}, True),
        ({"username": "ab", "role": "command_center", "scope": "330302"}, True),
        ({"username": "ab", "role": "grid_worker"}, False),
        ({"username": "ab", "role": "grid_worker", "scope": "330302001001001"}, True),
        ({"role": "command_center"}, False),
    ],
)
def test_a_user_s_scope_follows_the_role_in_the_document_as_in_the_api(document, body, taken):
    j = load_folder(LUCHENG)
    try:
        loaded = s.UserCreateSchema().load(body)
        access.check_scope(loaded["role"], loaded["scope"], j)
        api_takes = True
    except (ValidationError, access.ScopeError):
        api_takes = False
    assert api_takes == taken
    assert _document_takes(document, "UserCreate", body) == taken
