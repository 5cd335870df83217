"""End to end: every service its own `nameko run` process (started by deploy/topology.sh, the
script behind `make up`), on the real RabbitMQ and PostgreSQL, behind nginx."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import httpx
import kombu
import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c

pytestmark = pytest.mark.e2e


def _report(external_id: str, lat: float = 27.995, lon: float = 120.556) -> dict:
    return {
        "channel": "hotline",
        "external_id": external_id,
        "description": "青园社区门口的路灯不亮已经三天了",
        "category": "component.streetlight",
        "location": {"lat": lat, "lon": lon},
        "reporter": {"phone": "13900000001"},
    }


def _poll(fn, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)  # bounded poll on an observable result
    return last


class DepartmentQueue:
    """A department system: an AMQP consumer on its durable queue."""

    def __init__(self, amqp_uri: str, department: str):
        self.connection = kombu.Connection(amqp_uri)
        # The department's queue on the topic exchange of cases: all of its units' cases.
        self.queue = kombu.Queue(
            c.department_queue(department),
            exchange=kombu.Exchange(c.CASE_EXCHANGE, type="topic", durable=True),
            routing_key=f"{department}.*",
            durable=True,
            auto_delete=False,
        )
        self.queue(self.connection.default_channel).declare()

    def drain(self, seconds: float) -> list[dict]:
        got: list[dict] = []

        def on_message(body, message):
            got.append(json.loads(body) if isinstance(body, (str, bytes)) else body)
            message.ack()

        with kombu.Consumer(self.connection, [self.queue], callbacks=[on_message], accept=["json"]):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    self.connection.drain_events(timeout=0.2)
                except TimeoutError:
                    if got:
                        break
        return got

    def close(self) -> None:
        self.connection.release()


def test_a_case_travels_the_whole_loop_through_five_processes(topology, amqp_uri, database_url):
    inbox = DepartmentQueue(amqp_uri, "urban_management")
    report = {
        **_report("e2e-loop-1"),
        "description": "我是庄思思，青园社区门口的路灯不亮已经三天了，电话13866000001",
        "reporter": {"name": "庄思思", "phone": "+86 138-6600-0001"},
    }
    try:
        status, body = topology.call("POST", "/api/v1/reports", report)
        assert status == 201, body
        case_id = body["case_id"]

        view = _poll(
            lambda: (lambda v: v if v["status"] == "dispatched" and v["colour"] else None)(
                topology.call("GET", f"/api/v1/cases/{case_id}")[1]
            )
        )
        assert view, topology.logs()
        assert (view["tier"], view["handler"], view["lead"]) == (
            "street",
            "urban_management-330302001",
            "urban_management",
        )
        assert view["colour"] == "green"

        messages = [m for m in inbox.drain(15) if m["case_id"] == case_id and m["kind"] == "case"]
        assert len(messages) == 1
        assert messages[0]["handler"] == "urban_management-330302001"
        assert "路灯" in messages[0]["description"]
        # The department system is outside Gridflow: the resident reaches it masked.
        assert messages[0]["reporter"] == {"name": "庄**", "phone": "138****0001"}
        assert messages[0]["description"] == (
            "我是庄**，青园社区门口的路灯不亮已经三天了，电话138****0001"
        )
        assert "思思" not in json.dumps(messages[0], ensure_ascii=False)

        for update in (
            {"from": "urban_management", "status": "accepted"},
            {"from": "urban_management", "status": "resolved", "note": "已修复"},
        ):
            assert topology.call("POST", f"/api/v1/cases/{case_id}/updates", update)[0] == 202
        assert (
            topology.call("POST", f"/api/v1/cases/{case_id}/verification", {"passed": True})[0]
            == 200
        )
        assert (
            topology.call("POST", f"/api/v1/cases/{case_id}/evaluation", {"satisfaction": 5})[0]
            == 200
        )
        final = topology.call("GET", f"/api/v1/cases/{case_id}")[1]
        assert (final["status"], final["satisfaction"], final["colour"]) == ("closed", 5, None)
        kinds = [e["kind"] for e in final["timeline"]]
        assert kinds[:3] == ["registered", "routed", "dispatched"]
        assert kinds[-3:] == ["resolved", "verified", "evaluated"]

        # notify recorded the station's duty person (people.csv) for the dispatch, the grid's
        # worker for the registration, and the reporter's messages (registered, dispatched,
        # resolved, the invitation to evaluate), each once.
        engine = sa.create_engine(database_url)
        try:

            def notified():
                with engine.connect() as conn:
                    return conn.execute(
                        sa.text(
                            "SELECT person_id, reason FROM notify_notifications WHERE case_id = :c"
                        ),
                        {"c": case_id},
                    ).all()

            expected = {
                ("P00081", "dispatched"),
                ("P00001", "registered"),
                ("reporter", "resident_registered"),
                ("reporter", "resident_dispatched"),
                ("reporter", "resident_resolved"),
                ("reporter", "resident_evaluation"),
            }
            rows = _poll(lambda: expected <= {tuple(r) for r in notified()} or None, timeout=15)
            assert rows, {tuple(r) for r in notified()}
            rows = [tuple(r) for r in notified()]
            assert all(rows.count(row) == 1 for row in expected), rows  # each once
        finally:
            engine.dispose()
    finally:
        inbox.close()


def test_sigkill_of_a_service_mid_stream_loses_no_case(topology, amqp_uri):
    total = 150
    inbox = DepartmentQueue(amqp_uri, "urban_management")
    accepted: dict[str, str] = {}
    errors: list[str] = []

    def send(start: int, stop: int) -> None:
        for i in range(start, stop):
            status, body = topology.call(
                "POST",
                "/api/v1/reports",
                _report(
                    f"e2e-kill-{i}", lat=27.985 + (i % 50) * 0.001, lon=120.552 + (i % 7) * 0.002
                ),
            )
            if status in (200, 201):
                accepted[f"e2e-kill-{i}"] = body["case_id"]
            else:
                errors.append(f"{i}: {status} {body}")

    try:
        sender = threading.Thread(target=send, args=(0, total // 2))
        sender.start()
        # Routing and departments die with messages in flight, SIGKILL: no shutdown, no acks.
        assert _poll(lambda: len(accepted) >= 20, timeout=30)
        topology.sigkill("routing")
        sender.join()
        topology.sigkill("departments")
        send(total // 2, total)
        topology.script("up")  # restarts what is not running, as an operator would

        seen: dict[str, int] = {}
        deadline = time.monotonic() + 120
        expected = set(accepted.values())
        while time.monotonic() < deadline and not expected <= set(seen):
            for message in inbox.drain(2):
                seen[message["case_id"]] = seen.get(message["case_id"], 0) + 1
        assert not errors, errors
        assert len(accepted) == total
        missing = expected - set(seen)
        assert not missing, (
            f"{len(missing)} cases never reached their department\n" + topology.logs()
        )
        # Intake's view catches up too (its projection may be retrying a failed attempt).
        for case_id in list(expected)[:20]:
            assert _poll(
                lambda c=case_id: (
                    topology.call("GET", f"/api/v1/cases/{c}")[1]["status"] == "dispatched"
                ),
                timeout=30,
            ), case_id
    finally:
        inbox.close()


def test_every_service_serves_prometheus_metrics(topology):
    from tests.e2e.conftest import SERVICES

    for service in SERVICES:
        address = topology.env[f"{service.upper()}_HTTP"]
        response = httpx.get(f"http://{address}/metrics", timeout=10)
        text = response.text
        assert response.headers["Content-Type"].startswith("text/plain"), service
        assert "gridflow_messages_total" in text, service
    # The intake process counts what it registers, on its own port; the public proxy serves
    # neither metrics nor health.
    assert topology.call("POST", "/api/v1/reports", _report("e2e-metrics-1"))[0] == 201
    response = httpx.get(f"http://{topology.env['INTAKE_HTTP']}/metrics", timeout=10)
    assert 'gridflow_cases_registered_total{channel="hotline"}' in response.text
    for door in ("/metrics", "/healthz"):
        response = httpx.get(topology.base_url + door, timeout=10)
        assert response.status_code == 404, door
        assert "gridflow_" not in response.text and "ok" not in response.json(), door


def test_a_broker_restart_loses_no_case(topology, amqp_uri):
    """RabbitMQ stops while reports keep coming: intake still accepts them (they wait in its
    outbox), and once the broker is back every case reaches its department."""
    accepted = []

    def report(n: int) -> None:
        status, body = topology.call(
            "POST",
            "/api/v1/reports",
            _report(f"e2e-broker-{n}", lat=27.984 + n * 0.001, lon=120.575),
        )
        assert status == 201, body
        accepted.append(body["case_id"])

    for n in range(5):
        report(n)
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120)
    try:
        for n in range(5, 10):
            report(n)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)

    def all_dispatched():
        return all(
            topology.call("GET", f"/api/v1/cases/{case_id}")[1]["status"] == "dispatched"
            for case_id in accepted
        )

    assert _poll(all_dispatched, timeout=90, interval=0.5), topology.logs()
    inbox = DepartmentQueue(amqp_uri, "urban_management")
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(accepted) <= seen:
            seen.update(m["case_id"] for m in inbox.drain(2))
    finally:
        inbox.close()
    assert set(accepted) <= seen
