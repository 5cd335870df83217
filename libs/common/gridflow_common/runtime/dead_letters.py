"""The dead-letter store: a failed message is recorded for a bounded number of retries with
exponential backoff, then kept as a dead letter an operator can list and replay.

Every instant here is operational time (``ServiceRuntime.operational_now``, the wall clock):
on a simulated city clock, which stands still between moves, a backoff computed on the city's
time would never come due.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from marshmallow import ValidationError

from gridflow_common import contracts, metrics
from gridflow_common.logging import get_logger

if TYPE_CHECKING:
    from gridflow_common.runtime.consumer import Handler
    from gridflow_common.runtime.service_runtime import ServiceRuntime

log = get_logger(__name__)

MAX_ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 1.0
RETRYING = "retrying"
DEAD = "dead"


class DeadLetters:
    def __init__(self, runtime: ServiceRuntime, max_attempts: int = MAX_ATTEMPTS):
        self.runtime = runtime
        self.table = runtime.tables["failed"]
        self.max_attempts = max_attempts

    def record(
        self,
        handler_name: str,
        event_id: str | None,
        message: Any,
        error: str,
        *,
        dead: bool = False,
    ) -> str:
        """Count one failed attempt; returns the message's state (retrying or dead). Raises
        when the database cannot take the record: the caller must then not let the transport
        acknowledge the message."""
        failed = self.table
        now = self.runtime.operational_now()
        body = (
            message
            if isinstance(message, str)
            else json.dumps(message, ensure_ascii=False, default=str)
        )
        # PostgreSQL's text refuses NUL; a raw body carrying one must still be kept, or the
        # message could never be recorded and would come back forever.
        body, error = body.replace("\x00", "\\x00"), error.replace("\x00", "\\x00")
        with self.runtime.units.lock, self.runtime.engine.begin() as conn:
            row = None
            if event_id is not None:
                row = conn.execute(
                    sa.select(failed.c.id, failed.c.attempts).where(
                        failed.c.handler == handler_name, failed.c.event_id == event_id
                    )
                ).first()
            attempts = (row.attempts if row else 0) + 1
            state = DEAD if dead or attempts >= self.max_attempts else RETRYING
            next_at = (
                now + dt.timedelta(seconds=FIRST_BACKOFF_SECONDS * 2 ** (attempts - 1))
                if state == RETRYING
                else None
            )
            values = dict(
                attempts=attempts,
                last_error=error[-4000:],
                state=state,
                next_attempt_at=next_at,
                failed_at=now,
            )
            if row:
                conn.execute(sa.update(failed).where(failed.c.id == row.id).values(**values))
            else:
                conn.execute(
                    sa.insert(failed).values(
                        handler=handler_name, event_id=event_id, message=body, **values
                    )
                )
        if state == DEAD:
            metrics.DEAD_LETTERS.labels(self.runtime.service, handler_name).inc()
            log.error(
                "message_dead_lettered", handler=handler_name, event_id=event_id, attempts=attempts
            )
        return state

    def retry_due(
        self,
        handlers: dict[str, Handler],
        run: Callable[[str, contracts.Event, Any, Handler], str],
        now: dt.datetime | None = None,
        limit: int = 100,
    ) -> int:
        """Retry the failed messages whose backoff has run out (by operational time, ``now``
        defaulting to the wall clock). Returns how many were tried."""
        failed = self.table
        now = now or self.runtime.operational_now()
        with self.runtime.units.lock, self.runtime.engine.connect() as conn:
            rows = conn.execute(
                sa.select(failed.c.id, failed.c.handler, failed.c.message)
                .where(failed.c.state == RETRYING, failed.c.next_attempt_at <= now)
                .order_by(failed.c.next_attempt_at)
                .limit(limit)
            ).all()
        for row in rows:
            handler = handlers.get(row.handler)
            if handler is None:
                continue
            try:
                message = json.loads(row.message)
                event = contracts.load_event(message)
            except (ValueError, ValidationError, TypeError) as exc:
                # Still unreadable: back to the dead letters, in the same record.
                with self.runtime.units.lock, self.runtime.engine.begin() as conn:
                    conn.execute(
                        sa.update(failed)
                        .where(failed.c.id == row.id)
                        .values(
                            state=DEAD,
                            next_attempt_at=None,
                            attempts=failed.c.attempts + 1,
                            last_error=f"unreadable message: {exc}"[-4000:],
                        )
                    )
                continue
            outcome = run(row.handler, event, message, handler)
            if outcome in ("done", "duplicate"):
                with self.runtime.units.lock, self.runtime.engine.begin() as conn:
                    conn.execute(sa.delete(failed).where(failed.c.id == row.id))
        return len(rows)

    def list(self) -> list[dict]:
        failed = self.table
        with self.runtime.units.lock, self.runtime.engine.connect() as conn:
            rows = conn.execute(sa.select(failed).order_by(failed.c.id)).mappings().all()
        return [{**dict(r), "service": self.runtime.service} for r in rows]

    def replay(self, letter_id: int) -> bool:
        """Put a dead letter back on the retry list, due now (operational time), its attempts
        reset."""
        failed = self.table
        with self.runtime.units.lock, self.runtime.engine.begin() as conn:
            result = conn.execute(
                sa.update(failed)
                .where(failed.c.id == letter_id, failed.c.state == DEAD)
                .values(state=RETRYING, attempts=0, next_attempt_at=self.runtime.operational_now())
            )
        return result.rowcount == 1
