"""The Open311 GeoReport v2 server (/open311/v2/), in process on the embedded default: services
from the city's categories, a posted request becomes a report behind an open311 channel key, the
requests read back with their filters and tokens, JSON valid against the shared schemas and XML
carrying the same fields, and every refusal in the spec's error format naming the field."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest
import sqlalchemy as sa

from gridflow_intake.models import cases
from tests.credentials import bearer
from tests.support.channels import (
    POINT,
    STREETLIGHT,
    assert_valid,
    call,
    channel_key,
    counts,
    post_form,
    report_rows,
)

REQUESTS = "/open311/v2/requests.json"


@pytest.fixture
def api(gridflow):
    return gridflow.api()


def _form(key: str, **fields: str) -> dict[str, str]:
    return {
        "api_key": key,
        "service_code": STREETLIGHT,
        "lat": str(POINT["lat"]),
        "long": str(POINT["lon"]),
        "description": "小区门口路灯不亮好几天了",
        **fields,
    }


def _json(answer) -> object:
    return json.loads(answer.encoded())


def _errors(answer) -> list[dict]:
    body = _json(answer)
    assert isinstance(body, list) and body, body
    for item in body:
        assert item["code"] == answer.status
    return body


def test_services_are_the_citys_categories_in_json_and_xml(gridflow, api):
    answer = call(api, "GET", "/open311/v2/services.json")
    assert answer.status == 200
    services = _json(answer)
    assert_valid("services.json", services)
    codes = {s["service_code"] for s in services}
    assert codes == {c.code for c in gridflow.store.active()[1].categories}
    streetlight = next(s for s in services if s["service_code"] == STREETLIGHT)
    assert streetlight["service_name"] == "路灯不亮"

    xml = call(api, "GET", "/open311/v2/services")  # no suffix: XML, the spec's default
    assert xml.status == 200 and xml.content_type.startswith("text/xml")
    root = ET.fromstring(xml.encoded())
    assert root.tag == "services"
    first = root.find("service")
    assert {child.tag for child in first} == set(services[0])
    assert [s.findtext("service_code") for s in root] == [s["service_code"] for s in services]

    definition = call(api, "GET", f"/open311/v2/services/{STREETLIGHT}.json")
    assert definition.status == 200
    assert_valid("service-definition.json", _json(definition))
    unknown = call(api, "GET", "/open311/v2/services/nothing.json")
    assert unknown.status == 404
    assert "service_code" in _errors(unknown)[0]["description"]

    discovery = call(api, "GET", "/open311/v2/discovery.json")
    assert discovery.status == 200
    assert _json(discovery)["endpoints"][0]["url"].endswith("/open311/v2")


def test_a_posted_request_becomes_a_report_and_reads_back(gridflow, api):
    key = channel_key(gridflow, "open311")
    posted = post_form(
        api,
        REQUESTS,
        _form(key, email="li@example.cn", first_name="Li", last_name="Lei", phone="13800000000"),
    )
    assert posted.status == 201, posted.encoded()
    [made] = _json(posted)
    case_id = made["service_request_id"]
    assert "/api/v1/progress/" in made["service_notice"]
    [row] = report_rows(gridflow, "open311")
    assert row["case_id"] == case_id
    assert row["reporter"] == {"name": "Li Lei", "phone": "13800000000", "email": "li@example.cn"}

    one = call(api, "GET", f"/open311/v2/requests/{case_id}.json")
    assert one.status == 200
    body = _json(one)
    assert_valid("requests.json", body)
    assert body[0]["status"] == "open" and body[0]["service_code"] == STREETLIGHT
    assert body[0]["lat"] == POINT["lat"] and body[0]["long"] == POINT["lon"]
    # Published to everyone: the phone number the resident gave is not in it.
    assert "13800000000" not in one.encoded().decode()

    xml = call(api, "GET", f"/open311/v2/requests/{case_id}.xml")
    request = ET.fromstring(xml.encoded()).find("request")
    assert {c.tag for c in request} == set(body[0])
    assert request.findtext("service_request_id") == case_id

    token = call(api, "GET", f"/open311/v2/tokens/{made['token']}.json")
    assert token.status == 200
    assert _json(token)[0]["service_request_id"] == case_id

    listed = _json(call(api, "GET", REQUESTS, query={"service_request_id": f"{case_id},GF-none"}))
    assert [r["service_request_id"] for r in listed] == [case_id]
    assert_valid("requests.json", listed)
    assert _json(call(api, "GET", REQUESTS, query={"status": "closed"})) == []
    assert len(_json(call(api, "GET", REQUESTS, query={"status": "open"}))) == 1
    assert (
        _json(call(api, "GET", REQUESTS, query={"service_code": "component.manhole_cover"})) == []
    )

    # Closed (and rejected, which a merged case becomes) read as closed.
    with gridflow.engine.begin() as conn:
        conn.execute(sa.update(cases).where(cases.c.case_id == case_id).values(status="rejected"))
    assert _json(call(api, "GET", f"/open311/v2/requests/{case_id}.json"))[0]["status"] == "closed"
    assert len(_json(call(api, "GET", REQUESTS, query={"status": "closed"}))) == 1


def test_an_address_string_locates_a_request(gridflow, api):
    key = channel_key(gridflow, "open311")
    form = _form(key, address_string="温州市鹿城区五马街道青园社区门口")
    del form["lat"], form["long"]
    posted = post_form(api, "/open311/v2/requests.xml", form)
    assert posted.status == 201, posted.encoded()
    assert ET.fromstring(posted.encoded()).find("request").findtext("service_request_id")


@pytest.mark.parametrize(
    "key_of, status",
    [(None, 403), ("hotline", 403), ("bogus", 403)],
    ids=["no_key", "another_channels_key", "not_a_key"],
)
def test_a_post_without_an_open311_key_is_refused_and_leaves_nothing(gridflow, api, key_of, status):
    form = _form("")
    if key_of == "hotline":
        form["api_key"] = channel_key(gridflow, "hotline")
    elif key_of == "bogus":
        form["api_key"] = "gfk_" + "x" * 43
    else:
        del form["api_key"]
    before = counts(gridflow)
    answer = post_form(api, REQUESTS, form)
    assert answer.status == status
    assert _errors(answer)[0]["description"].startswith("api_key:")
    assert counts(gridflow) == before


def test_an_open311_key_cannot_post_as_another_channel(gridflow, api):
    key = channel_key(gridflow, "open311")
    report = {
        "channel": "hotline",
        "description": "路灯不亮",
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
    assert answer.status == 403 and "channel" in answer.body["errors"]
    alert = {"kind": "water_level_high"}
    answer = call(
        api,
        "POST",
        "/api/v1/sensors/alerts",
        json.dumps(alert).encode(),
        content_type="application/json",
        headers=bearer(key),
    )
    assert answer.status == 403
    assert counts(gridflow) == (0, 0)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"lat": "95"}, "lat"),
        ({"long": "abc"}, "long"),
        ({"service_code": "no.such"}, "service_code"),
        ({"service_code": ""}, "service_code"),
        ({"email": "not-mail"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"description": "灯" * 2001}, "description"),
        ({"description": "a\x00b"}, "description"),
        ({"media_url": "javascript:alert(1)"}, "media_url"),
        ({"surprise": "1"}, "surprise"),
    ],
)
def test_bad_fields_are_named_in_the_specs_error_format(gridflow, api, change, field):
    key = channel_key(gridflow, "open311")
    answer = post_form(api, REQUESTS, _form(key, **change))
    assert answer.status == 400, answer.encoded()
    assert any(e["description"].startswith(f"{field}:") for e in _errors(answer))
    assert counts(gridflow) == (0, 0)


def test_a_point_outside_the_city_is_refused(gridflow, api):
    key = channel_key(gridflow, "open311")
    answer = post_form(api, REQUESTS, _form(key, lat="39.9", long="116.4"))
    assert answer.status == 422
    assert _errors(answer)[0]["description"].startswith("location")
    assert counts(gridflow) == (0, 0)


def test_hostile_bodies_are_refused(gridflow, api):
    key = channel_key(gridflow, "open311")
    good = "&".join(f"{k}={v}" for k, v in _form(key).items()).encode()
    # Not UTF-8.
    answer = post_form(api, REQUESTS, good + b"&description=%FF%FE")
    assert answer.status == 400
    answer = post_form(api, REQUESTS, b"api_key=" + key.encode() + b"&description=\xff\xfe")
    assert answer.status == 400
    # JSON instead of a form; a multipart body.
    answer = call(
        api, "POST", REQUESTS, json.dumps(_form(key)).encode(), content_type="application/json"
    )
    assert answer.status == 415 and _errors(answer)[0]["description"].startswith("content_type:")
    answer = post_form(api, REQUESTS, good, content_type="multipart/form-data; boundary=x")
    assert answer.status == 415
    # Too big; too many fields; a field twice.
    answer = post_form(api, REQUESTS, good + b"&description=" + b"a" * 70_000)
    assert answer.status == 413
    answer = post_form(api, REQUESTS, good + b"".join(b"&attribute[a%d]=1" % i for i in range(60)))
    assert answer.status == 400
    answer = post_form(api, REQUESTS, good + b"&service_code=x")
    assert answer.status == 400 and "service_code" in _errors(answer)[0]["description"]
    assert counts(gridflow) == (0, 0)


@pytest.mark.parametrize(
    "query, field",
    [
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": "2026-01-01T00:00:00"}, "start_date"),
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "end_date"),
        ({"status": "pending"}, "status"),
        ({"service_request_id": ",".join(["x"] * 101)}, "service_request_id"),
        ({"color": "red"}, "color"),
        ({"service_code": "a\x00"}, "service_code"),
    ],
)
def test_bad_filters_are_named(api, query, field):
    answer = call(api, "GET", REQUESTS, query=query)
    assert answer.status == 400, answer.encoded()
    assert _errors(answer)[0]["description"].startswith(f"{field}:")


def test_errors_come_in_xml_too(api):
    answer = call(api, "GET", "/open311/v2/requests/GF-none.xml")
    assert answer.status == 404
    error = ET.fromstring(answer.encoded()).find("error")
    assert error.findtext("code") == "404"
    assert error.findtext("description").startswith("service_request_id:")
    assert call(api, "GET", "/open311/v2/services.yaml").status == 404


def test_requests_of_other_channels_are_not_published(gridflow, api):
    report = {
        "channel": "web",
        "description": "路灯不亮",
        "location": {"grid_code": "330302001001001"},
    }
    made = call(
        api, "POST", "/api/v1/reports", json.dumps(report).encode(), content_type="application/json"
    )
    assert made.status == 201
    case_id = made.body["case_id"]
    assert call(api, "GET", f"/open311/v2/requests/{case_id}.json").status == 404
    assert _json(call(api, "GET", REQUESTS)) == []


def test_the_key_rate_limit_holds_for_open311(gridflow, api):
    key = channel_key(gridflow, "open311", rate_limit="2/min")
    statuses = [post_form(api, REQUESTS, _form(key)).status for _ in range(3)]
    assert statuses[:2] == [201, 201] or statuses[:2] == [201, 200]
    assert statuses[2] == 429
