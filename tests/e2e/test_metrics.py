"""The operators' metrics in the real topology: every service's /metrics passes
`promtool check metrics`, the global figures are exported by one replica only (a second intake
replica exports no open cases, so a sum over replicas counts each case once), the queue depth of
the units comes from RabbitMQ, and the Grafana dashboard names only metrics the five services
expose."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import REPO, free_port
from tests.e2e.conftest import SERVICES
from tests.metrics_support import DASHBOARD, check_metrics, exposed_names, names_in, samples

pytestmark = pytest.mark.e2e

# The services read their global figures at most every 15 s.
FIGURES_TTL = 15.0


def _report(external_id: str) -> dict:
    return {
        "channel": "hotline",
        "external_id": external_id,
        "description": "青园社区南侧路口的路灯不亮",
        "category": "component.streetlight",
        # A spot of its own (330 m from test_real_topology's): the topology is shared by every
        # e2e file, and a report within 50 m of an open case of its category joins it.
        "location": {"lat": 27.992, "lon": 120.558},
    }


def _scrape(address: str) -> str:
    response = httpx.get(f"http://{address}/metrics", timeout=20, trust_env=False)
    assert response.status_code == 200, response.text
    return response.text


def _poll(fn, timeout: float):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.5)  # bounded poll on an observable result, within the deadline
    return last


def _open_cases(text: str) -> float:
    return sum(value for _, value in samples(text, "gridflow_cases_open"))


@pytest.fixture(scope="module")
def dispatched(topology):
    status, body = topology.call("POST", "/api/v1/reports", _report("e2e-metrics-ops-1"))
    assert status == 201, body
    case_id = body["case_id"]
    view = _poll(
        lambda: (
            (v := topology.call("GET", f"/api/v1/cases/{case_id}")[1])["status"] == "dispatched"
            and v
        ),
        timeout=60,
    )
    assert view, topology.logs()
    return view


def test_every_services_metrics_pass_promtool_and_show_the_pipeline(topology, dispatched):
    exposed: set[str] = set()
    texts = {}
    for service in SERVICES:
        # Past one cache interval, the figures include the dispatched case.
        texts[service] = _scrape(topology.env[f"{service.upper()}_HTTP"])
        check_metrics(texts[service], f"{service}'s /metrics")
        exposed |= exposed_names(texts[service])
    handled = {
        (labels["service"], labels["event_type"])
        for service in SERVICES
        for labels, value in samples(texts[service], "gridflow_messages_total")
        if labels["outcome"] == "ok" and value >= 1
    }
    # Each hop of the case's way: registered -> routed -> dispatched.
    assert {
        ("routing", "case_registered"),
        ("departments", "case_routed"),
        ("sla", "case_dispatched"),
    } <= handled
    assert samples(texts["routing"], "gridflow_handler_seconds_count")
    # The dashboard's expressions name only what the five services expose.
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            missing = names_in(target["expr"]) - exposed
            assert not missing, (panel["title"], missing)


def test_open_cases_and_queue_depth_are_read_from_the_database_and_the_broker(
    topology, dispatched, database_url
):
    unit = dispatched["handler"]
    intake = topology.env["INTAKE_HTTP"]
    departments = topology.env["DEPARTMENTS_HTTP"]
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            open_now = conn.execute(
                sa.text(
                    "SELECT count(*) FROM intake_cases WHERE status IN "
                    "('registered', 'dispatched', 'accepted', 'in_progress', 'resolved')"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert open_now >= 1
    # Within a cache interval (or two) the figure is the database's.
    assert _poll(lambda: _open_cases(_scrape(intake)) == open_now, timeout=2 * FIGURES_TTL + 5)
    # Nobody reads the unit's queue in this test: its case waits there, counted by RabbitMQ.

    def depth() -> float | None:
        for labels, value in samples(_scrape(departments), "gridflow_queue_messages"):
            if labels == {"kind": "unit", "code": unit} and value >= 1:
                return value
        return None

    assert _poll(depth, timeout=2 * FIGURES_TTL + 5), _scrape(departments)
    consumers = {
        labels["code"]: value
        for labels, value in samples(_scrape(departments), "gridflow_queue_consumers")
        if labels["kind"] == "unit"
    }
    assert unit in consumers


def test_a_second_intake_replica_does_not_double_the_open_cases(topology, dispatched):
    address = f"127.0.0.1:{free_port()}"
    env = {**topology.env, "INTAKE_HTTP": address}
    log = open(topology.var_dir / "intake-replica.log", "w")  # noqa: SIM115 (closed below)
    replica = subprocess.Popen(
        [
            str(REPO / ".venv/bin/nameko"),
            "run",
            "--config",
            "services/intake/config.yaml",
            "gridflow_intake.service:IntakeService",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def answers() -> bool:
            if replica.poll() is not None:
                raise AssertionError((topology.var_dir / "intake-replica.log").read_text())
            try:
                return httpx.get(f"http://{address}/livez", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert _poll(answers, timeout=60)
        first, second = _scrape(topology.env["INTAKE_HTTP"]), _scrape(address)
        check_metrics(second, "a second intake replica")
        designated = [
            value
            for text in (first, second)
            for labels, value in samples(text, "gridflow_metrics_designated")
            if labels == {"service": "intake"}
        ]
        assert sorted(designated) == [0.0, 1.0]
        # One replica exports the figure, the other only declares it: the sum is one count.
        exported = [t for t in (first, second) if samples(t, "gridflow_cases_open")]
        assert len(exported) == 1
        assert "# TYPE gridflow_cases_open gauge" in (second if exported[0] is first else first)
        assert _open_cases(first) + _open_cases(second) == _open_cases(exported[0]) >= 1
    finally:
        replica.terminate()
        try:
            replica.wait(timeout=20)
        except subprocess.TimeoutExpired:
            replica.kill()
            replica.wait(timeout=10)
        log.close()
