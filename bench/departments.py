"""``make bench-departments``: pushes per second through the AMQP and webhook adapters, and the
time from a unit's recovery to its whole backlog delivered (issue 7, "Measured").

Each Gridflow figure sits beside a baseline measured in the same run, on this machine, because
the machine is noisy:

1. **Baselines.** Raw kombu: confirmed, persistent, mandatory publishes of a department message
   to a topic exchange with a bound durable queue, one connection (the way the relay
   publishes). Raw HTTP: the same message POSTed, signed, to the department double
   (``tests/support/department_http.py``, a process of its own) from one keep-alive httpx client.
2. **AMQP adapter.** ``case_routed`` events handled by the departments service's own handler
   (``runtime.consume`` of ``on_case_routed``, from BENCH_DEPT_THREADS threads, as nameko's
   workers call it: idempotency claim, the delivery row and the outbox rows in one transaction)
   with the service's outbox relay publishing to the unit's queue (``KombuPublisher``). Counted
   until every message is on the unit's queue. Each case is two confirmed publishes (the
   department message and ``case_dispatched``).
3. **Webhook adapter.** BENCH_DEPT_WEBHOOK_N deliveries pending for a webhook unit (made by
   ``on_case_routed``), then the delivery worker started, driven once a second as the service's
   tick drives it: pushes/s until the double has them all, checked in order and each once.
4. **Backlog.** The double down, the worker running (it tries, fails, its breaker opens);
   BENCH_DEPT_BACKLOG_N cases routed to that unit while, every 20th, a case goes to a second
   webhook department on a second double that stays up; then the first double comes back: the
   time from its recovery to the first push it answers and to the whole backlog delivered,
   checked in order and each once; and the second department's pushes during the outage.

The worker's retry schedule and breaker cool-down are shortened to 1 s for the run
(GRIDFLOW_DELIVERY_RETRY_SCHEDULE, GRIDFLOW_DELIVERY_BREAKER_COOL_DOWN_SECONDS, unless already
set): with the shipped ones (30 s cool-down, waits growing to hours) the time to the first push
after a recovery is mostly the wait the schedule has reached. Works in a vhost and a database
of its own (``gridflow_bench_departments``), dropped at the end. Measures, asserts nothing; a
broken order or a duplicate is printed as such.

Options (environment): BENCH_DEPT_AMQP_N (5000 cases), BENCH_DEPT_WEBHOOK_N (3000),
BENCH_DEPT_BACKLOG_N (10000), BENCH_DEPT_THREADS (4), BENCH_DEPT_RAW_HTTP_N (2000).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import kombu
import sqlalchemy as sa

from bench import infra
from gridflow_common import contracts as c
from gridflow_common import signing
from gridflow_common.domain import vocabulary as v

VHOST = "gridflow_bench_departments"
DB_NAME = "gridflow_bench_departments"
AMQP_URI = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
DATABASE_URL = f"{infra.PG_SERVER}/{DB_NAME}"

AMQP_N = int(os.environ.get("BENCH_DEPT_AMQP_N", 5000))
WEBHOOK_N = int(os.environ.get("BENCH_DEPT_WEBHOOK_N", 3000))
BACKLOG_N = int(os.environ.get("BENCH_DEPT_BACKLOG_N", 10000))
THREADS = int(os.environ.get("BENCH_DEPT_THREADS", 4))
RAW_HTTP_N = int(os.environ.get("BENCH_DEPT_RAW_HTTP_N", 2000))
# Every OTHER_EVERY-th case of the backlog phase goes to the department that stays up.
OTHER_EVERY = 20

SECRET_ENV = "BENCH_DEPT_WEBHOOK_SECRET"
SECRET = "bench-departments-secret"
CST = dt.timezone(dt.timedelta(hours=8))

AMQP_UNIT = "fire-330302"  # no adapters.csv row: AMQP, the default
WEBHOOK_UNIT = "housing-330302"  # the housing bureau's row: webhook, the double that goes down
OTHER_UNIT = "water-330302"  # the water group's row: webhook, a second double that stays up
RAW_EXCHANGE = "bench.raw.cases"
RAW_QUEUE = "bench.raw.unit"
WAIT_SECONDS = 900.0

# The worker's timings for this run (see the module's docstring), unless the caller set them.
SHORT_TIMINGS = {
    "GRIDFLOW_DELIVERY_RETRY_SCHEDULE": ",".join(["1"] * 3600),
    "GRIDFLOW_DELIVERY_BREAKER_COOL_DOWN_SECONDS": "1",
}


def log(message: str) -> None:
    infra.log(message)


# -- the departments service, in this process -----------------------------------------------------


def payload(case_id: str, holder: str, department: str, version: int) -> dict:
    return {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "seq": 1,
        "reason": v.REASON_NEW,
        "category": "event.gas_leak",
        "tier": v.DISTRICT,
        "holder": holder,
        "lead": department,
        "assisting": [],
        "escalations": 0,
        "area_code": "330302001001001",
        "description": "青园社区三楼楼道闻到煤气味，住户已撤离，请尽快处置",
        "location": {"lat": 27.99, "lon": 120.555, "address": "鹿城区五马街道青园社区 12 幢"},
        "reporter": {"name": "庄**", "phone": "138****0001"},
        "jurisdiction_version": version,
    }


class Departments:
    """The departments service's runtime (handlers, outbox, relay) over the bench database and
    vhost, as ``DepartmentsRuntime`` builds it, minus nameko."""

    def __init__(self, files: dict[str, str]):
        from gridflow_app import bootstrap
        from gridflow_common.clock import make_clock
        from gridflow_common.db import make_engine
        from gridflow_common.jurisdictions import JurisdictionStore
        from gridflow_common.nameko_support import KombuPublisher
        from gridflow_common.runtime import RelayLoop, ServiceRuntime
        from gridflow_departments.handlers import DEFINITION

        self.engine = make_engine(DATABASE_URL, pool_size=THREADS + 12)
        bootstrap.upgrade_all(self.engine)
        store = JurisdictionStore(self.engine)
        self.version = store.install(files)
        self.runtime = ServiceRuntime(
            DEFINITION.name,
            self.engine,
            make_clock(self.engine, "real"),
            store,
            DEFINITION.tables(),
        )
        self.handler = DEFINITION.handlers["on_case_routed"]
        self.relay = RelayLoop(self.runtime, lambda: KombuPublisher(AMQP_URI, DEFINITION.name))
        self.relay.start()
        self.routed_at: dict[str, float] = {}

    def events(self, cases: list[tuple[str, str, str]]) -> list[tuple[str, dict]]:
        """``case_routed`` messages for ``(case_id, holder unit, department)``, as routing
        announces them (made before the clock starts: routing's work, not departments')."""
        return [
            (
                case_id,
                c.make_event(
                    c.ROUTING,
                    c.CASE_ROUTED,
                    dt.datetime.now(CST),
                    payload(case_id, holder, department, self.version),
                ).to_message(),
            )
            for case_id, holder, department in cases
        ]

    def route(self, cases: list[tuple[str, str, str]]) -> None:
        self.consume(self.events(cases))

    def consume(self, events: list[tuple[str, dict]]) -> None:
        """Hand the events to ``on_case_routed`` from THREADS threads, each taking the next as
        nameko's workers take the next message."""
        feed = iter(events)
        lock = threading.Lock()
        problems: list[str] = []

        def work() -> None:
            while True:
                with lock:
                    item = next(feed, None)
                if item is None:
                    return
                case_id, message = item
                outcome = self.runtime.consume("on_case_routed", message, self.handler)
                self.routed_at[case_id] = time.time()
                if outcome != "done":
                    problems.append(f"{case_id}: {outcome}")

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if problems:
            raise RuntimeError(f"{len(problems)} cases not handled, first: {problems[0]}")

    def delivery_order(self, unit: str, case_ids: set[str]) -> list[str]:
        """The delivery ids of ``case_ids`` at ``unit`` in the order the worker must push them."""
        from gridflow_departments.models import deliveries

        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.delivery_id, deliveries.c.case_id)
                .where(deliveries.c.unit == unit)
                .order_by(deliveries.c.seq)
            ).all()
        return [r.delivery_id for r in rows if r.case_id in case_ids]

    def states(self, unit: str) -> Counter:
        from gridflow_departments.models import deliveries

        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.state, sa.func.count())
                .where(deliveries.c.unit == unit)
                .group_by(deliveries.c.state)
            ).all()
        return Counter({r[0]: r[1] for r in rows})

    def close(self) -> None:
        self.relay.stop()
        self.engine.dispose()


