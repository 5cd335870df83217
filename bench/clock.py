"""``make bench-clock``: the SLA clock at scale (issue 10, "Measured"): with a million open
clocks in PostgreSQL, what a sweep costs when nothing is due and when 10,000 clocks cross at
once, and how late each warning is published after its crossing on the real clock.

Seeds a PostgreSQL database of its own (``gridflow_bench_clock``) with BENCH_CLOCK_OPEN running
clocks (1,000,000; ``--quick``: 100,000) whose next colour lies a year ahead, loaded with one
``INSERT ... SELECT generate_series`` and then VACUUM ANALYZE. BENCH_CLOCK_REUSE=1 keeps an
already seeded database of the same size (the rows a run adds are deleted at its start).

Measured, each beside a baseline of the same run:

1. nothing due: ``handlers.sweep_due`` in process (one transaction, the sweep's SELECT ... FOR
   UPDATE SKIP LOCKED on the partial index), ms per look, and its plan (EXPLAIN ANALYZE); the
   baseline is the raw indexed SELECT of due rows on a psycopg2 connection. Beside it the count
   of open clocks by colour (the gauge's GROUP BY), which the tick no longer runs every second.
2. 10,000 clocks crossing at once, in process: ``sweep_due`` walking them all (500 per
   transaction, each colour written to the outbox), time and rate; the baseline is one raw
   UPDATE of the same 10,000 rows.
3. On the real clock, the SLA service as a nameko process (``nameko run gridflow_sla.service``,
   its own broker vhost): its idle CPU (the service and its PostgreSQL backends, ms per second);
   BENCH_CLOCK_LATE (2,000; quick 1,000) clocks whose yellow falls over the next 10 s, and then
   10,000 whose yellow falls at one instant: each warning's lateness, the time it reached a
   queue of the bench's own minus its crossing instant (p50, p99, max), and the time until the
   last of the 10,000 arrived.

Figures are printed, never asserted; not part of ``make test``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import kombu
import psycopg2
import sqlalchemy as sa

from bench.infra import (
    PG_SERVER,
    ROOT,
    cpu_seconds,
    drop_vhost,
    fresh_vhost,
    latency_summary,
    load_average,
    log,
    percentile,
    port_is_free,
)
from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.domain import colours
from gridflow_common.domain.calendar import TimeLimit, TimeUnit
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_sla import handlers as h

DB_NAME = "gridflow_bench_clock"
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
DSN = f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME}"
VHOST = "gridflow_bench_clock"
AMQP_URI = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
REUSE = os.environ.get("BENCH_CLOCK_REUSE") == "1"
CROSSING = 10_000
HOLDER = "urban_management-330302001"
COLUMNS = (
    "assignment_id, case_id, holder, jurisdiction_version, started_at, limit_amount, "
    "limit_unit, due, total_seconds, elapsed_before, running_since, paused_at, colour, active, "
    "next_transition_at"
)
SWEEP_SQL = (
    "SELECT assignment_id FROM sla_clocks WHERE active AND next_transition_at <= now() "
    "ORDER BY next_transition_at LIMIT 500 FOR UPDATE SKIP LOCKED"
)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# -- the database ----------------------------------------------------------------------------------


def fresh_database() -> sa.Engine:
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    engine = sa.create_engine(DATABASE_URL, pool_size=4)
    bootstrap.upgrade_all(engine)
    JurisdictionStore(engine).install(bootstrap.jurisdiction_files(bootstrap.LUCHENG))
    return engine


def background_clocks(engine: sa.Engine) -> int | None:
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM sla_clocks WHERE assignment_id LIKE 'bg-%'")
            ).scalar()
    except sa.exc.DBAPIError:
        return None


def seed(engine: sa.Engine, n: int) -> float:
    """``n`` running clocks, green, their next colour a year ahead spread over 30 days (so none
    comes due in a run), loaded in one statement."""
    version = JurisdictionStore(engine).active_version()
    t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO sla_clocks ({COLUMNS}) "
                "SELECT 'bg-' || i, 'C-bg-' || i, :holder, :version, :t0, 5, 'working_days', "
                ":t0 + interval '7 days', 144000, 0, :t0, NULL, 'green', true, "
                ":far + (i % 2592000) * interval '1 second' FROM generate_series(1, :n) AS i"
            ),
            dict(holder=HOLDER, version=version, t0=t0, far=t0 + dt.timedelta(days=365), n=n),
        )
    raw = psycopg2.connect(DSN)
    raw.autocommit = True
    with raw.cursor() as cur:
        cur.execute("VACUUM ANALYZE sla_clocks")
    raw.close()
    return time.perf_counter() - began


def forget_runs(engine: sa.Engine) -> None:
    """What an earlier run added: its crossing clocks and outbox rows."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM sla_clocks WHERE assignment_id NOT LIKE 'bg-%'"))
        conn.execute(sa.text("DELETE FROM sla_outbox"))
        conn.execute(sa.text("DELETE FROM sla_processed"))


