"""Contract-suite harnesses for the HTTP adapters Gridflow ships (the protocol is in the kit's
suite and docs/integrators.md): ``webhook_harness`` and ``open311_harness``, each a
zero-argument factory, as ``--harness=tests.support.harnesses:webhook_harness``.

Each runs its department double in a process of its own (``department_http``, ``georeport``)
and lends the adapter a context whose secret is the double's. ``received()`` lists the pushes
the department's system took (answered 2xx), in order, duplicates included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from gridflow_common.adapters.contract import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    SecretUnavailable,
)
from gridflow_departments.adapters.open311 import REFERENCE, TOKEN_PREFIX
from tests.support.department_http import DepartmentDouble
from tests.support.georeport import GeoReportDouble

# Timeouts short enough for the suite's outage checks, long enough for a loaded machine.
TIMEOUTS = {"connect_timeout": 1.0, "read_timeout": 2.0}
PUBLIC_URL = "http://gridflow.test/"


def _context(ref: str, secret: str) -> AdapterContext:
    def resolve(asked: str) -> str:
        if asked != ref:
            raise SecretUnavailable(f"{asked} names nothing in the harness")
        return secret

    return AdapterContext(
        secret=resolve,
        sign_link=lambda delivery, action, expires: f"{PUBLIC_URL}l/{delivery.delivery_id}",
        public_url=PUBLIC_URL,
        now=lambda: dt.datetime.now(dt.UTC),
    )


class WebhookHarness:
    SECRET = "contract-suite-webhook-secret"
    REF = "env:GRIDFLOW_CONTRACT_WEBHOOK_SECRET"

    def __init__(self) -> None:
        self.double = DepartmentDouble(self.SECRET)

    def config(self) -> AdapterConfig:
        return AdapterConfig(
            code="contract-dept",
            adapter="webhook",
            endpoint=self.double.endpoint,
            credential_ref=self.REF,
            options=dict(TIMEOUTS),
        )

    def context(self) -> AdapterContext:
        return _context(self.REF, self.SECRET)

    def received(self) -> list[dict[str, Any]]:
        return [
            {
                "delivery_id": p["delivery_id"],
                "idempotency_key": p["idempotency_key"],
                "message": p["message"],
                # Beyond the protocol: whether the department could verify it was Gridflow.
                "signature_ok": p["signature_ok"],
            }
            for p in self.double.pushes()
            if p["answered"] is not None and 200 <= p["answered"] < 300
        ]

    def go_down(self) -> None:
        self.double.go_down()

    def come_back(self) -> None:
        self.double.come_back()

    def refuse_next(self) -> None:
        self.double.refuse(422, reason="refused by the contract suite", times=1)

    def status_body(self, delivery: Delivery, word: str, note: str | None) -> Mapping[str, Any]:
        """A StatusMessageV1, as the department's system posts it back."""
        return {"case_id": delivery.case_id, "status": word, "note": note, "unit": delivery.unit}

    def set_status(
        self, delivery: Delivery, external_ref: str | None, word: str, note: str | None
    ) -> None:
        raise NotImplementedError("the webhook adapter does not poll: its department posts")

    def close(self) -> None:
        self.double.close()


class Open311Harness:
    """GeoReport v2 has no idempotency key: the delivery id travels as the attribute
    ``gridflow_delivery`` (and in the description), which ``received()`` gives as the key;
    ``message`` is the form the server was posted."""

    API_KEY = "contract-suite-311-key"
    REF = "file:/run/secrets/contract-311"
    ATTRIBUTE = "gridflow_delivery"

    def __init__(self) -> None:
        self.double = GeoReportDouble(api_key=self.API_KEY)

    def config(self) -> AdapterConfig:
        return AdapterConfig(
            code="contract-dept",
            adapter="open311",
            endpoint=self.double.url,
            credential_ref=self.REF,
            options={"service_code": "001", "delivery_attribute": self.ATTRIBUTE, **TIMEOUTS},
        )

    def context(self) -> AdapterContext:
        return _context(self.REF, self.API_KEY)

    def received(self) -> list[dict[str, Any]]:
        out = []
        for post in self.double.posts():
            if post["answered"] is None or not 200 <= post["answered"] < 300:
                continue
            form = {k: v[0] for k, v in post["form"].items() if v}
            key = form.get(f"attribute[{self.ATTRIBUTE}]")
            out.append({"delivery_id": key, "idempotency_key": key, "message": form})
        return out

    def go_down(self) -> None:
        self.double.go_down()

    def come_back(self) -> None:
        self.double.come_back()

    def refuse_next(self) -> None:
        self.double.script(
            {"status": 400, "body": '[{"code":400,"description":"refused by the contract suite"}]'}
        )

    def status_body(self, delivery: Delivery, word: str, note: str | None) -> Mapping[str, Any]:
        """A GeoReport service request as the server gives it, with the reference the adapter
        wrote into its description."""
        reference = REFERENCE.format(
            case_id=delivery.case_id, unit=delivery.unit, delivery_id=delivery.delivery_id
        )
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        return {
            "service_request_id": delivery.external_ref or "contract-1",
            "status": word,
            "status_notes": note,
            "service_code": "001",
            "description": f"…\n\n{reference}",
            "requested_datetime": now,
            "updated_datetime": now,
        }

    def set_status(
        self, delivery: Delivery, external_ref: str | None, word: str, note: str | None
    ) -> None:
        rid = external_ref or delivery.external_ref
        if rid is None:
            raise ValueError("set_status needs the external_ref the push returned")
        if rid.startswith(TOKEN_PREFIX):
            raise ValueError("the harness's server answers ids, not tokens")
        self.double.set_status(rid, word, note)

    def close(self) -> None:
        self.double.close()


def webhook_harness() -> WebhookHarness:
    return WebhookHarness()


def open311_harness() -> Open311Harness:
    return Open311Harness()
