"""The unit of work: one transaction on one connection, holding a handler's reads, its writes
and the events they cause (the transactional outbox).

Everything a unit reads goes through the connection it already holds: the simulated clock, the
jurisdiction on a cache miss, the handler's own queries. A unit that asks the pool for a second
connection deadlocks a busy service, every worker holding one and waiting for another.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gridflow_common import contracts
from gridflow_common.clock import Clock
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_common.jurisdictions import JurisdictionStore

if TYPE_CHECKING:
    from gridflow_common.runtime.service_runtime import ServiceRuntime


def real_now() -> dt.datetime:
    """Operational time: retry backoff, relay grace, sweeps, retention. Always the wall clock,
    never the city's (a simulated city clock stands still between moves)."""
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    exchange: str
    routing_key: str
    body: str


class Statements:
    """The hot path's statements, built once: parameters travel separately, so SQLAlchemy
    neither rebuilds nor re-keys them for every message."""

    def __init__(self, tables: dict[str, sa.Table], dialect_name: str):
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        outbox, processed = tables["outbox"], tables["processed"]
        self.claim = dialect.insert(processed).on_conflict_do_nothing()
        self.outbox_insert = sa.insert(outbox).returning(outbox.c.id)
        # Many rows in one statement (insertmanyvalues), their ids in the order given.
        self.outbox_insert_many = sa.insert(outbox).returning(
            outbox.c.id, sort_by_parameter_order=True
        )


class Work:
    """What a handler sees: a database connection inside one transaction (``db``), the instant
    the unit acts at (``now``: the event's time for a message, the city's time otherwise), the
    jurisdiction, and ``emit``. Core statements only: no ORM session, whose bookkeeping costs
    more than these handlers need."""

    def __init__(self, runtime: ServiceRuntime, db: sa.Connection, now: dt.datetime):
        self.runtime = runtime
        self.db = db
        self.now = now
        self.outboxed: list[OutboxRow] = []

    def city_now(self) -> dt.datetime:
        """The city's time as it stands now (``now`` may be an older event's time), read on this
        unit's connection."""
        return self.runtime.clock.now(self.db)

    def jurisdiction(self, version: int | None = None) -> Jurisdiction:
        if version is None:
            return self.active_jurisdiction()[1]
        return self.runtime.jurisdictions.get(version, self.db)

    def active_jurisdiction(self) -> tuple[int, Jurisdiction]:
        """The version in force and its rules, read on this unit's connection."""
        return self.runtime.jurisdictions.active(self.db)

    def emit(self, event_type: str, payload: dict, occurred_at: dt.datetime | None = None) -> None:
        event = contracts.make_event(
            self.runtime.service, event_type, occurred_at or self.now, payload
        )
        self._outbox(
            contracts.event_exchange(self.runtime.service),
            event_type,
            json.dumps(event.to_message(), ensure_ascii=False),
        )

    def emit_many(self, events: list[tuple[str, dict, dt.datetime | None]]) -> None:
        """``emit`` for each (event type, payload, occurred_at), in order, written to the outbox
        in one statement rather than one round trip each (the SLA sweep's hundreds of colours
        a batch)."""
        if not events:
            return
        exchange = contracts.event_exchange(self.runtime.service)
        created_at = self.runtime.operational_now()
        bodies = [
            (
                event_type,
                json.dumps(
                    contracts.make_event(
                        self.runtime.service, event_type, occurred_at or self.now, payload
                    ).to_message(),
                    ensure_ascii=False,
                ),
            )
            for event_type, payload, occurred_at in events
        ]
        params = [
            dict(
                exchange=exchange,
                routing_key=key,
                body=body,
                attempts=0,
                created_at=created_at,
            )
            for key, body in bodies
        ]
        ids = self.db.execute(self.runtime.statements.outbox_insert_many, params).scalars().all()
        for (key, body), row_id in zip(bodies, ids, strict=True):
            self.outboxed.append(OutboxRow(row_id, exchange, key, body))

    def send_to_unit(self, department: str | None, unit: str, message: dict) -> None:
        """Queue a department message for a unit's system, in this transaction: the topic
        exchange of cases, routing key ``<department or unit>.<unit>`` (the publisher declares
        the unit's and the department's queues before the first publish there)."""
        self._outbox(
            contracts.CASE_EXCHANGE,
            contracts.unit_routing_key(department, unit),
            json.dumps(message, ensure_ascii=False),
        )

    def reply_to_department(self, code: str, reply: dict) -> None:
        """Queue an answer to a department's status message for its reply queue, in this
        transaction (the relay declares the queue before publishing)."""
        self._outbox(contracts.REPLY_EXCHANGE, code, json.dumps(reply, ensure_ascii=False))

    def _outbox(self, exchange: str, routing_key: str, body: str) -> None:
        row_id = self.db.execute(
            self.runtime.statements.outbox_insert,
            dict(
                exchange=exchange,
                routing_key=routing_key,
                body=body,
                attempts=0,
                created_at=self.runtime.operational_now(),
            ),
        ).scalar_one()
        self.outboxed.append(OutboxRow(row_id, exchange, routing_key, body))


class UnitsOfWork:
    """Opens units of work on one engine and hands each commit's outbox rows to the relay."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        engine: sa.Engine,
        clock: Clock,
        jurisdictions: JurisdictionStore,
        lock: Any = None,
    ):
        self.runtime = runtime
        self.engine = engine
        self.clock = clock
        self.jurisdictions = jurisdictions
        # The embedded default's services share one SQLite file from several threads: it passes
        # one lock so their units of work take turns instead of failing on SQLite's write lock.
        self.lock = lock or contextlib.nullcontext()
        self.after_commit: list[Callable[[list[OutboxRow]], None]] = []

    @contextlib.contextmanager
    def work(self, now: dt.datetime | None = None) -> Iterator[Work]:
        """One transaction: committed when the block ends, rolled back when it raises. Without
        ``now`` the unit acts at the city's time, read on the unit's own connection."""
        with self.lock, self.engine.connect() as connection, connection.begin():
            work = Work(self.runtime, connection, now or self.clock.now(connection))
            yield work
        if work.outboxed:
            for callback in self.after_commit:
                callback(work.outboxed)
