"""The outbox relay on PostgreSQL and RabbitMQ: two replicas' relays never publish the same row
(each holds the rows it publishes locked until their delete commits), and the kombu publisher's
batches (all published, then all confirms awaited) keep the outbox's order, and leave out exactly
the messages the broker returned or refused."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import kombu
import pytest
import sqlalchemy as sa

from gridflow_common.clock import RealClock
from gridflow_common.db import messaging_tables
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.nameko_support import KombuPublisher, NotConfirmed, Unroutable
from gridflow_common.runtime import RelayLoop, ServiceRuntime
from gridflow_common.runtime.unit_of_work import OutboxRow
from tests.integration.support import take

pytestmark = pytest.mark.integration

SERVICE = "relaytest"  # an outbox of the test's own: no other test's rows in it
EXCHANGE = f"gridflow.{SERVICE}.test"
KEY = "tick"


@pytest.fixture
def replicas(database_url, engine):
    """Two replicas of one service: each its own engine (its own connections) on one database."""
    messaging_tables(sa.MetaData(), SERVICE)["outbox"].metadata.create_all(engine)
    engines = [sa.create_engine(database_url, pool_size=4) for _ in range(2)]
    runtimes = [ServiceRuntime(SERVICE, e, RealClock(), JurisdictionStore(e), []) for e in engines]
    yield runtimes
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {SERVICE}_outbox"))
    for e in engines:
        e.dispose()


@pytest.fixture
def queue(broker):
    """A queue of the test's own on the test's exchange, bound before anything is published."""
    bound = kombu.Queue(
        f"test-{uuid.uuid4().hex[:8]}",
        exchange=kombu.Exchange(EXCHANGE, type="topic", durable=True),
        routing_key=KEY,
        auto_delete=True,
    )(broker.default_channel)
    bound.declare()
    return bound.name


def _commit(runtime: ServiceRuntime, n: int, tag: str) -> list[OutboxRow]:
    with runtime.work() as work:
        for i in range(n):
            work._outbox(EXCHANGE, KEY, json.dumps({"n": f"{tag}-{i}"}))
    return list(work.outboxed)


class Recording:
    """Takes every message; ``during`` runs once, inside the first publish (another replica
    acting while this one holds its rows)."""

    def __init__(self, during=None):
        self.bodies: list[str] = []
        self.during = during

    def publish(self, exchange: str, routing_key: str, body: str) -> None:
        if self.during is not None:
            during, self.during = self.during, None
            during()
        self.bodies.append(body)


def test_another_replicas_sweep_skips_the_rows_the_fast_path_is_publishing(replicas):
    a, b = replicas
    rows = _commit(a, 50, "x")
    swept = Recording()
    publishing = Recording(during=lambda: b.relay(swept, older_than=0.0))
    assert a.publish_rows(rows, publishing) == 50
    assert len(publishing.bodies) == 50
    assert swept.bodies == []
    assert a.pending_outbox() == 0


def test_the_fast_path_leaves_alone_rows_another_replicas_sweep_holds_or_published(replicas):
    a, b = replicas
    rows = _commit(a, 50, "y")
    fast: list[Recording] = []

    def fast_path_meanwhile() -> None:
        fast.append(Recording())
        assert a.publish_rows(rows, fast[-1]) == 0

    swept = Recording(during=fast_path_meanwhile)
    assert b.relay(swept, older_than=0.0) == 50
    # The commit's callback arriving only now, after the sweep's delete committed.
    late = Recording()
    assert a.publish_rows(rows, late) == 0
    assert fast[0].bodies == [] and late.bodies == []
    assert len(swept.bodies) == 50


def test_two_relays_racing_for_a_burst_publish_each_row_once(replicas, amqp_uri, broker, queue):
    """A replica whose fast path lagged more than the grace behind a burst used to publish rows
    that the other replica's sweep published too (182 of these 2,000 before the fast path
    claimed its rows). Here the grace is zero, so the other sweep competes for every row from
    the start, and each publish is slowed."""
    a, b = replicas

    class Slow(KombuPublisher):
        def publish_many(self, messages, confirmed):
            time.sleep(0.002 * len(messages))  # bounded: a slower broker, 2 ms a message
            super().publish_many(messages, confirmed)

    loops = []
    for runtime in (a, b):
        loop = RelayLoop(runtime, lambda: Slow(amqp_uri, SERVICE), interval=0.05, batch=50)
        loop.SWEEP_GRACE_SECONDS = 0.0
        loops.append(loop)
        loop.start()
    try:
        committer = threading.Thread(target=lambda: [_commit(a, 100, f"z{k}") for k in range(20)])
        committer.start()
        committer.join(timeout=60)
        got = take(broker, queue, want=2000, timeout=60)
        got += take(broker, queue, want=2000, timeout=1.0)  # and any second copy behind them
    finally:
        for loop in loops:
            loop.stop()
    copies = Counter(m["n"] for m in got)
    duplicates = sum(count - 1 for count in copies.values())
    assert len(copies) == 2000
    assert duplicates == 0, f"{duplicates} of 2,000 rows published twice"
    assert a.pending_outbox() == 0


def test_a_batch_arrives_whole_and_in_the_outbox_order(amqp_uri, broker, queue):
    publisher = KombuPublisher(amqp_uri, SERVICE)
    try:
        confirmed: list[int] = []
        publisher.publish_many(
            [(EXCHANGE, KEY, json.dumps({"n": i})) for i in range(700)], confirmed
        )
        publisher.publish(EXCHANGE, KEY, json.dumps({"n": 700}))
    finally:
        publisher.close()
    assert confirmed == list(range(700))
    assert [m["n"] for m in take(broker, queue, want=701, timeout=10)] == list(range(701))


def test_a_returned_message_is_not_confirmed_and_the_rest_of_its_batch_is(amqp_uri, broker, queue):
    publisher = KombuPublisher(amqp_uri, SERVICE)
    messages = [(EXCHANGE, KEY, json.dumps({"n": i})) for i in range(10)]
    messages[4] = (EXCHANGE, "no.queue.bound", json.dumps({"n": 4}))
    confirmed: list[int] = []
    try:
        with pytest.raises(Unroutable):
            publisher.publish_many(messages, confirmed)
    finally:
        publisher.close()
    assert confirmed == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [m["n"] for m in take(broker, queue, want=10, timeout=3)] == confirmed


def test_a_message_the_broker_refuses_is_not_confirmed(amqp_uri, broker):
    """A queue that takes three messages and refuses (basic.nack) the rest."""
    name = f"test-full-{uuid.uuid4().hex[:8]}"
    kombu.Queue(
        name,
        auto_delete=True,
        queue_arguments={"x-max-length": 3, "x-overflow": "reject-publish"},
    )(broker.default_channel).declare()
    publisher = KombuPublisher(amqp_uri, SERVICE)
    confirmed: list[int] = []
    try:
        with pytest.raises(NotConfirmed):
            publisher.publish_many([("", name, json.dumps({"n": i})) for i in range(5)], confirmed)
    finally:
        publisher.close()
    assert confirmed == [0, 1, 2]
    assert [m["n"] for m in take(broker, name, want=5, timeout=3)] == [0, 1, 2]
