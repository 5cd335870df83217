"""The framework-free machinery every service runs on, the same under nameko and embedded.

- ``ServiceRuntime.work()``: one unit of work. State changes and the events they cause are
  written in one transaction (the transactional outbox); after the commit its rows are handed to
  the relay in memory, so they are published at once rather than found by a slow poll.
- ``ServiceRuntime.consume()``: the idempotent consumer and its failure policy. The processed
  message id is recorded in the handler's own transaction, so a redelivery after a crash is
  recognised; a handler that raises has its transaction rolled back and the message recorded for
  a bounded number of retries with exponential backoff, then kept as a dead letter that an
  operator can list and replay. Only if even that record cannot be written does the exception
  escape, and then the transport must not acknowledge the message (nameko: requeue_on_error).
- ``RelayLoop``: publishes committed outbox rows through a ``Publisher`` (the fast path right
  after each commit, a sweep of the table for whatever that missed); a row is deleted only once
  the broker has confirmed it and did not return it as unroutable.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from marshmallow import ValidationError
from sqlalchemy.dialects import postgresql, sqlite

from gridflow_common import contracts, metrics
from gridflow_common.clock import Clock
from gridflow_common.db import messaging_tables
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.logging import get_logger

log = get_logger(__name__)

MAX_ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 1.0

Handler = Callable[["Work", contracts.Event], None]


class Publisher(Protocol):
    def publish(self, exchange: str, routing_key: str, body: str) -> None:
        """Publish durably; return only once the broker has taken the message, raise otherwise."""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    exchange: str
    routing_key: str
    body: str


class Work:
    """What a handler sees: a database connection inside one transaction (``db``), the city's
    time, the jurisdiction, and ``emit``. Core statements only: no ORM session, whose
    bookkeeping costs more than these handlers need."""

    def __init__(self, runtime: ServiceRuntime, db: sa.Connection, now: dt.datetime):
        self.runtime = runtime
        self.db = db
        self.now = now
        self.outboxed: list[OutboxRow] = []

    def emit(self, event_type: str, payload: dict, occurred_at: dt.datetime | None = None) -> None:
        event = contracts.make_event(
            self.runtime.service, event_type, occurred_at or self.now, payload
        )
        self._outbox(
            contracts.event_exchange(self.runtime.service), event_type,
            json.dumps(event.to_message(), ensure_ascii=False),
        )

    def send_to_department(self, code: str, message: dict) -> None:
        """Queue a message for a department system's queue, in this transaction."""
        self._outbox(contracts.DEPARTMENT_EXCHANGE, code, json.dumps(message, ensure_ascii=False))

    def _outbox(self, exchange: str, routing_key: str, body: str) -> None:
        row_id = self.db.execute(self.runtime.statements.outbox_insert, dict(
            exchange=exchange, routing_key=routing_key, body=body, attempts=0,
            # Operational time (how long rows wait), not the city's possibly simulated time.
            created_at=dt.datetime.now(dt.timezone.utc),
        )).scalar_one()
        self.outboxed.append(OutboxRow(row_id, exchange, routing_key, body))

    def jurisdiction(self, version: int | None = None):
        if version is None:
            return self.runtime.jurisdictions.active()[1]
        return self.runtime.jurisdictions.get(version)


