"""nameko adapters: the runtime as a DependencyProvider, and the relay's kombu publisher.

A service class stays thin: each entrypoint hands its message to ``runtime.consume`` with the
service layer's handler, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial

import kombu
import sqlalchemy as sa
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer

from gridflow_common import case_queues, figures, metrics, migrate, reset
from gridflow_common import contracts as c
from gridflow_common.clock import make_clock
from gridflow_common.db import database_url, make_engine, make_probe_engine
from gridflow_common.designated import exporter_for
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.logging import configure, get_logger
from gridflow_common.runtime import DatabaseUnavailable, RelayLoop, ServiceRuntime, Undecodable
from gridflow_common.service import ServiceDefinition

log = get_logger(__name__)

# Config keys shared by the YAML files, the code and the tests.
DATABASE_URL = "DATABASE_URL"
AMQP_URI = "AMQP_URI"
GRIDFLOW_CLOCK = "GRIDFLOW_CLOCK"
MAX_WORKERS = "max_workers"  # nameko's own key
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"

# The pool and the workers are sized together, so that no configuration can starve itself.
# Every entrypoint (event handlers, the tick timer, HTTP, RPC) runs as a nameko worker, at most
# ``max_workers`` at once, and a worker's unit of work holds one connection at a time (it reads
# the clock and the jurisdiction on it). Beside the workers only the relay uses the pool: its
# loop (one connection at a time) and, on stop, a last flush of confirmed deletes that may
# overlap a pass still finishing. Readiness probes have an engine of their own, and the
# designated exporter of the global figures (gridflow_common.designated) one connection, held or
# asked for its advisory lock at a scrape. So a service holds at most max_workers + 2 + 1 + 1
# connections: five services at the default of 14 workers hold at most 90 of PostgreSQL's
# default 100, leaving room for the CLI and migrations.
RELAY_CONNECTIONS = 2


def pool_size_for(max_workers: int) -> int:
    return max_workers + RELAY_CONNECTIONS


class RequeueLater(Exception):
    """The database is out of reach: the message goes back to the broker unacknowledged, after
    the worker has waited out the backoff. Already logged (once per interval, with a count), so
    nameko's own per-worker traceback is left out."""


class _QuietRequeue(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, RequeueLater)


def _quiet_nameko_requeues() -> None:
    logger = logging.getLogger("nameko.containers")
    if not any(isinstance(f, _QuietRequeue) for f in logger.filters):
        logger.addFilter(_QuietRequeue())


class Unroutable(Exception):
    """The broker returned a mandatory message: no queue is bound for it."""


class NotConfirmed(Exception):
    """The broker refused a message (basic.nack), or did not confirm it in time."""


