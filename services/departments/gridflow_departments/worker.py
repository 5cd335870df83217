"""The delivery worker: pushes the deliveries that adapters other than AMQP and the inbox make
(webhook, e-mail, Open311, a city's own), from the departments service's time-driven tick.

- **In order, per unit.** Only a unit's head (its pending delivery with the lowest ``seq``) is
  ever pushed; the next waits until the head is delivered or undeliverable. A unit that cannot
  be reached holds up nobody else: heads of other units are pushed beside it.
- **One pusher per unit, across replicas.** A head is claimed in a short transaction (a row
  lock, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) that sets a lease and commits; the push runs
  with no database connection held; its outcome is recorded in a new unit of work, which also
  leases the unit's next head (one UPDATE: a draining backlog costs two statements and one
  commit a delivery, ``bench/departments.py``). A process that dies mid-push leaves the lease
  to run out, and the head is pushed again with the same ``delivery_id`` (the idempotency key
  the adapter passes on).
- **Retries on operational time**, on ``GRIDFLOW_DELIVERY_RETRY_SCHEDULE``; after the last try
  (or at once, when the system refuses the message) the delivery is undeliverable there and
  ``case_undeliverable`` is announced. The state lives in the table: a restarted service goes
  on where the last one stopped, and a unit that comes back gets its backlog in order.
- **A circuit breaker per department** (per unit without one), in memory per process
  (``domain.delivery.CircuitBreaker``): while open, nothing is tried there and no delivery
  spends an attempt.
- **Never stalls the tick.** Pushes run in a small pool of threads (green threads under nameko,
  whose monkey patching makes them so); a pass only claims what the pool can take now, and
  returns at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common import links, metrics, secrets
from gridflow_common.adapters import (
    KIND_CASE,
    AdapterContext,
    Delivery,
    DepartmentAdapter,
    OpenDelivery,
    PushFailed,
    PushRefused,
    PushResult,
    registry,
)
from gridflow_common.domain.delivery import (
    DEFAULT_BREAKER_COOL_DOWN,
    DEFAULT_BREAKER_THRESHOLD,
    CircuitBreaker,
    RetrySchedule,
)
from gridflow_common.logging import get_logger
from gridflow_common.runtime import ServiceRuntime, Work, real_now
from gridflow_departments.models import DELIVERED, PENDING, UNDELIVERABLE, deliveries

log = get_logger(__name__)

RETRY_SCHEDULE_ENV = "GRIDFLOW_DELIVERY_RETRY_SCHEDULE"
BREAKER_FAILURES_ENV = "GRIDFLOW_DELIVERY_BREAKER_FAILURES"
BREAKER_COOL_DOWN_ENV = "GRIDFLOW_DELIVERY_BREAKER_COOL_DOWN_SECONDS"
POLL_SECONDS_ENV = "GRIDFLOW_DELIVERY_POLL_SECONDS"
LEASE_SECONDS_ENV = "GRIDFLOW_DELIVERY_LEASE_SECONDS"
CONCURRENCY_ENV = "GRIDFLOW_DELIVERY_CONCURRENCY"

WORKER_KEY = "delivery_worker"
OPEN_DELIVERIES_PER_POLL = 1000


@dataclass(frozen=True)
class Settings:
    schedule: RetrySchedule = RetrySchedule()
    breaker_failures: int = DEFAULT_BREAKER_THRESHOLD
    breaker_cool_down: float = DEFAULT_BREAKER_COOL_DOWN
    poll_seconds: float = 60.0
    # Longer than any adapter's timeout: a push still running is never taken by another.
    lease_seconds: float = 300.0
    # Units pushed at once by this process (each a thread, green under nameko).
    concurrency: int = 4
    # Deliveries one thread pushes to one unit in a row before it gives way to another unit's
    # head waiting (it goes on when none waits).
    burst: int = 200
    public_url: str = links.public_url({})

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            text = env.get(name, "").strip()
            if not text:
                return default
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a number") from None
            if value < 0:
                raise ValueError(f"{name}={text!r} cannot be negative")
            return value

        return cls(
            schedule=RetrySchedule.parse(env.get(RETRY_SCHEDULE_ENV)),
            breaker_failures=max(1, int(number(BREAKER_FAILURES_ENV, DEFAULT_BREAKER_THRESHOLD))),
            breaker_cool_down=number(BREAKER_COOL_DOWN_ENV, DEFAULT_BREAKER_COOL_DOWN),
            poll_seconds=number(POLL_SECONDS_ENV, 60.0),
            lease_seconds=number(LEASE_SECONDS_ENV, 300.0),
            concurrency=max(1, int(number(CONCURRENCY_ENV, 4))),
            public_url=links.public_url(env),
        )


@dataclass(frozen=True)
class Claim:
    """A head taken for one push: what the row said when it was claimed."""

    seq: int
    delivery_id: str
    case_id: str
    assignment_id: str
    unit: str
    department: str | None
    role: str
    kind: str
    adapter: str
    jurisdiction_version: int
    message: str
    attempts: int
    external_ref: str | None

    @classmethod
    def of(cls, row: Any, attempts: int) -> Claim:
        """The claim of a deliveries row, on its ``attempts``-th try."""
        return cls(
            seq=row.seq,
            delivery_id=row.delivery_id,
            case_id=row.case_id,
            assignment_id=row.assignment_id,
            unit=row.unit,
            department=row.department,
            role=row.role,
            kind=row.kind,
            adapter=row.adapter,
            jurisdiction_version=row.jurisdiction_version,
            message=row.message,
            attempts=attempts,
            external_ref=row.external_ref,
        )

    @property
    def breaker_key(self) -> str:
        return self.department or self.unit


class DeliveryWorker:
    def __init__(
        self,
        runtime: ServiceRuntime,
        settings: Settings | None = None,
        loader: Callable[[str], type[DepartmentAdapter]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.runtime = runtime
        self.settings = settings or Settings.from_environment()
        # The registry (entry points) unless told otherwise: tests give an in-test class.
        self.loader = loader if loader is not None else registry.load
        self.monotonic = monotonic
        self.breaker = CircuitBreaker(
            self.settings.breaker_failures, self.settings.breaker_cool_down
        )
        self.context = AdapterContext(
            secret=secrets.resolve,
            sign_link=links.make_signer(runtime.engine, self.settings.public_url),
            public_url=self.settings.public_url,
            now=real_now,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="delivery"
        )
        self._lock = threading.Lock()
        self._in_flight: dict[int, Future] = {}  # seq -> its push
        self._adapters: dict[tuple[int, str, str], DepartmentAdapter] = {}
        self._adapters_version: int | None = None
        self._poll: Future | None = None
        self._next_poll = 0.0
        self._closed = False

    # -- one pass ------------------------------------------------------------------------------

    def run_pass(self) -> int:
        """Claim the heads the pool can take now and start their pushes; start a poll when one
        is due. Returns how many pushes were started; does not wait for them."""
        if self._closed:
            return 0
        with self._lock:
            self._in_flight = {s: f for s, f in self._in_flight.items() if not f.done()}
            free = self.settings.concurrency - len(self._in_flight)
        started = 0
        if free > 0:
            for claim in self._claim(free):
                future = self._pool.submit(self._push, claim)
                with self._lock:
                    self._in_flight[claim.seq] = future
                started += 1
        self._maybe_poll()
        return started

    def wait(self, timeout: float = 30.0) -> None:
        """Until the pushes and the poll started so far have ended (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            futures = list(self._in_flight.values())
        if self._poll is not None:
            futures.append(self._poll)
        for future in futures:
            future.result(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            try:
                adapter.close()
            except Exception:
                log.exception("adapter_close_failed", adapter=adapter.config.adapter)

    # -- claiming heads ------------------------------------------------------------------------

    def _claim(self, free: int, unit: str | None = None) -> list[Claim]:
        """Up to ``free`` heads (of ``unit`` only, when given) that are due, not leased and not
        behind an open circuit, leased to this process in one short transaction."""
        with self.runtime.work() as work:
            return self._claim_in(work, free, unit)

    def _claim_in(self, work: Work, free: int, unit: str | None = None) -> list[Claim]:
        now = self.runtime.operational_now()
        claims: list[Claim] = []
        lease_until = now + dt.timedelta(seconds=self.settings.lease_seconds)
        if unit is None:
            pending = work.db.execute(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(deliveries.c.state == PENDING)
            ).scalar_one()
            metrics.DELIVERIES_PENDING.set(pending)
        heads = [seq for _, seq in self._heads(work, unit)]
        if not heads:
            return []
        query = (
            self._due(heads, now)
            .order_by(deliveries.c.next_attempt_at, deliveries.c.seq)
            # More than the pool takes: heads behind an open circuit are passed over.
            .limit(free * 4)
            .with_for_update(skip_locked=True, of=deliveries)
        )
        for row in work.db.execute(query).all():
            if len(claims) >= free:
                break
            claim = Claim.of(row, row.attempts + 1)
            if not self.breaker.allow(claim.breaker_key, self.monotonic()):
                continue
            work.db.execute(
                sa.update(deliveries)
                .where(deliveries.c.seq == row.seq)
                .values(leased_until=lease_until, attempts=claim.attempts)
            )
            claims.append(claim)
        return claims

    # -- pushing -------------------------------------------------------------------------------

    def adapter_for(self, unit: str, adapter: str, version: int) -> DepartmentAdapter:
        """The adapter instance serving ``unit``: built from the jurisdiction in force (rebuilt
        when a new one is installed), or from the version the delivery was made under when the
        city has since moved the unit to another adapter."""
        active, j = self.runtime.jurisdictions.active()
        config = j.adapter_for(unit)
        if config.adapter != adapter:
            active = version
            config = self.runtime.jurisdictions.get(version).adapter_for(unit)
        key = (active, config.code, config.adapter)
        stale: list[DepartmentAdapter] = []
        with self._lock:
            if self._adapters_version is not None and active > self._adapters_version:
                stale = [a for k, a in self._adapters.items() if k[0] < active]
                self._adapters = {k: a for k, a in self._adapters.items() if k[0] >= active}
            self._adapters_version = max(active, self._adapters_version or 0)
            found = self._adapters.get(key)
        for old in stale:
            try:
                old.close()
            except Exception:
                log.exception("adapter_close_failed", adapter=old.config.adapter)
        if found is not None:
            return found
        built = self.loader(config.adapter)(config, self.context)
        with self._lock:
            return self._adapters.setdefault(key, built)

    def _push(self, claim: Claim) -> None:
        """Push ``claim``, then the unit's next heads one after another while they go through
        (a unit that comes back gets its backlog at the speed it takes it, not one a tick), up
        to ``burst`` before the thread is given back for other units."""
        current: Claim | None = claim
        pushed = 0
        try:
            while current is not None and not self._closed:
                if pushed >= self.settings.burst:
                    if self._others_waiting(current.unit):
                        # Given back: the heads that waited longer go first next pass.
                        self._release(current)
                        return
                    pushed = 0
                outcome, current = self._push_one(current, then_next=True)
                if outcome == "failed":
                    return
                pushed += 1
        except Exception:
            # The database went away between pushes: what is leased is taken again after its
            # lease, nothing is lost.
            log.exception("delivery_burst_interrupted", unit=claim.unit)

    def _release(self, claim: Claim) -> None:
        self.breaker.released(claim.breaker_key)
        with self.runtime.work() as work:
            work.db.execute(
                sa.update(deliveries)
                .where(deliveries.c.seq == claim.seq, deliveries.c.state == PENDING)
                .values(
                    leased_until=None,
                    attempts=claim.attempts - 1,
                    # Heads are taken oldest-due first: this one now waits its turn.
                    next_attempt_at=self.runtime.operational_now(),
                )
            )

    def _others_waiting(self, unit: str) -> bool:
        """Whether another unit's head is due and free (so a long backlog gives way)."""
        with self.runtime.work() as work:
            heads = [seq for u, seq in self._heads(work) if u != unit]
            if not heads:
                return False
            now = self.runtime.operational_now()
            return bool(work.db.execute(self._due(heads, now).limit(1)).first())

    def _claim_next(self, work: Work, done: Claim) -> list[Claim]:
        """The head of ``done``'s unit after it, leased in one statement (a backlog drains one
        push, one update of the last and this claim, and one commit a delivery)."""
        if not self.breaker.allow(done.breaker_key, self.monotonic()):
            return []
        now = self.runtime.operational_now()
        row = work.db.execute(
            _NEXT_HEAD,
            {
                "head_unit": done.unit,
                "now": now,
                "lease_until": now + dt.timedelta(seconds=self.settings.lease_seconds),
            },
        ).first()
        if row is None:
            self.breaker.released(done.breaker_key)
            return []
        return [Claim.of(row, row.attempts)]

    @staticmethod
    def _heads(work: Work, unit: str | None = None) -> list[tuple[str, int]]:
        """(unit, seq) of each unit's head: its pending delivery with the lowest seq. Asked on
        its own, before the rows are read: folded into one statement, a planner without fresh
        statistics re-ran it for every pending row (seconds a claim with a backlog of 2,000)."""
        if unit is not None:
            # The first entry of the (unit, state, seq) index: one look, whatever the backlog.
            one = (
                sa.select(deliveries.c.unit, deliveries.c.seq)
                .where(deliveries.c.unit == unit, deliveries.c.state == PENDING)
                .order_by(deliveries.c.seq)
                .limit(1)
            )
            return [(row[0], row[1]) for row in work.db.execute(one)]
        query = (
            sa.select(deliveries.c.unit, sa.func.min(deliveries.c.seq))
            .where(deliveries.c.state == PENDING)
            .group_by(deliveries.c.unit)
        )
        return [(row[0], row[1]) for row in work.db.execute(query)]

    @staticmethod
    def _due(seqs: list[int], now: dt.datetime) -> sa.Select:
        """Those of ``seqs`` still pending, due and not leased (checked again under the row
        lock: another replica may have taken one since)."""
        return sa.select(deliveries).where(
            deliveries.c.seq.in_(seqs),
            deliveries.c.state == PENDING,
            deliveries.c.next_attempt_at <= now,
            sa.or_(deliveries.c.leased_until.is_(None), deliveries.c.leased_until < now),
        )

    def _push_one(self, claim: Claim, then_next: bool = False) -> tuple[str, Claim | None]:
        """One push and its outcome recorded: delivered, failed (to be tried again, or not
        recorded), refused or undeliverable; with ``then_next``, the unit's next head claimed
        in the same transaction when this one is done with."""
        following: list[Claim] = []
        started = time.perf_counter()
        outcome: str
        result: PushResult | None = None
        reason = ""
        retry_after: float | None = None
        try:
            adapter = self.adapter_for(claim.unit, claim.adapter, claim.jurisdiction_version)
            delivery = Delivery(
                delivery_id=claim.delivery_id,
                kind=claim.kind,
                case_id=claim.case_id,
                assignment_id=claim.assignment_id,
                unit=claim.unit,
                department=claim.department,
                role=claim.role,
                message=json.loads(claim.message),
                attempt=claim.attempts,
                external_ref=claim.external_ref,
            )
            if claim.kind == KIND_CASE:
                result = adapter.push(delivery)
            else:
                result = adapter.push_change(delivery)
            outcome = "delivered"
        except PushRefused as exc:
            outcome, reason = "refused", exc.reason
        except PushFailed as exc:
            outcome, reason, retry_after = "failed", exc.reason, exc.retry_after
        except Exception as exc:  # the contract: anything else counts as PushFailed
            outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
        metrics.DELIVERY_PUSH_SECONDS.labels(claim.adapter).observe(time.perf_counter() - started)
        if outcome == "failed":
            self.breaker.failed(claim.breaker_key, self.monotonic())
        else:
            self.breaker.succeeded(claim.breaker_key)
        try:
            with self.runtime.work() as work:
                final = self._record(work, claim, outcome, result, reason[:1000], retry_after)
                # The unit's next head, taken in the same transaction (one commit a delivery
                # instead of two while a backlog drains).
                if final != "failed" and then_next and not self._closed:
                    following = self._claim_next(work, claim)
        except Exception:
            # The lease runs out and the head is pushed again, with the same delivery_id.
            log.exception("delivery_outcome_not_recorded", delivery_id=claim.delivery_id)
            return "failed", None
        metrics.DELIVERY_PUSHES.labels(claim.adapter, final).inc()
        if final != "delivered":
            log.warning(
                "delivery_not_delivered",
                delivery_id=claim.delivery_id,
                unit=claim.unit,
                adapter=claim.adapter,
                outcome=final,
                attempts=claim.attempts,
                reason=reason[:300],
            )
        return final, (following[0] if following else None)

    def _record(
        self,
        work: Work,
        claim: Claim,
        outcome: str,
        result: PushResult | None,
        reason: str,
        retry_after: float | None,
    ) -> str:
        now = self.runtime.operational_now()
        row = deliveries.c
        mine = sa.update(deliveries).where(row.seq == claim.seq, row.state == PENDING)
        if outcome == "delivered":
            assert result is not None
            work.db.execute(
                mine.values(
                    state=DELIVERED,
                    delivered_at=now,
                    leased_until=None,
                    last_error=None,
                    external_ref=result.external_ref or claim.external_ref,
                )
            )
            return "delivered"
        wait = None
        if outcome == "failed":
            wait = self.settings.schedule.wait_after(claim.attempts, retry_after)
        if wait is not None:
            work.db.execute(
                mine.values(
                    next_attempt_at=now + dt.timedelta(seconds=wait),
                    leased_until=None,
                    last_error=reason,
                )
            )
            return "failed"
        changed = work.db.execute(
            mine.values(state=UNDELIVERABLE, leased_until=None, last_error=reason)
        ).rowcount
        if changed:
            work.emit(
                c.CASE_UNDELIVERABLE,
                {
                    "case_id": claim.case_id,
                    "assignment_id": claim.assignment_id,
                    "delivery_id": claim.delivery_id,
                    "unit": claim.unit,
                    "department": claim.department,
                    "role": claim.role,
                    "adapter": claim.adapter,
                    "attempts": claim.attempts,
                    "reason": reason or outcome,
                    "jurisdiction_version": claim.jurisdiction_version,
                },
            )
        return "refused" if outcome == "refused" else "undeliverable"

    # -- polling -------------------------------------------------------------------------------

    def _maybe_poll(self) -> None:
        if self.monotonic() < self._next_poll:
            return
        if self._poll is not None and not self._poll.done():
            return
        self._next_poll = self.monotonic() + self.settings.poll_seconds
        self._poll = self._pool.submit(self.poll_once)

    def poll_once(self) -> int:
        """Ask every polling adapter of the jurisdiction in force about the deliveries still
        open there; announce each word it reports (``case_status_received``, unmapped: intake
        maps it). Returns how many reports."""
        try:
            version, j = self.runtime.jurisdictions.active()
        except Exception:
            return 0
        reported = 0
        for config in j.adapters:
            try:
                if not self.loader(config.adapter).polls:
                    continue
                served = [u.code for u in j.units if j.adapter_for(u.code).code == config.code]
                if not served:
                    continue
                open_rows = self._open_deliveries(config.adapter, served)
                if not open_rows:
                    continue
                adapter = self.adapter_for(open_rows[0].unit, config.adapter, version)
                reports = adapter.poll_status(
                    [
                        OpenDelivery(
                            delivery_id=r.delivery_id,
                            case_id=r.case_id,
                            assignment_id=r.assignment_id,
                            unit=r.unit,
                            external_ref=r.external_ref,
                            last_word=r.last_word,
                        )
                        for r in open_rows
                    ]
                )
            except Exception:
                log.exception("poll_failed", code=config.code, adapter=config.adapter)
                continue
            by_id = {r.delivery_id: r for r in open_rows}
            by_case = {(r.case_id, r.unit): r for r in open_rows}
            for report in reports:
                row = by_id.get(report.delivery_id or "") or by_case.get(
                    (report.case_id, report.unit)
                )
                if row is None:
                    log.warning("poll_report_for_no_open_delivery", case_id=report.case_id)
                    continue
                with self.runtime.work() as work:
                    work.db.execute(
                        sa.update(deliveries)
                        .where(deliveries.c.seq == row.seq)
                        .values(last_word=report.word[:100])
                    )
                    work.emit(
                        c.CASE_STATUS_RECEIVED,
                        {
                            "case_id": row.case_id,
                            "assignment_id": row.assignment_id,
                            "delivery_id": row.delivery_id,
                            "unit": row.unit,
                            "adapter": config.adapter,
                            "word": report.word,
                            "note": report.note,
                            "jurisdiction_version": row.jurisdiction_version,
                        },
                    )
                reported += 1
        return reported

    def _open_deliveries(self, adapter: str, units: list[str]) -> list[Any]:
        """Cases delivered to these units and not since closed or taken away from them."""
        with self.runtime.work() as work:
            rows = work.db.execute(
                sa.select(deliveries)
                .where(
                    deliveries.c.adapter == adapter,
                    deliveries.c.kind == KIND_CASE,
                    deliveries.c.state == DELIVERED,
                    deliveries.c.unit.in_(units),
                )
                .order_by(deliveries.c.seq)
                .limit(OPEN_DELIVERIES_PER_POLL)
            ).all()
            if not rows:
                return []
            ended = set(
                work.db.execute(
                    sa.select(deliveries.c.delivery_id).where(
                        deliveries.c.case_id.in_({r.case_id for r in rows}),
                        deliveries.c.kind != KIND_CASE,
                        sa.or_(
                            deliveries.c.delivery_id.like("%/closed/%"),
                            deliveries.c.delivery_id.like("%/withdrawn/%"),
                        ),
                    )
                ).scalars()
            )
        ended_bases = {i.rsplit("/", 2)[0] for i in ended}
        return [r for r in rows if r.delivery_id not in ended_bases]


def _next_head_statement() -> sa.Update:
    """Lease a unit's head when it is due and free: its lowest pending ``seq``, found through
    the (unit, state, seq) index. The row lock the update takes (waited for, not skipped: a
    skipped head would let the row behind it go first) and the conditions, checked again on
    the row as it then stands, keep a head another replica took from being taken twice."""
    row = deliveries.c
    head = (
        sa.select(row.seq)
        .where(row.unit == sa.bindparam("head_unit"), row.state == PENDING)
        .order_by(row.seq)
        .limit(1)
        .scalar_subquery()
    )
    now = sa.bindparam("now", type_=row.next_attempt_at.type)
    return (
        sa.update(deliveries)
        .where(
            row.seq == head,
            row.state == PENDING,
            row.next_attempt_at <= now,
            sa.or_(row.leased_until.is_(None), row.leased_until < now),
        )
        .values(
            leased_until=sa.bindparam("lease_until", type_=row.leased_until.type),
            attempts=row.attempts + 1,
        )
        .returning(*row)
    )


# Built once: a backlog runs it once a delivery.
_NEXT_HEAD = _next_head_statement()


def worker_of(runtime: ServiceRuntime) -> DeliveryWorker:
    """The runtime's delivery worker, made on first use (settings from the environment)."""
    worker = runtime.extras.get(WORKER_KEY)
    if worker is None:
        worker = runtime.extras[WORKER_KEY] = DeliveryWorker(runtime)
    return worker


def run_deliveries(runtime: ServiceRuntime) -> int:
    """The departments service's periodic work (``ServiceDefinition.periodic``, once a second
    from the tick): one pass of the delivery worker. Returns at once."""
    return worker_of(runtime).run_pass()
