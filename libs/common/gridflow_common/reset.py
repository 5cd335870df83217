"""A reset's part in each service: all or nothing, and never late.

Intake coordinates (``POST /api/v1/admin/reset``) in two rounds over one ``ResetOrder``:

1. *ready?* every service, intake included, answers within a short timeout that it can take
   part (it runs on the simulated clock and reaches its database). One that cannot, or does not
   answer, is named in a 503 and nothing is emptied anywhere.
2. *reset*: every service empties its tables.

An order carries an id and a deadline in real (wall clock) time; a service checks the deadline
before it acts, so an order that waited in a dead service's queue is dropped when the service
comes back instead of wiping what was accepted since. The deadline is real time because the
city's clock is the very thing a reset moves. Services compare it with their own wall clock, so
the hosts' clocks must agree to well within the window (NTP does that).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from gridflow_common.logging import get_logger

log = get_logger(__name__)

# How long the whole reset may take, from the first question to the last table emptied.
RESET_WINDOW_SECONDS = 10.0
# How long a service has to say it can take part.
READY_TIMEOUT_SECONDS = 3.0

NOT_SIMULATED = (
    "runs on the real clock; only a Gridflow on the simulated clock can be reset "
    "(GRIDFLOW_CLOCK=simulated)"
)


@dataclass(frozen=True)
class ResetOrder:
    reset_id: str
    deadline: float  # seconds since the epoch, real time

    @classmethod
    def new(cls, window: float = RESET_WINDOW_SECONDS) -> ResetOrder:
        return cls(uuid.uuid4().hex, time.time() + window)

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ResetOrder:
        return cls(str(message["reset_id"]), float(message["deadline"]))

    def remaining(self) -> float:
        return self.deadline - time.time()


def why_not_ready(runtime: Any, order: ResetOrder) -> str | None:
    """None when this service can take part in ``order``, else why not."""
    if order.remaining() <= 0:
        return f"reset {order.reset_id} came after its deadline"
    if not runtime.clock.simulated:
        return NOT_SIMULATED
    try:
        with runtime.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return f"cannot reach its database: {exc.__class__.__name__}"
    return None


def execute(runtime: Any, order: ResetOrder) -> str | None:
    """Empty this service's tables unless ``order`` is stale. None when done, else why not."""
    if order.remaining() <= 0:
        log.warning(
            "reset_stale_dropped",
            service=runtime.service,
            reset_id=order.reset_id,
            late_seconds=round(-order.remaining(), 3),
        )
        return f"reset {order.reset_id} came after its deadline; nothing was emptied"
    if not runtime.clock.simulated:
        return NOT_SIMULATED
    runtime.reset()
    log.info("reset_done", service=runtime.service, reset_id=order.reset_id)
    return None