class KombuPublisher:
    """Confirmed, persistent, mandatory publishing on a connection of its own.

    Before anything is published it declares every queue that consumes its service's events
    (``contracts.SUBSCRIPTIONS``), so an event is never confirmed and then discarded because its
    consumer has not started yet. A unit's queue and its department's queue on the topic
    exchange of cases are declared before the first message for that unit
    (``case_queues.declare_unit``), so a mandatory publish there is never returned.

    ``publish_many`` sends a whole batch on the one channel and then waits for the broker's
    confirms of all of it (RabbitMQ's publisher confirms: after ``confirm.select`` the n-th
    message published on the channel is delivery tag n; ``basic.ack``/``basic.nack`` settle one
    tag, or every tag up to it with ``multiple``). A confirm round trip per batch instead of per
    message, and one channel, so the broker routes the messages in the order of the outbox.
    """

    CONFIRM_TIMEOUT_SECONDS = 30.0

    def __init__(self, amqp_uri: str, source: str):
        # Confirms are selected and awaited here, not by py-amqp's one-message-at-a-time path.
        self.connection = kombu.Connection(amqp_uri)
        self.channel = self.connection.channel()
        self.channel.events["basic_return"].add(self._on_return)
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.channel.confirm_select()
        self._published = 0  # the last delivery tag used on the channel
        self._settled: dict[int, bool] = {}  # delivery tag -> acked (True) or nacked (False)
        self._awaiting = range(0)  # the tags of the batch in flight
        self._returned: set[tuple[str, str, bytes]] = set()
        self.events = kombu.Exchange(c.event_exchange(source), type="topic", durable=True)
        self.events.declare(channel=self.channel)
        for sub in c.subscriptions_from(source):
            kombu.Queue(
                sub.queue,
                exchange=self.events,
                routing_key=sub.event_type,
                durable=True,
                auto_delete=False,
            ).declare(channel=self.channel)
        case_queues.CASE_EXCHANGE.declare(channel=self.channel)
        self._unit_keys: set[str] = set()
        self._reply_queues: set[str] = set()

    def _on_return(self, exception, exchange, routing_key, message) -> None:
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        self._returned.add((exchange, routing_key, body))

    def _settle(self, delivery_tag: int, multiple: bool, acked: bool) -> None:
        tags = range(self._awaiting.start, delivery_tag + 1) if multiple else (delivery_tag,)
        for tag in tags:
            if tag in self._awaiting:
                self._settled.setdefault(tag, acked)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, False)

    def declare_unit(self, routing_key: str) -> None:
        """The queues behind a routing key of the case exchange, once per key."""
        if routing_key not in self._unit_keys:
            owner, unit = case_queues.owner_of(routing_key)
            case_queues.declare_unit(self.channel, owner, unit)
            self._unit_keys.add(routing_key)

    def declare_reply_queue(self, code: str) -> None:
        """The direct exchange of answers to status messages and ``code``'s reply queue, bound
        with its code: a reply is never confirmed and then discarded for want of a queue."""
        if code not in self._reply_queues:
            replies = kombu.Exchange(c.REPLY_EXCHANGE, type="direct", durable=True)
            kombu.Queue(
                c.reply_queue(code), exchange=replies, routing_key=code, durable=True
            ).declare(channel=self.channel)
            self._reply_queues.add(code)

    def publish(self, exchange: str, routing_key: str, body: str) -> None:
        self.publish_many([(exchange, routing_key, body)], [])

    def publish_many(self, messages: Sequence[tuple[str, str, str]], confirmed: list[int]) -> None:
        """Publish ``messages`` (exchange, routing key, body) in order, then wait for the
        broker's confirms of all of them. The index of each message the broker confirmed and
        did not return is appended to ``confirmed``; raises ``Unroutable`` if one was returned,
        ``NotConfirmed`` if one was refused or not confirmed in time, or the connection's error.
        After an exception the publisher is closed and a new one made (the relay does)."""
        for exchange, routing_key, _ in messages:
            if exchange == c.CASE_EXCHANGE:
                self.declare_unit(routing_key)
            elif exchange == c.REPLY_EXCHANGE:
                self.declare_reply_queue(routing_key)
        encoded = [body.encode("utf-8") for _, _, body in messages]
        first = self._published + 1
        self._awaiting = range(first, first + len(messages))
        self._settled = {}
        self._returned = set()
        before = len(confirmed)
        sent = 0
        try:
            for (exchange, routing_key, _), body in zip(messages, encoded, strict=True):
                message = self.channel.prepare_message(
                    body,
                    content_type="application/json",
                    content_encoding="utf-8",
                    headers={},
                    properties={"delivery_mode": 2},
                )
                # The connection was made without kombu's confirm_publish, so this is py-amqp's
                # plain publish: it does not wait for this message's confirm.
                self.channel.basic_publish(
                    message, exchange=exchange, routing_key=routing_key, mandatory=True
                )
                self._published += 1
                sent += 1
            deadline = time.monotonic() + self.CONFIRM_TIMEOUT_SECONDS
            while len(self._settled) < sent:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NotConfirmed(f"{sent - len(self._settled)} messages not confirmed")
                self.connection.drain_events(timeout=left)
        finally:
            for index in range(sent):
                exchange, routing_key, _ = messages[index]
                if (
                    self._settled.get(first + index)
                    and (exchange, routing_key, encoded[index]) not in self._returned
                ):
                    confirmed.append(index)
        if self._returned:
            exchange, routing_key, _ = next(iter(self._returned))
            raise Unroutable(f"{exchange}/{routing_key} has no queue bound")
        if len(confirmed) - before < sent:
            raise NotConfirmed("the broker refused a message (basic.nack)")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.release()


