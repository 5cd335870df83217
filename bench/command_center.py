"""``make bench-command-center``: the command center's reads on a city's year of cases (issue 8,
"Measured").

Seeds a PostgreSQL database of its own (``gridflow_bench_cc``, dropped and made afresh) with
BENCH_CC_OPEN open cases (100,000) and BENCH_CC_CLOSED closed ones (1,000,000), one report each
and their timelines (what the assessment reads), generated from the Lucheng jurisdiction's
areas, units and categories and loaded with COPY (the tables' indexes are dropped for the load
and built again after it, then VACUUM ANALYZE). Then, in process, through the product's
``IntakeApi`` (a command center user's bearer token: credential check, scope, query, JSON), it
measures p50/p99 over BENCH_CC_N calls each:

- the board's first load, ``GET /api/v1/board/summary`` (the command center's and a street
  user's);
- ``GET /api/v1/cases`` with a few filter combinations;
- a year's assessment by department, when ``gridflow_intake.assessment`` exists;

beside a baseline measured in the same run: a raw ``SELECT colour, count(*) ... GROUP BY colour``
over the same table on a psycopg2 connection (no API, no scope). Figures are printed, never
asserted; not part of ``make test``.

Options (environment): BENCH_CC_OPEN, BENCH_CC_CLOSED, BENCH_CC_N (30), BENCH_CC_REUSE=1 (keep
an already seeded database of the same size instead of seeding again).
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg2
import sqlalchemy as sa

from bench.infra import PG_SERVER, log
from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h

DB_NAME = "gridflow_bench_cc"
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
DSN = f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME}"
OPEN = int(os.environ.get("BENCH_CC_OPEN", "100000"))
CLOSED = int(os.environ.get("BENCH_CC_CLOSED", "1000000"))
N = int(os.environ.get("BENCH_CC_N", "30"))
REUSE = os.environ.get("BENCH_CC_REUSE") == "1"
CHUNK = 100_000
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
CASE_COLUMNS = (
    "case_id, status, category, description, area_code, tier, holder, lead, assisting, "
    "assignment_id, assignment_seq, escalations, reporters, satisfaction, jurisdiction_version, "
    "registered_at, closed_at, due_at, colour, street_code, community_code, channel, address"
)
REPORT_COLUMNS = "case_id, channel, description, received_at"
TIMELINE_COLUMNS = "case_id, at, kind, detail"
WARNING_COLOURS = (v.YELLOW, v.ORANGE, v.RED)
DESCRIPTIONS = ("路灯不亮", "井盖缺失", "垃圾满溢", "占道经营", "噪音扰民", "道路破损", "违章停车")


# -- the database ----------------------------------------------------------------------------------


def fresh_database() -> sa.Engine:
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": DB_NAME},
        )
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    engine = sa.create_engine(DATABASE_URL, pool_size=4)
    bootstrap.upgrade_all(engine)
    JurisdictionStore(engine).install(bootstrap.jurisdiction_files(bootstrap.LUCHENG))
    return engine


def seeded_size(engine: sa.Engine) -> int | None:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM intake_cases")).scalar()
    except sa.exc.DBAPIError:
        return None


class Generator:
    """Cases as Lucheng would have them: a grid, a category, its department's station in the
    case's street (else the department's bureau), now and then an assisting department."""

    def __init__(self, j: Jurisdiction, seed: int = 8):
        self.rng = random.Random(seed)
        self.j = j
        self.grids = []
        for grid in j.areas_at("grid"):
            street = j.ancestor(grid.code, "street")
            community = j.ancestor(grid.code, "community")
            district = j.ancestor(grid.code, "district")
            self.grids.append(
                (
                    grid.code,
                    street.code if street else "",
                    community.code if community else "",
                    district.code if district else "",
                )
            )
        self.categories = [cat.code for cat in j.categories]
        self.departments = [d.code for d in j.departments]

    def holder(self, department: str, street: str, district: str) -> str:
        unit = self.j.station(department, street) or self.j.bureau(department, district)
        return unit.code if unit else department

    def rows(self, start: int, count: int, open_: bool) -> tuple[str, str, str]:
        rng = self.rng
        cases, reports, timeline = io.StringIO(), io.StringIO(), io.StringIO()
        for i in range(start, start + count):
            grid, street, community, district = rng.choice(self.grids)
            department = rng.choice(self.departments)
            holder = self.holder(department, street, district)
            assisting = json.dumps([rng.choice(self.departments)]) if rng.random() < 0.1 else "[]"
            registered = NOW - dt.timedelta(
                seconds=rng.randint(0, 86400 * 30 if open_ else 86400 * 365)
            )
            closed_at = due = colour = r"\N"
            closed_instant = NOW
            satisfaction = r"\N"
            if open_:
                status = rng.choice(
                    (v.REGISTERED, v.DISPATCHED, v.DISPATCHED, v.ACCEPTED, v.IN_PROGRESS)
                    + (v.IN_PROGRESS, v.RESOLVED)
                )
                if lifecycle.has_running_clock(status):
                    due_at = registered + dt.timedelta(hours=rng.randint(2, 24 * 10))
                    left = (due_at - NOW).total_seconds()
                    colour = (
                        v.RED
                        if left < 0
                        else v.ORANGE
                        if left < 3600 * 4
                        else v.YELLOW
                        if left < 3600 * 24
                        else v.GREEN
                    )
                    due = due_at.isoformat()
            else:
                status = v.CLOSED if rng.random() < 0.97 else v.REJECTED
                closed_instant = registered + dt.timedelta(hours=rng.randint(1, 24 * 15))
                closed_at = closed_instant.isoformat()
                satisfaction = str(rng.randint(1, 5))
            case_id = f"GF-B{i:09d}"
            escalations = rng.choice((0, 0, 0, 0, 0, 0, 0, 0, 1, 2))
            channel = rng.choice(v.CHANNELS)
            description = f"{rng.choice(DESCRIPTIONS)} 第{i % 997}号"
            address = f"鹿城区{street}附近{i % 89}号" if rng.random() < 0.3 else r"\N"
            cases.write(
                "\t".join(
                    (
                        case_id,
                        status,
                        rng.choice(self.categories),
                        description,
                        grid,
                        rng.choice(v.TIERS),
                        holder,
                        department,
                        assisting,
                        f"{case_id}-1",
                        "1",
                        str(escalations),
                        "1",
                        satisfaction,
                        "1",
                        registered.isoformat(),
                        closed_at,
                        due,
                        colour,
                        street,
                        community,
                        channel,
                        address,
                    )
                )
                + "\n"
            )
            reports.write(f"{case_id}\t{channel}\t{description}\t{registered.isoformat()}\n")
            # What the assessment reads: the case's timeline (dispatch, warnings, returns,
            # escalations, resolution).
            entries = [(registered, v.REGISTERED, "{}")]
            if status != v.REGISTERED:
                at = registered + dt.timedelta(minutes=5)
                entries.append((at, v.DISPATCHED, json.dumps({"handler": holder})))
                if rng.random() < 0.03:
                    entries.append((at, v.RETURNED, json.dumps({"sender": holder})))
                if escalations:
                    routed = {"reason": v.REASON_ESCALATED}
                    entries.append((at, v.ENTRY_ROUTED, json.dumps(routed)))
                if rng.random() < 0.15:
                    warning = {"colour": rng.choice(WARNING_COLOURS)}
                    entries.append((at, v.ENTRY_WARNING, json.dumps(warning)))
            if status in (v.RESOLVED, v.CLOSED):
                end = registered + dt.timedelta(hours=1) if open_ else closed_instant
                entries.append((end, v.RESOLVED, json.dumps({"sender": holder})))
            for at, kind, detail in entries:
                timeline.write(f"{case_id}\t{at.isoformat()}\t{kind}\t{detail}\n")
        return cases.getvalue(), reports.getvalue(), timeline.getvalue()


def seed(engine: sa.Engine) -> float:
    started = time.perf_counter()
    _, j = JurisdictionStore(engine).active()
    generator = Generator(j)
    conn = psycopg2.connect(DSN)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
            "('intake_cases', 'intake_reports', 'intake_timeline') AND indexname NOT LIKE '%pkey' "
            "AND indexname NOT LIKE 'uq_%'"
        )
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        conn.commit()
        done = 0
        for kind, total in (("open", OPEN), ("closed", CLOSED)):
            for start in range(0, total, CHUNK):
                count = min(CHUNK, total - start)
                cases, reports, timeline = generator.rows(done, count, kind == "open")
                cur.copy_expert(
                    f"COPY intake_cases ({CASE_COLUMNS}) FROM STDIN", io.StringIO(cases)
                )
                cur.copy_expert(
                    f"COPY intake_reports ({REPORT_COLUMNS}) FROM STDIN", io.StringIO(reports)
                )
                cur.copy_expert(
                    f"COPY intake_timeline ({TIMELINE_COLUMNS}) FROM STDIN", io.StringIO(timeline)
                )
                conn.commit()
                done += count
            log(f"loaded {total:,} {kind} cases ({time.perf_counter() - started:.0f} s)")
        for _name, definition in indexes:
            cur.execute(definition)
            conn.commit()
        log(f"indexes built again ({time.perf_counter() - started:.0f} s)")
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE intake_cases")
        cur.execute("VACUUM ANALYZE intake_reports")
        cur.execute("VACUUM ANALYZE intake_timeline")
    finally:
        conn.close()
    return time.perf_counter() - started


# -- measuring -------------------------------------------------------------------------------------


def measure(name: str, call: Callable[[], Any], n: int = N) -> dict:
    first_started = time.perf_counter()
    call()
    first = time.perf_counter() - first_started
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    times.sort()
    figures = {
        "name": name,
        "first_ms": first * 1000,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))] * 1000,
    }
    log(
        f"{name:<58} first {figures['first_ms']:8.1f} ms   p50 {figures['p50_ms']:8.1f} ms   "
        f"p99 {figures['p99_ms']:8.1f} ms"
    )
    return figures


def api_for(engine: sa.Engine) -> tuple[Any, dict[str, dict[str, str]]]:
    """The product's IntakeApi on the bench database, and bearer headers by caller."""
    from gridflow_common.domain import access as a
    from gridflow_intake.access import Access
    from gridflow_intake.api import IntakeApi
    from gridflow_intake.identity import BEARER

    # The bench's own calls must not meet the per-user limit (600 a minute).
    os.environ.setdefault("GRIDFLOW_RATE_USER", "1000000/min")
    store = JurisdictionStore(engine)
    runtime = ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())
    api = IntakeApi(runtime, peers=None)  # type: ignore[arg-type]
    identities = Access.for_runtime(runtime).store
    _, j = store.active()
    headers = {}
    for who, role, scope in (
        ("bench-cc", a.COMMAND_CENTER, None),
        ("bench-street", a.STREET, "330302104"),
        ("bench-dept", a.DEPARTMENT, "urban_management"),
    ):
        user = identities.user(who) or identities.create_user(j, who, role, scope)
        _, token = identities.issue(BEARER, label="bench", user_id=user["user_id"])
        headers[who] = {"Authorization": f"Bearer {token}"}
    return api, headers


