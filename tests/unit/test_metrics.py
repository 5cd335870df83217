"""The operators' metrics in the embedded default: /metrics passes promtool, the global figures
(open cases by colour and tier, outbox backlog, dead letters, queue depth per unit) are read at
scrape time and counted once, a failing source is counted rather than raised, and the deploy/
files (Prometheus config, alert rules, Grafana dashboard) name only metrics that are exposed."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import httpx
import pytest
import sqlalchemy as sa
import yaml

from gridflow_common import figures, metrics
from gridflow_common.domain import vocabulary as v
from gridflow_intake import models
from tests.conftest import free_port
from tests.credentials import bearer
from tests.metrics_support import (
    ALERT_RULES,
    DASHBOARD,
    PROMETHEUS_CONFIG,
    REPO,
    check_metrics,
    exposed_names,
    names_in,
    promtool,
    samples,
)


def _report(external_id: str, place: int = 0) -> bytes:
    return json.dumps(
        {
            "channel": "hotline",
            "external_id": external_id,
            "description": "青园社区门口的路灯不亮已经三天了",
            "category": "component.streetlight",
            # Far enough apart not to be taken for one another's duplicates.
            "location": {"lat": 27.995 + 0.004 * place, "lon": 120.556},
        },
        ensure_ascii=False,
    ).encode()


def _scrape(gridflow) -> str:
    metrics.GLOBAL_FIGURES.expire()  # read the figures afresh, not the last scrape's
    answer = gridflow.api().handle("GET", "/metrics")
    assert answer.status == 200
    body = answer.body
    return body.decode() if isinstance(body, bytes) else body


def _open_cases(text: str) -> dict[tuple[str, str], float]:
    return {
        (labels["colour"], labels["tier"]): value
        for labels, value in samples(text, "gridflow_cases_open")
    }


def _registered(gridflow, count: int) -> list[str]:
    api, admin = gridflow.api(), bearer(gridflow.admin_token)
    ids = []
    for i in range(count):
        answer = api.handle("POST", "/api/v1/reports", _report(f"metrics-{i}", i), admin)
        assert answer.status == 201, answer.body
        ids.append(answer.body["case_id"])
    gridflow.drain()
    return ids


def test_the_embedded_servers_metrics_pass_promtool(embedded_url):
    response = httpx.get(embedded_url + "/metrics", timeout=10, trust_env=False)
    assert response.status_code == 200
    text = response.text
    check_metrics(text, "gridflow run")
    for name in ("gridflow_cases_open", "gridflow_outbox_backlog", "gridflow_queue_messages"):
        assert f"# TYPE {name} gauge" in text, name


def test_open_cases_by_colour_and_tier_are_one_figure_read_from_the_database(gridflow):
    case_ids = _registered(gridflow, 2)
    text = _scrape(gridflow)
    check_metrics(text, "the embedded default after two reports")
    with gridflow.engine.connect() as conn:
        rows = conn.execute(
            sa.select(models.cases.c.case_id, models.cases.c.tier, models.cases.c.status).where(
                models.cases.c.case_id.in_(case_ids)
            )
        ).all()
    assert {r.status for r in rows} == {v.DISPATCHED}
    tier = rows[0].tier
    counts = _open_cases(text)
    # Every colour and tier has its series, none counted twice though five services share the
    # process.
    assert len(samples(text, "gridflow_cases_open")) == len(counts) == 5 * 4
    assert sum(counts.values()) == 2
    # Dispatched: the clock of each runs, green until SLA says otherwise (the case row's colour).
    assert counts[(v.GREEN, tier)] == 2
    # A case turning red (the column the cases work fills) moves it between colours.
    with gridflow.engine.begin() as conn:
        conn.execute(
            sa.update(models.cases)
            .where(models.cases.c.case_id == case_ids[0])
            .values(colour=v.RED)
        )
        conn.execute(
            sa.update(models.cases)
            .where(models.cases.c.case_id == case_ids[1])
            .values(status=v.CLOSED)
        )
    counts = _open_cases(_scrape(gridflow))
    assert counts[(v.RED, tier)] == 1 and counts[(v.GREEN, tier)] == 0
    assert sum(counts.values()) == 1


def test_throughput_latency_outbox_and_queue_depth_after_a_dispatch(gridflow):
    before = _scrape(gridflow)

    def handled(text: str) -> float:
        return sum(
            value
            for labels, value in samples(text, "gridflow_messages_total")
            if labels
            == {
                "service": "routing",
                "handler": "on_case_registered",
                "event_type": "case_registered",
                "outcome": "ok",
            }
        )

    (case_id,) = _registered(gridflow, 1)
    text = _scrape(gridflow)
    assert handled(text) == handled(before) + 1
    latency = samples(text, "gridflow_handler_seconds_count")
    assert any(labels["event_type"] == "case_dispatched" and n >= 1 for labels, n in latency)
    buckets = {labels["le"] for labels, _ in samples(text, "gridflow_handler_seconds_bucket")}
    assert {"0.005", "0.1", "1.0", "+Inf"} <= buckets
    view = gridflow.api().handle(
        "GET", f"/api/v1/cases/{case_id}", headers=bearer(gridflow.admin_token)
    )
    unit = view.body["handler"]
    depth = {
        (labels["kind"], labels["code"]): value
        for labels, value in samples(text, "gridflow_queue_messages")
    }
    # The embedded bus keeps what departments published for the unit; every AMQP unit of the
    # city has its series.
    assert depth[("unit", unit)] == len(gridflow.bus.unit_queues[unit]) >= 1
    assert len([k for k in depth if k[0] == "unit"]) >= 10
    backlog = {
        labels["service"]: value for labels, value in samples(text, "gridflow_outbox_backlog")
    }
    assert set(backlog) == {"intake", "routing", "departments", "sla", "notify"}
    assert backlog == {service: gridflow.runtimes[service].outbox.pending() for service in backlog}


def test_dead_letters_waiting_count_the_store_by_state(gridflow):
    failed = gridflow.runtimes["notify"].tables["failed"]
    with gridflow.engine.begin() as conn:
        for i, state in enumerate(("dead", "dead", "retrying")):
            conn.execute(
                sa.insert(failed).values(
                    handler="on_case_dispatched",
                    event_id=f"evt-{i}",
                    message="{}",
                    attempts=5,
                    last_error="boom",
                    state=state,
                    failed_at=gridflow.runtimes["notify"].operational_now(),
                )
            )
    waiting = {
        (labels["service"], labels["state"]): value
        for labels, value in samples(_scrape(gridflow), "gridflow_dead_letters_waiting")
    }
    assert waiting[("notify", "dead")] == 2 and waiting[("notify", "retrying")] == 1
    assert waiting[("routing", "dead")] == 0


def _errors(source: str) -> float:
    return metrics.COLLECT_ERRORS.labels(source)._value.get()


def test_a_failing_source_is_counted_not_raised_and_read_once_per_interval():
    calls = []

    def read():
        calls.append(1)
        raise ConnectionError("broker out of reach")

    source = metrics.GLOBAL_FIGURES.add(metrics.Source("test:failing", read, ttl=60))
    try:
        before = _errors("test:failing")
        first = list(metrics.GLOBAL_FIGURES.collect())
        again = list(metrics.GLOBAL_FIGURES.collect())
        assert len(calls) == 1  # the failure too waits out the interval
        assert _errors("test:failing") == before + 1
        # Every family is still declared, and the scrape goes on.
        assert {f.name for f in first} == {f.name for f in again} >= set(metrics.GLOBAL_GAUGES)
    finally:
        metrics.GLOBAL_FIGURES.remove(source)


def test_a_replica_that_is_not_designated_exports_nothing_and_says_so():
    reads = []
    source = metrics.Source(
        "test:other",
        lambda: reads.append(1) or [("gridflow_outbox_backlog", ("test-svc",), 3.0)],
        designated=lambda: False,
        service="test-svc",
    )
    figures = metrics.GlobalFigures()
    figures.add(source)

    def exported() -> dict[str, list]:
        return {f.name: [(s.labels, s.value) for s in f.samples] for f in figures.collect()}

    first = exported()
    assert reads == [] and first["gridflow_outbox_backlog"] == []
    assert first["gridflow_metrics_designated"] == [({"service": "test-svc"}, 0.0)]
    figures.add(
        metrics.Source(
            "test:other",  # the replica designated now, in its place
            lambda: [("gridflow_outbox_backlog", ("test-svc",), 3.0)],
            service="test-svc",
        )
    )
    now = exported()
    assert now["gridflow_outbox_backlog"] == [({"service": "test-svc"}, 3.0)]
    assert now["gridflow_metrics_designated"] == [({"service": "test-svc"}, 1.0)]


def test_the_prometheus_config_and_its_alert_rules_pass_promtool():
    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    # The ports services/<name>/config.yaml and deploy/topology.sh give the five services.
    assert targets == {f"127.0.0.1:800{i}" for i in range(1, 6)}


def test_the_dashboard_and_the_alerts_name_only_metrics_the_services_expose(gridflow):
    _registered(gridflow, 1)  # a handled message: the histograms have samples
    exposed = exposed_names(_scrape(gridflow))
    dashboard = json.loads(DASHBOARD.read_text())
    used: set[str] = set()
    for panel in dashboard["panels"]:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs and all(exprs), panel["title"]
        for expr in exprs:
            names = names_in(expr)
            assert names, (panel["title"], expr)
            assert names <= exposed, (panel["title"], names - exposed)
            used |= names
    # What issue 8 asks the dashboard to show.
    assert {
        "gridflow_cases_open",
        "gridflow_messages_total",
        "gridflow_handler_seconds_bucket",
        "gridflow_dead_letters_waiting",
        "gridflow_outbox_backlog",
        "gridflow_queue_messages",
    } <= used
    quantiles = {
        t["expr"].split(",")[0]
        for p in dashboard["panels"]
        for t in p["targets"]
        if "histogram_quantile" in t["expr"]
    }
    assert quantiles == {"histogram_quantile(0.5", "histogram_quantile(0.99"}
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert names_in(rule["expr"]) <= exposed, rule["alert"]


def test_every_gridflow_metric_is_documented_for_operators(gridflow):
    doc = (REPO / "docs/operators.md").read_text()
    families = {
        name
        for name in exposed_names(_scrape(gridflow))
        if name.startswith("gridflow_")
        and not name.endswith(("_bucket", "_sum", "_count", "_created"))
    }
    families = {n for n in families if n + "_total" not in families}
    assert families, "no gridflow_ metric exposed"
    missing = sorted(n for n in families if f"`{n}`" not in doc)
    assert not missing, f"docs/operators.md does not list {missing}"


@pytest.mark.parametrize("broker", ["closed port", "silent listener"])
def test_queue_depth_from_a_broker_out_of_reach_is_counted_within_its_budget(gridflow, broker):
    runtime = gridflow.runtimes["departments"]
    assert figures.queues_of(runtime)  # Lucheng serves units over AMQP: there is something to ask
    with socket.socket() as silent:
        if broker == "silent listener":  # takes the connection, never says a word
            silent.bind(("127.0.0.1", 0))
            silent.listen(5)
            port = silent.getsockname()[1]
        else:
            port = free_port()
        uri = f"amqp://guest:guest@127.0.0.1:{port}//"
        source = metrics.Source(
            f"test:queues:{broker}", lambda: figures.broker_queue_samples(runtime, uri), ttl=60
        )
        before = _errors(source.name)
        started = time.monotonic()
        assert source.samples() == []
        took = time.monotonic() - started
    assert took < figures.QUEUE_BUDGET_SECONDS + 3 * figures.QUEUE_SOCKET_TIMEOUT
    assert _errors(source.name) == before + 1
