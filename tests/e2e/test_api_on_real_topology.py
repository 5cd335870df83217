"""The HTTP API through the real nameko intake (directly and behind nginx): untakeable bodies are
4xx, every path and method answers JSON, a 100 MB body is refused without being read, and a
reset while a service is down empties nothing, then or later."""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import uuid

import kombu
import pytest
import sqlalchemy as sa

from gridflow_app.embedded import load_definitions
from gridflow_common.reset import ResetOrder
from tests.credentials import bearer, names_a_credential
from tests.http_samples import (
    JSON,
    REPORTS,
    lucheng_with_more_people,
    nested,
    raw_call,
    report_with_long_lat,
)
from tests.http_samples import report as _report

pytestmark = pytest.mark.e2e


def _address(topo, service: str | None) -> tuple[str, int]:
    if service is None:
        host, port = topo.base_url.removeprefix("http://").split(":")
    else:
        host, port = topo.env[f"{service.upper()}_HTTP"].split(":")
    return host, int(port)


def _raw(topo, method, path, body=None, headers=None, service=None):
    """One request as the admin, straight to ``service``'s own port (or through nginx when
    None)."""
    headers = dict(headers or {})
    if not names_a_credential(headers):
        headers.update(bearer(topo.admin_token))
    return raw_call(*_address(topo, service), method, path, body, headers)


UNTAKEABLE = [
    pytest.param(
        nested(5000),
        "_body",
        "nested too deeply",
        id="nested-5000-deep",
    ),
    pytest.param(
        report_with_long_lat(4301),
        "location.lat",
        "4301 digits",
        id="lat-of-4301-digits",
    ),
    pytest.param(
        json.dumps(_report(description="废弃物\u0000")).encode(),
        "description",
        "NUL",
        id="nul-in-description",
    ),
]


@pytest.mark.parametrize("service", [None, "intake"], ids=["through-nginx", "direct"])
@pytest.mark.parametrize(("body", "field", "why"), UNTAKEABLE)
def test_untakeable_report_is_a_400_naming_the_field_on_the_real_intake(
    simulated_topology, service, body, field, why
):
    status, _, answer = _raw(simulated_topology, "POST", REPORTS, body, JSON, service)
    assert status == 400, answer
    assert why.lower() in " ".join(answer["errors"][field]).lower()


def test_satisfaction_of_4301_digits_is_a_400_on_the_real_intake(simulated_topology):
    body = b'{"satisfaction": ' + b"4" * 4301 + b"}"
    status, _, answer = _raw(
        simulated_topology, "POST", "/api/v1/cases/GF-NONE/evaluation", body, JSON, "intake"
    )
    assert status == 400
    assert "4301 digits" in answer["errors"]["satisfaction"][0]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("DELETE", REPORTS, 405),
        ("PATCH", "/api/v1/cases/GF-1", 405),
        ("POST", "/healthz", 405),
        ("GET", "/nothing/here", 404),
        ("GET", "/static/nothing.js", 404),
    ],
)
def test_every_path_and_method_answers_json_on_the_real_intake(
    simulated_topology, method, path, status
):
    got, headers, answer = _raw(simulated_topology, method, path, service="intake")
    assert got == status, answer
    assert "errors" in answer
    if status == 405:
        assert headers["Allow"]


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_100_mb_body_sent_to_intake_directly_is_refused_without_being_held(simulated_topology):
    topo = simulated_topology
    pid = topo.pid("intake")
    before = _peak_rss_kib(pid)
    size = 100 * 1024 * 1024
    conn = http.client.HTTPConnection(*_address(topo, "intake"), timeout=120)
    chunk = b"x" * (1024 * 1024)
    try:
        conn.putrequest("POST", REPORTS)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        # The server may answer and close while the client is still sending.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(size // len(chunk)):
                conn.send(chunk)
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    grown_kib = _peak_rss_kib(pid) - before
    print(f"intake peak RSS {before} KiB before, grew {grown_kib} KiB for a 100 MB body")
    assert response.status == 413
    assert "104857600 bytes" in answer["errors"]["_body"][0]
    assert grown_kib < 10 * 1024


def test_lucheng_with_600_more_people_is_imported_through_nginx(simulated_topology):
    files = lucheng_with_more_people(600)
    assert len(json.dumps({"files": files}, ensure_ascii=False).encode()) > 79_000
    status, body = simulated_topology.call("PUT", "/api/v1/admin/jurisdiction", {"files": files})
    assert status == 200, body


