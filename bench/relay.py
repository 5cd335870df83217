"""``make bench-relay``: how fast the outbox relay publishes, beside raw kombu and py-amqp.

Every publish is persistent, mandatory and confirmed by the broker before it counts, on a vhost
of its own (``gridflow_bench_relay``). Printed, messages per second:

1. raw kombu, one confirm per message (``confirm_publish``: what the relay did before);
2. raw py-amqp, a batch of BATCH published and then its confirms awaited (the same pattern with
   nothing of ours around it: the ceiling);
3. ``KombuPublisher.publish`` (one at a time) and ``KombuPublisher.publish_many`` (batches);
4. the whole relay (``RelayLoop`` on PostgreSQL, database ``gridflow_bench_relay``): N outbox
   rows committed in units of 500 (a mass crossing of SLA clocks), the time from the first commit
   until the outbox is empty and every message is in its queue, with the publisher one message
   at a time and with batches.

``--quick``: 2,000 messages instead of 10,000.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import amqp
import kombu
import sqlalchemy as sa

from bench.infra import (
    PG_SERVER,
    drop_vhost,
    fresh_database,
    fresh_vhost,
    load_average,
    log,
    queue_depths,
)
from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.db import make_engine, messaging_tables
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.nameko_support import KombuPublisher
from gridflow_common.runtime import RelayLoop, ServiceRuntime

VHOST = "gridflow_bench_relay"
AMQP_URI = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
DB_NAME = "gridflow_bench_relay"
BATCH = 500
SOURCE = c.SLA
EXCHANGE = c.event_exchange(SOURCE)
ROUTING_KEY = c.CASE_COLOUR_CHANGED


def _body(n: int) -> str:
    """About the size of a colour change's envelope."""
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": ROUTING_KEY,
            "source": SOURCE,
            "occurred_at": "2026-03-02T09:00:00+08:00",
            "payload": {
                "case_id": f"GF-20260302-{n:06d}",
                "assignment_id": str(uuid.uuid4()),
                "department_code": "urban",
                "unit_code": "urban-330302",
                "colour": "yellow",
                "due_at": "2026-03-03T09:00:00+08:00",
            },
        }
    )


def _queues() -> list[str]:
    return [s.queue for s in c.subscriptions_from(SOURCE) if s.event_type == ROUTING_KEY]


def _purge() -> None:
    with kombu.Connection(AMQP_URI) as conn:
        channel = conn.channel()
        for name in _queues():
            kombu.Queue(name, no_declare=True)(channel).purge()


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.0f} msg/s  ({seconds:6.2f} s for {n})"


def raw_kombu(bodies: list[str]) -> float:
    with kombu.Connection(AMQP_URI, transport_options={"confirm_publish": True}) as conn:
        producer = kombu.Producer(conn.channel())
        start = time.perf_counter()
        for body in bodies:
            producer.publish(
                body.encode(),
                exchange=EXCHANGE,
                routing_key=ROUTING_KEY,
                mandatory=True,
                delivery_mode=2,
                content_type="application/json",
                content_encoding="utf-8",
                retry=False,
            )
        return time.perf_counter() - start


def raw_amqp_batches(bodies: list[str]) -> float:
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", virtual_host=VHOST)
    conn.connect()
    try:
        channel = conn.channel()
        unconfirmed: set[int] = set()

        def on_ack(tag: int, multiple: bool) -> None:
            unconfirmed.difference_update(
                [t for t in unconfirmed if t <= tag] if multiple else [tag]
            )

        channel.events["basic_ack"].add(on_ack)
        channel.confirm_select()
        start = time.perf_counter()
        tag = 0
        for at in range(0, len(bodies), BATCH):
            for body in bodies[at : at + BATCH]:
                channel.basic_publish(
                    amqp.Message(
                        body.encode(),
                        content_type="application/json",
                        content_encoding="utf-8",
                        delivery_mode=2,
                    ),
                    exchange=EXCHANGE,
                    routing_key=ROUTING_KEY,
                    mandatory=True,
                )
                tag += 1
                unconfirmed.add(tag)
            while unconfirmed:
                conn.drain_events(timeout=30)
        return time.perf_counter() - start
    finally:
        conn.close()


