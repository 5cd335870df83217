"""The outbox relay: committed outbox rows are published through a ``Publisher`` (the fast
path right after each commit, a sweep of the table for whatever that missed); a row is deleted
only once the broker has confirmed it and did not return it as unroutable, and a confirmed row
is remembered until its delete has committed, so a failed delete never republishes it.

Both paths hold the rows they publish locked (``FOR UPDATE SKIP LOCKED``) from before the first
publish until their delete commits, so two relays (replicas of a service) never publish the same
row: a row another relay holds, or has already deleted, is left out.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from gridflow_common import metrics
from gridflow_common.logging import get_logger
from gridflow_common.runtime.outage import Outage
from gridflow_common.runtime.unit_of_work import OutboxRow

if TYPE_CHECKING:
    from gridflow_common.runtime.service_runtime import ServiceRuntime

log = get_logger(__name__)


class Publisher(Protocol):
    def publish(self, exchange: str, routing_key: str, body: str) -> None:
        """Publish durably; return only once the broker has taken the message, raise otherwise."""


Message = tuple[str, str, str]  # exchange, routing key, body


def publish_all(publisher: Publisher, rows: Sequence[Any]) -> tuple[list[int], Exception | None]:
    """Publish ``rows`` (each with ``id``, ``exchange``, ``routing_key``, ``body``) in order;
    return the ids the broker confirmed and the failure that stopped the rest, if any.

    A publisher with ``publish_many(messages, confirmed)`` (the kombu publisher) sends the whole
    batch before it waits for the broker's confirms, one round trip for all of them; it appends
    the index of each confirmed message to ``confirmed`` and raises if any was not. Otherwise
    each message is published and confirmed in turn, up to the first failure."""
    ids: list[int] = []
    many = getattr(publisher, "publish_many", None)
    if many is not None:
        done: list[int] = []
        try:
            many([(row.exchange, row.routing_key, row.body) for row in rows], done)
        except Exception as exc:
            return [rows[i].id for i in done], exc
        return [rows[i].id for i in done], None
    for row in rows:
        try:
            publisher.publish(row.exchange, row.routing_key, row.body)
        except Exception as exc:
            return ids, exc
        ids.append(row.id)
    return ids, None


class Outbox:
    def __init__(self, runtime: ServiceRuntime):
        self.runtime = runtime
        self.table = runtime.tables["outbox"]

    def publish_rows(
        self, rows: list[OutboxRow], publisher: Publisher, confirmed: list[int] | None = None
    ) -> int:
        """The fast path: publish rows just committed (known in memory).

        The rows are first claimed (locked, skipping those locked by another relay's sweep;
        one already published and deleted is simply not found), published, and the confirmed
        ones deleted in the same transaction, also when a later publish failed (which then
        raises; the rest stays for the sweep). Should that delete not commit, the confirmed ids
        are appended to ``confirmed``, when given, for the caller to delete later."""
        if not rows:
            return 0
        outbox = self.table
        published: list[int] = []
        failure: Exception | None = None
        try:
            with self.runtime.units.lock, self.runtime.engine.connect() as conn, conn.begin():
                claimed = set(
                    conn.execute(
                        sa.select(outbox.c.id)
                        .where(outbox.c.id.in_([row.id for row in rows]))
                        .with_for_update(skip_locked=True)
                    ).scalars()
                )
                published, failure = publish_all(
                    publisher, [row for row in rows if row.id in claimed]
                )
                if published:
                    conn.execute(sa.delete(outbox).where(outbox.c.id.in_(published)))
        except Exception:
            if confirmed is not None:
                confirmed.extend(published)
            raise
        if published:
            metrics.PUBLISHED.labels(self.runtime.service).inc(len(published))
        if failure is not None:
            raise failure
        return len(published)

    def delete_published(self, ids: list[int]) -> None:
        if not ids:
            return
        with self.runtime.units.lock, self.runtime.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.id.in_(ids)))
        metrics.PUBLISHED.labels(self.runtime.service).inc(len(ids))

    def sweep(
        self,
        publisher: Publisher,
        batch: int = 500,
        older_than: float = 0.0,
        confirmed: list[int] | None = None,
        skip: Collection[int] = (),
        swept: list[int] | None = None,
    ) -> int:
        """Publish rows left in the table (a crash between commit and publish, a broker
        outage), oldest first; ``older_than`` seconds (operational time) leaves the fast path
        its rows, ``skip`` the rows already confirmed whose delete is pending. Returns how many
        were published.

        The confirmed rows are deleted in the sweep's transaction; when that delete cannot
        commit and ``confirmed`` is given, their ids are appended there for the caller to
        delete later, instead of being published again by the next sweep. ``swept`` collects
        the ids this sweep published (the relay's fast path then leaves them alone)."""
        outbox = self.table
        published: list[int] = []
        cutoff = self.runtime.operational_now() - dt.timedelta(seconds=older_than)
        query = (
            sa.select(outbox.c.id, outbox.c.exchange, outbox.c.routing_key, outbox.c.body)
            .where(outbox.c.created_at <= cutoff)
            .order_by(outbox.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        if skip:
            query = query.where(outbox.c.id.notin_(list(skip)))
        failure: Exception | None = None
        try:
            with self.runtime.units.lock, self.runtime.engine.connect() as conn, conn.begin():
                rows = conn.execute(query).all()
                # A failure is re-raised once the confirmed rows are deleted.
                published, failure = publish_all(publisher, rows)
                # Whatever was confirmed is deleted even when a later publish failed; the rest
                # stays for the next pass.
                if published:
                    conn.execute(sa.delete(outbox).where(outbox.c.id.in_(published)))
        except Exception:
            if confirmed is not None:
                confirmed.extend(published)
            raise
        finally:
            if swept is not None:
                swept.extend(published)
        if failure is not None:
            raise failure
        if published:
            metrics.PUBLISHED.labels(self.runtime.service).inc(len(published))
        return len(published)

    def pending(self) -> int:
        with self.runtime.units.lock, self.runtime.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one()


class RelayLoop:
    """Publishes each commit's outbox rows right after the commit (handed over in memory), and
    sweeps the table every ``interval`` for rows the fast path did not publish.

    Under load the fast path batches by itself: whatever commits arrived while it was publishing
    go out in the next pass (up to ``batch`` rows), all published before their confirms are
    awaited, and deleted in one statement. ``start(spawn)`` runs the loop
    through the caller's thread spawner (nameko: ``container.spawn_managed_thread``, so the
    container owns it and a crash of the loop is the container's to see); without one it is a
    plain daemon thread (the embedded default).
    """

    # A row the fast path holds is left alone by the sweep for this long.
    SWEEP_GRACE_SECONDS = 5.0
    DELETE_EVERY_SECONDS = 0.2
    DELETE_BATCH = 1000

    def __init__(
        self,
        runtime: ServiceRuntime,
        publisher_factory: Callable[[], Publisher],
        interval: float = 1.0,
        batch: int = 500,
    ):
        self.runtime = runtime
        self.publisher_factory = publisher_factory
        self.interval = interval
        self.batch = batch
        self._ready: collections.deque[OutboxRow] = collections.deque()
        # Confirmed rows whose delete did not commit (the database blinked) wait here, and stay
        # until a later delete has committed: both paths skip them, so a failed delete never
        # republishes them. If the process dies first, a sweep publishes them again and
        # consumers drop the duplicate.
        self._confirmed: list[int] = []
        self._confirmed_since = 0.0
        # Rows the sweep published (id -> when): a commit's callback that reaches the fast path
        # only after the sweep took its rows (a thread stalled past the grace) leaves them alone
        # without asking the database (which would not find them, or find them locked).
        self._swept: dict[int, float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: Any = None
        self.outage = Outage("relay_failed", service=runtime.service)
        runtime.on_commit(self._committed)

    def _committed(self, rows: list[OutboxRow]) -> None:
        self._ready.extend(rows)
        self._wake.set()

    def start(self, spawn: Callable[..., Any] | None = None) -> None:
        self._done.clear()
        if spawn is not None:
            self._thread = spawn(self._run, identifier=f"relay-{self.runtime.service}")
            return
        self._thread = threading.Thread(
            target=self._run, name=f"relay-{self.runtime.service}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._done.wait(timeout=5)
        with contextlib.suppress(Exception):
            self._flush_deletes(force=True)

    def _flush_deletes(self, force: bool = False) -> None:
        if not self._confirmed:
            return
        if (
            force
            or len(self._confirmed) >= self.DELETE_BATCH
            or time.monotonic() - self._confirmed_since >= self.DELETE_EVERY_SECONDS
        ):
            ids = list(self._confirmed)
            self.runtime.delete_published(ids)
            # Only now, with the delete committed, are they forgotten.
            del self._confirmed[: len(ids)]

    SWEPT_MEMORY_SECONDS = 120.0

    def _remember_swept(self, ids: list[int]) -> None:
        now = time.monotonic()
        if self._swept:
            horizon = now - self.SWEPT_MEMORY_SECONDS
            self._swept = {i: t for i, t in self._swept.items() if t >= horizon}
        for row_id in ids:
            self._swept[row_id] = now

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._done.set()

    def _loop(self) -> None:
        publisher = None
        next_sweep = 0.0
        while not self._stop.is_set():
            woken = self._wake.wait(self.DELETE_EVERY_SECONDS if self._confirmed else self.interval)
            self._wake.clear()
            try:
                if publisher is None:
                    publisher = self.publisher_factory()
                while self._ready:
                    rows = [self._ready.popleft() for _ in range(min(self.batch, len(self._ready)))]
                    if self._swept or self._confirmed:
                        # Published already (by the sweep, or confirmed with its delete pending).
                        done = set(self._confirmed)
                        rows = [r for r in rows if r.id not in self._swept and r.id not in done]
                    if not self._confirmed:
                        self._confirmed_since = time.monotonic()
                    self.runtime.outbox.publish_rows(rows, publisher, self._confirmed)
                self._flush_deletes(force=not woken)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.interval
                    swept: list[int] = []
                    try:
                        while (
                            self.runtime.outbox.sweep(
                                publisher,
                                self.batch,
                                older_than=self.SWEEP_GRACE_SECONDS,
                                confirmed=self._confirmed,
                                skip=self._confirmed,
                                swept=swept,
                            )
                            > 0
                        ):
                            pass
                    finally:
                        # Published is published, whether or not its delete then committed.
                        self._remember_swept(swept)
                self.outage.recovered()
            except Exception as exc:
                # Rows not confirmed stay in the table; the sweep publishes them. Confirmed rows
                # stay in memory until their delete commits.
                self.outage.failed(exc)
                with contextlib.suppress(Exception):
                    self._flush_deletes(force=True)
                close = getattr(publisher, "close", None)
                if close:
                    with contextlib.suppress(Exception):
                        close()
                publisher = None
                self._stop.wait(min(self.outage.delay(), self.interval * 5))
