"""The webhook adapter against a department's system on loopback (``department_http``: a real
HTTP server in its own process, told to fail, refuse, hang, go down and come back).

Run under eventlet (``nameko test``) as the departments service runs the adapter: green sockets,
and a hanging department must still cost no more than the read timeout."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import threading
import time

import pytest

from gridflow_common import secrets, signing
from gridflow_common.adapters.contract import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    PushFailed,
    PushRefused,
)
from gridflow_departments.adapters.webhook import WebhookAdapter
from tests.support.department_http import DepartmentDouble, post_status

SECRET = "fire-webhook-7f3a9c2e"  # what the department and Gridflow share
SECRET_ENV = "GRIDFLOW_TEST_FIRE_WEBHOOK"
READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def department():
    double = DepartmentDouble(SECRET)
    yield double
    double.close()


@pytest.fixture(autouse=True)
def fresh(department, monkeypatch):
    department.reset()
    department.come_back()
    monkeypatch.setenv(SECRET_ENV, SECRET)


def context(now=None) -> AdapterContext:
    return AdapterContext(
        secret=secrets.resolve,
        sign_link=lambda delivery, action, expires: "http://gridflow.test/l/x",
        public_url="http://gridflow.test/",
        now=now or (lambda: dt.datetime.now(dt.UTC)),
    )


def config(endpoint: str, **options) -> AdapterConfig:
    return AdapterConfig(
        code="fire",
        adapter="webhook",
        endpoint=endpoint,
        credential_ref=f"env:{SECRET_ENV}",
        options={"connect_timeout": 1.0, "read_timeout": READ_TIMEOUT, **options},
    )


@pytest.fixture
def adapter(department):
    a = WebhookAdapter(config(department.endpoint), context())
    yield a
    a.close()


def delivery(delivery_id: str = "dlv-1", attempt: int = 1, kind: str = "case") -> Delivery:
    return Delivery(
        delivery_id=delivery_id,
        kind=kind,
        case_id="GF-20261126-0001",
        assignment_id="asg-1",
        unit="fire-station-3",
        department="fire",
        role="lead",
        message={
            "message_version": 2,
            "kind": kind,
            "delivery_id": delivery_id,
            "case_id": "GF-20261126-0001",
            "description": "燃气泄漏，三楼楼道有气味",
            "location": {"point": {"lat": 28.01, "lon": 120.65}, "address": "鹿城区五马街 12 号"},
        },
        attempt=attempt,
    )


def test_push_is_signed_with_the_departments_secret_and_keyed_by_the_delivery(department, adapter):
    result = adapter.push(delivery())

    assert result.external_ref == "D-1"  # the department's own id, from its answer
    [push] = department.pushes()
    assert push["signature_ok"], push["signature_problem"]
    assert push["idempotency_key"] == "dlv-1"
    assert push["delivery_id"] == "dlv-1"
    assert push["headers"]["x-gridflow-attempt"] == "1"
    assert push["headers"]["content-type"] == "application/json; charset=utf-8"
    assert push["headers"]["user-agent"].startswith("Gridflow")
    assert push["message"] == dict(delivery().message)  # Chinese text intact, as UTF-8 JSON


def test_the_double_tells_a_push_signed_with_another_secret(department):
    """The check above can fail: a push signed with a secret the department does not hold."""
    impostor = WebhookAdapter(
        config(department.endpoint),
        AdapterContext(
            secret=lambda ref: "not-the-departments-secret",
            sign_link=lambda *a: "",
            public_url="http://gridflow.test/",
            now=lambda: dt.datetime.now(dt.UTC),
        ),
    )
    try:
        impostor.push(delivery())
    finally:
        impostor.close()
    [push] = department.pushes()
    assert not push["signature_ok"]
    assert "does not match" in push["signature_problem"]


def test_a_duplicate_push_carries_the_same_key_and_gets_the_same_answer(department, adapter):
    first = adapter.push(delivery(attempt=1))
    again = adapter.push(delivery(attempt=2))  # the first answer was lost, say

    pushes = department.pushes()
    assert [p["idempotency_key"] for p in pushes] == ["dlv-1", "dlv-1"]
    assert [p["headers"]["x-gridflow-attempt"] for p in pushes] == ["1", "2"]
    assert all(p["signature_ok"] for p in pushes)
    # The department dropped the copy and answered with the id it gave the first time.
    assert again.external_ref == first.external_ref == "D-1"


def test_a_hanging_department_fails_the_push_within_the_read_timeout(department, adapter):
    department.hang(10, times=1)

    started = time.monotonic()
    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery())
    elapsed = time.monotonic() - started

    assert READ_TIMEOUT * 0.9 <= elapsed < READ_TIMEOUT + 1.0, elapsed
    assert "read timeout" in failed.value.reason
    # The department got it (it hangs, it is not down) and the next push goes through.
    assert len(department.pushes()) == 1
    assert adapter.push(delivery("dlv-2")).external_ref == "D-1"


@pytest.mark.parametrize("status", [500, 502, 503, 408, 425, 429])
def test_try_later_answers_fail_the_push_with_their_retry_after(department, adapter, status):
    department.fail(status, retry_after="7", times=1)

    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery())

    assert failed.value.retry_after == 7.0
    assert f"HTTP {status}" in failed.value.reason


def test_a_retry_after_date_is_read_against_operational_time(department):
    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=90), usegmt=True)
    department.fail(503, retry_after=later, times=1)
    a = WebhookAdapter(config(department.endpoint), context(now=lambda: now))
    try:
        with pytest.raises(PushFailed) as failed:
            a.push(delivery())
    finally:
        a.close()
    assert failed.value.retry_after == 90.0


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (None, None),
        ("soon", None),
        ("99999999999", 86400.0),
        ("Mon, 01 Jan 1990 00:00:00 GMT", 0.0),
    ],
)
def test_a_missing_or_unreasonable_retry_after_leaves_the_schedule_to_gridflow(
    department, adapter, retry_after, expected
):
    department.fail(500, retry_after=retry_after, times=1)
    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery())
    assert failed.value.retry_after == expected


@pytest.mark.parametrize("status", [401, 403])
def test_a_department_not_taking_the_key_is_tried_again_while_operators_rotate_it(
    department, adapter, status
):
    department.refuse(status, reason="signature mismatch")

    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery())

    assert f"HTTP {status}" in failed.value.reason


@pytest.mark.parametrize("status", [400, 404, 410, 422])
def test_other_4xx_refuse_the_delivery_naming_status_and_reason(department, adapter, status):
    department.refuse(status, reason="case_id 格式不对")

    with pytest.raises(PushRefused) as refused:
        adapter.push(delivery())

    assert f"HTTP {status}" in refused.value.reason
    assert "case_id 格式不对" in refused.value.reason


def test_a_department_that_goes_down_fails_pushes_and_health_until_it_comes_back(
    department, adapter
):
    assert adapter.push(delivery("dlv-1")).external_ref  # a kept-alive connection exists now
    department.go_down()

    started = time.monotonic()
    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery("dlv-2"))
    assert time.monotonic() - started < 1.0
    assert "refused the connection" in failed.value.reason
    assert not adapter.health().ok

    department.come_back()
    assert adapter.push(delivery("dlv-2")).external_ref == "D-2"
    assert adapter.health().ok
    assert [p["idempotency_key"] for p in department.pushes()] == ["dlv-1", "dlv-2"]


def test_a_connection_dropped_without_an_answer_is_try_later(department, adapter):
    department.script({"drop": True})
    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery())
    assert "closed the connection" in failed.value.reason


def test_hostile_answers_do_not_break_the_adapter(department, adapter):
    # A refusal with a 20 MB body: its reason stays short, and reading it stays quick.
    department.script({"status": 400, "body": "垃圾" * 1000, "repeat": 10_000})
    started = time.monotonic()
    with pytest.raises(PushRefused) as refused:
        adapter.push(delivery("dlv-1"))
    assert time.monotonic() - started < READ_TIMEOUT + 1.0
    assert len(refused.value.reason) < 300

    # A 2xx that is not JSON, a JSON list, an id that is an object: delivered, no id kept.
    for body, content_type in [
        ("<html>ok</html>", "text/html"),
        ("[1, 2, 3]", "application/json"),
        ('{"id": {"nested": true}}', "application/json"),
        ("null", "application/json"),
    ]:
        department.script({"status": 200, "body": body, "content_type": content_type})
        assert adapter.push(delivery("dlv-2")).external_ref is None

    # A 200 with a 20 MB body is read no further than needed.
    department.script({"status": 200, "body": "x" * 1000, "repeat": 20_000})
    assert adapter.push(delivery("dlv-3")).external_ref is None
    assert adapter.push(delivery("dlv-4")).external_ref  # and the next push is fine


def test_no_secret_in_any_exception_or_log_line(department, adapter, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    reasons = []

    # A careless department that echoes the secret back in its refusal and its error.
    department.script({"status": 400, "body": f'{{"error": "expected {SECRET}"}}'})
    department.script({"status": 503, "body": f"secret={SECRET}"})
    for _ in range(2):
        with pytest.raises((PushFailed, PushRefused)) as caught:
            adapter.push(delivery())
        reasons.append(str(caught.value))
    department.hang(5, times=1)
    with pytest.raises(PushFailed) as caught:
        adapter.push(delivery())
    reasons.append(str(caught.value))
    department.go_down()
    with pytest.raises(PushFailed) as caught:
        adapter.push(delivery())
    reasons.append(str(caught.value))
    reasons.append(adapter.health().detail)

    assert "***" in reasons[0] and "***" in reasons[1]
    for text in [*reasons, caplog.text]:
        assert SECRET not in text
    assert "webhook push dlv-1" in caplog.text  # the log lines were captured


def test_an_unreadable_secret_is_try_later_naming_the_reference(department, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    a = WebhookAdapter(config(department.endpoint), context())
    try:
        with pytest.raises(PushFailed) as failed:
            a.push(delivery())
    finally:
        a.close()
    assert f"env:{SECRET_ENV}" in failed.value.reason
    assert "operator" in failed.value.reason
    assert department.pushes() == []  # nothing unsigned went out


def test_changes_go_to_the_change_endpoint(department):
    a = WebhookAdapter(
        config(department.endpoint, change_endpoint=department.url + "/gridflow/changes"),
        context(),
    )
    try:
        a.push_change(delivery("dlv-9", kind="change"))
    finally:
        a.close()
    [push] = department.pushes()
    assert push["path"] == "/gridflow/changes"
    assert push["headers"]["x-gridflow-kind"] == "change"
    assert push["signature_ok"]


def test_health_asks_the_health_url_and_is_ok_below_500(department):
    a = WebhookAdapter(
        config(department.endpoint, health_url=department.url + "/health"), context()
    )
    try:
        assert a.health().ok
        department.stand({"status": 503, "methods": ["GET"]})
        health = a.health()
    finally:
        a.close()
    assert not health.ok
    assert "HTTP 503" in health.detail
    assert [r["path"] for r in department.records()] == ["/health", "/health"]


def test_take_status_reads_a_status_message_in_the_departments_words(adapter):
    report = adapter.take_status(
        {"case_id": "GF-20261126-0001", "status": "已出警", "note": "两车出动", "unit": "fs-3"}
    )
    assert (report.case_id, report.word, report.note, report.unit) == (
        "GF-20261126-0001",
        "已出警",
        "两车出动",
        "fs-3",
    )
    # No unit: the sender (the row's code) is.
    assert adapter.take_status({"case_id": "GF-1", "status": "accepted"}).unit == "fire"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "accepted"}, "case_id"),
        ({"case_id": "GF-1"}, "status"),
        ({"case_id": "GF-1", "status": "x" * 61}, "status"),
        ({"case_id": "GF-1", "status": "note", "note": 5}, "note"),
        ({"case_id": "GF-1", "status": "extension_requested", "hours": -3}, "hours"),
        (["not", "an", "object"], "body"),
    ],
)
def test_take_status_names_the_field_of_a_malformed_message(adapter, body, field):
    with pytest.raises(ValueError) as bad:
        adapter.take_status(body)
    assert str(bad.value).startswith(field + ":")


def test_the_signature_header_is_the_shared_signing_scheme(department, adapter):
    """What a department's own code would run: ``signing.verify`` on the raw body."""
    adapter.push(delivery())
    [push] = department.pushes()
    signing.verify(
        SECRET,
        push["headers"]["x-gridflow-timestamp"],
        push["headers"]["x-gridflow-signature"],
        push["body"].encode("utf-8"),
        now=time.time(),
    )