class _Statements:
    """The hot path's statements, built once: parameters travel separately, so SQLAlchemy
    neither rebuilds nor re-keys them for every message."""

    def __init__(self, tables: dict[str, sa.Table], dialect_name: str):
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        outbox, processed = tables["outbox"], tables["processed"]
        self.claim = dialect.insert(processed).on_conflict_do_nothing()
        self.outbox_insert = sa.insert(outbox).returning(outbox.c.id)


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
    ):
        self.service = service
        self.engine = engine
        self.clock = clock
        self.jurisdictions = jurisdictions
        self.tables = messaging_tables(sa.MetaData(), service)
        self.own_tables = own_tables
        self.max_attempts = max_attempts
        # The embedded default's services share one SQLite file from several threads: it passes
        # one lock so their units of work take turns instead of failing on SQLite's write lock.
        self._lock = lock or contextlib.nullcontext()
        self._after_commit: list[Callable[[list[OutboxRow]], None]] = []
        self.statements = _Statements(self.tables, self.engine.dialect.name)

    def on_commit(self, callback: Callable[[list[OutboxRow]], None]) -> None:
        """``callback(rows)`` runs after each commit that wrote outbox rows, with those rows."""
        self._after_commit.append(callback)

    @contextlib.contextmanager
    def work(self, now: dt.datetime | None = None) -> Iterator[Work]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self._lock, self.engine.connect() as connection, connection.begin():
            work = Work(self, connection, now or self.clock.now())
            yield work
        if work.outboxed:
            for callback in self._after_commit:
                callback(work.outboxed)

    # -- the idempotent consumer -------------------------------------------------------------

    def consume(self, handler_name: str, message: Any, handler: Handler) -> str:
        """Run ``handler`` on one delivered message at most once; never lose it."""
        try:
            event = contracts.load_event(message)
        except (ValidationError, TypeError) as exc:
            # Unreadable: retrying cannot help, so it goes straight to the dead letters.
            self._record_failure(handler_name, None, message, f"unreadable message: {exc}",
                                 dead=True)
            return "dead"
        return self._run(handler_name, event, message, handler)

    def _run(self, handler_name: str, event: contracts.Event, message: Any,
             handler: Handler) -> str:
        started = metrics.now_seconds()
        try:
            with self.work(now=event.occurred_at) as work:
                # Claim the message id first: one statement, and a concurrent redelivery waits on
                # this row and then finds it taken.
                claimed = work.db.execute(
                    self.statements.claim, dict(handler=handler_name, event_id=event.event_id)
                ).rowcount
                if not claimed:
                    metrics.MESSAGES.labels(self.service, handler_name, "duplicate").inc()
                    return "duplicate"
                handler(work, event)
        except Exception as exc:
            log.warning("handler_failed", handler=handler_name, event_id=event.event_id,
                        event_type=event.event_type, error=repr(exc))
            metrics.MESSAGES.labels(self.service, handler_name, "failed").inc()
            return self._record_failure(handler_name, event.event_id, message,
                                        traceback.format_exc(limit=5))
        metrics.MESSAGES.labels(self.service, handler_name, "ok").inc()
        metrics.HANDLER_SECONDS.labels(self.service, handler_name).observe(
            metrics.now_seconds() - started)
        return "done"

    def _record_failure(self, handler_name: str, event_id: str | None, message: Any,
                        error: str, *, dead: bool = False) -> str:
        failed = self.tables["failed"]
        now = self.clock.now()
        body = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False,
                                                                   default=str)
        with self._lock, self.engine.begin() as conn:
            row = None
            if event_id is not None:
                row = conn.execute(
                    sa.select(failed.c.id, failed.c.attempts).where(
                        failed.c.handler == handler_name, failed.c.event_id == event_id
                    )
                ).first()
            attempts = (row.attempts if row else 0) + 1
            state = "dead" if dead or attempts >= self.max_attempts else "retrying"
            next_at = (now + dt.timedelta(seconds=FIRST_BACKOFF_SECONDS * 2 ** (attempts - 1))
                       if state == "retrying" else None)
            values = dict(attempts=attempts, last_error=error[-4000:], state=state,
                          next_attempt_at=next_at, failed_at=now)
            if row:
                conn.execute(sa.update(failed).where(failed.c.id == row.id).values(**values))
            else:
                conn.execute(sa.insert(failed).values(handler=handler_name, event_id=event_id,
                                                      message=body, **values))
        if state == "dead":
            metrics.DEAD_LETTERS.labels(self.service, handler_name).inc()
            log.error("message_dead_lettered", handler=handler_name, event_id=event_id,
                      attempts=attempts)
        return state

    def retry_due(self, handlers: dict[str, Handler], now: dt.datetime | None = None,
                  limit: int = 100) -> int:
        """Retry the failed messages whose backoff has run out. Returns how many were tried."""
        failed = self.tables["failed"]
        now = now or self.clock.now()
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(failed.c.id, failed.c.handler, failed.c.message)
                .where(failed.c.state == "retrying", failed.c.next_attempt_at <= now)
                .order_by(failed.c.next_attempt_at).limit(limit)
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
                with self._lock, self.engine.begin() as conn:
                    conn.execute(sa.update(failed).where(failed.c.id == row.id).values(
                        state="dead", next_attempt_at=None, attempts=failed.c.attempts + 1,
                        last_error=f"unreadable message: {exc}"[-4000:]))
                continue
            outcome = self._run(row.handler, event, message, handler)
            if outcome in ("done", "duplicate"):
                with self._lock, self.engine.begin() as conn:
                    conn.execute(sa.delete(failed).where(failed.c.id == row.id))
        return len(rows)

    def dead_letters(self) -> list[dict]:
        failed = self.tables["failed"]
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(sa.select(failed).order_by(failed.c.id)).mappings().all()
        return [{**dict(r), "service": self.service} for r in rows]

    def replay_dead_letter(self, letter_id: int) -> bool:
        """Put a dead letter back on the retry list, due now, with its attempts reset."""
        failed = self.tables["failed"]
        with self._lock, self.engine.begin() as conn:
            result = conn.execute(
                sa.update(failed).where(failed.c.id == letter_id, failed.c.state == "dead")
                .values(state="retrying", attempts=0, next_attempt_at=self.clock.now())
            )
        return result.rowcount == 1

    # -- the outbox ----------------------------------------------------------------------------

    def publish_rows(self, rows: list[OutboxRow], publisher: Publisher,
                     confirmed: list[int] | None = None) -> int:
        """The fast path: publish rows just committed (known in memory, no query).

        Without ``confirmed``, the confirmed rows are deleted at once, in one statement (also
        when a later publish fails, which then raises; the rest stays for ``relay``). With it,
        their ids are appended there for the caller to delete later, many at a time."""
        published: list[int] = [] if confirmed is None else confirmed
        before = len(published)
        try:
            for row in rows:
                publisher.publish(row.exchange, row.routing_key, row.body)
                published.append(row.id)
        finally:
            if confirmed is None:
                self.delete_published(published)
        return len(published) - before

    def delete_published(self, ids: list[int]) -> None:
        if not ids:
            return
        outbox = self.tables["outbox"]
        with self._lock, self.engine.begin() as conn:
            conn.execute(sa.delete(outbox).where(outbox.c.id.in_(ids)))
        metrics.PUBLISHED.labels(self.service).inc(len(ids))

    def relay(self, publisher: Publisher, batch: int = 500, older_than: float = 0.0) -> int:
        """The sweep: publish rows left in the table (a crash between commit and publish, a
        broker outage), oldest first; ``older_than`` seconds leaves the fast path its rows.
        Returns how many were published."""
        outbox = self.tables["outbox"]
        published: list[int] = []
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=older_than)
        with self._lock, self.engine.connect() as conn, conn.begin():
            rows = conn.execute(
                sa.select(outbox.c.id, outbox.c.exchange, outbox.c.routing_key, outbox.c.body)
                .where(outbox.c.created_at <= cutoff)
                .order_by(outbox.c.id).limit(batch).with_for_update(skip_locked=True)
            ).all()
            failure: Exception | None = None
            for row in rows:
                try:
                    publisher.publish(row.exchange, row.routing_key, row.body)
                except Exception as exc:  # re-raised once the confirmed rows are deleted
                    failure = exc
                    break
                published.append(row.id)
            # Whatever was confirmed is deleted even when a later publish failed; the rest stays
            # for the next pass. A crash before this commit republishes: consumers are
            # idempotent.
            if published:
                conn.execute(sa.delete(outbox).where(outbox.c.id.in_(published)))
        if failure is not None:
            raise failure
        if published:
            metrics.PUBLISHED.labels(self.service).inc(len(published))
        return len(published)

    def pending_outbox(self) -> int:
        outbox = self.tables["outbox"]
        with self._lock, self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()

    def reset(self) -> None:
        """Empty every table this service owns (simulated-clock rehearsals only)."""
        with self._lock, self.engine.begin() as conn:
            for table in [*self.own_tables, *self.tables.values()]:
                conn.execute(sa.delete(table))


