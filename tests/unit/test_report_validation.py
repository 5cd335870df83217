"""The public API refuses what it cannot take, says which field and why, and changes nothing.

Everything goes through the framework-free ``IntakeApi`` of an embedded Gridflow (temporary
SQLite file). Where a test needs the case routed, the in-memory bus is pumped by hand, so the
flow is deterministic and nothing waits on background threads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from gridflow_app.embedded import LUCHENG, EmbeddedGridflow
from gridflow_intake import models
from gridflow_intake.schemas import MAX_BODY_BYTES
from tests.credentials import SignedApi

REPORTS = "/api/v1/reports"
TENGQIAO_POINT = {"lat": 28.05, "lon": 120.635}  # inside grid 330302104001001
WUMA_POINT = {"lat": 27.995, "lon": 120.556}  # inside grid 330302001001001


def _valid_report(**changes) -> dict:
    report = {
        "channel": "grid_app",
        "description": "一户民房内存放大量医疗废弃物",
        "category": "event.medical_waste",
        "location": dict(TENGQIAO_POINT),
    }
    report.update(changes)
    return report


@pytest.fixture(autouse=True)
def _no_admin_token(monkeypatch):
    monkeypatch.delenv("GRIDFLOW_ADMIN_TOKEN", raising=False)


def _embedded(clock_mode: str):
    g = EmbeddedGridflow(clock_mode=clock_mode)
    g.load_jurisdiction()
    yield g
    g.engine.dispose()


@pytest.fixture
def gridflow():
    yield from _embedded("simulated")


@pytest.fixture
def api(gridflow):
    return SignedApi(gridflow)


def _call(api, method: str, path: str, body=None):
    if body is None:
        raw = b""
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return api.handle(method, path, raw, {})


def _post_report(api, body):
    return _call(api, "POST", REPORTS, body)


def _row_counts(g: EmbeddedGridflow) -> dict[str, int]:
    tables = [models.cases, models.reports, models.timeline, models.colours]
    with g.engine.connect() as conn:
        counts = {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in tables
        }
    counts["outbox"] = g.runtimes["intake"].pending_outbox()
    counts["published"] = g.bus.deliveries.qsize()
    return counts


def _pump(g: EmbeddedGridflow, limit: int = 200) -> None:
    """Deliver everything on the in-memory bus, and what that causes, to its consumers."""
    g.drain(limit)


def _errors(response) -> dict:
    assert isinstance(response.body, dict) and "errors" in response.body, response.body
    return response.body["errors"]


# ----------------------------------------------------------------------------- malformed reports


def _without(report: dict, key: str) -> dict:
    return {k: v for k, v in report.items() if k != key}


@pytest.mark.parametrize(
    ("body", "status", "field", "why"),
    [
        pytest.param(
            _without(_valid_report(), "description"),
            400,
            "description",
            "missing data",
            id="missing-description",
        ),
        pytest.param(
            _valid_report(description=""), 400, "description", "empty", id="empty-description"
        ),
        pytest.param(
            _valid_report(description="   \t "), 400, "description", "empty", id="blank-description"
        ),
        pytest.param(
            _valid_report(location={"lat": 91.0, "lon": 120.6}),
            400,
            "location.lat",
            "90",
            id="lat-out-of-range",
        ),
        pytest.param(
            _valid_report(location={"lat": -90.5, "lon": 120.6}),
            400,
            "location.lat",
            "-90",
            id="lat-below-range",
        ),
        pytest.param(
            _valid_report(location={"lat": 28.05}),
            400,
            "location.lon",
            "lat and lon",
            id="lon-missing",
        ),
        pytest.param(
            _valid_report(location={"lat": 39.9, "lon": 116.4}),
            422,
            "location",
            "outside the jurisdiction",
            id="point-outside-jurisdiction",
        ),
        pytest.param(
            _valid_report(location={"grid_code": "330302999999999"}),
            422,
            "location.grid_code",
            "unknown grid code",
            id="unknown-grid-code",
        ),
        pytest.param(_valid_report(channel="fax"), 400, "channel", "one of", id="unknown-channel"),
        pytest.param(
            _valid_report(category="event.alien_landing"),
            422,
            "category",
            "unknown category",
            id="unknown-category",
        ),
        pytest.param(
            _valid_report(urgency="high"), 400, "urgency", "unknown field", id="unknown-extra-field"
        ),
        pytest.param(
            _valid_report(location={"lat": 28.05, "lon": 120.635, "floor": 3}),
            400,
            "location.floor",
            "unknown field",
            id="unknown-nested-field",
        ),
        pytest.param(
            _valid_report(location={}),
            400,
            "location",
            "give a point",
            id="location-without-any-form",
        ),
    ],
)
def test_malformed_report_is_refused_naming_the_field_and_why(
    gridflow, api, body, status, field, why
):
    response = _post_report(api, body)
    assert response.status == status
    errors = _errors(response)
    assert field in errors, errors
    assert why.lower() in " ".join(errors[field]).lower()
    assert set(_row_counts(gridflow).values()) == {0}


def test_oversized_body_is_refused_with_413_before_it_is_read(gridflow, api):
    report = _valid_report(description="x" * (MAX_BODY_BYTES + 10))
    response = _post_report(api, report)
    assert response.status == 413
    assert str(MAX_BODY_BYTES) in " ".join(_errors(response)["_body"])
    assert set(_row_counts(gridflow).values()) == {0}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        pytest.param(b'{"channel": "grid_app", ', "not valid json", id="truncated-json"),
        pytest.param(b"\xff\xfe not utf-8", "not valid json", id="not-utf8"),
        pytest.param(b"", "json object", id="empty-body"),
        pytest.param(b'[{"channel": "grid_app"}]', "json object", id="json-array"),
        pytest.param(b'"a report"', "json object", id="json-string"),
    ],
)
def test_body_that_is_not_a_json_object_is_refused_as_a_whole(gridflow, api, raw, why):
    response = _post_report(api, raw)
    assert response.status == 400
    assert why in " ".join(_errors(response)["_body"]).lower()
    assert set(_row_counts(gridflow).values()) == {0}


def test_several_bad_fields_are_all_named_at_once(gridflow, api):
    body = {
        "channel": "carrier_pigeon",
        "description": "",
        "location": {"lat": 123.0, "lon": 120.6},
        "severity": 5,
    }
    response = _post_report(api, body)
    assert response.status == 400
    assert {"channel", "description", "location.lat", "severity"} <= set(_errors(response))
    assert set(_row_counts(gridflow).values()) == {0}


def test_unknown_grid_code_and_unknown_category_are_both_named(gridflow, api):
    body = _valid_report(location={"grid_code": "330302999999999"}, category="event.alien_landing")
    response = _post_report(api, body)
    assert response.status == 422
    assert {"location.grid_code", "category"} <= set(_errors(response))


# ----------------------------------------------------------------------------- accepted reports


def test_valid_report_registers_a_case_and_answers_201_with_its_id(gridflow, api):
    response = _post_report(api, _valid_report())
    assert response.status == 201
    case_id = response.body["case_id"]
    assert case_id
    view = _call(api, "GET", f"/api/v1/cases/{case_id}")
    assert view.status == 200
    assert (view.body["status"], view.body["category"], view.body["area_code"]) == (
        "registered",
        "event.medical_waste",
        "330302104001001",
    )
    counts = _row_counts(gridflow)
    assert (counts["intake_cases"], counts["intake_reports"]) == (1, 1)


def test_resubmitting_the_same_channel_and_external_id_returns_the_same_case(gridflow, api):
    report = _valid_report(external_id="phone-7-000123")
    first = _post_report(api, report)
    again = _post_report(api, report)
    assert (first.status, again.status) == (201, 200)
    assert again.body["case_id"] == first.body["case_id"]
    counts = _row_counts(gridflow)
    assert (counts["intake_cases"], counts["intake_reports"]) == (1, 1)


def test_same_external_id_on_another_channel_is_another_report(gridflow, api):
    first = _post_report(api, _valid_report(external_id="42"))
    other = _post_report(
        api,
        _valid_report(
            external_id="42", channel="hotline", category="event.noise", location=dict(WUMA_POINT)
        ),
    )
    assert (first.status, other.status) == (201, 201)
    assert first.body["case_id"] != other.body["case_id"]
    assert _row_counts(gridflow)["intake_cases"] == 2


def test_rejected_report_leaves_nothing_next_to_an_accepted_one(gridflow, api):
    assert _post_report(api, _valid_report()).status == 201
    before = _row_counts(gridflow)
    assert _post_report(api, _valid_report(channel="fax", external_id="x-1")).status == 400
    assert _post_report(api, _valid_report(category="event.nope", external_id="x-2")).status == 422
    assert _row_counts(gridflow) == before
    # The refused external ids were not reserved either.
    assert (
        _post_report(
            api, _valid_report(external_id="x-2", location=dict(WUMA_POINT), category="event.noise")
        ).status
        == 201
    )


# ----------------------------------------------------------------------------- case updates


@pytest.fixture
def dispatched_case(gridflow, api):
    """A medical-waste case in Tengqiao, routed and dispatched to the environment station."""
    case_id = _post_report(api, _valid_report()).body["case_id"]
    _pump(gridflow)
    view = _call(api, "GET", f"/api/v1/cases/{case_id}").body
    assert (view["status"], view["handler"]) == ("dispatched", "environment-330302104")
    return case_id


def _update(api, case_id, sender, status, **extra):
    return _call(
        api, "POST", f"/api/v1/cases/{case_id}/updates", {"from": sender, "status": status, **extra}
    )


def test_status_update_from_a_unit_not_holding_the_case_is_refused_naming_from(
    gridflow, api, dispatched_case
):
    timeline_before = _row_counts(gridflow)["intake_timeline"]
    # The assisting department sees the case, so it is told who holds it.
    view = _call(api, "GET", f"/api/v1/cases/{dispatched_case}").body
    assert view["assisting"] == ["health"]
    response = _update(api, dispatched_case, "health", "accepted")
    assert response.status == 409
    errors = _errors(response)
    assert "from" in errors
    assert "environment-330302104" in " ".join(errors["from"])
    # A unit with nothing to do with the case learns nothing: the answer is that for a case
    # that does not exist, the id aside.
    response = _update(api, dispatched_case, "police-330302104", "accepted")
    unknown = _update(api, "GF-20260105-NOSUCHCASE", "police-330302104", "accepted")
    assert (response.status, unknown.status) == (404, 404)
    assert json.dumps(response.body).replace(dispatched_case, "X") == json.dumps(
        unknown.body
    ).replace("GF-20260105-NOSUCHCASE", "X")
    after = _call(api, "GET", f"/api/v1/cases/{dispatched_case}").body
    assert after["status"] == "dispatched"
    counts = _row_counts(gridflow)
    assert counts["intake_timeline"] == timeline_before
    assert counts["published"] == 0


def test_status_update_from_the_holding_unit_is_taken(api, dispatched_case):
    response = _update(api, dispatched_case, "environment-330302104", "accepted")
    assert response.status == 202
    assert _call(api, "GET", f"/api/v1/cases/{dispatched_case}").body["status"] == "accepted"


def test_status_update_missing_from_is_refused_naming_from(api, dispatched_case):
    response = _call(
        api, "POST", f"/api/v1/cases/{dispatched_case}/updates", {"status": "accepted"}
    )
    assert response.status == 400
    assert "from" in _errors(response)


def test_verifying_a_case_that_is_not_resolved_is_refused_with_409(gridflow, api, dispatched_case):
    assert _update(api, dispatched_case, "environment-330302104", "in_progress").status == 202
    response = _call(api, "POST", f"/api/v1/cases/{dispatched_case}/verification", {"passed": True})
    assert response.status == 409
    assert "resolved" in json.dumps(_errors(response), ensure_ascii=False)
    assert _call(api, "GET", f"/api/v1/cases/{dispatched_case}").body["status"] == "in_progress"


@pytest.mark.parametrize("satisfaction", [0, 6, -1, "5", 4.5])
def test_evaluation_out_of_range_or_not_an_integer_is_refused_naming_satisfaction(
    gridflow, api, dispatched_case, satisfaction
):
    holder = "environment-330302104"
    assert _update(api, dispatched_case, holder, "resolved").status == 202
    verified = _call(api, "POST", f"/api/v1/cases/{dispatched_case}/verification", {"passed": True})
    assert (verified.status, verified.body["status"]) == (200, "closed")
    response = _call(
        api, "POST", f"/api/v1/cases/{dispatched_case}/evaluation", {"satisfaction": satisfaction}
    )
    assert response.status == 400
    assert "satisfaction" in _errors(response)
    assert _call(api, "GET", f"/api/v1/cases/{dispatched_case}").body["satisfaction"] is None


def test_evaluation_in_range_of_a_closed_case_is_recorded(api, dispatched_case):
    assert _update(api, dispatched_case, "environment-330302104", "resolved").status == 202
    assert (
        _call(api, "POST", f"/api/v1/cases/{dispatched_case}/verification", {"passed": True}).status
        == 200
    )
    response = _call(
        api, "POST", f"/api/v1/cases/{dispatched_case}/evaluation", {"satisfaction": 5}
    )
    assert response.status == 200
    assert _call(api, "GET", f"/api/v1/cases/{dispatched_case}").body["satisfaction"] == 5


def test_update_to_an_unknown_case_is_404(api):
    response = _update(api, "GF-NO-SUCH-CASE", "environment-330302104", "accepted")
    assert response.status == 404
    assert "case_id" in _errors(response)


# ----------------------------------------------------------------------------- administration


@pytest.fixture
def real_clock_gridflow():
    yield from _embedded("real")


def test_moving_a_real_clock_is_refused_with_409(real_clock_gridflow):
    api = SignedApi(real_clock_gridflow)
    response = _call(api, "PUT", "/api/v1/admin/clock", {"now": "2030-01-01T09:00:00+08:00"})
    assert response.status == 409
    assert "now" in _errors(response)
    clock = _call(api, "GET", "/api/v1/admin/clock").body
    assert clock["simulated"] is False
    assert not clock["now"].startswith("2030")
    assert real_clock_gridflow.runtimes["intake"].pending_outbox() == 0


def test_resetting_a_gridflow_on_the_real_clock_is_refused_and_keeps_its_cases(real_clock_gridflow):
    g = real_clock_gridflow
    api = SignedApi(g)
    case_id = _post_report(api, _valid_report()).body["case_id"]
    response = _call(api, "POST", "/api/v1/admin/reset", {})
    assert response.status == 409
    assert "clock" in _errors(response)
    assert _call(api, "GET", f"/api/v1/cases/{case_id}").status == 200
    assert _call(api, "GET", "/api/v1/admin/jurisdiction").status == 200


def test_moving_the_simulated_clock_backwards_is_refused(api):
    assert (
        _call(api, "PUT", "/api/v1/admin/clock", {"now": "2026-03-02T09:00:00+08:00"}).status == 200
    )
    response = _call(api, "PUT", "/api/v1/admin/clock", {"now": "2026-03-01T09:00:00+08:00"})
    assert response.status == 409
    assert "now" in _errors(response)


def _lucheng_files() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(Path(LUCHENG).glob("*.csv"))}


def test_broken_jurisdiction_upload_is_refused_with_file_line_column_and_old_one_stays(api):
    before = _call(api, "GET", "/api/v1/admin/jurisdiction").body
    files = _lucheng_files()
    lines = files["units.csv"].splitlines()
    # Spreadsheet line 3 (header = 1): a bureau of a department that does not exist.
    lines[2] = "police-330302,鹿城区公安分局,bureau,secret_police,330302"
    files["units.csv"] = "\n".join(lines) + "\n"
    files["warning_levels.csv"] = files["warning_levels.csv"].replace("yellow,0.75", "yellow,soon")
    response = _call(api, "PUT", "/api/v1/admin/jurisdiction", {"files": files})
    assert response.status == 400
    problems = _errors(response)
    where = {(p["file"], p["line"], p["column"]) for p in problems}
    assert ("units.csv", 3, "department_code") in where
    assert ("warning_levels.csv", 3, "from_fraction") in where
    assert all(p["message"] for p in problems)
    after = _call(api, "GET", "/api/v1/admin/jurisdiction").body
    assert after["version"] == before["version"]
    assert after["categories"] == before["categories"]


def test_refused_jurisdiction_does_not_affect_new_reports(api):
    files = _lucheng_files()
    files["categories.csv"] = files["categories.csv"].replace(",street,", ",sideways,", 1)
    assert _call(api, "PUT", "/api/v1/admin/jurisdiction", {"files": files}).status == 400
    assert _post_report(api, _valid_report()).status == 201


def test_valid_jurisdiction_upload_becomes_a_new_version(api):
    before = _call(api, "GET", "/api/v1/admin/jurisdiction").body["version"]
    response = _call(api, "PUT", "/api/v1/admin/jurisdiction", {"files": _lucheng_files()})
    assert response.status == 200
    assert response.body["version"] > before
    assert (
        _call(api, "GET", "/api/v1/admin/jurisdiction").body["version"] == response.body["version"]
    )


def test_case_view_matches_the_canonical_case_schema(api, dispatched_case):
    from gridflow_common.contracts import CaseSchema

    view = _call(api, "GET", f"/api/v1/cases/{dispatched_case}").body
    assert CaseSchema().validate(view) == {}
    assert [e["kind"] for e in view["timeline"]] == ["registered", "routed", "dispatched"]
    assert view["colour"] == "green"
