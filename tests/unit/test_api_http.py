"""The HTTP API as a client meets it: the routing table's JSON 404/405, bodies read within their
limit (and never whole when too big), strict JSON, reset all or nothing, instants in the city's
zone.

In process: werkzeug ``Request`` objects handed to ``IntakeApi.respond`` of an embedded Gridflow
(temporary SQLite file), so a test can count the bytes a refused body had read from it.
Over HTTP: the same against ``gridflow run`` (the ``embedded_url`` fixture).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import io
import json
import uuid
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gridflow_app.embedded import EmbeddedGridflow
from gridflow_common.clock import RealClock
from gridflow_common.reset import ResetOrder, execute
from gridflow_intake import models
from gridflow_intake.api import ROUTES, URL_MAP
from gridflow_intake.schemas import MAX_BODY_BYTES, MAX_JURISDICTION_BYTES
from tests.conftest import admin_token
from tests.credentials import SignedApi, bearer
from tests.http_samples import (
    JSON,
    REPORTS,
    lucheng_with_more_people,
    nested,
    raw_call,
    report_with_long_lat,
)
from tests.http_samples import report as _report

SHANGHAI = "+08:00"


@pytest.fixture(autouse=True)
def _no_admin_token(monkeypatch):
    monkeypatch.delenv("GRIDFLOW_ADMIN_TOKEN", raising=False)


@pytest.fixture
def api(gridflow):
    return SignedApi(gridflow)


class CountingStream(io.RawIOBase):
    """A client's body: ``size`` bytes of a JSON-looking string, or endless; counts what the
    server read of it."""

    def __init__(self, size: int | None = None):
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = len(buffer) if self.size is None else min(len(buffer), self.size - self.read_bytes)
        buffer[:left] = b"x" * left
        self.read_bytes += left
        return left


def _request(method: str, path: str, body: bytes | None = None, headers=None, **environ):
    builder = EnvironBuilder(path=path, method=method, data=body, headers=headers or {})
    env = builder.get_environ()
    env.update(environ)
    return Request(env)


def _json_request(method: str, path: str, body) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return _request(method, path, raw, {"Content-Type": "application/json"})


def _answer(api, request) -> tuple[int, dict]:
    response = api.respond(request)
    assert response.mimetype == "application/json", response.get_data()
    return response.status_code, json.loads(response.get_data())


def _intake_rows(g: EmbeddedGridflow) -> int:
    with g.engine.connect() as conn:
        return (
            sum(
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (models.cases, models.reports, models.timeline)
            )
            + g.runtimes["intake"].pending_outbox()
        )


# ----------------------------------------------------------------------------- routing table


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", REPORTS, "POST"),
        ("PATCH", "/api/v1/cases/GF-1/updates", "POST"),
        ("GET", REPORTS, "POST"),
        ("DELETE", "/api/v1/admin/clock", "GET, HEAD, PUT"),
        ("POST", "/api/v1/cases/GF-1", "GET, HEAD"),
    ],
)
def test_wrong_method_is_a_json_405_with_an_allow_header(api, method, path, allowed):
    response = api.respond(_request(method, path))
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert method in json.loads(response.get_data())["errors"]["method"][0]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nothing", "/api/v2/reports", "/static", "/nothing", "/api/v1/cases/GF-1/nothing"],
)
def test_unknown_path_is_a_json_404_naming_it(api, path):
    status, body = _answer(api, _request("GET", path))
    assert status == 404
    assert path in body["errors"]["path"][0]


def test_route_list_is_exportable_and_is_the_routing_table():
    assert {(r.method, r.path) for r in ROUTES} == {
        (next(iter(rule.methods - {"HEAD"})), rule.rule) for rule in URL_MAP.iter_rules()
    }
    jurisdiction = next(r for r in ROUTES if r.endpoint == "put_jurisdiction")
    assert (jurisdiction.admin, jurisdiction.body_limit) == (True, MAX_JURISDICTION_BYTES)


# ----------------------------------------------------------------------------- defect 8


BAD_REPORTS = [
    pytest.param(nested(5000), "_body", "nested too deeply", id="nested-5000-deep"),
    pytest.param(nested(40), "x", "nested too deeply", id="nested-40-deep"),
    pytest.param(
        report_with_long_lat(4300),
        "location.lat",
        "4300 digits",
        id="lat-of-4300-digits",
    ),
    pytest.param(
        _report(description="废弃物\u0000"), "description", "NUL", id="nul-in-description"
    ),
    pytest.param(
        _report(reporter={"name": "吴\u0000辉", "phone": "13866000001"}),
        "reporter.name",
        "NUL",
        id="nul-in-reporter-name",
    ),
    pytest.param(
        _report(description="\ud800废弃物"), "description", "surrogate", id="lone-surrogate"
    ),
    pytest.param(_report(**{"\ud800": 1}), '"\\ud800"', "surrogate", id="lone-surrogate-in-a-name"),
    pytest.param(
        _report(location={"lat": "28.05", "lon": 120.635}),
        "location.lat",
        "number",
        id="lat-as-a-string",
    ),
    pytest.param(
        _report(location={"lat": True, "lon": 120.635}), "location.lat", "number", id="lat-as-true"
    ),
    pytest.param(
        b'{"channel": "grid_app", "location": {"lat": NaN}}', "_body", "not a json number", id="nan"
    ),
]


@pytest.mark.parametrize(("body", "field", "why"), BAD_REPORTS)
def test_untakeable_report_is_a_400_naming_the_field_and_writes_nothing(
    gridflow, api, body, field, why
):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    status, answer = _answer(api, _json_request("POST", REPORTS, body))
    assert status == 400, answer
    assert why.lower() in " ".join(answer["errors"][field]).lower(), answer
    assert _intake_rows(gridflow) == 0


@pytest.fixture
def closed_case(gridflow, api):
    """A case resolved and verified, so it can be evaluated."""
    from tests.unit.test_report_validation import _pump

    case_id = _answer(api, _json_request("POST", REPORTS, _report()))[1]["case_id"]
    _pump(gridflow)
    holder = "environment-330302104"
    assert (
        api.handle(
            "POST",
            f"/api/v1/cases/{case_id}/updates",
            json.dumps({"from": holder, "status": "resolved"}).encode(),
        ).status
        == 202
    )
    return case_id


@pytest.mark.parametrize(
    ("path_end", "body", "field", "why"),
    [
        ("verification", b'{"passed": 1}', "passed", "true or false"),
        ("verification", b'{"passed": "true"}', "passed", "true or false"),
        ("verification", b'{"passed": true, "note": "ok\\u0000"}', "note", "NUL"),
        ("evaluation", b'{"satisfaction": ' + b"4" * 4300 + b"}", "satisfaction", "4300 digits"),
        ("evaluation", b'{"satisfaction": true}', "satisfaction", "integer"),
        (
            "updates",
            b'{"from": "environment-330302104\\u0000", "status": "accepted"}',
            "from",
            "NUL",
        ),
    ],
)
def test_untakeable_case_request_is_a_400_naming_the_field_and_changes_nothing(
    gridflow, api, closed_case, path_end, body, field, why
):
    before = _intake_rows(gridflow)
    status, answer = _answer(
        api, _json_request("POST", f"/api/v1/cases/{closed_case}/{path_end}", body)
    )
    assert status == 400, answer
    assert why.lower() in " ".join(answer["errors"][field]).lower(), answer
    assert _intake_rows(gridflow) == before
    view = _answer(api, _request("GET", f"/api/v1/cases/{closed_case}"))[1]
    assert (view["status"], view["satisfaction"]) == ("resolved", None)


def test_nul_in_a_path_value_is_a_400_naming_it(api):
    status, answer = _answer(api, _request("GET", "/api/v1/cases/GF-%00"))
    assert status == 400
    assert "NUL" in answer["errors"]["case_id"][0]


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        (None, "no content-type"),
        ("text/plain", "'text/plain'"),
        ("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"),
        ("application/json; charset=latin-1", "'latin-1'"),
    ],
)
def test_a_body_that_does_not_say_it_is_json_is_a_415_naming_the_content_type(
    gridflow, api, content_type, named
):
    headers = {"Content-Type": content_type} if content_type else {}
    request = _request("POST", REPORTS, json.dumps(_report()).encode(), headers)
    if content_type is None:
        request.environ.pop("CONTENT_TYPE", None)
    status, answer = _answer(api, request)
    assert status == 415
    assert named.lower() in answer["errors"]["content_type"][0].lower()
    assert _intake_rows(gridflow) == 0


@pytest.mark.parametrize("now", ["9999-12-31T23:59:59+08:00", "1900-01-01T00:00:00+08:00"])
def test_clock_and_reset_outside_a_sane_range_are_a_400_saying_why(gridflow, api, now):
    before = _answer(api, _request("GET", "/api/v1/admin/clock"))[1]["now"]
    for method, path in (("PUT", "/api/v1/admin/clock"), ("POST", "/api/v1/admin/reset")):
        status, answer = _answer(api, _json_request(method, path, {"now": now}))
        assert status == 400, answer
        assert "outside the range" in answer["errors"]["now"][0]
    assert _answer(api, _request("GET", "/api/v1/admin/clock"))[1]["now"] == before
    assert gridflow.runtimes["intake"].pending_outbox() == 0


# ----------------------------------------------------------------------------- defects 17 and 18


def test_lucheng_with_600_more_people_is_imported(api):
    body = json.dumps({"files": lucheng_with_more_people(600)}, ensure_ascii=False).encode()
    assert len(body) > 79_000
    status, answer = _answer(api, _json_request("PUT", "/api/v1/admin/jurisdiction", body))
    assert status == 200, answer
    status, current = _answer(api, _request("GET", "/api/v1/admin/jurisdiction"))
    assert current["version"] == answer["version"]


@pytest.mark.parametrize(
    ("path", "method", "limit"),
    [
        (REPORTS, "POST", MAX_BODY_BYTES),
        ("/api/v1/admin/jurisdiction", "PUT", MAX_JURISDICTION_BYTES),
    ],
)
def test_a_declared_100_mb_body_is_refused_with_413_before_a_byte_is_read(api, path, method, limit):
    stream = CountingStream(100 * 1024 * 1024)
    request = _request(method, path, headers={"Content-Type": "application/json"})
    request.environ.update({"wsgi.input": stream, "CONTENT_LENGTH": str(100 * 1024 * 1024)})
    status, answer = _answer(api, request)
    assert status == 413
    assert str(limit) in answer["errors"]["_body"][0]
    assert stream.read_bytes == 0


@pytest.mark.parametrize(
    ("path", "method", "limit"),
    [
        (REPORTS, "POST", MAX_BODY_BYTES),
        ("/api/v1/admin/jurisdiction", "PUT", MAX_JURISDICTION_BYTES),
    ],
)
def test_an_endless_chunked_body_is_refused_with_413_at_the_limit(api, path, method, limit):
    stream = CountingStream(None)
    request = _request(
        method, path, headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    )
    request.environ.pop("CONTENT_LENGTH", None)
    request.environ["wsgi.input"] = stream
    status, answer = _answer(api, request)
    assert status == 413
    assert str(limit) in answer["errors"]["_body"][0]
    assert limit < stream.read_bytes <= limit + 1


def test_a_chunked_body_within_the_limit_is_taken(gridflow, api):
    body = json.dumps(_report()).encode()
    request = _request(
        "POST",
        REPORTS,
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    request.environ.pop("CONTENT_LENGTH", None)
    request.environ["wsgi.input"] = io.BytesIO(body)
    status, answer = _answer(api, request)
    assert status == 201, answer


# ----------------------------------------------------------------------------- reset (3, 16)


def test_reset_keeps_the_jurisdiction_in_force(gridflow, api):
    version = _answer(api, _request("GET", "/api/v1/admin/jurisdiction"))[1]["version"]
    assert _answer(api, _json_request("POST", REPORTS, _report()))[0] == 201
    status, answer = _answer(api, _json_request("POST", "/api/v1/admin/reset", {}))
    assert status == 200, answer
    assert _intake_rows(gridflow) == 0
    assert _answer(api, _request("GET", "/api/v1/admin/jurisdiction"))[1]["version"] == version
    assert _answer(api, _json_request("POST", REPORTS, _report()))[0] == 201


def test_reset_a_service_cannot_take_part_in_empties_nothing_and_names_it(gridflow, api):
    from tests.unit.test_report_validation import _pump

    assert _answer(api, _json_request("POST", REPORTS, _report()))[0] == 201
    _pump(gridflow)
    gridflow.runtimes["notify"].clock = RealClock()
    before = _table_counts(gridflow)
    status, answer = _answer(api, _json_request("POST", "/api/v1/admin/reset", {}))
    assert status == 503
    assert any(m.startswith("nothing was emptied: notify") for m in answer["errors"]["reset"])
    assert _table_counts(gridflow) == before
    assert before["intake_cases"] == 1 and before["routing_assignments"] >= 1


def _table_counts(g: EmbeddedGridflow) -> dict[str, int]:
    counts = {}
    with g.engine.connect() as conn:
        for runtime in g.runtimes.values():
            for table in runtime.own_tables:
                counts[table.name] = conn.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar_one()
    return counts


def test_a_reset_order_past_its_deadline_empties_nothing(gridflow, api):
    assert _answer(api, _json_request("POST", REPORTS, _report()))[0] == 201
    stale = ResetOrder("late", deadline=dt.datetime.now(dt.timezone.utc).timestamp() - 1)
    why = execute(gridflow.runtimes["intake"], stale)
    assert why and "deadline" in why
    assert _table_counts(gridflow)["intake_cases"] == 1


# ----------------------------------------------------------------------------- defect 14


def test_instants_the_api_answers_are_in_the_jurisdictions_zone(api):
    status, moved = _answer(
        api, _json_request("PUT", "/api/v1/admin/clock", {"now": "2026-03-02T01:00:00Z"})
    )
    assert (status, moved["now"]) == (200, "2026-03-02T09:00:00+08:00")
    assert (
        _answer(api, _request("GET", "/api/v1/admin/clock"))[1]["now"]
        == "2026-03-02T09:00:00+08:00"
    )
    jurisdiction = _answer(api, _request("GET", "/api/v1/admin/jurisdiction"))[1]
    assert jurisdiction["time_zone"] == "Asia/Shanghai"
    assert jurisdiction["loaded_at"].endswith(SHANGHAI)
    status, reset = _answer(
        api, _json_request("POST", "/api/v1/admin/reset", {"now": "2026-01-05T01:00:00Z"})
    )
    assert (status, reset["now"]) == (200, "2026-01-05T09:00:00+08:00")


# ----------------------------------------------------------------------------- over HTTP


def _raw(url: str, method: str, path: str, body: bytes | None, headers: dict):
    """One raw call to the server at ``url``, as its admin."""
    parts = urlsplit(url)
    headers = {**headers, **bearer(admin_token(url))}
    return raw_call(parts.hostname, parts.port, method, path, body, headers)


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        p
        for p in BAD_REPORTS
        if p.id
        in (
            "nested-5000-deep",
            "lat-of-4300-digits",
            "nul-in-description",
            "lone-surrogate",
            "lat-as-a-string",
        )
    ],
)
def test_untakeable_reports_over_http_to_the_embedded_default(embedded_url, body, field, why):
    external_id = f"bad-{uuid.uuid4().hex[:10]}"
    if not isinstance(body, bytes):
        body = json.dumps({**body, "external_id": external_id}).encode()
    status, _, answer = _raw(embedded_url, "POST", REPORTS, body, JSON)
    assert status == 400, answer
    assert why.lower() in " ".join(answer["errors"][field]).lower()
    # Nothing was registered under that external id: a valid report with it is new.
    good = json.dumps(_report(external_id=external_id)).encode()
    status, _, answer = _raw(embedded_url, "POST", REPORTS, good, JSON)
    assert status in (200, 201) and answer["outcome"] != "resubmission", answer


def test_passed_1_and_no_content_type_over_http_to_the_embedded_default(embedded_url):
    status, _, answer = _raw(
        embedded_url, "POST", "/api/v1/cases/GF-NONE/verification", b'{"passed": 1}', JSON
    )
    assert status == 400 and "passed" in answer["errors"]
    status, _, answer = _raw(embedded_url, "POST", REPORTS, json.dumps(_report()).encode(), {})
    assert status == 415 and "content_type" in answer["errors"]


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "OPTIONS"])
def test_methods_werkzeug_answered_in_html_are_json_405s_on_the_embedded_default(
    embedded_url, method
):
    status, headers, answer = _raw(embedded_url, method, REPORTS, None, {})
    assert status == 405
    assert headers["Allow"] == "POST"
    assert method in answer["errors"]["method"][0]


def test_an_endless_chunked_body_is_refused_with_413_by_the_embedded_default(embedded_url):
    # How much the API reads of it is pinned in process above; werkzeug's server then discards
    # the rest (10 MB a read) so that the client sees the 413 rather than a reset.
    parts = urlsplit(embedded_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    sent = 0

    def endless():
        nonlocal sent
        chunk = b"x" * 65536
        while sent < 32 * 1024 * 1024:
            sent += len(chunk)
            yield chunk

    try:
        # The server may answer and close while the client is still sending.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request("POST", REPORTS, body=endless(), headers=JSON, encode_chunked=True)
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 413
    assert str(MAX_BODY_BYTES) in answer["errors"]["_body"][0]