def main() -> None:
    log(f"command center benchmark: {OPEN:,} open and {CLOSED:,} closed cases, {N} calls each")
    engine = sa.create_engine(DATABASE_URL, pool_size=4)
    if REUSE and seeded_size(engine) == OPEN + CLOSED:
        log("reusing the seeded database")
    else:
        engine.dispose()
        engine = fresh_database()
        seconds = seed(engine)
        log(f"seeded {OPEN + CLOSED:,} cases and as many reports in {seconds:.0f} s")
    api, headers = api_for(engine)

    def get(path: str, who: str = "bench-cc") -> Callable[[], Any]:
        def call() -> Any:
            answer = api.handle("GET", path, headers=headers[who])
            if answer.status != 200:
                raise AssertionError(f"{path}: {answer.status} {answer.body}")
            return answer.body

        return call

    raw = psycopg2.connect(DSN)
    raw.autocommit = True

    def baseline(sql: str) -> Callable[[], Any]:
        def call() -> Any:
            with raw.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()

        return call

    results = [
        measure(
            "baseline: raw SELECT colour, count(*) GROUP BY colour (all)",
            baseline("SELECT colour, count(*) FROM intake_cases GROUP BY colour"),
        ),
        measure(
            "baseline: the same, open cases only",
            baseline(
                "SELECT colour, count(*) FROM intake_cases WHERE status IN "
                "('registered','dispatched','accepted','in_progress','resolved') GROUP BY colour"
            ),
        ),
        measure("board summary, command center", get("/api/v1/board/summary")),
        measure("board summary, street 330302104", get("/api/v1/board/summary", "bench-street")),
        measure(
            "board summary, department urban_management",
            get("/api/v1/board/summary", "bench-dept"),
        ),
        measure("cases: no filter (newest first, 50)", get("/api/v1/cases")),
        measure("cases: status=open&sort=lateness", get("/api/v1/cases?status=open&sort=lateness")),
        measure(
            "cases: colour=red,orange&sort=lateness",
            get("/api/v1/cases?colour=red,orange&sort=lateness"),
        ),
        measure(
            "cases: street=330302104&status=open&late=true",
            get("/api/v1/cases?street=330302104&status=open&late=true"),
        ),
        measure(
            "cases: department=police&registered 2 months",
            get(
                "/api/v1/cases?department=police&registered_from="
                f"{(NOW - dt.timedelta(days=60)).date()}&registered_to={NOW.date()}"
            ),
        ),
        measure(
            "cases: q=井盖 (free text, all cases)",
            get("/api/v1/cases?q=%E4%BA%95%E7%9B%96"),
            max(5, N // 5),
        ),
        measure(
            "cases: q=第17号 (free text, 3+ characters: trigram index)",
            get("/api/v1/cases?q=%E7%AC%AC17%E5%8F%B7"),
        ),
        measure(
            "cases: as department urban_management, status=open",
            get("/api/v1/cases?status=open", "bench-dept"),
        ),
    ]
    # The second page of a list: the cursor's keyset.
    first = get("/api/v1/cases?status=open&sort=lateness")()
    results.append(
        measure(
            "cases: status=open&sort=lateness, page 2 (cursor)",
            get(f"/api/v1/cases?status=open&sort=lateness&cursor={first['next']}"),
        )
    )
    try:
        importlib.import_module("gridflow_intake.assessment")
    except ImportError:
        log(
            "assessment by department over a year: not measured (gridflow_intake.assessment absent)"
        )
    else:
        year = f"from={(NOW - dt.timedelta(days=365)).date()}&to={NOW.date()}"
        results.append(
            measure(
                "assessment by department, a year",
                get(f"/api/v1/assessment?by=department&{year}"),
                max(5, N // 5),
            )
        )
    raw.close()
    print(json.dumps({"open": OPEN, "closed": CLOSED, "calls": N, "results": results}, indent=1))


if __name__ == "__main__":
    main()