def test_a_failed_tls_handshake_is_try_later_naming_tls(department):
    """An https endpoint whose server does not speak TLS (here: the plain HTTP double)."""
    a = WebhookAdapter(config(department.endpoint.replace("http://", "https://")), context())
    try:
        with pytest.raises(PushFailed) as failed:
            a.push(delivery())
    finally:
        a.close()
    assert failed.value.reason.startswith("TLS with 127.0.0.1")


def test_the_double_serves_others_while_one_push_hangs(department, adapter):
    """The trap the double lives in its own process for: under eventlet a green http.server
    would serve one connection at a time, and the health check below would wait out the 5 s
    the double holds the push (whether or not the adapter gave up on it meanwhile)."""
    department.hang(5, times=1)
    failures = []

    def push_that_hangs():
        try:
            adapter.push(delivery())
        except PushFailed as exc:
            failures.append(exc)

    pusher = threading.Thread(target=push_that_hangs)
    pusher.start()
    deadline = time.monotonic() + 5
    while not department.pushes():
        assert time.monotonic() < deadline, "the push never reached the double"
        time.sleep(0.02)  # bounded poll: the hanging push has arrived
    other = WebhookAdapter(config(department.endpoint), context())
    try:
        started = time.monotonic()
        assert other.health().ok
        assert time.monotonic() - started < 2.0
    finally:
        other.close()
    pusher.join(timeout=5)
    assert len(failures) == 1  # the hanging push itself timed out


def test_a_departments_status_post_is_signed_as_gridflow_checks_it(department):
    """The helper a department's program (and the status tests) posts status back with: its
    signature is the shared scheme, verified here by the double with the department's secret;
    signed with another secret, it is not."""
    message = {"case_id": "GF-20261126-0001", "status": "已出警", "note": "两车出动"}
    assert post_status(department.url, "fire", message, SECRET).status_code < 300
    post_status(department.url, "fire", message, "a guess")

    good, forged = department.pushes()
    assert good["path"] == "/api/v1/departments/fire/updates"
    assert good["message"] == message
    assert (good["signature_ok"], forged["signature_ok"]) == (True, False)
