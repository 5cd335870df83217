"""``ServiceRuntime``: one service's machinery, the same under nameko and embedded, put
together from the unit of work, the idempotent consumer, the dead-letter store and the outbox.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa

from gridflow_common.clock import Clock
from gridflow_common.db import messaging_tables
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime.consumer import PROCESSED_RETENTION, Handler, IdempotentConsumer
from gridflow_common.runtime.dead_letters import MAX_ATTEMPTS, DeadLetters
from gridflow_common.runtime.outage import Outage
from gridflow_common.runtime.outbox import Outbox, Publisher
from gridflow_common.runtime.unit_of_work import (
    OutboxRow,
    Statements,
    UnitsOfWork,
    Work,
    real_now,
)


class ServiceRuntime:
    def __init__(
        self,
        service: str,
        engine: sa.Engine,
        clock: Clock,
        jurisdictions: JurisdictionStore,
        own_tables: list[sa.Table],
        *,
        lock: Any = None,
        max_attempts: int = MAX_ATTEMPTS,
        operational_clock: Callable[[], dt.datetime] = real_now,
    ):
        self.service = service
        self.engine = engine
        self.clock = clock
        self.jurisdictions = jurisdictions
        self.tables = messaging_tables(sa.MetaData(), service)
        self.own_tables = own_tables
        self.max_attempts = max_attempts
        # Retry backoff, relay grace, sweeps and retention run on this, never on ``clock``.
        self.operational_now = operational_clock
        self.statements = Statements(self.tables, self.engine.dialect.name)
        self.units = UnitsOfWork(self, engine, clock, jurisdictions, lock)
        self.letters = DeadLetters(self, max_attempts)
        self.consumer = IdempotentConsumer(self, self.letters)
        self.outbox = Outbox(self)
        # Readiness, by part: each check raises when its part cannot serve (see ``readiness``).
        self.readiness_checks: dict[str, Callable[[], None]] = {}
        self.tick_failures = Outage("tick_failed", service=service)
        self._next_prune = 0.0
        # Objects a service keeps for the life of its process beside the runtime (intake's
        # identity store and rate limiter): nameko makes a service instance per request.
        self.extras: dict[str, Any] = {}

    # -- the unit of work --------------------------------------------------------------------

    def work(self, now: dt.datetime | None = None) -> AbstractContextManager[Work]:
        """One transaction on one connection: committed when the block ends, rolled back when
        it raises."""
        return self.units.work(now)

    def on_commit(self, callback: Callable[[list[OutboxRow]], None]) -> None:
        """``callback(rows)`` runs after each commit that wrote outbox rows, with those rows."""
        self.units.after_commit.append(callback)

    # -- the idempotent consumer -------------------------------------------------------------

    @property
    def outage(self) -> Outage:
        """The database outage the consumer is in, if any: its backoff and its log."""
        return self.consumer.outage

    def consume(self, handler_name: str, message: Any, handler: Handler) -> str:
        """Run ``handler`` on one delivered message at most once; never lose it."""
        return self.consumer.consume(handler_name, message, handler)

    def prune_processed(self, retention: dt.timedelta = PROCESSED_RETENTION) -> int:
        return self.consumer.prune_processed(retention)

    # -- dead letters ------------------------------------------------------------------------

    def retry_due(
        self, handlers: dict[str, Handler], now: dt.datetime | None = None, limit: int = 100
    ) -> int:
        """Retry the failed messages whose backoff has run out (operational time)."""
        return self.letters.retry_due(handlers, self.consumer.run, now, limit)

    def dead_letters(self) -> list[dict]:
        return self.letters.list()

    def replay_dead_letter(self, letter_id: int) -> bool:
        return self.letters.replay(letter_id)

    # -- the outbox --------------------------------------------------------------------------

    def publish_rows(
        self, rows: list[OutboxRow], publisher: Publisher, confirmed: list[int] | None = None
    ) -> int:
        return self.outbox.publish_rows(rows, publisher, confirmed)

    def delete_published(self, ids: list[int]) -> None:
        self.outbox.delete_published(ids)

    def relay(self, publisher: Publisher, batch: int = 500, older_than: float = 0.0) -> int:
        """The sweep: publish rows left in the table, oldest first."""
        return self.outbox.sweep(publisher, batch, older_than)

    def pending_outbox(self) -> int:
        return self.outbox.pending()

    # -- time-driven work and health ------------------------------------------------------------

    PRUNE_EVERY_SECONDS = 60.0

    def tick(
        self, handlers: dict[str, Handler], periodic: Callable[[ServiceRuntime], Any] | None = None
    ) -> None:
        """Time-driven work, once a second: due retries, the service's periodic work, and (once
        a minute) pruning processed ids past their retention. A failing tick (the database out
        of reach) is logged once per interval with a count, not once a second."""
        try:
            self.retry_due(handlers)
            if periodic is not None:
                periodic(self)
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + self.PRUNE_EVERY_SECONDS
                self.prune_processed()
        except Exception as exc:
            self.tick_failures.failed(exc)
            return
        self.tick_failures.recovered()

    def readiness(self) -> dict[str, str]:
        """What keeps this service from doing its work, by part; empty when it is ready."""
        problems: dict[str, str] = {}
        for part, check in self.readiness_checks.items():
            try:
                check()
            except Exception as exc:
                text = str(exc).strip()
                problems[part] = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[
                    :300
                ]
        return problems

    # -- rehearsals --------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty every table this service owns (simulated-clock rehearsals only)."""
        with self.units.lock, self.engine.begin() as conn:
            for table in [*self.own_tables, *self.tables.values()]:
                conn.execute(sa.delete(table))
