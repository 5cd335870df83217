"""Schemathesis against the live embedded default (`gridflow run`, a real HTTP server): the
schema is loaded from its own /api/v1/openapi.json, and every operation is called with requests
generated from it, as an admin, with no credential, and (for the routes a key or a department
calls) with a channel's key and a holder's credential. Each answer must be no 5xx, have a
documented status and content type, and match the documented schema.

Reaching past validation: a request that only fits the schema mostly names nothing the city has
(a point in the sea, a grid code no city has, case ``abc``), and is refused with a 404 or 422
before any handler does its work. So half the valid requests are *steered*: drawn from the
document as usual, then the values the city decides are drawn from the city (a point inside
Lucheng, one of its grid codes or place names, a known category, unit or case), each still
fitting the schema. How many requests each operation answered with a 2xx is counted, printed at
the end (`-s`), and for the operations in ``MUST_REACH`` asserted, so the fuzz's reach is
measured, not assumed.

Bounded: ``STEERED_EXAMPLES``, ``VALID_EXAMPLES`` and ``INVALID_EXAMPLES`` per operation and
identity, derandomized (Hypothesis's fixed seed from the test's
name), so CI runs the same requests each time.

Not fuzzed, and why:
- ``GET /api/v1/board/events``: a server-sent stream that stays open for minutes by design; a
  generated call would only wait for it (its refusals are tested in test_board*).
- ``GET /metrics``: Prometheus text with no schema to conform to, and nothing a parameter changes.
- As admin only, the destructive admin routes: ``POST /api/v1/admin/reset`` empties what the
  other operations' examples stand on, ``PUT /api/v1/admin/clock`` moves the clock every case's
  SLA follows, and ``PUT /api/v1/admin/jurisdiction`` could install a generated city. They are
  fuzzed unauthenticated (every call refused), and tested by their own tests.
- As admin, ``POST /api/v1/admin/users/{username}/disable`` and ``PUT /api/v1/me/password``: a
  generated example could disable or lock out the admin whose token the run uses; and a
  credential id is never steered to a real one (``DELETE /api/v1/admin/keys/{id}`` would revoke
  the run's own credentials).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gridflow_app.folders import LUCHENG
from gridflow_common.domain.jurisdiction import LEVELS
from gridflow_common.domain.jurisdiction_files import load_folder
from gridflow_common.domain.lifecycle import MAX_EXTENSION_HOURS
from gridflow_intake.api import ROUTES
from tests.conftest import admin_token

pytestmark = pytest.mark.api_fuzz

# Requests per operation and identity: steered valid ones, valid ones as generated, invalid ones.
STEERED_EXAMPLES = 15
VALID_EXAMPLES = 10
INVALID_EXAMPLES = 10
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NOT_FUZZED = "^/(metrics|api/v1/board/events)$"
DESTRUCTIVE_FOR_THE_RUN = (
    "put_clock",
    "post_reset",
    "put_jurisdiction",
    "post_user_disable",
    "put_my_password",
)
# The operations whose steered requests must get past validation at least this many times (a
# 2xx): the report path, a case's life, and the admin's writes. What each reached is printed.
MUST_REACH = {
    ("admin", "post_report"): 5,
    ("admin", "get_cases"): 5,
    ("admin", "get_case"): 3,
    ("admin", "post_order"): 1,
    ("admin", "post_key"): 3,
    ("admin", "post_user"): 1,
    ("admin", "get_case_place"): 3,
    ("admin", "get_inbox"): 3,
    ("channel", "post_report"): 5,
    ("stranger", "post_report"): 3,
    # "resolved": as the admin, on cases their holders resolved (test_a_case_s_end_...).
    ("resolved", "post_verify"): 1,
    ("resolved", "post_evaluate"): 1,
    ("admin", "get_progress"): 3,
    ("admin", "delete_key"): 1,
    ("admin", "post_key_rotate"): 1,
    ("admin", "delete_my_token"): 1,
    ("admin", "post_session"): 1,
    ("reporter", "get_progress"): 3,
    ("reporter", "post_progress_evaluation"): 1,
    ("holder", "post_update"): 2,
    ("holder", "post_department_update"): 1,
}

# The city the embedded default runs (gridflow run's default jurisdiction).
CITY = load_folder(LUCHENG)
GRID_CODES = [a.code for a in CITY.areas_at(LEVELS[-1])]
PLACE_NAMES = [a.name for level in LEVELS[1:] for a in CITY.areas_at(level) if a.name]
CATEGORIES = [c.code for c in CITY.categories]
UNIT_CODES = [u.code for u in CITY.units]
DEPARTMENT_CODES = [d.code for d in CITY.departments]
(BOX,) = [a.polygon.bbox for a in CITY.areas_at(LEVELS[0])]
# A query's filters that name the city's codes.
CITY_VALUES = {
    "department": DEPARTMENT_CODES,
    "unit": UNIT_CODES,
    "street": [a.code for a in CITY.areas_at(LEVELS[1])],
    "community": [a.code for a in CITY.areas_at(LEVELS[2])],
    "grid": GRID_CODES,
    "category": CATEGORIES,
}
# A user's scope by role (access.check_scope): what each role's scope names in the city.
SCOPES = {
    "command_center": [a.code for a in CITY.areas_at(LEVELS[0])],
    "leader": UNIT_CODES,
    "department": DEPARTMENT_CODES,
    "street": CITY_VALUES["street"],
    "community": CITY_VALUES["community"],
    "grid_worker": GRID_CODES,
}
CHANNEL = "grid_app"  # the channel of the key the run reports with
PUBLIC_CHANNEL = "web"


# Parametrized from the routing table (the live document is the same one, built from it), so each
# operation is a test of its own; the generated requests come from the live document.
ENDPOINTS = [
    r.endpoint
    for r in ROUTES
    # schemathesis leaves out the operation its schema was loaded from (the document itself:
    # test_the_live_document_is_the_built_one checks it).
    if not re.match(NOT_FUZZED, r.path) and r.endpoint != "get_openapi"
]

# (identity, endpoint) -> statuses answered to valid requests (steered or not) and invalid ones.
REACH: dict[tuple[str, str], dict[str, Counter]] = defaultdict(
    lambda: {"steered": Counter(), "valid": Counter(), "invalid": Counter(), "why": Counter()}
)


@dataclass
class Steering:
    """What the city has, for steered requests: case ids, the channel reported through."""

    case_ids: list[str]
    channel: str | None = None
    # Gridflow's clock (simulated): an instant asked for is drawn ahead of it.
    now: dt.datetime | None = None
    usernames: list[str] = field(default_factory=lambda: ["admin"])
    # The units and departments a path's {code} names.
    codes: list[str] = field(default_factory=lambda: UNIT_CODES + DEPARTMENT_CODES)
    # Reporters' progress tokens, and credentials made to be revoked or rotated (never the
    # run's own).
    tokens: list[str] = field(default_factory=list)
    # (by operationId: each revokes or rotates its own, so one does not use up another's)
    credential_ids: dict[str, list[str]] = field(default_factory=dict)
    # A user name and password that sign in.
    sign_in: tuple[str, str] | None = None


def city_location(pick: random.Random) -> dict:
    form = pick.randrange(3)
    if form == 0:
        return {"grid_code": pick.choice(GRID_CODES)}
    if form == 1:
        return {"address": f"温州市鹿城区{pick.choice(PLACE_NAMES)}附近"}
    return {
        "lat": pick.uniform(BOX.min_lat, BOX.max_lat),
        "lon": pick.uniform(BOX.min_lon, BOX.max_lon),
    }


@st.composite
def steered(draw, operation, steering: Steering):
    """A valid request whose city-decided values are the city's own (each still fits the
    schema: the document is not bent, only the draw). The city's values come from one drawn
    seed: a draw per value would make the example larger than Hypothesis lets it grow beside a
    generated body, and the steered requests would mostly be thrown away."""
    case = draw(operation.as_strategy(GenerationMode.POSITIVE))
    pick = random.Random(draw(st.integers(0, 2**32)))
    params = case.path_parameters or {}
    if "case_id" in params and steering.case_ids:
        params["case_id"] = pick.choice(steering.case_ids)
    if "code" in params:
        params["code"] = pick.choice(steering.codes)
    if "username" in params:
        params["username"] = pick.choice(steering.usernames)
    if "token" in params and steering.tokens:
        params["token"] = pick.choice(steering.tokens)
    mine = steering.credential_ids.get(operation.definition.raw.get("operationId"))
    if "credential_id" in params and mine:
        params["credential_id"] = pick.choice(mine)
    query = case.query or {}
    for name in set(query) & set(CITY_VALUES):
        # A filter names the city's codes (one, or several comma-separated).
        query[name] = pick.choice(CITY_VALUES[name])
    # A cursor is a page's own `next`: a made-up one is refused whatever else is right.
    query.pop("cursor", None)
    for name in {"registered_from", "registered_to"} & set(query):
        query[name] = f"2026-{pick.randint(1, 12):02}-{pick.randint(1, 28):02}"
    if "wait" in query:
        # A unit's inbox long-polls for up to 30 s when it is empty: a short wait is as valid.
        query["wait"] = round(pick.uniform(0, 0.2), 3)
    body = case.body
    if isinstance(body, dict):
        if isinstance(body.get("case_id"), str) and steering.case_ids:
            body["case_id"] = pick.choice(steering.case_ids)
        if isinstance(body.get("location"), dict):
            body["location"] = city_location(pick)
        if body.get("category") is not None:
            body["category"] = pick.choice(CATEGORIES)
        if "channel" in body and steering.channel and operation.path.endswith("/reports"):
            body["channel"] = steering.channel
        if body.get("unit") is not None:
            body["unit"] = pick.choice(UNIT_CODES)
        if body.get("into") is not None and steering.case_ids:
            body["into"] = pick.choice(steering.case_ids)
        if body.get("holder") is not None:
            body["holder"] = pick.choice(UNIT_CODES + DEPARTMENT_CODES)
        if body.get("due") is not None and steering.now is not None:
            hours = pick.randint(1, MAX_EXTENSION_HOURS)
            body["due"] = (steering.now + dt.timedelta(hours=hours)).isoformat()
        if steering.sign_in and operation.path.endswith("/session") and "password" in body:
            body["username"], body["password"] = steering.sign_in
        if "role" in body and body.get("scope") is not None and body["role"] in SCOPES:
            body["scope"] = pick.choice(SCOPES[body["role"]])
        if "from" in body:
            # The sender is the credential's own (a holder's key answers for its holder).
            body["from"] = None
    return case


def _fuzz(identity, endpoint, operation, headers, steering=None, examples=None):
    """Three bounded runs: steered valid requests (when ``steering`` is given), valid requests
    as generated, and requests that break the schema (the 4xx each must answer with). Each run
    is its own, so each kind gets its share of the requests (one run drawing from all three
    gives an uneven share, and a different one each time a strategy changes)."""
    plan = [("valid", operation.as_strategy(GenerationMode.POSITIVE), VALID_EXAMPLES)]
    if _has_input_to_break(operation):
        plan.append(("invalid", operation.as_strategy(GenerationMode.NEGATIVE), INVALID_EXAMPLES))
    if steering is not None:
        plan.insert(0, ("steered", steered(operation, steering), examples or STEERED_EXAMPLES))
    counts = REACH[(identity, endpoint)]
    for mode, strategy, count in plan:
        _run(strategy, count, headers, counts, mode)
    return counts


def _has_input_to_break(operation) -> bool:
    """A body or a query: what a request that breaks the schema can break. A path parameter's
    only rule is that it is not empty, and an empty one is another path (Hypothesis finds no
    such request and says the run is unsatisfiable)."""
    raw = operation.definition.raw
    return "requestBody" in raw or any(p.get("in") == "query" for p in raw.get("parameters", []))


def _run(strategy, count, headers, counts, mode):
    # schemathesis's own pytest plugin does not run under this pytest (9.x); Hypothesis drives
    # the operation's strategy directly, with the same settings.
    @settings(
        max_examples=count,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=strategy)
    def run(case):
        response = case.call(headers=headers)
        counts[mode][response.status_code] += 1
        if mode != "invalid" and 400 <= response.status_code < 500:
            counts["why"][f"{mode} {response.status_code} {_fields_refused(response)}"] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


def _fields_refused(response) -> str:
    try:
        errors = response.json().get("errors")
    except ValueError:
        return "?"
    return ",".join(sorted(errors)) if isinstance(errors, dict) else "?"


def _reached(counts, modes=("steered", "valid")) -> int:
    return sum(n for mode in modes for status, n in counts[mode].items() if 200 <= status < 300)


def _assert_reach(identity, endpoint, counts):
    least = MUST_REACH.get((identity, endpoint))
    if least is not None:
        assert _reached(counts) >= least, (
            f"{identity} {endpoint}: only {_reached(counts)} of the valid requests got past "
            f"validation: steered {dict(counts['steered'])}, as generated {dict(counts['valid'])}"
        )


# -- the run's credentials and cases -----------------------------------------------------------


@pytest.fixture(scope="module")
def live_operations(embedded_url):
    schema = schemathesis.openapi.from_url(embedded_url + "/api/v1/openapi.json")
    schema.config.base_url = embedded_url
    operations = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations[operation.definition.raw["operationId"]] = operation
    return operations


@pytest.fixture(scope="module")
def admin_headers(embedded_url):
    return {"Authorization": f"Bearer {admin_token(embedded_url)}"}


def _issue_key(url, admin_headers, **subject) -> str:
    answer = httpx.post(
        url + "/api/v1/admin/keys",
        json={"label": "openapi fuzz", "rate_limit": "100000/min", **subject},
        headers=admin_headers,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def _new_cases(url, headers, count, channel="hotline") -> list[str]:
    return [answer["case_id"] for answer in _new_reports(url, headers, count, channel)]


def _progress_tokens(answers) -> list[str]:
    return [a["progress_url"].rsplit("/", 1)[-1] for a in answers if a.get("progress_url")]


def _new_reports(url, headers, count, channel="hotline") -> list[dict]:
    answers = []
    for i in range(count):
        answer = httpx.post(
            url + "/api/v1/reports",
            json={
                "channel": channel,
                "description": f"路灯不亮 (fuzz case {i})",
                "category": "component.streetlight",
                "location": {"grid_code": GRID_CODES[i % len(GRID_CODES)]},
            },
            headers=headers,
            timeout=10,
        )
        assert answer.status_code in (200, 201), answer.text
        answers.append(answer.json())
    return answers


def _clock(url, headers) -> dt.datetime:
    answer = httpx.get(url + "/api/v1/admin/clock", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return dt.datetime.fromisoformat(answer.json()["now"])


def _holder_of(url, headers, case_id, timeout=30.0) -> str:
    """The unit the case was dispatched to, once routing has done it (bounded poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        case = httpx.get(f"{url}/api/v1/cases/{case_id}", headers=headers, timeout=10).json()
        if case.get("handler"):
            return case["handler"]
        time.sleep(0.1)  # bounded: by the deadline above, while routing dispatches the case
    raise TimeoutError(f"case {case_id} was not dispatched within {timeout} s")


def _throwaway_credentials(url, headers, count) -> dict[str, list[str]]:
    """Keys and one's own tokens made only to be revoked or rotated by the fuzz, ``count`` for
    each operation that does."""

    def issue(path, body) -> str:
        answer = httpx.post(url + path, json=body, headers=headers, timeout=10)
        assert answer.status_code == 201, answer.text
        issued = answer.json()
        return (issued.get("key") or issued.get("credential"))["credential_id"]

    key = ("/api/v1/admin/keys", {"channel": PUBLIC_CHANNEL, "label": "throwaway"})
    own = ("/api/v1/me/tokens", {"label": "throwaway"})
    return {
        operation_id: [issue(*made) for _ in range(count)]
        for operation_id, made in (
            ("delete_key", key),
            ("post_key_rotate", key),
            ("delete_my_token", own),
        )
    }


def _user_who_signs_in(url, headers) -> tuple[str, str]:
    username, password = "fuzz-signer", "a long enough password 1"
    answer = httpx.post(
        url + "/api/v1/admin/users",
        json={"username": username, "role": "command_center", "password": password},
        headers=headers,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return username, password


@pytest.fixture(scope="module")
def admin_steering(embedded_url, admin_headers):
    reports = _new_reports(embedded_url, admin_headers, 8)
    return Steering(
        case_ids=[r["case_id"] for r in reports],
        tokens=_progress_tokens(reports),
        credential_ids=_throwaway_credentials(embedded_url, admin_headers, 4),
        sign_in=_user_who_signs_in(embedded_url, admin_headers),
    )


# -- the fuzz ---------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e not in DESTRUCTIVE_FOR_THE_RUN])
def test_every_operation_keeps_its_word_to_an_admin(
    endpoint, live_operations, admin_headers, admin_steering
):
    counts = _fuzz("admin", endpoint, live_operations[endpoint], admin_headers, admin_steering)
    _assert_reach("admin", endpoint, counts)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_operation_keeps_its_word_to_a_stranger(endpoint, live_operations):
    # Steered only where a stranger can get through: a report on the public channel.
    steering = Steering(case_ids=[], channel=PUBLIC_CHANNEL) if endpoint == "post_report" else None
    counts = _fuzz("stranger", endpoint, live_operations[endpoint], {}, steering)
    _assert_reach("stranger", endpoint, counts)


def test_reports_keep_their_word_to_a_channel_key(embedded_url, live_operations, admin_headers):
    headers = {
        "Authorization": f"Bearer {_issue_key(embedded_url, admin_headers, channel=CHANNEL)}"
    }
    steering = Steering(case_ids=[], channel=CHANNEL)
    counts = _fuzz("channel", "post_report", live_operations["post_report"], headers, steering)
    _assert_reach("channel", "post_report", counts)


def test_status_updates_keep_their_word_to_the_holder(embedded_url, live_operations, admin_headers):
    # Cases of the holder's own, dispatched to it, so its updates reach the case's life.
    case_ids = _new_cases(embedded_url, admin_headers, 12)
    holder = _holder_of(embedded_url, admin_headers, case_ids[0])
    mine = [c for c in case_ids if _holder_of(embedded_url, admin_headers, c) == holder]
    headers = {"Authorization": f"Bearer {_issue_key(embedded_url, admin_headers, holder=holder)}"}
    steering = Steering(mine, now=_clock(embedded_url, admin_headers), codes=[holder])
    # One holder's few cases move on with each update that gets through: more draws.
    for endpoint in ("post_update", "post_department_update"):
        counts = _fuzz(
            "holder",
            endpoint,
            live_operations[endpoint],
            headers,
            steering,
            examples=4 * STEERED_EXAMPLES,
        )
        _assert_reach("holder", endpoint, counts)


def test_a_case_s_end_keeps_its_word(embedded_url, live_operations, admin_headers):
    """Verification, evaluation and the reporter's own rating, on cases their holders resolved
    (the only cases that take them)."""
    reports = _new_reports(embedded_url, admin_headers, 8)
    keys: dict[str, str] = {}
    for report in reports:
        holder = _holder_of(embedded_url, admin_headers, report["case_id"])
        if holder not in keys:
            keys[holder] = _issue_key(embedded_url, admin_headers, holder=holder)
        answer = httpx.post(
            f"{embedded_url}/api/v1/cases/{report['case_id']}/updates",
            json={"status": "resolved", "note": "已修复"},
            headers={"Authorization": f"Bearer {keys[holder]}"},
            timeout=10,
        )
        assert answer.status_code in (200, 202), answer.text
    steering = Steering([r["case_id"] for r in reports], tokens=_progress_tokens(reports))
    for identity, endpoint, headers in (
        ("resolved", "post_verify", admin_headers),
        ("resolved", "post_evaluate", admin_headers),
        ("reporter", "get_progress", {}),
        ("reporter", "post_progress_evaluation", {}),
    ):
        counts = _fuzz(identity, endpoint, live_operations[endpoint], headers, steering)
        _assert_reach(identity, endpoint, counts)


def test_the_live_document_is_the_built_one_and_valid(embedded_url):
    from openapi_spec_validator import validate

    from gridflow_intake import openapi

    answer = httpx.get(embedded_url + "/api/v1/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == json.loads(json.dumps(openapi.build()))
    validate(answer.json())


@pytest.fixture(scope="module", autouse=True)
def reach_table():
    """After the module: per identity and operation, the valid requests (steered, then as
    generated) that got a 2xx, the statuses of each kind, and why valid ones were refused
    (shown with -s)."""
    yield
    if not REACH:
        return
    lines = [
        "",
        "fuzz reach: identity operation  2xx/steered  2xx/as-generated  "
        "statuses: steered | as generated | invalid",
    ]
    for (identity, endpoint), counts in sorted(REACH.items()):
        shown = [dict(sorted(counts[mode].items())) for mode in ("steered", "valid", "invalid")]
        lines.append(
            f"  {identity:8} {endpoint:26} "
            f"{_reached(counts, ('steered',)):3}/{sum(counts['steered'].values()):<3} "
            f"{_reached(counts, ('valid',)):3}/{sum(counts['valid'].values()):<3} "
            + " | ".join(map(str, shown))
        )
        if counts["why"]:
            lines.append(f"{'':40}refused: {dict(counts['why'].most_common(5))}")
    print("\n".join(lines))