def test_a_body_far_too_large_is_a_json_413_from_nginx(simulated_topology):
    body = json.dumps(_report(description="x" * 300_000)).encode()
    status, _, answer = _raw(simulated_topology, "POST", REPORTS, body, JSON)
    assert status == 413
    assert "_body" in answer["errors"]


# -- reset (defect 3) -------------------------------------------------------------------------


def _counts(database_url: str) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for definition in load_definitions().values()
                for table in definition.tables()
            }
    finally:
        engine.dispose()


def _emptied(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    """The tables that lost rows (services still at work may only add some)."""
    return {name: (n, after[name]) for name, n in before.items() if after[name] < n}


def _wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)  # bounded poll on an observable result
    raise AssertionError(f"{what} within {timeout} s")


def _answers(topo, service: str) -> bool:
    try:
        conn = http.client.HTTPConnection(*_address(topo, service), timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def _send_reset_order(amqp_uri: str, service: str, order: ResetOrder) -> None:
    """What intake's RpcProxy sends: a nameko RPC request for ``service.reset`` (its answer
    goes to a reply queue nobody listens on)."""
    exchange = kombu.Exchange("nameko-rpc", type="topic", durable=True)
    with kombu.Connection(amqp_uri) as conn:
        conn.Producer().publish(
            {"args": [order.to_message()], "kwargs": {}},
            exchange=exchange,
            routing_key=f"{service}.reset",
            serializer="json",
            reply_to="test-replies",
            correlation_id=uuid.uuid4().hex,
            delivery_mode=2,
        )


def test_a_reset_with_a_service_down_empties_nothing_then_or_later(
    simulated_topology, database_url, amqp_uri
):
    topo = simulated_topology
    status, first = topo.call("POST", REPORTS, _report())
    assert status == 201, first
    case_id = first["case_id"]
    _wait_until(
        lambda: topo.call("GET", f"/api/v1/cases/{case_id}")[1].get("status") == "dispatched",
        30,
        "the case was not dispatched",
    )
    before = _counts(database_url)
    topo.sigkill("notify")
    try:
        started = time.monotonic()
        status, answer = topo.call("POST", "/api/v1/admin/reset", {})
        took = time.monotonic() - started
        print(f"reset with notify killed answered {status} in {took:.2f} s")
        assert status == 503, answer
        assert any(m.startswith("nothing was emptied: notify") for m in answer["errors"]["reset"])
        assert took < 10
        assert _emptied(before, _counts(database_url)) == {}
        # A case accepted after the refused reset is kept as well.
        status, later = topo.call(
            "POST",
            REPORTS,
            _report(location={"lat": 27.995, "lon": 120.556}, category="event.noise"),
        )
        assert status == 201, later
        # The second round of a reset that was given up on: it waits in the dead service's
        # queue, as the old protocol's did, and must not run when the service comes back.
        _send_reset_order(amqp_uri, "notify", ResetOrder.new(window=1.0))
        before = _counts(database_url)
    finally:
        topo.script("up")
    _wait_until(lambda: _answers(topo, "notify"), 60, "notify did not come back")
    _wait_until(
        lambda: "reset_stale_dropped" in (topo.var_dir / "notify.log").read_text(),
        30,
        "notify did not drop the stale reset order",
    )
    for kept in (case_id, later["case_id"]):
        assert topo.call("GET", f"/api/v1/cases/{kept}")[0] == 200
    jurisdiction = topo.call("GET", "/api/v1/admin/jurisdiction")
    assert jurisdiction[0] == 200
    assert _emptied(before, _counts(database_url)) == {}

    # With every service up the reset goes through, whole, and keeps the jurisdiction.
    status, answer = topo.call("POST", "/api/v1/admin/reset", {"now": "2026-01-05T09:00:00+08:00"})
    assert status == 200, answer
    assert answer["now"] == "2026-01-05T09:00:00+08:00"
    emptied = _counts(database_url)
    assert emptied["intake_cases"] == 0 and emptied["routing_assignments"] == 0, emptied
    assert (
        topo.call("GET", "/api/v1/admin/jurisdiction")[1]["version"] == jurisdiction[1]["version"]
    )
    assert topo.call("POST", REPORTS, _report())[0] == 201
