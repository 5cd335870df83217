"""Helpers of the integration tests: publishing as a service's relay would, observing a
service's events, and payloads a handler accepts."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid

import kombu

from gridflow_common import contracts as c
from gridflow_common.jurisdictions import JurisdictionStore

CST = dt.timezone(dt.timedelta(hours=8))


def jurisdiction_version(engine) -> int:
    return JurisdictionStore(engine).active_version()


def publish(
    connection,
    source: str,
    event_type: str,
    payload: dict,
    occurred_at: dt.datetime | None = None,
    event_id: str | None = None,
) -> dict:
    """Publish an event as ``source``'s relay would (after its queues exist)."""
    envelope = c.make_event(
        source, event_type, occurred_at or dt.datetime.now(CST), payload
    ).to_message()
    if event_id:
        envelope["event_id"] = event_id
    exchange = kombu.Exchange(c.event_exchange(source), type="topic", durable=True)
    with kombu.Producer(connection) as producer:
        producer.publish(
            json.dumps(envelope),
            exchange=exchange,
            routing_key=event_type,
            declare=[exchange],
            content_type="application/json",
            delivery_mode=2,
        )
    return envelope


def observe(connection, source: str, event_type: str) -> kombu.Queue:
    """A queue of the test's own on ``source``'s events, bound before anything is published."""
    queue = kombu.Queue(
        f"test-{uuid.uuid4().hex[:8]}",
        exchange=kombu.Exchange(c.event_exchange(source), type="topic", durable=True),
        routing_key=event_type,
        auto_delete=True,
    )
    queue(connection.default_channel).declare()
    return queue


def take(connection, queue_name: str, want: int = 1, timeout: float = 10.0) -> list[dict]:
    """Up to ``want`` messages from a queue, polling at most ``timeout`` seconds."""
    queue = kombu.Queue(queue_name, no_declare=True)
    bound = queue(connection.default_channel)
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        message = bound.get(no_ack=True)
        if message is None:
            time.sleep(0.05)  # bounded by the deadline above
            continue
        body = message.body
        got.append(json.loads(body) if isinstance(body, (bytes, str)) else body)
    return got


def registered_payload(engine, case_id: str, category: str = "component.streetlight") -> dict:
    return {
        "case_id": case_id,
        "category": category,
        "area_code": "330302001001001",
        "description": "青园社区门口的路灯不亮",
        "location": {"lat": 27.995, "lon": 120.556},
        "jurisdiction_version": jurisdiction_version(engine),
    }


def dispatched_payload(engine, case_id: str) -> dict:
    """A manhole-cover case (2 wall-clock hours) dispatched to Wuma's urban-management squad."""
    return {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "reason": "new",
        "category": "component.manhole_cover",
        "tier": "street",
        "holder": "urban_management-330302001",
        "lead": "urban_management",
        "assisting": ["water"],
        "escalations": 0,
        "area_code": "330302001001001",
        "jurisdiction_version": jurisdiction_version(engine),
        "queue": "gridflow.department.urban_management",
    }


def together(count: int, target) -> list:
    """Run ``target(i)`` on ``count`` threads released at one instant; their results (or the
    exception each raised) in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # the test asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a call never finished"
    return results
