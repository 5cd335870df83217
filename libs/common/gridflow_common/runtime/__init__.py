"""The framework-free machinery every service runs on, the same under nameko and embedded,
one module per responsibility:

- ``unit_of_work``: ``Work`` and ``ServiceRuntime.work()``, one transaction on one connection
  holding a handler's reads, its writes and the events they cause (the transactional outbox).
- ``consumer``: the idempotent consumer and its failure policy.
- ``dead_letters``: failed messages retried with backoff on operational time, then dead
  letters an operator lists and replays.
- ``outbox``: publishing committed rows (fast path and sweep) and ``RelayLoop``.
- ``outage``: backoff and once-per-interval logging while the database is out of reach.
- ``service_runtime``: ``ServiceRuntime``, one service's runtime put together from these.
"""

from gridflow_common.runtime.consumer import (
    PROCESSED_RETENTION,
    DatabaseUnavailable,
    Handler,
    Undecodable,
)
from gridflow_common.runtime.dead_letters import MAX_ATTEMPTS
from gridflow_common.runtime.outbox import Publisher, RelayLoop
from gridflow_common.runtime.service_runtime import ServiceRuntime
from gridflow_common.runtime.unit_of_work import OutboxRow, Work, real_now

__all__ = [
    "MAX_ATTEMPTS",
    "PROCESSED_RETENTION",
    "DatabaseUnavailable",
    "Handler",
    "OutboxRow",
    "Publisher",
    "RelayLoop",
    "ServiceRuntime",
    "Undecodable",
    "Work",
    "real_now",
]