def ours_one_by_one(bodies: list[str]) -> float:
    publisher = KombuPublisher(AMQP_URI, SOURCE)
    try:
        start = time.perf_counter()
        for body in bodies:
            publisher.publish(EXCHANGE, ROUTING_KEY, body)
        return time.perf_counter() - start
    finally:
        publisher.close()


def ours_batches(bodies: list[str]) -> float:
    publisher = KombuPublisher(AMQP_URI, SOURCE)
    try:
        start = time.perf_counter()
        for at in range(0, len(bodies), BATCH):
            confirmed: list[int] = []
            publisher.publish_many(
                [(EXCHANGE, ROUTING_KEY, body) for body in bodies[at : at + BATCH]], confirmed
            )
            assert len(confirmed) == len(bodies[at : at + BATCH])
        return time.perf_counter() - start
    finally:
        publisher.close()


class OneAtATime:
    """The kombu publisher without ``publish_many``: the relay as it was, a confirm a message."""

    def __init__(self) -> None:
        self.inner = KombuPublisher(AMQP_URI, SOURCE)

    def publish(self, exchange: str, routing_key: str, body: str) -> None:
        self.inner.publish(exchange, routing_key, body)

    def close(self) -> None:
        self.inner.close()


def whole_relay(engine: sa.Engine, bodies: list[str], factory) -> float:
    runtime = ServiceRuntime(SOURCE, engine, RealClock(), JurisdictionStore(engine), [])
    loop = RelayLoop(runtime, factory, interval=0.25)
    loop.start()
    try:
        start = time.perf_counter()
        for at in range(0, len(bodies), BATCH):
            with runtime.work() as work:
                for body in bodies[at : at + BATCH]:
                    work._outbox(EXCHANGE, ROUTING_KEY, body)
        deadline = time.monotonic() + 600
        first = _queues()[0]
        while time.monotonic() < deadline:
            if runtime.pending_outbox() == 0 and queue_depths([first], AMQP_URI)[first] >= len(
                bodies
            ):
                break
            time.sleep(0.05)  # bounded: the deadline above
        return time.perf_counter() - start
    finally:
        loop.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages instead of 10,000")
    args = parser.parse_args()
    n = 2_000 if args.quick else 10_000
    bodies = [_body(i) for i in range(n)]
    fresh_vhost(VHOST)
    fresh_database(DB_NAME)
    engine = make_engine(f"{PG_SERVER}/{DB_NAME}", pool_size=4)
    messaging_tables(sa.MetaData(), SOURCE)["outbox"].metadata.create_all(engine)
    try:
        KombuPublisher(AMQP_URI, SOURCE).close()  # the queues, so nothing is returned
        results = []
        for name, run in (
            ("raw kombu, a confirm per message", raw_kombu),
            (f"raw py-amqp, confirms per batch of {BATCH}", raw_amqp_batches),
            ("KombuPublisher.publish, one at a time", ours_one_by_one),
            (f"KombuPublisher.publish_many, batches of {BATCH}", ours_batches),
            (
                "relay on PostgreSQL, one at a time",
                lambda b: whole_relay(engine, b, OneAtATime),
            ),
            (
                "relay on PostgreSQL, batches",
                lambda b: whole_relay(engine, b, lambda: KombuPublisher(AMQP_URI, SOURCE)),
            ),
        ):
            _purge()
            log(f"{name} ...")
            seconds = run(bodies)
            results.append((name, seconds))
        print()
        print(
            f"Confirmed persistent mandatory publishes, {n} messages of ~{len(bodies[0])} bytes"
            f" (load average {load_average()})"
        )
        for name, seconds in results:
            print(f"  {name:<48} {_rate(n, seconds)}")
    finally:
        engine.dispose()
        drop_vhost(VHOST)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
