"""``POST /api/v1/cases/{id}/orders``: the command center's orders (指令) on a case.
``IntakeApi`` inherits the endpoint; what an order does is ``gridflow_intake.orders``.

Who: the command center (of the case's district, when scoped to one) and admins give every
order; a leader comments (点评) on the cases it may read. A case the caller may not read is
answered as a case that does not exist (404 ``no case``). Refusals: 400 a field wrong whatever
the case (the body, naming the field), 403 an order the caller may not give, 404, 409 an order
the case cannot take as it stands (naming why; nothing changes), 422 a unit or category the
jurisdiction lacks. Taken: 202 and the case as ``GET /api/v1/cases/{id}`` shows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gridflow_common.domain import access as a
from gridflow_intake import handlers as h
from gridflow_intake import orders
from gridflow_intake import schemas as s
from gridflow_intake.access import Forbidden

if TYPE_CHECKING:
    from gridflow_intake.api import Answer, Call

_ORDER_SCHEMA = s.OrderSchema()


class OrderEndpoints:
    # Provided by IntakeApi.
    runtime: Any

    if TYPE_CHECKING:

        def _load(self, schema: Any, body: bytes) -> dict: ...
        def _readable_case(self, work: Any, call: Call, case_id: str) -> tuple[Any, Any]: ...
        def _audit_within(self, work: Any, call: Call, status: int) -> None: ...

    def post_order(self, call: Call, case_id: str) -> Answer:
        from gridflow_intake.api import Answer

        order = self._load(_ORDER_SCHEMA, call.body)
        principal = call.principal
        assert principal is not None
        if not a.may_give_order(principal, order["kind"]):
            raise Forbidden(
                "orders are the command center's; a leader may comment (kind comment)",
                field="kind",
            )
        with self.runtime.work() as work:
            facts, j = self._readable_case(work, call, case_id)
            if order.get("into"):
                # The case merged into must be one the caller may see, as any case it names.
                self._readable_case(work, call, order["into"])
            orders.give_order(work, case_id, order, by=principal.label)
            view = h.case_view(work, case_id, reveal_reporters=a.sees_reporter(principal, facts, j))
            self._audit_within(work, call, 202)
            return Answer(202, view)
