"""Sensor alerts behind device keys, in process: the device is the key's (never the body's),
the place is the body's or the device's registered one, a device's alerts join its open case and
a closed case means a new one, retries of one alert id make one report, and keys of other
channels (or none) are refused with nothing written."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from gridflow_intake.models import cases, timeline
from tests.credentials import bearer
from tests.support.channels import POINT, call, channel_key, counts, report_rows

PATH = "/api/v1/sensors/alerts"
PLACE = {"lat": 28.02, "lon": 120.56}


@pytest.fixture
def api(gridflow):
    return gridflow.api()


def alert(api, key: str | None, **body):
    body.setdefault("kind", "streetlight_off")
    headers = bearer(key) if key else {}
    return call(
        api,
        "POST",
        PATH,
        json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def _case(gridflow, case_id: str) -> dict:
    with gridflow.engine.connect() as conn:
        return dict(conn.execute(sa.select(cases).where(cases.c.case_id == case_id)).one()._mapping)


def test_a_devices_alerts_join_its_open_case_and_a_closed_case_means_a_new_one(gridflow, api):
    key = channel_key(gridflow, "sensor", device="lamp-0042", device_place=PLACE)
    first = alert(api, key, category="component.streetlight", reading={"value": 0.0, "unit": "lx"})
    assert first.status == 201, first.body
    assert first.body["device"] == "lamp-0042"
    case_id = first.body["case_id"]
    assert _case(gridflow, case_id)["lat"] == PLACE["lat"]
    # A second alert of the device, of another kind and another place: the same case.
    second = alert(api, key, kind="power_fault", location={"lat": 28.09, "lon": 120.70})
    assert second.status == 200 and second.body["case_id"] == case_id
    assert _case(gridflow, case_id)["reporters"] == 2
    with gridflow.engine.connect() as conn:
        kinds = [
            r.kind for r in conn.execute(sa.select(timeline).where(timeline.c.case_id == case_id))
        ]
    assert "report_joined" in kinds
    # Another device at the very same place does not join this device's case by device.
    other = channel_key(gridflow, "sensor", device="lamp-0043", device_place=PLACE)
    third = alert(api, other, category="component.manhole_cover")
    assert third.status == 201 and third.body["case_id"] != case_id

    with gridflow.engine.begin() as conn:
        conn.execute(sa.update(cases).where(cases.c.case_id == case_id).values(status="closed"))
    after = alert(api, key, category="component.streetlight")
    assert after.status == 201 and after.body["case_id"] != case_id
    assert all(r["device"] for r in report_rows(gridflow, "sensor"))


def test_a_retried_alert_is_one_report(gridflow, api):
    key = channel_key(gridflow, "sensor", device="wl-7", device_place=PLACE)
    made = alert(api, key, alert_id="a-1", observed_at="2026-11-26T08:00:00+08:00")
    again = alert(api, key, alert_id="a-1", observed_at="2026-11-26T08:00:00+08:00")
    assert made.status == 201 and again.status == 200
    assert again.body["case_id"] == made.body["case_id"]
    assert len(report_rows(gridflow, "sensor")) == 1


def test_the_device_is_the_keys_never_the_bodys(gridflow, api):
    key = channel_key(gridflow, "sensor", device="wl-8", device_place=PLACE)
    answer = alert(api, key, device="someone-else")
    assert answer.status == 400 and "device" in answer.body["errors"]
    assert counts(gridflow) == (0, 0)


def test_a_device_without_a_place_must_send_one(gridflow, api):
    key = channel_key(gridflow, "sensor", device="wl-9")
    answer = alert(api, key)
    assert answer.status == 422 and "location" in answer.body["errors"]
    assert alert(api, key, location=POINT).status == 201


@pytest.mark.parametrize(
    "key_of, status",
    [(None, 401), ("open311", 403), ("hotline", 403), ("sensor_without_device", 403)],
)
def test_only_a_device_key_posts_alerts(gridflow, api, key_of, status):
    key = None
    if key_of == "sensor_without_device":
        key = channel_key(gridflow, "sensor")
    elif key_of:
        key = channel_key(gridflow, key_of)
    answer = alert(api, key, location=POINT)
    assert answer.status == status
    assert counts(gridflow) == (0, 0)


def test_a_device_key_cannot_report_as_another_channel(gridflow, api):
    key = channel_key(gridflow, "sensor", device="wl-10", device_place=PLACE)
    report = {
        "channel": "hotline",
        "description": "x",
        "location": {"grid_code": "330302001001001"},
    }
    answer = call(
        api,
        "POST",
        "/api/v1/reports",
        json.dumps(report).encode(),
        content_type="application/json",
        headers=bearer(key),
    )
    assert answer.status == 403
    assert counts(gridflow) == (0, 0)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": ""}, "kind"),
        ({"reading": {"value": 1e300}}, "reading.value"),
        ({"reading": {"value": "high"}}, "reading.value"),
        ({"observed_at": "yesterday"}, "observed_at"),
        ({"location": {"lat": 91, "lon": 0}}, "location.lat"),
        ({"category": "no.such"}, "category"),
        ({"kind": "a\u0000b"}, "kind"),
    ],
)
def test_bad_alerts_name_the_field(gridflow, api, body, field):
    key = channel_key(gridflow, "sensor", device="wl-11", device_place=PLACE)
    answer = alert(api, key, **body)
    assert answer.status in (400, 422), answer.body
    assert field in answer.body["errors"], answer.body
    assert counts(gridflow) == (0, 0)


def test_hostile_bodies(gridflow, api):
    key = channel_key(gridflow, "sensor", device="wl-12", device_place=PLACE)
    deep = b'{"kind": "x", "reading": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}"
    for body, content_type, status in (
        (deep, "application/json", 400),
        (b'{"kind": "\xff"}', "application/json", 400),
        (b"kind=x", "application/x-www-form-urlencoded", 415),
        (b'{"kind": "x", "reading": {"value": 1' + b"0" * 50 + b"}}", "application/json", 400),
    ):
        answer = call(api, "POST", PATH, body, content_type=content_type, headers=bearer(key))
        assert answer.status == status, (body[:30], answer.body)
    assert counts(gridflow) == (0, 0)


def test_an_admin_issues_a_device_key_with_a_place(gridflow, api):
    admin = bearer(
        gridflow.identities().issue(
            "bearer", label="a", user_id=gridflow.identities().ensure_admin()["user_id"]
        )[1]
    )
    made = call(
        api,
        "POST",
        "/api/v1/admin/keys",
        json.dumps({"channel": "sensor", "device": "wl-13", "device_place": PLACE}).encode(),
        content_type="application/json",
        headers=admin,
    )
    assert made.status == 201, made.body
    assert made.body["key"]["device"] == "wl-13"
    assert alert(api, made.body["token"]).status == 201
    for body, field in (
        ({"channel": "sensor"}, "device"),
        ({"channel": "open311", "device": "x"}, "device"),
        (
            {"channel": "sensor", "device": "wl-14", "device_place": {"lat": 39.9, "lon": 116.4}},
            "device_place.location",
        ),
    ):
        refused = call(
            api,
            "POST",
            "/api/v1/admin/keys",
            json.dumps(body).encode(),
            content_type="application/json",
            headers=admin,
        )
        assert refused.status in (400, 422) and field in refused.body["errors"], refused.body


def test_the_command_center_may_enter_an_alert_by_hand_without_a_device(gridflow, api):
    user = gridflow.identities().create_user(gridflow.store.active()[1], "cc-1", "command_center")
    _, token = gridflow.identities().issue("bearer", label="cc", user_id=user["user_id"])
    answer = alert(api, token, location=POINT, category="component.streetlight")
    assert answer.status == 201 and answer.body["device"] is None
    [row] = report_rows(gridflow, "sensor")
    assert row["device"] is None
