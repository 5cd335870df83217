"""The idempotent consumer and its failure policy.

The processed message id is claimed in the handler's own transaction, so a redelivery after a
crash is recognised; a handler that raises has its transaction rolled back and the message
recorded in the dead-letter store (retried with backoff, then dead). Only if even that record
cannot be written (the database is unreachable) does ``DatabaseUnavailable`` escape: the
transport must then hand the message back rather than acknowledge it, after waiting
``outage.delay()`` so an outage is not a tight loop of redeliveries.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from marshmallow import ValidationError

from gridflow_common import contracts, metrics
from gridflow_common.logging import get_logger
from gridflow_common.runtime.outage import Outage

if TYPE_CHECKING:
    from gridflow_common.runtime.dead_letters import DeadLetters
    from gridflow_common.runtime.service_runtime import ServiceRuntime
    from gridflow_common.runtime.unit_of_work import Work

log = get_logger(__name__)

Handler = Callable[["Work", contracts.Event], None]

# How long a processed message id is kept. A duplicate arrives when a relay republishes a row
# whose delete it could not commit (a crash, a database outage on the publishing side) or when
# the broker redelivers an unacknowledged message: both within the outage that caused them, plus
# the time the copy waits in its queue. Seven days covers an outage over a long holiday weekend
# with days to spare; nothing in Gridflow redelivers after that.
PROCESSED_RETENTION = dt.timedelta(days=7)
PRUNE_BATCH = 1000


class DatabaseUnavailable(Exception):
    """Neither the handler's work nor its failure record could be written: the message must go
    back to the transport unacknowledged."""


@dataclass(frozen=True)
class Undecodable:
    """A delivery the transport could not decode (not JSON, or a content type it refuses):
    kept as a dead letter with its raw body rather than dropped."""

    body: str
    error: str


class IdempotentConsumer:
    def __init__(self, runtime: ServiceRuntime, dead_letters: DeadLetters):
        self.runtime = runtime
        self.dead_letters = dead_letters
        self.outage = Outage("database_unavailable", service=runtime.service)

    def consume(self, handler_name: str, message: Any, handler: Handler) -> str:
        """Run ``handler`` on one delivered message at most once; never lose it."""
        if isinstance(message, Undecodable):
            return self._unreadable(
                handler_name, message.body, f"undecodable message: {message.error}"
            )
        try:
            event = contracts.load_event(message)
        except (ValidationError, TypeError) as exc:
            # Unreadable: retrying cannot help, so it goes straight to the dead letters.
            return self._unreadable(handler_name, message, f"unreadable message: {exc}")
        return self.run(handler_name, event, message, handler)

    def _unreadable(self, handler_name: str, body: Any, error: str) -> str:
        try:
            return self.dead_letters.record(handler_name, None, body, error, dead=True)
        except Exception as exc:
            self.outage.failed(exc, handler=handler_name)
            raise DatabaseUnavailable(str(exc)) from exc

    def run(self, handler_name: str, event: contracts.Event, message: Any, handler: Handler) -> str:
        service, event_type = self.runtime.service, event.event_type
        started = metrics.now_seconds()
        try:
            with self.runtime.work(now=event.occurred_at) as work:
                # Claim the message id first: one statement, and a concurrent redelivery waits on
                # this row and then finds it taken.
                claimed = work.db.execute(
                    self.runtime.statements.claim,
                    dict(
                        handler=handler_name,
                        event_id=event.event_id,
                        processed_at=self.runtime.operational_now(),
                    ),
                ).rowcount
                if not claimed:
                    metrics.MESSAGES.labels(service, handler_name, event_type, "duplicate").inc()
                    return "duplicate"
                handler(work, event)
        except Exception as exc:
            metrics.MESSAGES.labels(service, handler_name, event_type, "failed").inc()
            error = traceback.format_exc(limit=5)
            try:
                state = self.dead_letters.record(handler_name, event.event_id, message, error)
            except Exception as record_exc:
                # Not even the failure could be written: the database is out of reach. One
                # line per interval, not one per message.
                self.outage.failed(record_exc, handler=handler_name)
                raise DatabaseUnavailable(str(record_exc)) from exc
            self.outage.recovered()
            log.warning(
                "handler_failed",
                handler=handler_name,
                event_id=event.event_id,
                event_type=event.event_type,
                error=repr(exc),
                state=state,
            )
            return state
        self.outage.recovered()
        metrics.MESSAGES.labels(service, handler_name, event_type, "ok").inc()
        metrics.HANDLER_SECONDS.labels(service, handler_name, event_type).observe(
            metrics.now_seconds() - started
        )
        return "done"

    def prune_processed(
        self,
        retention: dt.timedelta = PROCESSED_RETENTION,
        batch: int = PRUNE_BATCH,
        max_batches: int = 10,
    ) -> int:
        """Forget processed message ids older than ``retention`` (operational time), at most
        ``batch`` rows a statement so no prune holds locks for long. Returns how many went."""
        processed = self.runtime.tables["processed"]
        cutoff = self.runtime.operational_now() - retention
        oldest = (
            sa.select(processed.c.handler, processed.c.event_id)
            .where(processed.c.processed_at < cutoff)
            .limit(batch)
        )
        removed = 0
        for _ in range(max_batches):
            with self.runtime.units.lock, self.runtime.engine.begin() as conn:
                count = conn.execute(
                    sa.delete(processed).where(
                        sa.tuple_(processed.c.handler, processed.c.event_id).in_(oldest)
                    )
                ).rowcount
            removed += count
            if count < batch:
                break
        return removed