class Runtime(DependencyProvider):
    """The service's ``ServiceRuntime``: engine, clock, jurisdiction store and outbox relay."""

    def __init__(self, definition: ServiceDefinition):
        self.definition = definition

    # Connections a service uses beside its workers and relay (departments: the delivery
    # worker's threads, each recording its pushes in a unit of work of its own).
    extra_connections = 0

    def pool_size(self) -> int:
        return pool_size_for(self.container.max_workers) + self.extra_connections

    def setup(self) -> None:
        configure()
        _quiet_nameko_requeues()
        config = self.container.config
        url = config.get(DATABASE_URL) or database_url()
        self.amqp_uri = config.get(AMQP_URI) or os.environ.get(AMQP_URI, DEFAULT_AMQP_URI)
        self.engine = make_engine(url, pool_size=self.pool_size())
        self.probe_engine = make_probe_engine(url)
        migrate.upgrade(self.engine, "platform")
        migrate.upgrade(self.engine, self.definition.name)
        clock = make_clock(self.engine, config.get(GRIDFLOW_CLOCK) or None)
        self.runtime = ServiceRuntime(
            self.definition.name,
            self.engine,
            clock,
            JurisdictionStore(self.engine),
            self.definition.tables(),
        )
        self.relay = RelayLoop(
            self.runtime, lambda: KombuPublisher(self.amqp_uri, self.definition.name)
        )
        self.runtime.readiness_checks.update(
            database=self._database_answers, broker=self._broker_answers
        )

    def start(self) -> None:
        # A thread the container manages: it is killed with the container, and a loop that
        # died would take the container down with it rather than leave the outbox unrelayed.
        self.relay.start(spawn=self.container.spawn_managed_thread)
        exporter = exporter_for(self.definition.name)
        self.figure_sources = figures.add_sources(
            self.runtime,
            designated=lambda: exporter.is_exporter(self.engine),
            figures=self.definition.figures,
            queues=self.queue_figures(),
            tag=f"#{id(self):x}",
        )
        log.info(
            "service_started",
            service=self.definition.name,
            clock="simulated" if self.runtime.clock.simulated else "real",
            max_workers=self.container.max_workers,
            pool_size=self.pool_size(),
        )

    def queue_figures(self) -> Callable[[], Iterable[metrics.Sample]] | None:
        """The depth of the units' case queues, for the service that serves them (departments)."""
        return None

    def stop(self) -> None:
        figures.remove_sources(getattr(self, "figure_sources", ()))
        self.relay.stop()
        self.engine.dispose()
        self.probe_engine.dispose()

    def _database_answers(self) -> None:
        with self.probe_engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def _broker_answers(self) -> None:
        # A connection of its own, opened and closed: the consumer's and the relay's would hide
        # a dead broker until their next read or write.
        with kombu.Connection(self.amqp_uri, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> ServiceRuntime:
        return self.runtime


class _DeadLetteringQueueConsumer(QueueConsumer):
    """nameko's queue consumer, except that a delivery kombu cannot decode (not JSON, or a
    content type nameko does not accept) reaches the entrypoint as ``Undecodable`` with its
    raw body, so the idempotent consumer keeps it as a dead letter. nameko leaves kombu's
    ``on_decode_error`` unset: the decode error escapes the consuming loop instead."""

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = partial(self._undecodable, provider)
        return consumers

    def _undecodable(self, provider, message, exc) -> None:
        body = message.body
        # Undecodable bytes kept as escapes (\xff), so the dead letter shows what arrived.
        text = body.decode("utf-8", "backslashreplace") if isinstance(body, bytes) else str(body)
        self.handle_message(provider, Undecodable(text, f"{type(exc).__name__}: {exc}"), message)


class GridflowEventHandler(EventHandler):
    queue_consumer = _DeadLetteringQueueConsumer()


def metrics_response():
    from werkzeug.wrappers import Response

    from gridflow_common import metrics

    payload, content_type = metrics.exposition()
    return Response(payload, status=200, content_type=content_type)


def subscribe(cls):
    """Give a service class one nameko event handler per subscription in
    ``contracts.SUBSCRIPTIONS`` naming it as consumer, each handing its message to the runtime's
    idempotent consumer. The queue names then match what the relays declare, by construction.

    ``requeue_on_error``: the consumer records every handler failure itself and returns normally;
    an exception escapes only when even that record could not be written (the database is down),
    and then the message must go back to the queue rather than be acknowledged and lost. The
    worker first waits out the outage's backoff (doubling, capped at 30 s), holding the message
    unacknowledged: with prefetch equal to the worker count, a service then fails at most
    ``max_workers`` messages per backoff instead of a hundred a second.
    """
    definition: ServiceDefinition = cls.definition
    for sub in c.subscriptions_of(definition.name):
        if sub.method not in definition.handlers:
            raise TypeError(f"{definition.name} subscribes {sub.method} but has no such handler")

        def consume(self, message, _name=sub.method):
            try:
                self.runtime.consume(_name, message, self.definition.handlers[_name])
            except DatabaseUnavailable as exc:
                time.sleep(self.runtime.outage.delay())  # green under nameko: other workers run
                raise RequeueLater(str(exc)) from None

        consume.__name__ = consume.__qualname__ = sub.method
        setattr(
            cls,
            sub.method,
            GridflowEventHandler.decorator(
                sub.source,
                sub.event_type,
                requeue_on_error=True,
                expected_exceptions=(RequeueLater,),
            )(consume),
        )
    return cls


class GridflowService:
    """Entrypoints every service has: retries and time-driven work, reset, metrics, health."""

    definition: ServiceDefinition
    runtime: ServiceRuntime  # each service class sets it to its ``Runtime`` provider

    from nameko.rpc import rpc as _rpc
    from nameko.timer import timer as _timer
    from nameko.web.handlers import http as _http

    @_timer(interval=1)
    def tick(self) -> None:
        self.runtime.tick(self.definition.handlers, self.definition.periodic)

    # A reset's two rounds (gridflow_common.reset): each answers None, or why not.
    @_rpc
    def reset_prepare(self, order: dict) -> str | None:
        return reset.why_not_ready(self.runtime, reset.ResetOrder.from_message(order))

    @_rpc
    def reset(self, order: dict) -> str | None:
        return reset.execute(self.runtime, reset.ResetOrder.from_message(order))

    @_http("GET", "/metrics")
    def metrics(self, request):
        return metrics_response()

    @_http("GET", "/healthz")
    def healthz(self, request):
        """Readiness: the database answers a short query and the broker takes a connection;
        otherwise 503 naming what is wrong."""
        problems = self.runtime.readiness()
        if problems:
            return 503, json.dumps({"ready": False, "problems": problems}, ensure_ascii=False)
        return 200, '{"ready": true}'

    @_http("GET", "/livez")
    def livez(self, request):
        """Liveness: the process answers (its event loop and worker pool run)."""
        return 200, '{"live": true}'

    del _rpc, _timer, _http