def crossing_clocks(
    engine: sa.Engine, tag: str, instants: list[dt.datetime], version: int
) -> list[str]:
    """One clock per instant, whose yellow falls exactly there (a one-hour limit on the natural
    clock, started that much earlier), loaded with COPY; their assignment ids."""
    store = JurisdictionStore(engine)
    with engine.connect() as conn:
        j = store.get(version, conn)
    limit = TimeLimit(1, TimeUnit.HOURS)
    probe = colours.start(instants[0], limit, j.warning_levels, j.calendar)
    assert probe is not None and probe.next_at is not None
    lead = probe.next_at - instants[0]
    buf = io.StringIO()
    ids = []
    for i, at in enumerate(instants):
        started = at - lead
        begun = colours.start(started, limit, j.warning_levels, j.calendar)
        assert begun is not None and begun.next_at is not None
        aid = f"{tag}-{i}"
        ids.append(aid)
        row = (
            aid,
            f"C-{aid}",
            HOLDER,
            str(version),
            started.isoformat(),
            "1",
            "hours",
            begun.clock.due.isoformat(),
            repr(begun.clock.total_seconds),
            "0",
            started.isoformat(),
            r"\N",
            begun.colour,
            "t",
            begun.next_at.isoformat(),
        )
        buf.write("\t".join(row) + "\n")
    buf.seek(0)
    raw = psycopg2.connect(DSN)
    with raw, raw.cursor() as cur:
        cur.copy_expert(f"COPY sla_clocks ({COLUMNS}) FROM STDIN", buf)
    raw.close()
    return ids


# -- measuring -------------------------------------------------------------------------------------


def timed(fn, n: int) -> dict:
    ms = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - began) * 1000)
    return {
        "n": n,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / n,
    }


def explain(sql: str) -> str:
    raw = psycopg2.connect(DSN)
    try:
        with raw.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
            plan = "\n".join(f"    {r[0]}" for r in cur.fetchall())
        raw.rollback()
    finally:
        raw.close()
    return plan


