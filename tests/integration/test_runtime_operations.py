"""The runtime under a nameko container: a backlog at restart, parallel reads, health and an
undecodable delivery, against the real RabbitMQ and PostgreSQL.

Run under `nameko test` (eventlet monkey-patched), as `make test` does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import time
import uuid

import eventlet
import httpx
import kombu
import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common import nameko_support as keys
from tests.integration.support import (
    dispatched_payload,
    publish,
    registered_payload,
)

pytestmark = pytest.mark.integration

WORKERS = 10
BACKLOG = 4 * WORKERS
# The old pool (5 + 5 connections, 60 s timeout) stalled a backlog for 65 s; this bound is far
# below the pool's timeout and far above what the backlog needs.
BACKLOG_SECONDS = 25.0


def service_class(name: str):
    return getattr(
        importlib.import_module(f"gridflow_{name}.service"), f"{name.capitalize()}Service"
    )


# One subscription of each service, with a payload its handler accepts.
FLOODS = {
    c.ROUTING: (c.INTAKE, c.CASE_REGISTERED, "on_case_registered", registered_payload),
    c.DEPARTMENTS: (c.ROUTING, c.CASE_ROUTED, "on_case_routed", dispatched_payload),
    c.SLA: (c.DEPARTMENTS, c.CASE_DISPATCHED, "on_case_dispatched", dispatched_payload),
    c.NOTIFY: (c.DEPARTMENTS, c.CASE_DISPATCHED, "on_case_dispatched", dispatched_payload),
    c.INTAKE: (c.DEPARTMENTS, c.CASE_DISPATCHED, "on_case_dispatched", dispatched_payload),
}


def _config(config: dict, clock: str) -> dict:
    return {**config, keys.GRIDFLOW_CLOCK: clock, keys.MAX_WORKERS: WORKERS}


def _into_queue(
    broker, source: str, event_type: str, consumer: str, method: str, payload: dict
) -> str:
    """Put one event straight into one consumer's queue (the default exchange routes by queue
    name), so the other subscribers' queues are left as they were. Returns its event id."""
    envelope = c.make_event(
        source, event_type, dt.datetime.now(dt.timezone.utc), payload
    ).to_message()
    with kombu.Producer(broker) as producer:
        producer.publish(
            json.dumps(envelope),
            exchange="",
            routing_key=c.event_queue(source, event_type, consumer, method),
            content_type="application/json",
            delivery_mode=2,
        )
    return envelope["event_id"]


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


@pytest.mark.parametrize("clock", ["real", "simulated"])
@pytest.mark.parametrize("service", list(FLOODS))
def test_a_backlog_waiting_at_restart_is_processed_without_starving_the_pool(
    container_factory, config, broker, engine, service, clock
):
    source, event_type, method, payload = FLOODS[service]
    cls = service_class(service)
    config = _config(config, clock)
    # Running once, then stopped: the restart below starts with empty caches (jurisdiction).
    first = container_factory(cls, config)
    first.start()
    first.stop()
    run = uuid.uuid4().hex[:6]
    event_ids = [
        _into_queue(broker, source, event_type, service, method, payload(engine, f"FL-{run}-{n}"))
        for n in range(BACKLOG)
    ]

    started = time.monotonic()
    container_factory(cls, config).start()
    processed = 0
    while time.monotonic() - started < BACKLOG_SECONDS and processed < BACKLOG:
        processed = _count(
            engine,
            f"SELECT count(*) FROM {service}_processed WHERE handler = :h AND event_id = ANY(:ids)",
            h=method,
            ids=event_ids,
        )
        time.sleep(0.1)  # bounded poll on the processed ids
    elapsed = time.monotonic() - started
    assert processed == BACKLOG, f"{processed} of {BACKLOG} in {elapsed:.1f} s"
    failures = _count(
        engine, f"SELECT count(*) FROM {service}_failed WHERE message LIKE :m", m=f"%FL-{run}-%"
    )
    assert failures == 0
    _discard_what_the_flood_caused(broker, engine, service)