class RelayLoop:
    """Publishes each commit's outbox rows right after the commit (handed over in memory), and
    sweeps the table every ``interval`` for rows the fast path did not publish.

    Under load the fast path batches by itself: whatever commits arrived while it was publishing
    go out in the next pass, with one DELETE for all of them. Thread-based; under nameko the
    threading module is eventlet-patched, so this is a green thread there.
    """

    # A row the fast path holds is left alone by the sweep for this long.
    SWEEP_GRACE_SECONDS = 5.0

    def __init__(self, runtime: ServiceRuntime, publisher_factory: Callable[[], Publisher],
                 interval: float = 1.0, batch: int = 500):
        self.runtime = runtime
        self.publisher_factory = publisher_factory
        self.interval = interval
        self.batch = batch
        self._ready: collections.deque[OutboxRow] = collections.deque()
        # Confirmed rows wait here to be deleted many at a time: a row the broker has confirmed
        # may stay in the table a little longer (the sweep's grace covers it); if the process
        # dies first, the sweep publishes it again and consumers drop the duplicate.
        self._confirmed: list[int] = []
        self._confirmed_since = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        runtime.on_commit(self._committed)

    def _committed(self, rows: list[OutboxRow]) -> None:
        self._ready.extend(rows)
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"relay-{self.runtime.service}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self._flush_deletes(force=True)

    DELETE_EVERY_SECONDS = 0.2
    DELETE_BATCH = 1000

    def _flush_deletes(self, force: bool = False) -> None:
        if not self._confirmed:
            return
        if (force or len(self._confirmed) >= self.DELETE_BATCH
                or time.monotonic() - self._confirmed_since >= self.DELETE_EVERY_SECONDS):
            ids, self._confirmed = self._confirmed, []
            self.runtime.delete_published(ids)

    def _loop(self) -> None:
        publisher = None
        next_sweep = 0.0
        while not self._stop.is_set():
            woken = self._wake.wait(self.DELETE_EVERY_SECONDS if self._confirmed
                                    else self.interval)
            self._wake.clear()
            try:
                if publisher is None:
                    publisher = self.publisher_factory()
                while self._ready:
                    rows = [self._ready.popleft()
                            for _ in range(min(self.batch, len(self._ready)))]
                    if not self._confirmed:
                        self._confirmed_since = time.monotonic()
                    self.runtime.publish_rows(rows, publisher, self._confirmed)
                self._flush_deletes(force=not woken)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.interval
                    while self.runtime.relay(publisher, self.batch,
                                             older_than=self.SWEEP_GRACE_SECONDS) > 0:
                        pass
            except Exception as exc:
                # Rows not confirmed stay in the table; the sweep publishes them.
                log.warning("relay_failed", service=self.runtime.service, error=repr(exc))
                with contextlib.suppress(Exception):
                    self._flush_deletes(force=True)
                close = getattr(publisher, "close", None)
                if close:
                    with contextlib.suppress(Exception):
                        close()
                publisher = None
                self._stop.wait(self.interval)
