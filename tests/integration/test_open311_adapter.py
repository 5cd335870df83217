"""The Open311 GeoReport v2 adapter against a GeoReport v2 server on loopback
(``tests/support/georeport.py``: a real HTTP server in its own process whose records a test
changes, with a token flow and the same outages as the webhook double)."""

from __future__ import annotations

import datetime as dt
import json
import time

import httpx
import pytest

from gridflow_common.adapters.contract import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    OpenDelivery,
    PushFailed,
    PushRefused,
    SecretUnavailable,
)
from gridflow_departments.adapters.open311 import Open311Adapter
from tests.conftest import SHARED
from tests.support.georeport import GeoReportDouble

API_KEY = "roads-311-key-58d1"
KEY_REF = "file:/run/secrets/roads-311"


@pytest.fixture(scope="module")
def server():
    double = GeoReportDouble(api_key=API_KEY, jurisdiction_id="lucheng.example.cn")
    yield double
    double.close()


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()
    server.come_back()


def context() -> AdapterContext:
    def secret(ref: str) -> str:
        if ref == KEY_REF:
            return API_KEY
        raise SecretUnavailable(f"{ref} cannot be read")

    return AdapterContext(
        secret=secret,
        sign_link=lambda *a: "",
        public_url="http://gridflow.test/",
        now=lambda: dt.datetime.now(dt.UTC),
    )


def config(server, **options) -> AdapterConfig:
    return AdapterConfig(
        code="roads",
        adapter="open311",
        endpoint=server.url + "/",
        credential_ref=KEY_REF,
        options={
            "service_code": "001",
            "service_codes": {"gas_leak": "002"},
            "jurisdiction_id": "lucheng.example.cn",
            "delivery_attribute": "gridflow_delivery",
            "connect_timeout": 1.0,
            "read_timeout": 1.0,
            **options,
        },
    )


@pytest.fixture
def adapter(server):
    a = Open311Adapter(config(server), context())
    yield a
    a.close()


def delivery(n: int = 1, category: str = "road_damage", point: bool = True, **fields) -> Delivery:
    location = {
        "point": {"lat": 28.0046, "lon": 120.6512} if point else None,
        "grid": "LC-0101-03",
        "community": "五马社区",
        "street": "五马街道",
        "address": "五马街 12 号" if point else None,
    }
    return Delivery(
        delivery_id=f"dlv-{n}",
        kind="case",
        case_id=f"GF-20261126-000{n}",
        assignment_id=f"asg-{n}",
        unit="roads-team-2",
        department="roads",
        role="lead",
        message={
            "kind": "case",
            "category": category,
            "description": "路面塌陷，约一米见方",
            "location": location,
            "reporter": {"name": "庄思思", "phone": "13866000001"},
        },
        **fields,
    )


def open_one(result_ref: str, n: int = 1, last_word: str | None = None) -> OpenDelivery:
    return OpenDelivery(
        delivery_id=f"dlv-{n}",
        case_id=f"GF-20261126-000{n}",
        assignment_id=f"asg-{n}",
        unit="roads-team-2",
        external_ref=result_ref,
        last_word=last_word,
    )


def test_a_case_is_posted_as_a_service_request_and_its_id_kept(server, adapter):
    result = adapter.push(delivery())

    stored = server.stored()
    assert list(stored) == [result.external_ref]
    form = {k: v[0] for k, v in server.posted()[result.external_ref].items()}
    assert form["service_code"] == "001"
    assert (float(form["lat"]), float(form["long"])) == (28.0046, 120.6512)
    assert form["address_string"] == "五马街 12 号"
    assert form["api_key"] == API_KEY
    assert form["jurisdiction_id"] == "lucheng.example.cn"
    assert form["attribute[gridflow_delivery]"] == "dlv-1"
    assert form["description"].startswith("路面塌陷，约一米见方")
    assert form["description"].endswith(
        "【Gridflow 案件 GF-20261126-0001 单位 roads-team-2 投递 dlv-1】"
    )
    # The reporter whole here (the city let this department see it).
    assert (form["last_name"], form["phone"]) == ("庄思思", "13866000001")


def test_a_category_maps_to_its_own_code_and_an_address_stands_in_for_a_point(server, adapter):
    result = adapter.push(delivery(category="gas_leak", point=False))
    form = {k: v[0] for k, v in server.posted()[result.external_ref].items()}
    assert form["service_code"] == "002"
    assert "lat" not in form
    assert form["address_string"] == "五马街道 五马社区 LC-0101-03"