class Arrivals:
    """A queue of the bench's own on the SLA's colour events, drained in a thread; each
    arrival's wall time and the event's own instant (the crossing it announces)."""

    def __init__(self) -> None:
        self.connection = kombu.Connection(AMQP_URI)
        exchange = kombu.Exchange(c.event_exchange(c.SLA), type="topic", durable=True)
        self.queue = kombu.Queue(
            "bench-clock-arrivals",
            exchange=exchange,
            routing_key=c.CASE_COLOUR_CHANGED,
            auto_delete=True,
        )
        self.queue(self.connection.default_channel).declare()
        self.seen: dict[str, tuple[float, float, str]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_message(self, body, message) -> None:
        arrived = time.time()
        event = json.loads(body) if isinstance(body, (str, bytes)) else body
        at = dt.datetime.fromisoformat(event["occurred_at"]).timestamp()
        p = event["payload"]
        with self.lock:
            key = f"{p['assignment_id']}/{p['colour']}"
            if key in self.seen:
                self.seen[key + "/dup"] = (arrived, at, p["colour"])
            self.seen[key] = (arrived, at, p["colour"])
        message.ack()

    def _run(self) -> None:
        with kombu.Consumer(
            self.connection.channel(),
            [self.queue],
            callbacks=[self._on_message],
            prefetch_count=500,
        ):
            while not self.stop.is_set():
                try:
                    self.connection.drain_events(timeout=0.2)
                except TimeoutError:
                    continue
                except OSError:
                    continue

    def wait_for(self, prefix: str, n: int, timeout: float) -> list[tuple[float, float]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(prefix)
            if len(got) >= n:
                return got
            time.sleep(0.1)  # bounded: by the deadline above
        return self.of(prefix)

    def of(self, prefix: str) -> list[tuple[float, float]]:
        with self.lock:
            return [(a, t) for k, (a, t, _) in self.seen.items() if k.startswith(prefix + "-")]

    def duplicates(self) -> int:
        with self.lock:
            return sum(1 for k in self.seen if k.endswith("/dup"))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.connection.release()


class WalkedAll:
    """When the SLA service had walked (and committed) every clock of a tag, polled on the
    primary key's range: what the sweep took, apart from what the relay's publishing took."""

    def __init__(self, engine: sa.Engine, tag: str, at: dt.datetime, timeout: float = 180):
        self.after: float | None = None
        self.thread = threading.Thread(
            target=self._run, args=(engine, tag, at.timestamp(), timeout), daemon=True
        )
        self.thread.start()

    def _run(self, engine: sa.Engine, tag: str, at: float, timeout: float) -> None:
        query = sa.text(
            "SELECT count(*) FROM sla_clocks WHERE assignment_id >= :lo AND assignment_id < :hi "
            "AND colour = 'green'"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                left = conn.execute(query, {"lo": f"{tag}-", "hi": f"{tag}."}).scalar()
            if left == 0 and time.time() > at:
                self.after = time.time() - at
                return
            time.sleep(0.05)  # bounded: by the deadline above

    def join(self) -> None:
        self.thread.join(timeout=200)


def free_port() -> int:
    for port in range(18404, 18500):
        if port_is_free(port):
            return port
    raise RuntimeError("no free port for the SLA service's HTTP")


def start_service() -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    env = {
        **os.environ,
        "AMQP_URI": AMQP_URI,
        "DATABASE_URL": DATABASE_URL,
        "GRIDFLOW_CLOCK": "real",
        "SLA_HTTP": f"127.0.0.1:{port}",
    }
    logfile = ROOT / "var" / "bench" / "clock-sla.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "nameko"),
            "run",
            "--config",
            str(ROOT / "services" / "sla" / "config.yaml"),
            "gridflow_sla.service:SlaService",
        ],
        env=env,
        cwd=ROOT,
        stdout=logfile.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the SLA service ended: see {logfile}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc, port, logfile
        except OSError:
            pass
        time.sleep(0.2)  # bounded: by the deadline above
    proc.terminate()
    raise RuntimeError(f"the SLA service did not become ready: see {logfile}")


def backend_pids() -> list[int]:
    raw = psycopg2.connect(DSN)
    try:
        with raw.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (DB_NAME,),
            )
            return [r[0] for r in cur.fetchall()]
    finally:
        raw.close()


def idle_cpu(pid: int, seconds: float) -> tuple[float, float]:
    """CPU ms per second of the service process and of its PostgreSQL backends, over
    ``seconds`` with nothing due."""
    backends = backend_pids()
    before = cpu_seconds(pid) or 0.0
    before_pg = sum(cpu_seconds(p) or 0.0 for p in backends)
    time.sleep(seconds)  # bounded: the measured span itself, a fixed number of seconds
    after = cpu_seconds(pid) or 0.0
    after_pg = sum(cpu_seconds(p) or 0.0 for p in backends)
    return (after - before) * 1000 / seconds, (after_pg - before_pg) * 1000 / seconds


def lateness(got: list[tuple[float, float]]) -> dict:
    return latency_summary([max(0.0, a - t) for a, t in got])


# -- the run ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 open clocks, fewer samples")
    args = parser.parse_args()
    n_open = _env_int("BENCH_CLOCK_OPEN", 100_000 if args.quick else 1_000_000)
    n_late = _env_int("BENCH_CLOCK_LATE", 1_000 if args.quick else 2_000)
    looks = 200 if args.quick else 500
    log(f"clock benchmark: {n_open:,} open clocks; load average {load_average()}")

    engine = sa.create_engine(DATABASE_URL, pool_size=4)
    if REUSE and background_clocks(engine) == n_open:
        log("reusing the seeded database")
        forget_runs(engine)
    else:
        engine.dispose()
        engine = fresh_database()
        log(f"seeded {n_open:,} open clocks in {seed(engine, n_open):.0f} s")
    store = JurisdictionStore(engine)
    version = store.active_version()
    runtime = ServiceRuntime(c.SLA, engine, RealClock(), store, h.DEFINITION.tables())
    raw = psycopg2.connect(DSN)
    raw.autocommit = True

    def raw_select(sql: str):
        def call():
            with raw.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()

        return call

    rows: list[tuple[str, str]] = []

    # 1. Nothing due.
    sweep_idle = timed(lambda: h.sweep_due(runtime), looks)
    base_idle = timed(
        raw_select(
            "SELECT assignment_id FROM sla_clocks WHERE active AND next_transition_at <= now() "
            "ORDER BY next_transition_at LIMIT 500"
        ),
        looks,
    )

    def count_open() -> None:
        with runtime.work() as work:
            h.open_clocks(work)

    counts = timed(count_open, 5)
    plan = explain(SWEEP_SQL)
    rows += [
        ("nothing due: sweep_due (one transaction), ms per look", _ms(sweep_idle)),
        ("  baseline: raw indexed SELECT of due rows (autocommit)", _ms(base_idle)),
        (
            "  sweeps at 0.25 s: wall ms spent per second (4 looks)",
            f"{4 * sweep_idle['mean_ms']:.2f}",
        ),
        ("open clocks by colour (GROUP BY, now every 15 s, not every tick)", _ms(counts)),
    ]

    # 2. 10,000 crossing at once, in process.
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    ids = crossing_clocks(engine, "now", [past] * CROSSING, version)
    with raw.cursor() as cur:
        began = time.perf_counter()
        cur.execute(
            "SELECT assignment_id FROM sla_clocks WHERE active AND next_transition_at <= now() "
            "ORDER BY next_transition_at"
        )
        select_took = time.perf_counter() - began
    began = time.perf_counter()
    swept = h.sweep_due(runtime)
    took = time.perf_counter() - began
    with engine.begin() as conn:
        outboxed = conn.execute(sa.text("SELECT count(*) FROM sla_outbox")).scalar()
        conn.execute(sa.text("DELETE FROM sla_outbox"))
    with raw.cursor() as cur:
        cur.execute("BEGIN")
        began = time.perf_counter()
        cur.execute(
            "UPDATE sla_clocks SET colour = 'orange', next_transition_at = NULL "
            "WHERE assignment_id = ANY(%s)",
            (ids,),
        )
        update_took = time.perf_counter() - began
        cur.execute("ROLLBACK")
    rows += [
        (
            f"{CROSSING:,} crossing at once: sweep_due, {swept:,} clocks, {outboxed:,} events",
            f"{took:.2f} s ({swept / took:,.0f} clocks/s)",
        ),
        ("  baseline: raw UPDATE of the 10,000 rows (one statement)", f"{update_took:.3f} s"),
        ("  baseline: raw indexed SELECT of the 10,000 due rows", f"{select_took * 1000:.1f} ms"),
    ]
    forget_runs(engine)

    # 3. The real clock, the SLA service as a process.
    fresh_vhost(VHOST)
    arrivals = Arrivals()
    proc, _, logfile = start_service()
    try:
        time.sleep(3)  # bounded: 3 s for start-up's own work to settle before the idle span
        svc_ms, pg_ms = idle_cpu(proc.pid, 10.0)
        rows += [
            ("idle (nothing due), SLA process CPU ms per second", f"{svc_ms:.1f}"),
            ("idle (nothing due), its PostgreSQL backends CPU ms per second", f"{pg_ms:.1f}"),
        ]
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
        spread = [start + dt.timedelta(seconds=10 * i / n_late) for i in range(n_late)]
        crossing_clocks(engine, "late", spread, version)
        got = arrivals.wait_for("late", n_late, timeout=60)
        late = lateness(got)
        rows += [
            (
                f"{n_late:,} yellows over 10 s: lateness p50 / p99 / max ms ({len(got):,} arrived)",
                f"{late['p50_ms']} / {late['p99_ms']} / {late['max_ms']}",
            )
        ]
        at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
        crossing_clocks(engine, "burst", [at] * CROSSING, version)
        walked = WalkedAll(engine, "burst", at)
        got = arrivals.wait_for("burst", CROSSING, timeout=180)
        walked.join()
        late = lateness(got)
        last = max(a for a, _ in got) - at.timestamp() if got else float("nan")
        rows += [
            (
                f"{CROSSING:,} yellows at one instant: lateness p50 / p99 / max ms "
                f"({len(got):,} arrived)",
                f"{late['p50_ms']} / {late['p99_ms']} / {late['max_ms']}",
            ),
            (
                "  the last one arrived after the instant (s), rate",
                f"{last:.2f} s ({len(got) / last:,.0f} events/s)" if got else "-",
            ),
            (
                "  every one walked and committed (outbox written) after the instant (s)",
                f"{walked.after:.2f} s" if walked.after is not None else "-",
            ),
            ("  duplicates seen", str(arrivals.duplicates())),
        ]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        arrivals.close()
        drop_vhost(VHOST)
        forget_runs(engine)

    width = max(len(k) for k, _ in rows) + 2
    print()
    print(f"SLA clock at scale: {n_open:,} open clocks (PostgreSQL), load {load_average()}")
    print("-" * (width + 30))
    for k, val in rows:
        print(f"{k:<{width}}{val}")
    print()
    print("the sweep's plan with nothing due (EXPLAIN ANALYZE):")
    print(plan)
    print(f"(the SLA service's log: {logfile})")
    return 0


def _ms(r: dict) -> str:
    return f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms (n={r['n']})"


if __name__ == "__main__":
    raise SystemExit(main())
