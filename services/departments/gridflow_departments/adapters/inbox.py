"""The inbox adapter: for a unit with no system of its own. Nothing is pushed; the unit works
from ``GET /api/v1/units/{code}/inbox`` (intake builds it from ``case_dispatched``'s
deliveries), in a browser or a script, and answers through the status endpoint. Its deliveries
are recorded delivered the moment they are made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from gridflow_common.adapters import (
    Delivery,
    DepartmentAdapter,
    Health,
    OpenDelivery,
    PushResult,
    StatusReport,
)
from gridflow_departments.adapters.amqp import status_report


class InboxAdapter(DepartmentAdapter):
    name: ClassVar[str] = "inbox"
    needs_endpoint: ClassVar[bool] = False

    def push(self, delivery: Delivery) -> PushResult:
        # The inbox is read from Gridflow's own record: there is nothing to send.
        return PushResult(detail="inbox")

    def push_change(self, delivery: Delivery) -> PushResult:
        return PushResult(detail="inbox")

    def take_status(self, body: Mapping[str, Any]) -> StatusReport:
        return status_report(body, self.config.code)

    def poll_status(self, open_deliveries: Sequence[OpenDelivery]) -> list[StatusReport]:
        return []

    def health(self) -> Health:
        return Health(True, "inbox: nothing to reach")