def test_a_masked_reporter_is_not_sent(server, adapter):
    masked = delivery()
    message = {**masked.message, "reporter": {"name": "庄**", "phone": "138****0001"}}
    result = adapter.push(Delivery(**{**masked.__dict__, "message": message}))
    form = server.posted()[result.external_ref]
    assert "phone" not in form and "last_name" not in form


def test_a_delivery_already_posted_is_not_posted_again(server, adapter):
    first = adapter.push(delivery())
    again = adapter.push(delivery(attempt=2, external_ref=first.external_ref))
    assert again.external_ref == first.external_ref
    assert len(server.posts()) == 1


def test_polling_reports_a_closed_request_once_with_its_notes(server, adapter):
    ref = adapter.push(delivery()).external_ref

    [opened] = adapter.poll_status([open_one(ref)])  # nothing recorded yet: "open" is news
    assert (opened.word, opened.note, opened.external_ref) == ("open", None, ref)
    assert adapter.poll_status([open_one(ref, last_word="open")]) == []

    server.close_request(ref, "已修复，沥青填补")
    [closed] = adapter.poll_status([open_one(ref, last_word="open")])
    assert (closed.case_id, closed.unit, closed.word, closed.note) == (
        "GF-20261126-0001",
        "roads-team-2",
        "closed",
        "已修复，沥青填补",
    )
    assert (closed.delivery_id, closed.assignment_id) == ("dlv-1", "asg-1")
    assert closed.occurred_at is not None
    assert adapter.poll_status([open_one(ref, last_word="closed")]) == []

    # New notes with the same word are news too, once.
    server.close_request(ref, "已复查")
    [noted] = adapter.poll_status([open_one(ref, last_word="closed")])
    assert (noted.word, noted.note) == ("closed", "已复查")
    assert adapter.poll_status([open_one(ref, last_word="closed")]) == []


def test_polling_asks_in_batches(server):
    a = Open311Adapter(config(server, poll_batch=2), context())
    try:
        refs = [a.push(delivery(n)).external_ref for n in range(1, 6)]
        reports = a.poll_status([open_one(ref, n) for n, ref in enumerate(refs, start=1)])
    finally:
        a.close()
    assert sorted(r.external_ref for r in reports) == sorted(refs)
    assert {r.case_id for r in reports} == {f"GF-20261126-000{n}" for n in range(1, 6)}
    asked = [
        r["query"]["service_request_id"][0]
        for r in server.records()
        if r["method"] == "GET" and r["path"] == "/requests.json"
    ]
    assert [len(q.split(",")) for q in asked] == [2, 2, 1]


def test_a_token_is_kept_and_resolved_when_polling(server, adapter):
    server.token_flow(True)
    ref = adapter.push(delivery()).external_ref
    assert ref == "token:tok-1"

    assert adapter.poll_status([open_one(ref)]) == []  # not made yet: nothing to say
    [asked] = [r for r in server.records() if r["path"] == "/tokens/tok-1.json"]
    assert asked["answered"] == 200

    server.resolve_tokens()
    [report] = adapter.poll_status([open_one(ref)])
    [rid] = server.stored()
    assert (report.word, report.external_ref) == ("open", rid)
    server.close_request(rid, "done")
    [closed] = adapter.poll_status([open_one(ref, last_word="open")])
    assert closed.word == "closed"


def test_a_server_that_is_down_fails_the_post_and_the_poll_until_it_is_back(server, adapter):
    ref = adapter.push(delivery(1)).external_ref
    server.go_down()

    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery(2))
    assert "refused the connection" in failed.value.reason
    with pytest.raises(PushFailed):
        adapter.poll_status([open_one(ref)])
    assert not adapter.health().ok

    server.come_back()
    assert adapter.push(delivery(2)).external_ref
    assert adapter.health().ok
    assert len(adapter.poll_status([open_one(ref)])) == 1


def test_a_hanging_server_fails_the_post_within_the_read_timeout(server, adapter):
    server.script({"hang": 5})
    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery())
    assert "read timeout" in failed.value.reason


