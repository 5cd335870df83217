"""The intake service as a nameko process: the public HTTP API and intake's event projections."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import eventlet
import kombu
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer
from nameko.rpc import RpcProxy, rpc
from nameko.web.handlers import http

from gridflow_common import contracts as c
from gridflow_common import reset
from gridflow_common.in_order import InOrder
from gridflow_common.nameko_support import (
    GridflowService,
    RequeueLater,
    Runtime,
    _DeadLetteringQueueConsumer,
    subscribe,
)
from gridflow_intake import contacts
from gridflow_intake.access import Access
from gridflow_intake.api import IntakeApi
from gridflow_intake.handlers import DEFINITION
from gridflow_intake.inbox import Waiters, waiters_for_workers
from gridflow_intake.peers import (
    ASSIGNMENT_TIMEOUT_SECONDS,
    NOTIFICATIONS_TIMEOUT_SECONDS,
    PeerUnavailable,
)
from gridflow_intake.photos import PHOTOS_DIR, PhotoFolder
from gridflow_intake.status_consumer import StatusConsumer, StatusDelivery, Transient

# Department systems publish status messages here (docs/integrators.md): a durable queue bound
# to the status exchange with "#", declared by intake when it starts (department users may not
# declare anything).
STATUS_QUEUE = kombu.Queue(
    c.STATUS_QUEUE,
    exchange=kombu.Exchange(c.STATUS_EXCHANGE, type="topic", durable=True),
    routing_key="#",
    durable=True,
    auto_delete=False,
    queue_arguments=dict(c.STATUS_QUEUE_ARGUMENTS),
)
# How long a status message is tried again in place (holding its sender's later messages
# behind it) while the database or routing is out of reach, before it is handed back.
STATUS_RETRY_IN_PLACE_SECONDS = 60.0

# Every method on every path, so nameko's own URL map never answers (with HTML): IntakeApi's
# routing table gives the JSON 404s and 405s. The GridflowService's own GET /healthz and GET
# /metrics are more specific rules and still win.
ALL_METHODS = "GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS"


class NamekoPeers:
    """Intake's ``peers`` over nameko RPC, each question bounded in time: a service that is down
    keeps the request in its queue, and nameko's ``result()`` would wait for it forever."""

    def __init__(self, proxies: dict[str, Any]):
        self.proxies = proxies

    @staticmethod
    def _wait(reply: Any, seconds: float) -> Any:
        timeout = eventlet.Timeout(max(seconds, 0.001))
        try:
            return reply.result()
        finally:
            timeout.cancel()

    def _ask_all(self, method: str, order: reset.ResetOrder, seconds: float) -> dict[str, str]:
        """Ask every service at once; service -> why not, for each that did not answer None."""
        failures: dict[str, str] = {}
        replies = {}
        for name, proxy in self.proxies.items():
            try:
                replies[name] = getattr(proxy, method).call_async(order.to_message())
            except Exception as exc:
                failures[name] = f"could not be asked: {exc!r}"
        until = time.monotonic() + seconds
        for name, reply in replies.items():
            try:
                why = self._wait(reply, until - time.monotonic())
            except eventlet.Timeout:
                why = f"did not answer within {seconds:.0f} s"
            except Exception as exc:
                why = f"failed: {exc}"
            if why:
                failures[name] = why
        return failures

    def current_assignment(self, case_id: str) -> dict | None:
        reply = self.proxies[c.ROUTING].current_assignment.call_async(case_id)
        try:
            return self._wait(reply, ASSIGNMENT_TIMEOUT_SECONDS)
        except eventlet.Timeout:
            raise PeerUnavailable(
                c.ROUTING,
                "did not say who holds the case within "
                f"{ASSIGNMENT_TIMEOUT_SECONDS:.0f} s; try again",
            ) from None

    def case_notifications(self, case_id: str) -> dict:
        reply = self.proxies[c.NOTIFY].case_notifications.call_async(case_id)
        try:
            return self._wait(reply, NOTIFICATIONS_TIMEOUT_SECONDS)
        except eventlet.Timeout:
            raise PeerUnavailable(
                c.NOTIFY,
                "did not list the case's notifications within "
                f"{NOTIFICATIONS_TIMEOUT_SECONDS:.0f} s; try again",
            ) from None

    def prepare_reset(self, order: reset.ResetOrder) -> dict[str, str]:
        return self._ask_all(
            "reset_prepare", order, min(reset.READY_TIMEOUT_SECONDS, order.remaining())
        )

    def execute_reset(self, order: reset.ResetOrder) -> dict[str, str]:
        return self._ask_all("reset", order, order.remaining())


