"""The HTTP webhook adapter: each delivery is POSTed as JSON to the department's system, signed.

What the department's system receives (docs/integrators.md says the same to integrators):

- the department message (``contracts.DepartmentMessageV2``) as a UTF-8 JSON body;
- ``X-Gridflow-Signature: sha256=<hex>`` over ``"<X-Gridflow-Timestamp>.<body>"`` with the
  department's shared secret (``gridflow_common.signing``), so it can tell Gridflow's pushes
  from anyone's and refuse a replay older than five minutes;
- ``Idempotency-Key`` and ``X-Gridflow-Delivery``: the delivery id, the same on every retry of
  one delivery, so it can drop a copy (a push whose answer was lost is pushed again);
- ``X-Gridflow-Attempt``: which try this is (1 for the first); ``X-Gridflow-Kind``: ``case``
  or ``change``. Changes go to ``options.change_endpoint`` when the department gives one.

How its answer is taken (``http_calls``): 2xx delivered (a JSON object's ``id`` or
``external_ref`` is kept as the department's id for the case); 408, 425, 429, 5xx and 3xx "try
later" (``Retry-After`` honoured); any other 4xx a refusal, which makes the delivery
undeliverable at once. No answer within the timeouts, a refused or reset connection, or a
failed TLS handshake is "try later", naming what happened.

The secret is read through ``AdapterContext.secret`` at each push (a rotated secret takes
effect without a restart) and appears in no log line and no exception message. The department's
answer is read up to ``http_calls.ANSWER_LIMIT`` bytes, whatever it sends.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate

from gridflow_common import signing
from gridflow_common.adapters.contract import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    DepartmentAdapter,
    Health,
    OpenDelivery,
    PushFailed,
    PushRefused,
    PushResult,
    SecretUnavailable,
    StatusReport,
)
from gridflow_common.contracts import StatusMessageV1
from gridflow_departments.adapters.http_calls import HttpCaller, host, problems

log = logging.getLogger(__name__)

DELIVERY_HEADER = "X-Gridflow-Delivery"
ATTEMPT_HEADER = "X-Gridflow-Attempt"
KIND_HEADER = "X-Gridflow-Kind"


class WebhookOptions(Schema):
    """``options`` of a webhook row in adapters.csv (a JSON object)."""

    # Seconds to establish a connection (TCP and TLS), and to wait for each read of the answer.
    connect_timeout = fields.Float(load_default=3.0, validate=validate.Range(min=0.1, max=60))
    read_timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=300))
    # Where changes of a case are posted, when not to the endpoint.
    change_endpoint = fields.Url(
        load_default=None, allow_none=True, schemes={"http", "https"}, require_tld=False
    )
    # What is asked for health (GET, ok below 500); default HEAD on the endpoint.
    health_url = fields.Url(
        load_default=None, allow_none=True, schemes={"http", "https"}, require_tld=False
    )


class WebhookAdapter(DepartmentAdapter):
    name: ClassVar[str] = "webhook"
    config_schema: ClassVar[type[Schema]] = WebhookOptions
    endpoint_schemes: ClassVar[tuple[str, ...]] = ("https", "http")
    needs_credential: ClassVar[bool] = True

    def __init__(self, config: AdapterConfig, context: AdapterContext):
        super().__init__(config, context)
        options = WebhookOptions().load(dict(config.options))
        self.endpoint: str = config.endpoint or ""
        self.change_endpoint: str = options["change_endpoint"] or self.endpoint
        self.health_url: str | None = options["health_url"]
        self.http = HttpCaller(options["connect_timeout"], options["read_timeout"], context.now)

    def push(self, delivery: Delivery) -> PushResult:
        return self._post(self.endpoint, delivery)

    def push_change(self, delivery: Delivery) -> PushResult:
        return self._post(self.change_endpoint, delivery)

    def _post(self, url: str, delivery: Delivery) -> PushResult:
        secret = self._secret()
        raw = json.dumps(dict(delivery.message), ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8"
        )
        timestamp = int(self.context.now().timestamp())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            signing.SIGNATURE_HEADER: signing.sign(secret, timestamp, raw),
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.IDEMPOTENCY_HEADER: delivery.delivery_id,
            DELIVERY_HEADER: delivery.delivery_id,
            ATTEMPT_HEADER: str(delivery.attempt),
            KIND_HEADER: delivery.kind,
        }
        started = time.monotonic()
        try:
            reply = self.http.call("POST", url, content=raw, headers=headers)
            log.info(
                "webhook push %s (%s, attempt %d, body %s) to %s: HTTP %d in %d ms",
                delivery.delivery_id,
                delivery.kind,
                delivery.attempt,
                signing.digest(raw),
                reply.where,
                reply.status,
                round((time.monotonic() - started) * 1000),
            )
            self.http.raise_unless_done(reply, secret, "the delivery")
        except (PushFailed, PushRefused) as exc:
            log.warning("webhook push %s not delivered: %s", delivery.delivery_id, exc.reason)
            raise
        return PushResult(external_ref=_external_ref(reply.text), detail=f"HTTP {reply.status}")

    def _secret(self) -> str:
        ref = self.config.credential_ref
        if not ref:
            raise PushFailed(
                f"the webhook of {self.config.code} has no credential_ref: an operator must "
                "give it one in adapters.csv"
            )
        try:
            return self.context.secret(ref)
        except SecretUnavailable as exc:
            # The reference and why it names nothing, never a value: an operator can fix the
            # environment or the file, and the retries then go through.
            raise PushFailed(
                f"the secret {ref} of {self.config.code} cannot be read here ({exc}); "
                "an operator can provide it and the delivery will be retried"
            ) from None

    def take_status(self, body: Mapping[str, Any]) -> StatusReport:
        if not isinstance(body, Mapping):
            raise ValueError("body: a status message is a JSON object")
        try:
            data = StatusMessageV1().load(dict(body))
        except ValidationError as exc:
            raise ValueError(problems(exc.messages)) from None
        return StatusReport(
            case_id=data["case_id"],
            unit=data["unit"] or self.config.code,
            word=data["status"],
            note=data["note"],
        )

    def poll_status(self, open_deliveries: Sequence[OpenDelivery]) -> list[StatusReport]:
        return []  # the department's system posts its status; nothing to ask

    def health(self) -> Health:
        url = self.health_url or self.endpoint
        method = "GET" if self.health_url else "HEAD"
        try:
            reply = self.http.call(method, url)
        except PushFailed as exc:
            return Health(False, exc.reason)
        return Health(reply.status < 500, f"{method} {host(url)}: HTTP {reply.status}")

    def close(self) -> None:
        self.http.close()


def _external_ref(text: str) -> str | None:
    """The department's id for the case, from a JSON object answer (``external_ref`` or
    ``id``), if it gave one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("external_ref", "id"):
        value = data.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)[:200]
    return None
