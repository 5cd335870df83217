"""AMQP, the default adapter: each unit's cases on the topic exchange ``gridflow.cases`` with
the routing key ``<department>.<unit>`` (docs/integrators.md).

Inside the departments service this adapter is transactional: a delivery leaves through the
service's outbox in the same transaction that records it (``Work.send_to_unit``), so it is
never pushed by the delivery worker. ``push``/``push_change`` publish on a connection of the
adapter's own, for use outside the service (the contract suite, tools).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import kombu
from marshmallow import ValidationError

from gridflow_common import case_queues
from gridflow_common import contracts as c
from gridflow_common.adapters import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    DepartmentAdapter,
    Health,
    OpenDelivery,
    PushFailed,
    PushResult,
    StatusReport,
)

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
CONNECT_TIMEOUT_SECONDS = 5.0
_STATUS_MESSAGE = c.StatusMessageV1()


def status_report(body: Mapping[str, Any], sender: str) -> StatusReport:
    """A status message (``contracts.StatusMessageV1``) as a report in the sender's words."""
    try:
        loaded = _STATUS_MESSAGE.load(dict(body))
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"body": exc.messages}
        problems = "; ".join(
            f"{field}: {', '.join(map(str, msgs))}" for field, msgs in sorted(messages.items())
        )
        raise ValueError(problems) from None
    return StatusReport(
        case_id=loaded["case_id"],
        unit=loaded["unit"] or sender,
        word=loaded["status"],
        note=loaded["note"],
    )


class AmqpAdapter(DepartmentAdapter):
    name: ClassVar[str] = "amqp"
    # The broker Gridflow already uses, unless the row names another (an AMQP URI).
    needs_endpoint: ClassVar[bool] = False

    def __init__(self, config: AdapterConfig, context: AdapterContext):
        super().__init__(config, context)
        self.uri = config.endpoint or os.environ.get("AMQP_URI", DEFAULT_AMQP_URI)
        self._connection: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._declared: set[str] = set()
        self._returned: list[str] = []
        self._lock = threading.Lock()

    def _publish(self, delivery: Delivery) -> PushResult:
        key = c.unit_routing_key(delivery.department, delivery.unit)
        body = json.dumps(dict(delivery.message), ensure_ascii=False).encode("utf-8")
        with self._lock:
            try:
                if self._producer is None:
                    self._connection = kombu.Connection(
                        self.uri,
                        connect_timeout=CONNECT_TIMEOUT_SECONDS,
                        transport_options={"confirm_publish": True},
                    )
                    self._producer = kombu.Producer(
                        self._connection.channel(),
                        on_return=lambda *args: self._returned.append(key),
                    )
                    self._declared.clear()
                channel = self._producer.channel
                if key not in self._declared:
                    case_queues.declare_unit(channel, delivery.department, delivery.unit)
                    self._declared.add(key)
                self._returned.clear()
                self._producer.publish(
                    body,
                    exchange=c.CASE_EXCHANGE,
                    routing_key=key,
                    mandatory=True,
                    delivery_mode=2,
                    content_type="application/json",
                    content_encoding="utf-8",
                    message_id=delivery.delivery_id,
                    headers={"Idempotency-Key": delivery.delivery_id},
                    retry=False,
                )
            except Exception as exc:
                self._drop_connection()
                raise PushFailed(f"broker at {_safe(self.uri)}: {type(exc).__name__}") from None
            if self._returned:
                raise PushFailed(f"no queue bound for {key}")
        return PushResult(detail=f"{c.CASE_EXCHANGE}/{key}")

    def push(self, delivery: Delivery) -> PushResult:
        return self._publish(delivery)

    def push_change(self, delivery: Delivery) -> PushResult:
        return self._publish(delivery)

    def take_status(self, body: Mapping[str, Any]) -> StatusReport:
        return status_report(body, self.config.code)

    def poll_status(self, open_deliveries: Sequence[OpenDelivery]) -> list[StatusReport]:
        return []

    def health(self) -> Health:
        try:
            with kombu.Connection(self.uri, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
                conn.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_SECONDS)
        except Exception as exc:
            return Health(False, f"broker at {_safe(self.uri)}: {type(exc).__name__}")
        return Health(True)

    def _drop_connection(self) -> None:
        if self._connection is not None:
            # A broken connection may fail to close; it is dropped either way.
            with contextlib.suppress(Exception):
                self._connection.release()
        self._connection = self._producer = None

    def close(self) -> None:
        with self._lock:
            self._drop_connection()


def _safe(uri: str) -> str:
    """The URI without its password, for messages."""
    return kombu.Connection(uri).as_uri(include_password=False)