class StatusMessages(Consumer):
    """nameko's queue consumer for department status messages, handing the entrypoint the whole
    delivery (the raw body, ``user_id``, ``correlation_id``, the headers) rather than a body
    decoded by content type: identity lives in the properties, and a body that does not decode
    is still answered, naming the problem. The message is acknowledged once the entrypoint
    returns (its unit of work committed), handed back when it raises (``requeue_on_error``).

    Deliveries reach ``handle_message`` one at a time, in the broker's order: each takes its
    turn in its sender's line there, and the worker waits for it (``in_order``)."""

    queue_consumer = _DeadLetteringQueueConsumer()

    def setup(self) -> None:
        super().setup()
        self.in_order = InOrder()

    def handle_message(self, body, message):
        delivery = StatusDelivery.from_kombu(message)
        delivery = dataclasses.replace(delivery, turn=self.in_order.turn(delivery.sender_key))
        super().handle_message(delivery, message)


status_messages = StatusMessages.decorator


class InboxWaiters(DependencyProvider):
    """The process's places to wait on an inbox, sized by the container's worker pool
    (gridflow_intake/inbox.py): built once in ``setup``, the same object for every worker."""

    def setup(self) -> None:
        self.waiters = waiters_for_workers(self.container.max_workers)

    def get_dependency(self, worker_ctx: Any) -> Waiters:
        return self.waiters


@subscribe
class IntakeService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)
    routing = RpcProxy(c.ROUTING)
    departments = RpcProxy(c.DEPARTMENTS)
    sla = RpcProxy(c.SLA)
    notify = RpcProxy(c.NOTIFY)
    inbox_waiters = InboxWaiters()
    photo_folder = PhotoFolder()
    # The API the entrypoint answers with (the identity benchmark's twin swaps it).
    api_class: type[IntakeApi] = IntakeApi

    def _peers(self) -> NamekoPeers:
        return NamekoPeers(
            {
                c.ROUTING: self.routing,
                c.DEPARTMENTS: self.departments,
                c.SLA: self.sla,
                c.NOTIFY: self.notify,
            }
        )

    # Residents hear back: notify asks for a case's reporter contacts when it sends
    # (gridflow_intake.contacts); contacts never travel in events.
    @rpc
    def reporter_contacts(
        self, case_id: str, report_id: int | None = None, links: bool = True
    ) -> list[dict]:
        with self.runtime.work() as work:
            return contacts.reporter_contacts(work, case_id, report_id, links)

    @http(ALL_METHODS, "/")
    @http(ALL_METHODS, "/<path:rest>")
    def api(self, request, rest=None):
        self.runtime.extras.setdefault(PHOTOS_DIR, self.photo_folder)
        return self.api_class(self.runtime, self._peers(), self.inbox_waiters).respond(request)

    @status_messages(STATUS_QUEUE, requeue_on_error=True, expected_exceptions=(RequeueLater,))
    def on_status_message(self, delivery: StatusDelivery) -> str:
        consumer = StatusConsumer(
            self.runtime, Access.for_runtime(self.runtime), self._peers().current_assignment
        )
        with delivery.turn as turn:
            if turn.after_failure:
                # An earlier message from this sender is being handed back: so is this one,
                # behind it, and the broker redelivers both in their order.
                raise RequeueLater("an earlier message from the same sender was handed back")
            give_up = time.monotonic() + STATUS_RETRY_IN_PLACE_SECONDS
            while True:
                try:
                    return consumer.take(delivery)
                except Transient as exc:
                    self.runtime.outage.failed(exc, handler="on_status_message")
                    delay = self.runtime.outage.delay()
                    # Held unacknowledged for the outage's backoff (green: other senders'
                    # workers run) and tried again, bounded; then handed back.
                    time.sleep(delay)  # bounded: the outage's backoff, capped; give_up ends it
                    if time.monotonic() >= give_up:
                        raise RequeueLater(str(exc)) from None