class Ticking:
    """The delivery worker driven once a second, as the departments service's tick drives it."""

    def __init__(self, departments: Departments):
        from gridflow_departments.worker import DeliveryWorker, Settings

        self.settings = Settings.from_environment()
        self.worker = DeliveryWorker(departments.runtime, self.settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-tick", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.worker.run_pass()
            except Exception as exc:  # the service's tick logs and goes on
                log(f"tick failed: {type(exc).__name__}: {exc}")
            self._stop.wait(1.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.worker.close()


# -- checks ------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)  # bounded poll: the deadline above
    return condition()


def pushes_of(double: Any, wanted: list[str]) -> list[dict]:
    """The double's records of POSTs of ``wanted`` delivery ids that it answered 2xx, in the
    order it received them (copies included)."""
    ids = set(wanted)
    return [
        {"delivery_id": r["delivery_id"], "at": r["at"], "answered": r["answered"]}
        for r in double.pushes()
        if r["delivery_id"] in ids and r["answered"] is not None and r["answered"] < 300
    ]


def order_check(received: list[dict], wanted: list[str]) -> dict:
    got = [r["delivery_id"] for r in received]
    counts = Counter(got)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    first_seen: list[str] = []
    seen: set[str] = set()
    for delivery_id in got:
        if delivery_id not in seen:
            seen.add(delivery_id)
            first_seen.append(delivery_id)
    return {
        "received": len(got),
        "distinct": len(counts),
        "missing": len(set(wanted) - seen),
        "duplicates": duplicates,
        "in_order": first_seen == wanted,
    }


# -- 1. baselines --------------------------------------------------------------------------------


def raw_kombu(body: bytes, n: int) -> dict:
    """Confirmed, persistent, mandatory publishes on one connection, one at a time."""
    exchange = kombu.Exchange(RAW_EXCHANGE, type="topic", durable=True)
    queue = kombu.Queue(RAW_QUEUE, exchange=exchange, routing_key="fire.*", durable=True)
    with kombu.Connection(AMQP_URI, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue.declare(channel=channel)
        producer = kombu.Producer(channel)

        def publish(k: int) -> None:
            producer.publish(
                body,
                exchange=RAW_EXCHANGE,
                routing_key=f"fire.{AMQP_UNIT}",
                mandatory=True,
                delivery_mode=2,
                content_type="application/json",
                retry=False,
                message_id=f"raw-{k}",
            )

        for k in range(200):  # warm: the connection and the code paths
            publish(-k)
        cpu0 = infra.cpu_seconds(os.getpid()) or 0.0
        started = time.perf_counter()
        for k in range(n):
            publish(k)
        wall = time.perf_counter() - started
        cpu = (infra.cpu_seconds(os.getpid()) or 0.0) - cpu0
    return {"n": n, "per_second": n / wall, "cpu_ms": cpu * 1000 / n}


def raw_http(endpoint: str, body: bytes, n: int) -> dict:
    """Signed POSTs, one after another, on one keep-alive client."""
    seconds: list[float] = []
    with httpx.Client(timeout=10.0) as client:

        def post(k: int) -> None:
            ts = int(time.time())
            reply = client.post(
                endpoint,
                content=body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    signing.SIGNATURE_HEADER: signing.sign(SECRET, ts, body),
                    signing.TIMESTAMP_HEADER: str(ts),
                    signing.IDEMPOTENCY_HEADER: f"raw-{k}",
                    "X-Gridflow-Delivery": f"raw-{k}",
                },
            )
            reply.raise_for_status()

        for k in range(100):
            post(-k - 1)
        started = time.perf_counter()
        for k in range(n):
            t = time.perf_counter()
            post(k)
            seconds.append(time.perf_counter() - t)
        wall = time.perf_counter() - started
    return {"n": n, "per_second": n / wall, **infra.latency_summary(seconds)}


# -- 2. the AMQP adapter -------------------------------------------------------------------------


def amqp_phase(departments: Departments, n: int) -> dict:
    unit_queue = c.unit_queue(AMQP_UNIT)
    cases = [(f"AM-{k:06d}", AMQP_UNIT, "fire") for k in range(n)]
    departments.route([(f"AW-{k:04d}", AMQP_UNIT, "fire") for k in range(100)])  # warm
    if not wait_for(
        lambda: infra.queue_depths([unit_queue], AMQP_URI)[unit_queue] >= 100, timeout=60
    ):
        raise RuntimeError("the warm-up cases did not reach the unit's queue")
    base = infra.queue_depths([unit_queue], AMQP_URI)[unit_queue]
    events = departments.events(cases)
    cpu0 = infra.cpu_seconds(os.getpid()) or 0.0
    busy0 = infra.machine_busy()
    started = time.perf_counter()
    departments.consume(events)
    handled = time.perf_counter() - started
    arrived = wait_for(
        lambda: infra.queue_depths([unit_queue], AMQP_URI)[unit_queue] >= base + n,
        timeout=WAIT_SECONDS,
        # Each look is a connection of its own: often enough to time, rarely enough not to load
        # the broker being measured.
        every=0.25,
    )
    wall = time.perf_counter() - started
    cpu = (infra.cpu_seconds(os.getpid()) or 0.0) - cpu0
    busy1 = infra.machine_busy()
    depth = infra.queue_depths([unit_queue], AMQP_URI)[unit_queue] - base
    return {
        "n": n,
        "on_queue": depth,
        "complete": arrived,
        "per_second": depth / wall,
        "handled_per_second": n / handled,
        "python_cpu_ms": cpu * 1000 / n,
        "machine_busy": (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1),
    }


# -- 3. the webhook adapter ----------------------------------------------------------------------


def webhook_phase(departments: Departments, double: Any, n: int) -> dict:
    case_ids = [f"WH-{k:06d}" for k in range(n)]
    departments.route([(cid, WEBHOOK_UNIT, "housing") for cid in case_ids])
    wanted = departments.delivery_order(WEBHOOK_UNIT, set(case_ids))
    double.reset()
    ticking = Ticking(departments)
    cpu0 = infra.cpu_seconds(os.getpid()) or 0.0
    started_at = time.time()
    started = time.perf_counter()
    ticking.start()
    try:
        done = wait_for(
            lambda: departments.states(WEBHOOK_UNIT)["pending"] == 0,
            timeout=WAIT_SECONDS,
            every=0.2,
        )
    finally:
        ticking.stop()
    cpu = (infra.cpu_seconds(os.getpid()) or 0.0) - cpu0
    received = pushes_of(double, wanted)
    check = order_check(received, wanted)
    last = max((r["at"] for r in received), default=started_at)
    wall = last - started_at
    return {
        "n": n,
        "complete": done,
        "per_second": check["distinct"] / wall if wall > 0 else None,
        "wall": round(time.perf_counter() - started, 2),
        "python_cpu_ms": cpu * 1000 / n,
        **check,
    }


# -- 4. a backlog after an outage ----------------------------------------------------------------


def backlog_phase(departments: Departments, double: Any, other: Any, n: int) -> dict:
    cases: list[tuple[str, str, str]] = []
    for k in range(n):
        cases.append((f"BL-{k:06d}", WEBHOOK_UNIT, "housing"))
        if k % OTHER_EVERY == 0:
            cases.append((f"OT-{k:06d}", OTHER_UNIT, "water"))
    backlog_ids = {cid for cid, unit, _ in cases if unit == WEBHOOK_UNIT}
    other_ids = {cid for cid, unit, _ in cases if unit == OTHER_UNIT}
    double.reset()
    other.reset()
    double.go_down()
    ticking = Ticking(departments)
    ticking.start()
    try:
        events = departments.events(cases)
        routing_started = time.perf_counter()
        departments.consume(events)
        routing = time.perf_counter() - routing_started
        wanted = departments.delivery_order(WEBHOOK_UNIT, backlog_ids)
        other_wanted = departments.delivery_order(OTHER_UNIT, other_ids)
        # The other department's cases go through while the first is down.
        wait_for(lambda: departments.states(OTHER_UNIT)["pending"] == 0, timeout=120, every=0.2)
        # Long enough for the head to have been tried, failed and the breaker to have opened.
        time.sleep(3)  # bounded: a fixed span of the outage, not a wait for a message
        tried = _head_attempts(departments, wanted[0])
        outage_other = pushes_of(other, other_wanted)
        pending_before = departments.states(WEBHOOK_UNIT)["pending"]
        recovered_at = time.time()
        double.come_back()
        done = wait_for(
            lambda: departments.states(WEBHOOK_UNIT)["pending"] == 0,
            timeout=WAIT_SECONDS,
            every=0.2,
        )
    finally:
        ticking.stop()
    received = pushes_of(double, wanted)
    check = order_check(received, wanted)
    other_check = order_check(outage_other, other_wanted)
    lags = [r["at"] - departments.routed_at[r["delivery_id"].split("-1/")[0]] for r in outage_other]
    first = min((r["at"] for r in received), default=None)
    last = max((r["at"] for r in received), default=None)
    drain = check["distinct"] / (last - first) if first and last and last > first else None
    return {
        "n": n,
        "complete": done,
        "pending_at_recovery": pending_before,
        "head_attempts_during_outage": tried,
        "routing_seconds": round(routing, 1),
        "first_after_s": None if first is None else round(first - recovered_at, 2),
        "all_after_s": None if last is None else round(last - recovered_at, 2),
        "per_second": drain,
        **check,
        "other": {
            "n": len(other_wanted),
            "delivered_during_outage": other_check["distinct"],
            "in_order": other_check["in_order"],
            "duplicates": other_check["duplicates"],
            **infra.latency_summary(lags),
        },
    }


def _head_attempts(departments: Departments, delivery_id: str) -> int:
    from gridflow_departments.models import deliveries

    with departments.engine.connect() as conn:
        return conn.execute(
            sa.select(deliveries.c.attempts).where(deliveries.c.delivery_id == delivery_id)
        ).scalar_one()


# -- the run -------------------------------------------------------------------------------------


def jurisdiction(endpoint: str, other_endpoint: str) -> dict[str, str]:
    from gridflow_app.folders import jurisdiction_files

    files = jurisdiction_files()
    files["adapters.csv"] = (
        "code,adapter,endpoint,credential_ref\n"
        f"housing,webhook,{endpoint},env:{SECRET_ENV}\n"
        f"water,webhook,{other_endpoint},env:{SECRET_ENV}\n"
    )
    return files


def sample_body(departments: Departments) -> bytes:
    """A department message as the service makes it (the AMQP phase's first case)."""
    from gridflow_departments.models import deliveries

    with departments.engine.connect() as conn:
        message = conn.execute(
            sa.select(deliveries.c.message).where(deliveries.c.unit == AMQP_UNIT).limit(1)
        ).scalar_one()
    return json.dumps(json.loads(message), ensure_ascii=False, separators=(",", ":")).encode()


def _f(value: Any, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def table(r: dict) -> str:
    a, w, b, k, h = r["amqp"], r["webhook"], r["backlog"], r["raw_kombu"], r["raw_http"]
    o = b["other"]

    def row(label: str, base: str, ours: str, ratio: str = "") -> str:
        return f"  {label:44} {base:>14} {ours:>14} {ratio:>8}".rstrip()

    def ratio(x: float | None, y: float | None) -> str:
        return "n/a" if not x or not y else f"{x / y:.2f}"

    lines = [
        "",
        f"Departments benchmark (vhost and database {VHOST}; load before {r['load']})",
        f"  worker timings: {r['timings']}",
        "",
        row("", "baseline", "Gridflow", "ratio"),
        row(
            "AMQP: deliveries/s onto the unit's queue",
            _f(k["per_second"]),
            _f(a["per_second"]),
            ratio(a["per_second"], k["per_second"]),
        ),
        row("  (baseline: raw confirmed publishes/s)", "", ""),
        row("  cases handled/s (committed)", "", _f(a["handled_per_second"])),
        row(
            "  Python CPU per delivery, ms",
            _f(k["cpu_ms"], 2),
            _f(a["python_cpu_ms"], 2),
        ),
        row("  machine busy", "", _f(a["machine_busy"] * 100, 0, " %")),
        row(
            "webhook: pushes/s, one unit",
            _f(h["per_second"]),
            _f(w["per_second"]),
            ratio(w["per_second"], h["per_second"]),
        ),
        row("  (baseline: raw signed POSTs/s, p50 ms)", _f(h["p50_ms"], 2, " ms"), ""),
        row(
            "  delivered, once each, in order",
            "",
            f"{w['distinct']}/{w['n']} {'yes' if w['in_order'] and not w['duplicates'] else 'NO'}",
        ),
        row("  Python CPU per push, ms", "", _f(w["python_cpu_ms"], 2)),
        row(f"backlog of {b['n']:,} after an outage", "", ""),
        row("  pending at recovery", "", _f(b["pending_at_recovery"])),
        row("  recovery -> first push answered", "", _f(b["first_after_s"], 2, " s")),
        row("  recovery -> whole backlog delivered", "", _f(b["all_after_s"], 1, " s")),
        row(
            "  drain rate, pushes/s",
            _f(h["per_second"]),
            _f(b["per_second"]),
            ratio(b["per_second"], h["per_second"]),
        ),
        row(
            "  delivered, once each, in order",
            "",
            f"{b['distinct']}/{b['n']} {'yes' if b['in_order'] and not b['duplicates'] else 'NO'}",
        ),
        row("  duplicates / missing", "", f"{b['duplicates']} / {b['missing']}"),
        row("  head's tries during the outage", "", _f(b["head_attempts_during_outage"])),
        row(
            "  other department during the outage",
            "",
            f"{o['delivered_during_outage']}/{o['n']} "
            + ("in order" if o["in_order"] else "NOT IN ORDER"),
        ),
        row(
            "  its routed -> pushed p50 / p99",
            "",
            f"{_f(o['p50_ms'], 0)} / {_f(o['p99_ms'], 0)} ms",
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    for name, value in SHORT_TIMINGS.items():
        os.environ.setdefault(name, value)
    os.environ[SECRET_ENV] = SECRET
    from tests.support.department_http import DepartmentDouble

    results: dict[str, Any] = {
        "load": infra.load_average(),
        "timings": {
            "retry": f"{len(os.environ['GRIDFLOW_DELIVERY_RETRY_SCHEDULE'].split(','))} waits, "
            f"first {os.environ['GRIDFLOW_DELIVERY_RETRY_SCHEDULE'].split(',')[0]} s",
            "breaker_cool_down_s": os.environ["GRIDFLOW_DELIVERY_BREAKER_COOL_DOWN_SECONDS"],
        },
    }
    log(f"fresh vhost and database {VHOST}")
    infra.fresh_vhost(VHOST)
    infra.fresh_database(DB_NAME)
    double = DepartmentDouble(SECRET)
    other = DepartmentDouble(SECRET)
    departments = None
    try:
        departments = Departments(jurisdiction(double.endpoint, other.endpoint))
        log(f"AMQP adapter: {AMQP_N} cases through on_case_routed and the relay")
        results["amqp"] = amqp_phase(departments, AMQP_N)
        body = sample_body(departments)
        log(f"baseline: {AMQP_N} raw confirmed publishes ({len(body)} bytes each)")
        results["raw_kombu"] = raw_kombu(body, AMQP_N)
        log(f"baseline: {RAW_HTTP_N} raw signed POSTs to the double")
        results["raw_http"] = raw_http(double.endpoint, body, RAW_HTTP_N)
        log(f"webhook adapter: {WEBHOOK_N} pending deliveries pushed by the worker")
        results["webhook"] = webhook_phase(departments, double, WEBHOOK_N)
        log(f"backlog: {BACKLOG_N} cases for a unit that is down, then its recovery")
        results["backlog"] = backlog_phase(departments, double, other, BACKLOG_N)
    finally:
        if departments is not None:
            departments.close()
        double.close()
        other.close()
        infra.drop_vhost(VHOST)
        _drop_database()
    print(table(results))
    print("BENCH_DEPARTMENTS_JSON " + json.dumps(results, default=str))


def _drop_database() -> None:
    admin = sa.create_engine(f"{infra.PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    finally:
        admin.dispose()


if __name__ == "__main__":
    main()
