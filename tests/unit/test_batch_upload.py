"""A grid worker's phone after a day offline: POST /api/v1/reports/batch answers each item on its
own, one bad item never sinks the others, the same batch twice changes nothing, and every report
keeps the instant it was observed apart from when it arrived.

Through the framework-free IntakeApi of an embedded Gridflow (temporary SQLite file).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from gridflow_common.domain import access as a
from gridflow_common.domain import intake_batch as ib
from gridflow_intake import models
from tests.credentials import SignedApi, bearer

BATCH = "/api/v1/reports/batch"
TENGQIAO = {"lat": 28.05, "lon": 120.635}  # inside grid 330302104001001
WUMA = {"lat": 27.995, "lon": 120.556}  # inside grid 330302001001001


@pytest.fixture(autouse=True)
def _no_admin_token(monkeypatch):
    monkeypatch.delenv("GRIDFLOW_ADMIN_TOKEN", raising=False)


@pytest.fixture
def api(gridflow):
    return SignedApi(gridflow)


@pytest.fixture
def grid_app_key(gridflow) -> str:
    _, token = gridflow.identities().issue(a.CHANNEL_KEY, label="grid app", channel="grid_app")
    return token


def _item(n: int, **changes) -> dict:
    item = {
        "channel": "grid_app",
        "external_id": f"phone-7-{n}",
        "description": "一户民房内存放大量医疗废弃物",
        "category": "event.medical_waste",
        "location": dict(TENGQIAO),
    }
    item.update(changes)
    return item


def _post(api, body, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.handle("POST", BATCH, raw, headers or {})


def _now(api) -> dt.datetime:
    return dt.datetime.fromisoformat(api.handle("GET", "/api/v1/admin/clock").body["now"])


def _counts(g) -> dict[str, int]:
    tables = [models.cases, models.reports, models.timeline, models.photos]
    with g.engine.connect() as conn:
        counts = {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in tables
        }
    counts["outbox"] = g.runtimes["intake"].pending_outbox()
    counts["published"] = g.bus.deliveries.qsize()
    return counts


def test_one_bad_item_is_refused_alone_and_the_others_are_taken(api, gridflow):
    body = {
        "items": [
            _item(1),
            _item(2, location={"lat": 95.0, "lon": 120.6}),
            _item(3, location=dict(WUMA), category="event.medical_waste"),
            _item(4, description="\u0000"),
            _item(5, category="no.such.category"),
        ]
    }
    answer = _post(api, body)
    assert answer.status == 200, answer.body
    results = answer.body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["outcome"] for r in results] == [
        "registered",
        "refused",
        "registered",
        "refused",
        "refused",
    ]
    assert results[1]["status"] == 400
    assert "items.1.location.lat" in results[1]["errors"]
    assert "items.3.description" in results[3]["errors"]
    assert results[4]["status"] == 422
    assert "items.4.category" in results[4]["errors"]
    assert results[0]["progress_url"].startswith("http://localhost/api/v1/progress/")
    assert answer.body["summary"] == {
        "registered": 2,
        "joined": 0,
        "resubmission": 0,
        "refused": 3,
    }
    counts = _counts(gridflow)
    # Two cases, two reports: a refused item left nothing behind, and only the taken items'
    # events were published.
    assert counts["intake_cases"] == 2
    assert counts["intake_reports"] == 2
    published = [m for _, _, m in list(gridflow.bus.deliveries.queue)]
    registered = {
        m["payload"]["case_id"] for m in published if m["event_type"] == "case_registered"
    }
    assert registered == {results[0]["case_id"], results[2]["case_id"]}


def test_the_same_batch_twice_changes_nothing(api, gridflow):
    body = {"items": [_item(1), _item(2), _item(3, location=dict(WUMA))]}
    first = _post(api, body)
    assert [r["outcome"] for r in first.body["results"]] == ["registered", "joined", "registered"]
    before = _counts(gridflow)
    second = _post(api, body)
    assert second.status == 200
    assert [r["outcome"] for r in second.body["results"]] == ["resubmission"] * 3
    assert [r["case_id"] for r in second.body["results"]] == [
        r["case_id"] for r in first.body["results"]
    ]
    assert "progress_url" not in second.body["results"][0]
    assert _counts(gridflow) == before


def test_an_item_repeated_within_one_batch_is_a_resubmission(api, gridflow):
    answer = _post(api, {"items": [_item(1), _item(1)]})
    assert [r["outcome"] for r in answer.body["results"]] == ["registered", "resubmission"]
    assert _counts(gridflow)["intake_reports"] == 1


def test_a_batch_item_needs_its_external_id(api, gridflow):
    item = _item(1)
    del item["external_id"]
    answer = _post(api, {"items": [item, _item(2)]})
    first, second = answer.body["results"]
    assert first["outcome"] == "refused"
    assert "items.0.external_id" in first["errors"]
    assert second["outcome"] == "registered"


def test_an_oversized_batch_is_refused_naming_items_and_takes_nothing(api, gridflow):
    before = _counts(gridflow)
    answer = _post(api, {"items": [_item(n) for n in range(ib.MAX_BATCH_ITEMS + 1)]})
    assert answer.status == 413
    assert "items" in answer.body["errors"]
    assert "at most 100" in answer.body["errors"]["items"][0]
    assert _counts(gridflow) == before


def test_a_batch_of_exactly_the_limit_is_taken(api, gridflow):
    answer = _post(api, {"items": [_item(n) for n in range(ib.MAX_BATCH_ITEMS)]})
    assert answer.status == 200
    assert len(answer.body["results"]) == ib.MAX_BATCH_ITEMS
    assert _counts(gridflow)["intake_reports"] == ib.MAX_BATCH_ITEMS


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param(b"", 400, "_body", id="empty"),
        pytest.param(b"\xff\xfe not utf-8", 400, "_body", id="not-utf8"),
        pytest.param({"items": []}, 400, "items", id="no-items"),
        pytest.param({"items": {"0": _item(0)}}, 400, "items", id="items-not-a-list"),
        pytest.param({"items": [_item(0)], "more": 1}, 400, "more", id="unknown-field"),
        pytest.param(
            json.dumps({"items": [_item(0)], "x": "\u0000"}).encode(), 400, "x", id="nul-outside"
        ),
        pytest.param(b"[" * 5000 + b"]" * 5000, 400, "_body", id="deep-body"),
    ],
)
def test_hostile_batches_are_refused_naming_the_field(api, gridflow, body, status, field):
    before = _counts(gridflow)
    answer = _post(api, body)
    assert answer.status == status, answer.body
    assert field in answer.body["errors"], answer.body
    assert _counts(gridflow) == before


@pytest.mark.parametrize(
    ("hostile", "field"),
    [
        pytest.param(
            _item(0, location={"lat": 10**40, "lon": 1}), "items.0.location.lat", id="huge-number"
        ),
        pytest.param(
            {**_item(0), "a": json.loads("[" * 40 + "]" * 40)}, "items.0.a", id="deep-nesting"
        ),
        pytest.param(_item(0, description="水\u0000管"), "items.0.description", id="nul-byte"),
        pytest.param(
            _item(0, reporter={"name": "\ud800"}), "items.0.reporter.name", id="lone-surrogate"
        ),
    ],
)
def test_a_hostile_item_is_refused_alone(api, gridflow, hostile, field):
    answer = _post(api, {"items": [hostile, _item(1)]})
    assert answer.status == 200, answer.body
    refused, taken = answer.body["results"]
    assert refused["outcome"] == "refused" and refused["status"] == 400
    assert field in refused["errors"], refused
    assert taken["outcome"] == "registered"
    assert _counts(gridflow)["intake_reports"] == 1


def test_an_item_that_is_not_an_object_is_refused_alone(api, gridflow):
    answer = _post(api, {"items": ["水管爆裂", 7, _item(1)]})
    assert answer.status == 200
    results = answer.body["results"]
    assert results[0]["errors"] == {"items.0": ["must be a report object"]}
    assert results[1]["outcome"] == "refused"
    assert results[2]["outcome"] == "registered"


def test_the_wrong_content_type_is_a_415(api, gridflow):
    answer = api.handle(
        "POST", BATCH, json.dumps({"items": [_item(1)]}).encode(), {"Content-Type": "text/plain"}
    )
    assert answer.status == 415
    assert "content_type" in answer.body["errors"]


def test_a_channel_key_sends_its_own_channel_only(api, gridflow, grid_app_key):
    answer = _post(api, {"items": [_item(1), _item(2, channel="hotline")]}, bearer(grid_app_key))
    first, second = answer.body["results"]
    assert first["outcome"] == "registered"
    assert second["outcome"] == "refused"
    assert second["status"] == 403
    assert "items.1.channel" in second["errors"]


def test_without_a_credential_only_public_channels_are_taken(gridflow):
    bare = gridflow.api()
    raw = json.dumps({"items": [_item(1), _item(2, channel="web")]}).encode()
    answer = bare.handle("POST", BATCH, raw)
    first, second = answer.body["results"]
    assert first["status"] == 401 and "items.0.channel" in first["errors"]
    assert second["outcome"] == "registered"


def test_each_report_keeps_when_it_was_observed_apart_from_when_it_arrived(api, gridflow):
    now = _now(api)
    seen = now - dt.timedelta(hours=6)
    answer = _post(api, {"items": [_item(1, observed_at=seen.isoformat())]})
    (result,) = answer.body["results"]
    assert result["outcome"] == "registered"
    case = api.handle("GET", f"/api/v1/cases/{result['case_id']}").body
    assert dt.datetime.fromisoformat(case["observed_at"]) == seen
    # Registered when it arrived: the city could not act on it before.
    assert dt.datetime.fromisoformat(case["registered_at"]) == now
    (report,) = case["reports"]
    assert dt.datetime.fromisoformat(report["observed_at"]) == seen
    assert dt.datetime.fromisoformat(report["received_at"]) == now
    registered = case["timeline"][0]
    assert registered["kind"] == "registered"
    assert dt.datetime.fromisoformat(registered["observed_at"]) == seen
    gridflow.drain()
    (message,) = [m for q in gridflow.bus.unit_queues.values() for m in q][:1]
    assert message["case_id"] == result["case_id"]


@pytest.mark.parametrize(
    ("offset", "why"),
    [
        pytest.param(dt.timedelta(minutes=30), "in the future", id="future"),
        pytest.param(-dt.timedelta(days=31), "more than 30 days ago", id="too-old"),
    ],
)
def test_an_observed_instant_out_of_bounds_is_refused(api, gridflow, offset, why):
    now = _now(api)
    answer = _post(api, {"items": [_item(1, observed_at=(now + offset).isoformat())]})
    (result,) = answer.body["results"]
    assert result["status"] == 422
    assert why in result["errors"]["items.0.observed_at"][0]
    assert _counts(gridflow)["intake_reports"] == 0


def test_an_observed_instant_without_an_offset_is_refused(api, gridflow):
    answer = _post(api, {"items": [_item(1, observed_at="2026-01-05T08:00:00")]})
    (result,) = answer.body["results"]
    assert result["status"] == 400
    assert "items.0.observed_at" in result["errors"]


def test_a_single_report_takes_observed_at_too(api, gridflow):
    now = _now(api)
    seen = now - dt.timedelta(minutes=40)
    report = _item(1, observed_at=seen.isoformat())
    answer = api.handle("POST", "/api/v1/reports", json.dumps(report).encode())
    assert answer.status == 201, answer.body
    case = api.handle("GET", f"/api/v1/cases/{answer.body['case_id']}").body
    assert dt.datetime.fromisoformat(case["observed_at"]) == seen


def test_a_resubmission_is_answered_even_when_its_observation_is_now_too_old(api, gridflow):
    now = _now(api)
    body = {"items": [_item(1, observed_at=(now - dt.timedelta(days=29)).isoformat())]}
    assert _post(api, body).body["results"][0]["outcome"] == "registered"
    api.handle(
        "PUT",
        "/api/v1/admin/clock",
        json.dumps({"now": (now + dt.timedelta(days=3)).isoformat()}).encode(),
    )
    assert _post(api, body).body["results"][0]["outcome"] == "resubmission"


def test_observed_bounds_are_pure_domain_rules():
    now = dt.datetime(2026, 11, 26, 12, tzinfo=dt.timezone.utc)
    assert ib.observed_problems(None, now) == []
    assert ib.observed_problems(now + dt.timedelta(minutes=4), now) == []
    assert ib.observed_problems(now + dt.timedelta(minutes=6), now)
    assert ib.observed_problems(now - dt.timedelta(days=30), now) == []
    assert ib.observed_problems(now - dt.timedelta(days=30, seconds=1), now)
    assert ib.observed_problems(dt.datetime(2026, 11, 26), now)
