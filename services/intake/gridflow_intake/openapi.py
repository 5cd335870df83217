"""The OpenAPI 3.1 document of Gridflow's HTTP API, built from the routing table (``api.ROUTES``)
and the marshmallow schemas each ``Route`` names (apispec's marshmallow plugin turns them into
JSON Schema), served at ``GET /api/v1/openapi.json`` and shown by the page at ``/api/v1/docs``.

Nothing here is written per endpoint: what a route can answer is derived from what the routing
table says of it, so a route added later is described as soon as its fields are filled.

- **Success**: ``Route.ok`` (200 unless said), the body in each of ``Route.answer_types``, with
  ``Route.answer``'s schema for JSON (any JSON object when the answer has no fixed shape).
- **Refusals** (the API's one JSON error shape, ``{"errors": {"field": ["why"]}}``): 400 for a
  route that reads a body, a query or a path parameter; 401 and 403 from its access policy (a
  credential that is given and is not good is refused even where none is needed; a browser
  session's write without its CSRF header is refused); 404 for a path parameter naming nothing;
  413 and 415 for a route that reads a body; 429 for every rate-limited route; 503 wherever the
  database, the jurisdiction or another service is asked; and whatever ``Route.errors`` adds.
  405 (a method the path does not take) is described once, in ``components.responses``.
- **Who may call** (``security``): from ``Route.access``; the schemes are those of
  ``gridflow_intake.access`` (bearer token, ``X-Api-Key``, the session cookie) and
  ``department_api`` (a department's signature). A token in the path (a reporter's progress link,
  an e-mailed action link) has no OpenAPI scheme: the path parameter says it is the credential.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from gridflow_common import signing
from gridflow_common.domain import access as a
from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_intake import access as acc
from gridflow_intake import api
from gridflow_intake import schemas as s

TITLE = "Gridflow API"
OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
JSON = "application/json"
# Answer types whose refusals come in the same type (a page for a browser, XML for a client
# that asked for XML); every route's refusals also come as JSON.
_REFUSAL_TYPES = ("text/html", "text/xml", "application/xml")
_PATH_PARAMETER = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")

BEARER = "bearerToken"
API_KEY = "apiKeyHeader"
SESSION = "sessionCookie"
SIGNATURE = "departmentSignature"
_CREDENTIALS: list[dict[str, list[str]]] = [{BEARER: []}, {API_KEY: []}, {SESSION: []}]

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "`Authorization: Bearer TOKEN`. A user's token for scripts (`gfb_…`, from "
            "`POST /api/v1/me/tokens` or `gridflow tokens`), a channel client's key (`gfk_…`: it "
            "may only send reports) or a department's or unit's credential (`gfd_…`), both from "
            "`POST /api/v1/admin/keys`. A credential that is given and is not good is refused "
            "(401), never ignored."
        ),
    },
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": acc.API_KEY_HEADER,
        "description": (
            f"`{acc.API_KEY_HEADER}: TOKEN`: the same tokens as the bearer scheme, for clients "
            "that cannot set Authorization."
        ),
    },
    SESSION: {
        "type": "apiKey",
        "in": "cookie",
        "name": acc.SESSION_COOKIE,
        "description": (
            f"A browser's session (`POST /api/v1/session` or a sign-in link sets it, HttpOnly, "
            f"12 hours). Every write from a session must also carry the `{acc.CSRF_HEADER}` "
            f"header with the value of the `{acc.CSRF_COOKIE}` cookie, else 403 (`csrf`)."
        ),
    },
    SIGNATURE: {
        "type": "apiKey",
        "in": "header",
        "name": signing.SIGNATURE_HEADER,
        "description": (
            f"A department's system signs its request with the secret named in adapters.csv "
            f"(`credential_ref`): `{signing.SIGNATURE_HEADER}: {signing.SCHEME}HEX`, the "
            f"HMAC-SHA256 of `TIMESTAMP.BODY`, with `{signing.TIMESTAMP_HEADER}: TIMESTAMP` (Unix "
            f"seconds, within {signing.TOLERANCE_SECONDS} s of Gridflow's clock). A repeat with "
            f"the same `{signing.IDEMPOTENCY_HEADER}` within 24 hours gets the first answer."
        ),
    },
}

# Who may call, by access policy: the security requirements and the sentence the reader sees.
POLICIES: dict[str, tuple[list[dict[str, list[str]]], str]] = {
    api.OPEN: ([], "No credential is asked."),
    api.ANYONE: (
        [{}, *_CREDENTIALS],
        "A credential is optional and decides what is allowed (a channel's key sends for its "
        "channel; anonymous callers send from the public channels, rate limited by address).",
    ),
    api.SIGNED_IN: (
        _CREDENTIALS,
        "A user, or a department's or unit's credential; not a channel's key. The answer is cut "
        "to the caller's scope.",
    ),
    api.STAFF: (_CREDENTIALS, "A signed-in user (a session or the user's own bearer token)."),
    api.COMMAND: (_CREDENTIALS, "A user with the command center's or the admin role."),
    api.ADMIN: (_CREDENTIALS, "A user with the admin role. Every call is audited."),
    api.ANY_CREDENTIAL: (_CREDENTIALS, "Any credential, a channel's key's too."),
    api.DEPARTMENT_SYSTEM: (
        [{SIGNATURE: []}, *_CREDENTIALS],
        "A department's system: its signature, or a credential that answers for the "
        "department or unit in the path (its own key, or a department user).",
    ),
}

ERROR_DESCRIPTIONS = {
    400: "The request is wrong: each field (dotted path) and why.",
    401: "No credential where one is needed, or one that is not good (unknown, expired, revoked).",
    403: "The credential may not do this (its role, scope, channel, or a session's missing CSRF "
    "header).",
    404: "Nothing by that name, or nothing the caller may see (answered alike).",
    405: "The path does not take this method; Allow lists the ones it takes.",
    409: "The case (or the record) cannot take this as it stands; nothing changed.",
    410: "The link has expired.",
    413: "The body is larger than this route takes.",
    415: "The body is not in a content type this route takes.",
    422: "The request is well formed but names what the city's data lacks.",
    429: "Too many requests from this key, user or address; Retry-After says when to try again.",
    503: "A part Gridflow needs (the database, another service, the jurisdiction) cannot answer "
    "now; nothing was changed. Retry-After, when given, says when to try again.",
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every refusal: each field (a dotted path, `_body` for the body as a whole, "
    "`_server` for Gridflow itself) and why. A jurisdiction upload's refusal lists the problems, "
    "each with its file, line and column.",
    "required": ["errors"],
    "properties": {
        "errors": {
            "anyOf": [
                {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                {"type": "array", "items": {"type": "object"}},
            ]
        }
    },
}
_HEADERS = {
    401: {"WWW-Authenticate": "The scheme to authenticate with (Bearer)."},
    405: {"Allow": "The methods the path takes."},
    429: {"Retry-After": "Seconds until a request may be made again."},
    503: {"Retry-After": "Seconds until trying again makes sense."},
}


# -- rules across fields ---------------------------------------------------------------------------
# marshmallow checks them in a schema's @validates_schema, which apispec cannot see; here each one
# is said again as JSON Schema (``oneOf`` of closed object shapes), so a client, a generator and
# the reader know which combinations are taken. Each shape is built from the properties apispec
# made of the fields, so a field added later is in every shape it is not excluded from.

# A report's location (LocationSchema.exactly_one_form): the forms, each with the fields it is.
LOCATION_FORMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a point", ("lat", "lon")),
    ("a grid", ("grid_code",)),
    ("an address", ("address",)),
)
# An order's fields that only one kind takes (OrderSchema.what_the_kind_needs), and what each
# kind must name.
ORDER_FIELDS_OF_ONE_KIND = {
    "unit": v.ORDER_ASSIGN,
    "category": v.ORDER_ASSIGN,
    "into": v.ORDER_MERGE,
}
ORDER_NEEDS: dict[str, tuple[str, ...]] = {
    kind: (("unit",) if kind == v.ORDER_ASSIGN else ("into",) if kind == v.ORDER_MERGE else ())
    + (("reason",) if kind in lifecycle.ORDERS_NEEDING_REASON else ())
    for kind in v.ORDER_KINDS
}


def _present(prop: dict[str, Any]) -> dict[str, Any]:
    """A property that must be given: null (taken as absent) is not a value for it."""
    prop = dict(prop)
    prop.pop("default", None)
    if isinstance(prop.get("type"), list):
        kinds = [t for t in prop["type"] if t != "null"]
        prop["type"] = kinds[0] if len(kinds) == 1 else kinds
    if "enum" in prop:
        prop["enum"] = [e for e in prop["enum"] if e is not None]
    return prop


_ABSENT: dict[str, Any] = {"type": "null", "description": "Only null (or leave it out)."}


def _shape(
    title: str,
    properties: dict[str, Any],
    keep: Iterable[str],
    needed: Iterable[str] = (),
    absent: Iterable[str] = (),
    **fixed: dict[str, Any],
) -> dict[str, Any]:
    """One closed object shape: ``keep`` of ``properties``, ``needed`` of them given (not null),
    ``absent`` ones null if given, ``fixed`` ones with the schema given."""
    needed = list(needed)
    props = {name: properties[name] for name in keep if name in properties}
    props.update({name: _present(properties[name]) for name in needed})
    props.update({name: _ABSENT for name in absent if name in properties})
    props.update(fixed)
    return {
        "type": "object",
        "title": title,
        "properties": props,
        "required": sorted(set(needed) | set(fixed)),
        "additionalProperties": False,
    }


def _alternatives(js: dict[str, Any], shapes: list[dict[str, Any]], why: str) -> dict:
    out = {k: val for k, val in js.items() if k not in ("properties", "required")}
    out.pop("additionalProperties", None)
    out["description"] = " ".join(filter(None, [js.get("description"), why]))
    # What the schema requires whatever the shape, each shape requires too.
    for shape in shapes:
        required = set(shape["required"]) | set(js.get("required", ()))
        shape["required"] = sorted(name for name in required if name in shape["properties"])
    out["oneOf"] = shapes
    return out


def _location(js: dict[str, Any]) -> dict[str, Any]:
    props = js["properties"]
    formed = {name for _, form in LOCATION_FORMS for name in form}
    shared = [name for name in props if name not in formed]
    shapes = [_shape(title, props, shared, needed=form) for title, form in LOCATION_FORMS]
    return _alternatives(
        js, shapes, "Exactly one of a point {lat, lon}, a grid_code or an address."
    )


def _order(js: dict[str, Any]) -> dict[str, Any]:
    props = js["properties"]
    shapes = []
    for kind in v.ORDER_KINDS:
        keep = [
            name
            for name in props
            if name != "kind" and ORDER_FIELDS_OF_ONE_KIND.get(name, kind) == kind
        ]
        shapes.append(
            _shape(
                f"{kind} ({v.zh(kind)})",
                props,
                keep,
                needed=ORDER_NEEDS[kind],
                kind={**props["kind"], "const": kind, "enum": [kind]},
            )
        )
    return _alternatives(
        js,
        shapes,
        "What an order names depends on its kind: assign names the unit (and may reclassify "
        "with category), merge names the case it joins (into), "
        + ", ".join(lifecycle.ORDERS_NEEDING_REASON)
        + " say why (reason).",
    )


def _status_update(js: dict[str, Any]) -> dict[str, Any]:
    props = js["properties"]
    ext = v.EXTENSION_REQUESTED
    naming = [st for st in props["status"]["enum"] if st in lifecycle.UPDATES_NAMING_A_CATEGORY]
    others = [st for st in props["status"]["enum"] if st != ext and st not in naming]
    rest = [name for name in props if name not in ("status", "category", "hours", "due")]
    asks = {**props["status"], "const": ext, "enum": [ext]}
    shapes = [
        _shape(
            "a report that may reclassify",
            props,
            [*rest, "category"],
            absent=("hours", "due"),
            status={**props["status"], "enum": naming},
        ),
        _shape(
            "a report",
            props,
            rest,
            absent=("category", "hours", "due"),
            status={**props["status"], "enum": others},
        ),
        _shape(
            f"{ext}: hours more",
            props,
            rest,
            needed=("hours",),
            absent=("category", "due"),
            status=asks,
        ),
        _shape(
            f"{ext}: until due",
            props,
            rest,
            needed=("due",),
            absent=("category", "hours"),
            status=asks,
        ),
    ]
    return _alternatives(
        js,
        shapes,
        f"Only {' or '.join(naming)} names a category (routing then finds its holder). An {ext} "
        f"update names either hours (how many more) or due (the instant asked for, ahead of "
        f"now, at most {lifecycle.MAX_EXTENSION_HOURS} hours); no other update names either.",
    )


def _key_create(js: dict[str, Any]) -> dict[str, Any]:
    props = js["properties"]
    rest = [name for name in props if name not in ("channel", "holder")]
    shapes = [
        _shape("a channel's key", props, rest, needed=("channel",), absent=("holder",)),
        _shape(
            "a department's or unit's credential",
            props,
            rest,
            needed=("holder",),
            absent=("channel",),
        ),
    ]
    return _alternatives(js, shapes, "Exactly one of channel or holder.")


def _user_create(js: dict[str, Any]) -> dict[str, Any]:
    props = js["properties"]
    rest = [name for name in props if name not in ("role", "scope")]
    scoped = [r for r in props["role"]["enum"] if r not in (a.ADMIN, a.COMMAND_CENTER)]

    def role(*names: str) -> dict[str, Any]:
        return {**props["role"], "enum": list(names)}

    shapes = [
        _shape("an admin", props, rest, absent=("scope",), role=role(a.ADMIN)),
        _shape("a command center's user", props, [*rest, "scope"], role=role(a.COMMAND_CENTER)),
        _shape("a scoped user", props, rest, needed=("scope",), role=role(*scoped)),
    ]
    return _alternatives(
        js,
        shapes,
        "An admin has no scope; a command center's user may have a district; every other role "
        "needs its scope (a leader: a unit; a department user: a department or one of its "
        "units; street, community, grid_worker: an area of that level).",
    )


CROSS_FIELD_RULES: dict[type, Any] = {
    s.LocationSchema: _location,
    s.OrderSchema: _order,
    s.StatusUpdateSchema: _status_update,
    s.KeyCreateSchema: _key_create,
    s.UserCreateSchema: _user_create,
}


def _not_blank(converter: Any, field: Any, **_: Any) -> dict[str, Any]:
    """A text field that must not be blank says so: at least one character that is not space."""
    validators = getattr(field, "validators", ())
    return {"pattern": r"\S"} if s._not_blank in validators else {}


class _Plugin(MarshmallowPlugin):
    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        assert self.converter is not None
        self.converter.add_attribute_function(_not_blank)

    # apispec's MarshmallowPlugin already differs from BasePlugin here (a `schema` parameter);
    # this follows MarshmallowPlugin, which is what is called.
    def schema_helper(  # type: ignore[override]
        self, name: str, _: Any, schema: Any = None, **kwargs: Any
    ) -> Any:
        json_schema = super().schema_helper(name, _, schema=schema, **kwargs)
        rule = CROSS_FIELD_RULES.get(schema if isinstance(schema, type) else type(schema))
        return rule(json_schema) if rule and json_schema else json_schema


def openapi_path(rule: str) -> str:
    """A werkzeug rule as an OpenAPI path: ``/cases/<case_id>`` -> ``/cases/{case_id}``."""
    return _PATH_PARAMETER.sub(lambda m: "{" + m["name"] + "}", rule)


def path_parameters(route: api.Route) -> list[dict[str, Any]]:
    out = []
    for match in _PATH_PARAMETER.finditer(route.path):
        converter, name = match["converter"], match["name"]
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        description = ""
        if converter in ("progress_token", "link_token"):
            description = (
                "The credential of this route: a reporter's progress token or an e-mailed "
                "action link's token. An unknown, expired or malformed one is answered alike."
            )
        elif converter == "path":
            description = "A file's path below the folder (may hold /)."
        param: dict[str, Any] = {"in": "path", "name": name, "required": True, "schema": schema}
        if description:
            param["description"] = description
            if converter != "path":
                param["x-gridflow-credential"] = True
        out.append(param)
    return out


def tag_of(route: api.Route) -> str:
    """The group a route is shown in: the first segment after /api/v1 (admin, me and session
    alike), else the first segment of the path (/open311/v2/... -> open311), pages apart."""
    parts = [p for p in route.path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
        first = rest[0] if rest else "api"
        return {
            "openapi.json": "docs",
            "me": "session",
            "progress": "links",
            "units": "departments",
        }.get(first, first)
    if not parts or parts[0] in ("cases", "static"):
        return "pages"
    if parts[0] in ("healthz", "metrics"):
        return "operations"
    return parts[0]


def error_statuses(route: api.Route) -> list[int]:
    """The refusals a route can give, from what the routing table says of it."""
    statuses = set(route.errors)
    has_path = bool(_PATH_PARAMETER.search(route.path))
    if route.body_limit is not None:
        statuses |= {400, 413, 415}
    if route.query is not None or has_path:
        statuses.add(400)
    if has_path:
        statuses.add(404)
    if route.access != api.OPEN:
        statuses.add(401)
        if route.access != api.ANY_CREDENTIAL or route.method not in acc.SAFE_METHODS:
            statuses.add(403)
    if route.endpoint not in api.UNLIMITED:
        statuses |= {429, 503}
    return sorted(statuses)


def _media(content_type: str, schema: Any) -> dict[str, Any]:
    return {content_type: {"schema": schema}}


def _answer_content(route: api.Route) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for content_type in route.answer_types:
        if content_type == JSON:
            schema: Any = route.answer if route.answer is not None else {"type": "object"}
        elif content_type.startswith(("text/", "application/xml")):
            schema = {"type": "string"}
        else:
            schema = {"type": "string", "contentMediaType": content_type}
        content.update(_media(content_type, schema))
    return content


# GeoReport v2's own error shape: a list of {code, description}.
OPEN311_ERROR = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"code": {}, "description": {"type": "string"}},
    },
}


def _refusal(route: api.Route, status: int) -> dict[str, Any]:
    error = OPEN311_ERROR if route.path.startswith("/open311/") else None
    content = _media(JSON, error or {"$ref": "#/components/schemas/Error"})
    for content_type in route.answer_types:
        if content_type.startswith(_REFUSAL_TYPES):
            content.update(_media(content_type, {"type": "string"}))
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS.get(status, "Refused."),
        "content": content,
    }
    if status in _HEADERS:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in _HEADERS[status].items()
        }
    return response


def operation_id(route: api.Route) -> str:
    """The endpoint's name; an endpoint served at two paths (Open311's ``requests`` and
    ``requests.{fmt}``) names the second by its format parameter, so each id is unique."""
    return route.endpoint + ("_with_format" if "<fmt>" in route.path else "")


def operation(route: api.Route) -> dict[str, Any]:
    security, who = POLICIES[route.access]
    op: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "description": f"**Who**: {who}",
        "tags": [tag_of(route)],
        "security": security,
        "x-gridflow-access": route.access,
    }
    parameters = path_parameters(route)
    if route.query is not None:
        parameters.append({"in": "query", "schema": route.query})
    if parameters:
        op["parameters"] = parameters
    if route.body_limit is not None:
        body_schema: Any = route.body if route.body is not None else {"type": "object"}
        op["requestBody"] = {
            # A JSON body is an object even when none of its fields is required: an empty body
            # is refused (400, `_body`), `{}` is taken.
            "required": JSON in route.content_types
            or (route.body is not None and any(f.required for f in route.body().fields.values())),
            "description": f"At most {route.body_limit} bytes."
            + (
                " A JSON object (`{}` when no field is given)."
                if JSON in route.content_types
                else ""
            ),
            "content": {
                ct: {"schema": body_schema if ct == JSON or route.body else {"type": "string"}}
                for ct in route.content_types
            },
        }
    responses: dict[str, Any] = {}
    for status in route.ok:
        responses[str(status)] = {
            "description": "Done." if status != 303 else "Done; sent on (Location).",
            **({"content": _answer_content(route)} if status != 204 else {}),
        }
    for status in error_statuses(route):
        responses[str(status)] = _refusal(route, status)
    op["responses"] = responses
    return op


def build(routes: Iterable[api.Route] = api.ROUTES) -> dict[str, Any]:
    spec = APISpec(
        title=TITLE,
        version=API_VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[_Plugin()],
        info={
            "description": (
                "Gridflow routes civic cases (报件) across a city's departments. Every answer, "
                "refusals included, is JSON unless the route says otherwise; every refusal "
                "names each field and why. No text in a body or a query may hold NUL (\\u0000) "
                "or a lone surrogate (PostgreSQL stores neither): 400, naming the field. Built "
                "from the routing table and its marshmallow schemas; a browsable page of it is "
                "at /api/v1/docs."
            )
        },
    )
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    spec.components.schema("Error", ERROR_SCHEMA)
    spec.components.response("MethodNotAllowed", _refusal(_NO_ROUTE, 405))
    by_path: dict[str, dict[str, Any]] = {}
    for route in routes:
        by_path.setdefault(openapi_path(route.path), {})[route.method.lower()] = operation(route)
    for path, operations in by_path.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    document["tags"] = [{"name": t} for t in sorted({tag_of(r) for r in routes})]
    return document


_NO_ROUTE = api.Route("GET", "/", "none", api.OPEN)
_BUILT: dict[str, Any] = {}
_LOCK = threading.Lock()


def document() -> dict[str, Any]:
    """The document, built once per process (the routing table does not change while it runs)."""
    with _LOCK:
        if not _BUILT:
            _BUILT.update(build())
        return _BUILT