def _discard_what_the_flood_caused(broker, engine, service: str) -> None:
    """The flood's own events, once relayed, would sit in the next services' queues for the
    other tests of this session to trip over."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _count(engine, f"SELECT count(*) FROM {service}_outbox"):
        time.sleep(0.1)  # bounded poll: the relay empties the outbox
    queues = [sub.queue for sub in c.subscriptions_from(service)]
    # What departments gave the units (the lead and the assisting departments' units).
    queues += [c.department_queue(d) for d in ("urban_management", "water")]
    queues += [c.unit_queue(u) for u in ("urban_management-330302001", "water-330302")]
    for name in queues:
        with contextlib.suppress(kombu.exceptions.ChannelError):
            kombu.Queue(name, no_declare=True)(broker.channel()).purge()


@pytest.mark.parametrize("clock", ["real", "simulated"])
def test_forty_parallel_case_reads_through_intake_all_answer(
    container_factory, config, clock, admin_headers
):
    from gridflow_intake.service import IntakeService

    config = _config(config, clock)
    container = container_factory(IntakeService, config)
    container.start()
    base = f"http://{config['WEB_SERVER_ADDRESS']}/api/v1"
    answer = httpx.post(
        f"{base}/reports",
        json={
            "channel": "hotline",
            "external_id": f"par-{uuid.uuid4().hex[:8]}",
            # Not the streetlight of the other tests, which would join this case.
            "description": "小区门口的井盖不见了，晚上很危险",
            "location": {"lat": 27.995, "lon": 120.556},
        },
        headers=admin_headers,
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text  # new, or joined to an open case
    case_id = answer.json()["case_id"]
    # A restart: the next container's caches are empty and all forty arrive at once.
    container.stop()
    container = container_factory(IntakeService, config)
    container.start()

    def read(_):
        return httpx.get(f"{base}/cases/{case_id}", headers=admin_headers, timeout=20).status_code

    pool = eventlet.GreenPool(40)
    statuses = list(pool.imap(read, range(40)))
    assert statuses == [200] * 40


def test_healthz_is_ready_when_database_and_broker_answer_and_livez_answers(
    container_factory, config
):
    container = container_factory(service_class(c.ROUTING), config)
    container.start()
    base = f"http://{config['WEB_SERVER_ADDRESS']}"
    ready = httpx.get(f"{base}/healthz", timeout=10)
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    live = httpx.get(f"{base}/livez", timeout=10)
    assert (live.status_code, live.json()) == (200, {"live": True})


def test_the_relay_runs_as_a_thread_the_container_manages(container_factory, config):
    container = container_factory(service_class(c.ROUTING), config)
    container.start()
    assert "relay-routing" in container._managed_threads.values()


def test_healthz_answers_503_naming_the_broker_and_database_that_do_not_answer(
    container_factory, config
):
    container = container_factory(service_class(c.ROUTING), config)
    container.start()
    provider = next(d for d in container.dependencies if isinstance(d, keys.Runtime))
    # The probes' own targets, pointed where nothing listens (the service's connections and the
    # shared servers are left alone).
    from tests.conftest import free_port

    nowhere = free_port()
    provider.amqp_uri = f"amqp://guest:guest@127.0.0.1:{nowhere}/"
    provider.probe_engine = sa.create_engine(
        f"postgresql+psycopg2://postgres@127.0.0.1:{nowhere}/gridflow",
        connect_args={"connect_timeout": 2},
    )
    answer = httpx.get(f"http://{config['WEB_SERVER_ADDRESS']}/healthz", timeout=20)
    assert answer.status_code == 503
    body = answer.json()
    assert body["ready"] is False
    assert set(body["problems"]) == {"database", "broker"}
    live = httpx.get(f"http://{config['WEB_SERVER_ADDRESS']}/livez", timeout=10)
    assert live.status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"{not json at all", "application/json", id="not-json"),
        pytest.param(b"\xff\xfe\x00garbage", "application/json", id="not-utf8"),
        pytest.param(b"case GF-1 please", "text/plain", id="refused-content-type"),
    ],
)
def test_an_undecodable_delivery_becomes_a_dead_letter_with_its_raw_body(
    container_factory, config, broker, engine, body, content_type
):
    container = container_factory(service_class(c.ROUTING), config)
    container.start()
    marker = uuid.uuid4().hex[:8]
    raw = body + marker.encode()
    exchange = kombu.Exchange(c.event_exchange(c.INTAKE), type="topic", durable=True)
    with kombu.Producer(broker) as producer:
        producer.publish(
            raw,
            exchange=exchange,
            routing_key=c.CASE_REGISTERED,
            declare=[exchange],
            content_type=content_type,
            content_encoding="binary",
            delivery_mode=2,
        )
    deadline = time.monotonic() + 15
    letters: list = []
    while time.monotonic() < deadline and not letters:
        with engine.connect() as conn:
            letters = conn.execute(
                sa.text(
                    "SELECT state, handler, message, last_error FROM routing_failed "
                    "WHERE message LIKE :m"
                ),
                {"m": f"%{marker}%"},
            ).all()
        time.sleep(0.1)  # bounded poll on the dead-letter store
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.state, letter.handler) == ("dead", "on_case_registered")
    assert letter.message.endswith(marker)
    assert "undecodable" in letter.last_error

    # The consumer goes on: the next good message is processed.
    case_id = f"IT-{uuid.uuid4().hex[:8]}"
    publish(broker, c.INTAKE, c.CASE_REGISTERED, registered_payload(engine, case_id))
    deadline = time.monotonic() + 15
    routed = 0
    while time.monotonic() < deadline and not routed:
        routed = _count(
            engine, "SELECT count(*) FROM routing_assignments WHERE case_id = :c", c=case_id
        )
        time.sleep(0.1)  # bounded poll on the routing table
    assert routed == 1
