"""nameko adapters: the runtime as a DependencyProvider, and the relay's kombu publisher.

A service class stays thin: each entrypoint hands its message to ``runtime.consume`` with the
service layer's handler, and nothing else.
"""

from __future__ import annotations

import contextlib
import os

import kombu
from nameko.extensions import DependencyProvider

from gridflow_common import contracts as c
from gridflow_common import migrate, reset
from gridflow_common.clock import make_clock
from gridflow_common.db import database_url, make_engine
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.logging import configure, get_logger
from gridflow_common.runtime import RelayLoop, ServiceRuntime
from gridflow_common.service import ServiceDefinition

log = get_logger(__name__)

# Config keys shared by the YAML files, the code and the tests.
DATABASE_URL = "DATABASE_URL"
AMQP_URI = "AMQP_URI"
GRIDFLOW_CLOCK = "GRIDFLOW_CLOCK"
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"


class Unroutable(Exception):
    """The broker returned a mandatory message: no queue is bound for it."""


class KombuPublisher:
    """Confirmed, persistent, mandatory publishing on a connection of its own.

    Before anything is published it declares every queue that consumes its service's events
    (``contracts.SUBSCRIPTIONS``), so an event is never confirmed and then discarded because its
    consumer has not started yet. Department queues are declared on first use.
    """

    def __init__(self, amqp_uri: str, source: str):
        self.connection = kombu.Connection(amqp_uri, transport_options={"confirm_publish": True})
        self.channel = self.connection.channel()
        self._returned: list[object] = []
        self.producer = kombu.Producer(self.channel, on_return=self._on_return)
        self.events = kombu.Exchange(c.event_exchange(source), type="topic", durable=True)
        self.events.declare(channel=self.channel)
        for sub in c.subscriptions_from(source):
            kombu.Queue(sub.queue, exchange=self.events, routing_key=sub.event_type, durable=True,
                        auto_delete=False).declare(channel=self.channel)
        self.departments = kombu.Exchange(c.DEPARTMENT_EXCHANGE, type="direct", durable=True)
        self.departments.declare(channel=self.channel)
        self._department_queues: set[str] = set()

    def _on_return(self, exception, exchange, routing_key, message) -> None:
        self._returned.append((exchange, routing_key))

    def declare_department(self, code: str) -> None:
        if code not in self._department_queues:
            kombu.Queue(c.department_queue(code), exchange=self.departments, routing_key=code,
                        durable=True, auto_delete=False).declare(channel=self.channel)
            self._department_queues.add(code)

    def publish(self, exchange: str, routing_key: str, body: str) -> None:
        if exchange == c.DEPARTMENT_EXCHANGE:
            self.declare_department(routing_key)
        self._returned.clear()
        self.producer.publish(
            body.encode("utf-8"), exchange=exchange, routing_key=routing_key, mandatory=True,
            delivery_mode=2, content_type="application/json", content_encoding="utf-8",
            retry=False,
        )
        if self._returned:
            raise Unroutable(f"{exchange}/{routing_key} has no queue bound")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.release()


class Runtime(DependencyProvider):
    """The service's ``ServiceRuntime``: engine, clock, jurisdiction store and outbox relay."""

    def __init__(self, definition: ServiceDefinition):
        self.definition = definition

    def setup(self) -> None:
        configure()
        config = self.container.config
        url = config.get(DATABASE_URL) or database_url()
        self.amqp_uri = config.get(AMQP_URI) or os.environ.get(AMQP_URI, DEFAULT_AMQP_URI)
        self.engine = make_engine(url)
        migrate.upgrade(self.engine, "platform")
        migrate.upgrade(self.engine, self.definition.name)
        clock = make_clock(self.engine, config.get(GRIDFLOW_CLOCK) or None)
        self.runtime = ServiceRuntime(self.definition.name, self.engine, clock,
                                      JurisdictionStore(self.engine), self.definition.tables())
        self.relay = RelayLoop(self.runtime,
                               lambda: KombuPublisher(self.amqp_uri, self.definition.name))

    def start(self) -> None:
        self.relay.start()
        log.info("service_started", service=self.definition.name,
                 clock="simulated" if self.runtime.clock.simulated else "real")

    def stop(self) -> None:
        self.relay.stop()
        self.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> ServiceRuntime:
        return self.runtime


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
    and then the message must go back to the queue rather than be acknowledged and lost.
    """
    from nameko.events import event_handler

    definition: ServiceDefinition = cls.definition
    for sub in c.subscriptions_of(definition.name):
        if sub.method not in definition.handlers:
            raise TypeError(f"{definition.name} subscribes {sub.method} but has no such handler")

        def consume(self, message, _name=sub.method):
            self.runtime.consume(_name, message, self.definition.handlers[_name])

        consume.__name__ = consume.__qualname__ = sub.method
        setattr(cls, sub.method,
                event_handler(sub.source, sub.event_type, requeue_on_error=True)(consume))
    return cls


class GridflowService:
    """Entrypoints every service has: retries and time-driven work, reset, metrics, health."""

    definition: ServiceDefinition

    from nameko.rpc import rpc as _rpc
    from nameko.timer import timer as _timer
    from nameko.web.handlers import http as _http

    @_timer(interval=1)
    def tick(self) -> None:
        self.runtime.retry_due(self.definition.handlers)
        if self.definition.periodic is not None:
            self.definition.periodic(self.runtime)

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
        return 200, '{"ok": true}'

    del _rpc, _timer, _http
