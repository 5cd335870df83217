"""End to end on the real topology: a department system that answers a case the instant it
arrives on its queue is never refused (defect 9), and reports of one place sent in parallel
through nginx make one case (defect 6)."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import kombu
import pytest
import requests

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from tests.credentials import bearer, update_sender
from tests.e2e.test_real_topology import _poll

pytestmark = pytest.mark.e2e
DEPARTMENT = "urban_management"
CASES = 200


class _Http:
    """One keep-alive session per thread: a department system's connection to Gridflow."""

    def __init__(self, topology):
        self.topology = topology
        self.base_url = topology.base_url
        self._local = threading.local()

    def __call__(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """As the admin, or, for a status update, as the department with its own credential."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        sender = update_sender(path, body)
        token = self.topology.holder_token(sender) if sender else self.topology.admin_token
        response = session.request(
            method, self.base_url + path, json=body, timeout=30, headers=bearer(token)
        )
        return response.status_code, response.json() if response.content else {}


class InstantDepartment:
    """A department system that answers ``accepted`` the moment a case reaches its queue: the
    AMQP consumer hands each delivery to a waiting thread, which sends the answer at once."""

    def __init__(self, amqp_uri: str, http: _Http, tag: str):
        self.http = http
        self.tag = tag
        self.answers: dict[str, tuple[int, dict]] = {}
        self.delays: list[float] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=CASES)
        self._stop = threading.Event()
        self._connection = kombu.Connection(amqp_uri)
        self._queue = kombu.Queue(
            c.department_queue(DEPARTMENT),
            exchange=kombu.Exchange(c.CASE_EXCHANGE, type="topic", durable=True),
            routing_key=f"{DEPARTMENT}.*",
            durable=True,
            auto_delete=False,
        )
        self._thread = threading.Thread(target=self._consume, daemon=True)

    def __enter__(self) -> InstantDepartment:
        self._queue(self._connection.default_channel).declare()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)
        self._connection.release()

    def _answer(self, case_id: str, delivered: float) -> None:
        with self._lock:
            self.delays.append(time.perf_counter() - delivered)
        result = self.http(
            "POST", f"/api/v1/cases/{case_id}/updates", {"from": DEPARTMENT, "status": v.ACCEPTED}
        )
        with self._lock:
            self.answers[case_id] = result

    def _on_message(self, body, message) -> None:
        delivered = time.perf_counter()
        case = json.loads(body) if isinstance(body, (str, bytes)) else body
        # The case given to the unit that leads it; not a later change of it.
        if self.tag in case.get("description", "") and (case["kind"], case["role"]) == (
            "case",
            "lead",
        ):
            self._pool.submit(self._answer, case["case_id"], delivered)
        message.ack()

    def _consume(self) -> None:
        with kombu.Consumer(
            self._connection,
            [self._queue],
            callbacks=[self._on_message],
            accept=["json"],
            prefetch_count=200,
        ):
            while not self._stop.is_set():
                try:
                    self._connection.drain_events(timeout=0.2)
                except TimeoutError:
                    continue


def _report(tag: str, n: int, category: str = "component.streetlight", **location) -> dict:
    return {
        "channel": "hotline",
        "external_id": f"{tag}-{n}",
        "description": f"路灯不亮 {tag}",
        "category": category,
        # A grid code carries no point, so these reports never merge with one another.
        "location": location or {"grid_code": "330302001001001"},
    }


def test_a_department_answering_each_case_the_instant_it_arrives_is_never_refused(
    topology, amqp_uri
):
    http = _Http(topology)
    tag = f"instant-{uuid.uuid4().hex[:8]}"
    registered: list[str] = []
    with InstantDepartment(amqp_uri, http, tag) as department:

        def report(n: int) -> None:
            status, body = http("POST", "/api/v1/reports", _report(tag, n))
            assert status == 201, body
            registered.append(body["case_id"])

        with ThreadPoolExecutor(max_workers=8) as senders:
            list(senders.map(report, range(CASES)))
        assert _poll(lambda: len(department.answers) >= CASES, timeout=120), (
            f"{len(department.answers)} of {CASES} answered\n" + topology.logs()
        )

    refused = {
        case_id: answer for case_id, answer in department.answers.items() if answer[0] != 202
    }
    delays_ms = sorted(d * 1000 for d in department.delays)
    assert not refused, (
        f"{len(refused)} of {CASES} refused, e.g. "
        f"{list(refused.items())[:3]}; delivery-to-answer p50 "
        f"{statistics.median(delays_ms):.3f} ms"
    )
    assert set(department.answers) == set(registered)
    print(
        f"delivery-to-answer: p50 {statistics.median(delays_ms):.3f} ms, "
        f"p99 {delays_ms[int(len(delays_ms) * 0.99) - 1]:.3f} ms, max {delays_ms[-1]:.3f} ms"
    )
    # Intake's view keeps the answer once the dispatch's own projection arrives.
    for case_id in registered[:: CASES // 20]:
        assert _poll(lambda c=case_id: _accepted_by_the_station(http, c), timeout=30), case_id


def _accepted_by_the_station(http: _Http, case_id: str) -> bool:
    view = http("GET", f"/api/v1/cases/{case_id}")[1]
    return view["status"] == v.ACCEPTED and view["handler"] == "urban_management-330302001"


def test_eight_parallel_reports_of_one_place_through_nginx_make_one_case(topology):
    http = _Http(topology)
    # A place and category no other end-to-end test reports, so no open case is there already.
    point = {"lat": 28.05, "lon": 120.635}
    for round_ in range(3):
        tag = f"merge-{uuid.uuid4().hex[:8]}"
        barrier = threading.Barrier(8)

        def report(n: int, tag=tag, barrier=barrier) -> tuple[int, dict]:
            barrier.wait()
            return http("POST", "/api/v1/reports", _report(tag, n, "event.junk_pile", **point))

        with ThreadPoolExecutor(max_workers=8) as senders:
            answers = list(senders.map(report, range(8)))
        assert sorted(status for status, _ in answers) == [200] * 7 + [201], answers
        case_ids = {body["case_id"] for _, body in answers}
        assert len(case_ids) == 1, f"round {round_}: {len(case_ids)} cases"
        [case_id] = case_ids
        assert http("GET", f"/api/v1/cases/{case_id}")[1]["reporters"] == 8

        # Close the loop, so the next round's reports open a case of their own.
        assert _poll(
            lambda c=case_id: http("GET", f"/api/v1/cases/{c}")[1]["status"] == v.DISPATCHED,
            timeout=30,
        ), topology.logs()
        assert (
            http(
                "POST",
                f"/api/v1/cases/{case_id}/updates",
                {"from": DEPARTMENT, "status": v.RESOLVED},
            )[0]
            == 202
        )
        assert http("POST", f"/api/v1/cases/{case_id}/verification", {"passed": True})[0] == 200