def test_the_servers_refusals_are_refusals_without_the_api_key(server, adapter):
    unknown = Open311Adapter(config(server, service_code="999", service_codes={}), context())
    try:
        with pytest.raises(PushRefused) as refused:
            unknown.push(delivery())
    finally:
        unknown.close()
    assert "HTTP 400" in refused.value.reason
    assert "service_code was not found" in refused.value.reason

    wrong_key = Open311Adapter(
        config(server),
        AdapterContext(
            secret=lambda ref: "wrong-key",
            sign_link=lambda *a: "",
            public_url="",
            now=lambda: dt.datetime.now(dt.UTC),
        ),
    )
    # A key the server does not take is tried again on the schedule (a rotation done on one
    # side first), and the reason never shows either key.
    try:
        with pytest.raises(PushFailed) as failed:
            wrong_key.push(delivery())
    finally:
        wrong_key.close()
    assert "HTTP 403" in failed.value.reason
    assert "wrong-key" not in failed.value.reason and API_KEY not in failed.value.reason


def test_a_success_without_an_id_is_try_later(server, adapter):
    server.script({"status": 200, "body": "[{}]"})
    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery())
    assert "without a service_request_id" in failed.value.reason


def test_a_503_is_try_later_with_its_retry_after(server, adapter):
    server.script({"status": 503, "headers": {"Retry-After": "30"}})
    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery())
    assert failed.value.retry_after == 30.0


def test_a_change_cannot_be_sent_and_the_result_says_so(server, adapter):
    change = Delivery(
        delivery_id="dlv-c",
        kind="change",
        case_id="GF-20261126-0001",
        assignment_id="asg-1",
        unit="roads-team-2",
        department="roads",
        role="lead",
        message={"kind": "change", "change": "withdrawn"},
        external_ref="638344",
    )
    result = adapter.push_change(change)
    assert "no operation to update" in result.detail
    assert result.external_ref == "638344"
    assert server.posts() == []


def test_take_status_reads_a_service_request(server, adapter):
    ref = adapter.push(delivery()).external_ref
    server.close_request(ref, "已修复")
    record = server.stored()[ref]

    report = adapter.take_status(record)

    assert (report.case_id, report.unit, report.delivery_id) == (
        "GF-20261126-0001",
        "roads-team-2",
        "dlv-1",
    )
    assert (report.word, report.note, report.external_ref) == ("closed", "已修复", ref)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "open", "case_id": "GF-1"}, "service_request_id"),
        ({"service_request_id": "1", "case_id": "GF-1"}, "status"),
        ({"service_request_id": "1", "status": "open"}, "case_id"),
        (
            {"service_request_id": "1", "status": "open", "case_id": "GF-1", "status_notes": 3},
            "status_notes",
        ),
        ("not an object", "body"),
    ],
)
def test_take_status_names_the_field_of_a_malformed_request(adapter, body, field):
    with pytest.raises(ValueError) as bad:
        adapter.take_status(body)
    assert str(bad.value).startswith(field + ":")


def test_the_double_answers_as_the_shared_georeport_schemas_require(server, adapter):
    """The double keeps to the standard (checked with the shared JSON Schemas' required fields
    and enums), so what the adapter passes here it passes against a real server."""
    schemas = SHARED / "open311-georeport-v2"
    request_schema = json.loads((schemas / "request.json").read_text())
    service_schema = json.loads((schemas / "service.json").read_text())
    adapter.push(delivery())
    server.close_request(next(iter(server.stored())), "ok")

    params = {"jurisdiction_id": "lucheng.example.cn"}
    services = httpx.get(server.url + "/services.json", params=params, timeout=5).json()
    requests = httpx.get(server.url + "/requests.json", params=params, timeout=5).json()
    for service in services:
        assert set(service_schema["required"]) <= set(service)
        assert service["type"] in service_schema["properties"]["type"]["enum"]
    for request in requests:
        assert set(request_schema["required"]) <= set(request)
        assert request["status"] in request_schema["properties"]["status"]["enum"]


def test_a_lost_answer_can_leave_a_copy_that_names_the_same_delivery(server, adapter):
    """GeoReport v2 has no idempotency key: the server made the request, its answer came too
    late, and the retry makes a second one. What the adapter can do is mark both."""
    server.script({"hang": 1.5})  # the server answers (and keeps the request) after 1.5 s
    with pytest.raises(PushFailed):
        adapter.push(delivery())
    deadline = time.monotonic() + 20  # generous: a loaded machine is slow to finish it
    while not server.stored():
        assert time.monotonic() < deadline, "the slow server never kept the first post"
        time.sleep(0.05)  # bounded poll: the server finishes the post the adapter gave up on

    adapter.push(delivery(attempt=2))

    posted = server.posted()
    assert len(posted) == 2
    for form in posted.values():
        assert form["attribute[gridflow_delivery]"] == ["dlv-1"]
        assert form["description"][0].endswith("投递 dlv-1】")
