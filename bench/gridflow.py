"""Gridflow's real topology under load: five ``nameko run`` processes on the bench's vhost and
database, started by deploy/topology.sh (the script behind `make up` and the end-to-end tests),
reports POSTed straight to intake's HTTP port, cases timed on their department queues.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import secrets
import threading
import time

import httpx

from bench import infra

SERVICES = ("intake", "routing", "departments", "sla", "notify")
PORTS = {svc: 18001 + i for i, svc in enumerate(SERVICES)}
# nginx in front, as `make up` has it; the bench itself talks to intake directly.
PROXY_PORT = 18000
INTAKE = ("127.0.0.1", PORTS["intake"])
FIXTURES = infra.ROOT / "libs" / "common" / "gridflow_common" / "fixtures" / "lucheng"
# Open loop: a report is due at its scheduled instant whatever earlier answers do, so the paced
# sender needs room for many answers in flight when intake answers slowly (0.6 s x 100/s = 60).
PACED_THREADS = 64
DESCRIPTIONS = ("青园社区门口的路灯不亮", "红苹果小区大门口堆放了大量废品杂物")

# Intake joins a report to an open case of the same category within 50 m (合并, merging), so every
# report gets a point of its own on a lattice wider than that: 0.0006 deg of latitude is 67 m,
# 0.0007 deg of longitude 69 m here. The lattice stays inside Lucheng's grids (27.98-28.10 N,
# 120.55-120.71 E), off their edges.
LAT0, LON0, DLAT, DLON, COLUMNS, ROWS = 27.98025, 120.55035, 0.0006, 0.0007, 226, 198


def point(k: int) -> dict:
    row, column = divmod(k % (COLUMNS * ROWS), COLUMNS)
    return {"lat": round(LAT0 + row * DLAT, 6), "lon": round(LON0 + column * DLON, 6)}


def department_queues() -> list[tuple[str, ...]]:
    """Every queue a case could be pushed to: each department's queue on the topic exchange of
    cases (all of its units), and the queue of each unit with no department (a community office,
    a street center, the command center), which is its own owner."""
    import csv

    from gridflow_common import contracts as c

    owners: list[str] = []
    with open(FIXTURES / "departments.csv", encoding="utf-8") as f:
        owners += [row["code"] for row in csv.DictReader(f)]
    with open(FIXTURES / "units.csv", encoding="utf-8") as f:
        owners += [row["code"] for row in csv.DictReader(f) if not row["department_code"]]
    return [
        (c.CASE_EXCHANGE, f"{owner}.*", c.department_queue(owner), "topic")
        for owner in dict.fromkeys(owners)
    ]


# -- the services ------------------------------------------------------------------------------


class Topology:
    def __init__(self, workers: int | None = None) -> None:
        self.started: dict[str, int] = {}
        self.workers = workers

    @property
    def admin_token(self) -> str:
        """The admin token `topology.sh up` wrote (`gridflow admin-token`)."""
        return (infra.VAR_DIR / "admin-token").read_text().strip()

    def report_key(self) -> str:
        """A grid-app channel key with a limit far above what the bench sends: the bench
        measures the pipeline, not the rate limiter (one client, one key, as a grid app)."""
        client = Client(self.admin_token)
        try:
            status, body, _ = client.request(
                "POST",
                "/api/v1/admin/keys",
                {"channel": "grid_app", "label": "bench", "rate_limit": "1000000/min"},
            )
        finally:
            client.close()
        if status != 201 or not body:
            raise RuntimeError(f"no channel key: {status} {body}")
        return body["token"]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AMQP_URI": infra.AMQP_URI,
                "DATABASE_URL": infra.DATABASE_URL,
                "GRIDFLOW_CLOCK": "real",
                "GRIDFLOW_ADMIN_TOKEN_FILE": str(infra.VAR_DIR / "admin-token"),
                "VAR_DIR": str(infra.VAR_DIR),
                "GRIDFLOW_PORT": str(PROXY_PORT),
                "BIN": str(infra.ROOT / ".venv" / "bin"),
                **{f"{svc.upper()}_HTTP": f"127.0.0.1:{port}" for svc, port in PORTS.items()},
            }
        )
        # Unset, the services run with their shipped max_workers (14 each, and two more pooled
        # database connections): that is what is measured unless someone asks otherwise.
        for svc in SERVICES:
            env.pop(f"{svc.upper()}_WORKERS", None)
            if self.workers:
                env[f"{svc.upper()}_WORKERS"] = str(self.workers)
        return env

    def script(self, action: str) -> str:
        try:
            return infra.topology_script(action, self.env())
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see the logs in {infra.VAR_DIR}") from None

    def start(self) -> str:
        """`topology.sh up`: migrations, the default jurisdiction, five services, nginx."""
        busy = [p for p in (PROXY_PORT, *PORTS.values()) if not infra.port_is_free(p)]
        if busy:
            raise RuntimeError(f"ports {busy} are taken: another bench still running?")
        for svc in SERVICES:
            # Fresh per run (topology.sh appends): the problems counted at the end are this run's.
            (infra.VAR_DIR / f"{svc}.log").unlink(missing_ok=True)
        output = self.script("up")
        self.started = self.pids()
        return output

    def stop(self) -> None:
        self.script("down")

    def jurisdiction_version(self) -> int:
        """The version topology.sh installed (the shipped default, Lucheng, on the fresh
        database), read through the admin API."""
        client = Client(self.admin_token)
        try:
            status, body, _ = client.request("GET", "/api/v1/admin/jurisdiction")
        finally:
            client.close()
        if status != 200 or not body:
            raise RuntimeError(f"no jurisdiction in force: {status} {body}")
        return body["version"]

    def alive(self) -> list[str]:
        return [svc for svc, pid in self.started.items() if infra.cpu_seconds(pid) is not None]

    def pids(self) -> dict[str, int]:
        pids = {}
        for svc in SERVICES:
            pidfile = infra.VAR_DIR / f"{svc}.pid"
            if pidfile.exists():
                pids[svc] = int(pidfile.read_text())
        return pids

    def log_problems(self) -> dict[str, int]:
        """Lines in the services' logs that say a message could not be handled as it should."""
        counts = {
            "too_many_db_clients": 0,
            "handler_failed": 0,
            "dead_lettered": 0,
            "relay_failed": 0,
        }
        for svc in SERVICES:
            path = infra.VAR_DIR / f"{svc}.log"
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                # Once per traceback: the driver's own line, not SQLAlchemy's wrapper or the log.
                if line.startswith("psycopg2.OperationalError") and "too many clients" in line:
                    counts["too_many_db_clients"] += 1
                for key, marker in (
                    ("handler_failed", '"handler_failed"'),
                    ("dead_lettered", '"message_dead_lettered"'),
                    ("relay_failed", '"relay_failed"'),
                ):
                    if marker in line:
                        counts[key] += 1
        return counts


class ConnectionWatch:
    """Peak PostgreSQL connections, the bench's database and the whole server, sampled twice a
    second: five services of up to 20 pooled connections each can reach max_connections (100)."""

    def __init__(self) -> None:
        self.peak_bench = 0
        self.peak_server = 0
        self.max_connections: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-pgwatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(5)
        return {
            "peak_bench_db": self.peak_bench,
            "peak_server": self.peak_server,
            "max_connections": self.max_connections,
        }

    def _loop(self) -> None:
        import psycopg2

        try:
            conn = psycopg2.connect(infra.PSYCOPG2_DSN.replace(infra.DB_NAME, "postgres"))
        except psycopg2.Error:
            return
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW max_connections")
                self.max_connections = int(cur.fetchone()[0])
                while not self._stop.wait(0.5):
                    cur.execute(
                        "SELECT count(*), count(*) FILTER (WHERE datname = %s) "
                        "FROM pg_stat_activity WHERE backend_type = 'client backend'",
                        (infra.DB_NAME,),
                    )
                    total, bench = cur.fetchone()
                    self.peak_server = max(self.peak_server, total)
                    self.peak_bench = max(self.peak_bench, bench)
        except psycopg2.Error:
            pass
        finally:
            conn.close()


# -- HTTP --------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection to intake (httpx, as every Gridflow client), per sender thread."""

    # The grid app's key the senders report with (Topology.report_key), set once per run.
    report_token: str | None = None

    def __init__(self, token: str | None = None) -> None:
        headers = {"Content-Type": "application/json"}
        token = token or Client.report_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # One connection: a sender thread sends one report at a time.
        self.http = httpx.Client(
            base_url=f"http://{INTAKE[0]}:{INTAKE[1]}",
            headers=headers,
            timeout=60,
            trust_env=False,
            limits=httpx.Limits(max_connections=1),
        )

    def request(
        self, method: str, path: str, body: dict | None = None
    ) -> tuple[int, dict | None, float]:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                response = self.http.request(method, path, content=data)
            except httpx.TransportError:
                # A kept-alive connection the server dropped fails on first use; retry once
                # (safe: a resent report carries the same external_id and is answered 200).
                if attempt == 2:
                    raise
                continue
            elapsed = time.perf_counter() - started
            try:
                parsed = response.json() if response.content else None
            except ValueError:
                parsed = {"raw": response.content[:200].decode(errors="replace")}
            return response.status_code, parsed, elapsed
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.http.close()


def report(tag: str, k: int) -> dict:
    return {
        "channel": "grid_app",
        "external_id": f"{tag}-{k}",
        "description": DESCRIPTIONS[k % len(DESCRIPTIONS)],
        "location": point(k),
    }


class Answers:
    """What the senders saw, shared between their threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: dict[str, float] = {}  # case_id -> time.time() of the 201
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.response_s: list[float] = []
        self.late_s: list[float] = []
        self.first_sent: float | None = None
        self.last_answered: float | None = None

    def record(self, sent: float, status: int, body: dict | None, elapsed: float) -> None:
        answered = time.time()
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.response_s.append(elapsed)
            if self.first_sent is None or sent < self.first_sent:
                self.first_sent = sent
            self.last_answered = max(self.last_answered or 0.0, answered)
            if status == 201 and body and "case_id" in body:
                self.created[body["case_id"]] = answered
            elif status not in (200, 201) and len(self.errors) < 5:
                self.errors.append(f"{status}: {str(body)[:200]}")


def _send_all(
    tag: str,
    offset: int,
    count: int,
    threads: int,
    rate: float | None,
    answers: Answers,
    budget_s: float,
) -> None:
    """``count`` reports from ``threads`` keep-alive clients: back to back when ``rate`` is None
    (closed loop), else report k is sent at start + k/rate whatever the earlier answers do (open
    loop; the threads only give it room for slow answers)."""
    counter = itertools.count()
    start = time.monotonic() + 0.05
    stop_at = start + budget_s

    def worker() -> None:
        with contextlib.closing(Client()) as client:
            while time.monotonic() < stop_at:
                k = next(counter)
                if k >= count:
                    return
                if rate:
                    due = start + k / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing the open-loop sender
                    with answers.lock:
                        answers.late_s.append(max(0.0, time.monotonic() - due))
                sent = time.time()
                try:
                    status, body, elapsed = client.request(
                        "POST", "/api/v1/reports", report(tag, offset + k)
                    )
                except httpx.HTTPError as exc:
                    status, body, elapsed = -1, {"error": repr(exc)}, 0.0
                answers.record(sent, status, body, elapsed)

    pool = [
        threading.Thread(target=worker, name=f"bench-http-{i}", daemon=True) for i in range(threads)
    ]
    for t in pool:
        t.start()
    for t in pool:
        t.join(budget_s + 70)


def _phase(
    ctx,
    tag: str,
    offset: int,
    count: int,
    threads: int,
    rate: float | None,
    wait_s: float,
    send_budget_s: float,
    meter: infra.CpuMeter | None = None,
) -> dict:
    sink = infra.Sink(ctx, department_queues(), f"gridflow-{tag}", send_budget_s + wait_s + 60)
    sink.start()
    answers = Answers()
    if meter:
        meter.start()
    sent_started = time.monotonic()
    _send_all(tag, offset, count, threads, rate, answers, send_budget_s)
    sending_s = time.monotonic() - sent_started
    sink.expect(len(answers.created))
    records = sink.finish(wait_s)
    arrived = {r[0]: r[1] for r in records if r[0] in answers.created}
    result: dict = {
        "sent": count,
        "answers": {str(k): v for k, v in sorted(answers.statuses.items())},
        "created": len(answers.created),
        "arrived": len(arrived),
        "complete": len(arrived) >= len(answers.created) and len(answers.created) == count,
    }
    if answers.errors:
        result["error_samples"] = answers.errors
    if answers.first_sent is not None and answers.last_answered is not None:
        span = max(answers.last_answered - answers.first_sent, 1e-9)
        result["http_accept_per_s"] = round(len(answers.created) / span, 1)
        result["http_response"] = infra.latency_summary(answers.response_s)
    if arrived and answers.first_sent is not None:
        last = max(arrived.values())
        result["elapsed_s"] = round(last - answers.first_sent, 3)
        result["cases_per_s"] = round(len(arrived) / max(last - answers.first_sent, 1e-9), 1)
        result["latency"] = infra.latency_summary(
            [
                arrived[case_id] - answered
                for case_id, answered in answers.created.items()
                if case_id in arrived
            ]
        )
    if answers.late_s:
        result["sender_late_max_ms"] = round(max(answers.late_s) * 1000, 1)
    result["sending_s"] = round(sending_s, 2)
    result["offered_per_s"] = round(count / max(sending_s, 1e-9), 1)
    if meter:
        result["cpu"] = meter.stop(len(arrived))
    return result


def event_queues() -> list[str]:
    from gridflow_common import contracts as c

    return sorted({s.queue for s in c.SUBSCRIPTIONS})


def wait_settled(timeout: float = 60) -> bool:
    """Until every event queue and outbox is empty: the next phase starts on an idle system."""
    import sqlalchemy as sa

    engine = sa.create_engine(infra.DATABASE_URL)
    deadline = time.monotonic() + timeout
    quiet = 0
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                pending = sum(
                    conn.execute(sa.text(f"SELECT count(*) FROM {svc}_outbox")).scalar_one()
                    for svc in SERVICES
                )
            pending += sum(infra.queue_depths(event_queues()).values())
            quiet = quiet + 1 if pending == 0 else 0
            if quiet >= 2:
                return True
            time.sleep(0.5)  # bounded poll until the pipeline is drained
        return False
    finally:
        engine.dispose()


def run(
    saturation_count: int = 1500,
    threads: int = 16,
    rate: float = 100.0,
    seconds: float = 10.0,
    wait_s: float = 120.0,
    workers: int | None = None,
    low_rate: float | None = 20.0,
) -> dict:
    ctx = multiprocessing.get_context("spawn")
    run_tag = secrets.token_hex(3)
    topology = Topology(workers)
    watch = ConnectionWatch()
    # Whatever an earlier run that died before its cleanup left running (by its pid files).
    topology.stop()
    watch.start()
    try:
        infra.log("gridflow: deploy/topology.sh up (the five services, nginx)")
        for line in topology.start().splitlines():
            infra.log(f"gridflow: {line}")
        version = topology.jurisdiction_version()
        Client.report_token = topology.report_key()
        infra.log(f"gridflow: jurisdiction version {version} in force; warm-up (40 reports)")
        _phase(ctx, f"{run_tag}W", 0, 40, 4, None, 60, 60)
        wait_settled()
        # Each phase its own stretch of the lattice, so no report joins an earlier phase's case.
        offset = 100
        low = None
        if low_rate:
            # A load it can carry, for what latency is when the framework is not also a queue.
            infra.log(f"gridflow: latency, {low_rate:.0f} reports/s offered for {seconds:.0f} s")
            n_low = int(low_rate * seconds)
            low = _phase(
                ctx, f"{run_tag}Q", offset, n_low, PACED_THREADS, low_rate, wait_s, seconds + 60
            )
            offset += n_low
            wait_settled()
        n_latency = int(rate * seconds)
        infra.log(f"gridflow: latency, {rate:.0f} reports/s offered for {seconds:.0f} s")
        latency = _phase(
            ctx,
            f"{run_tag}L",
            offset,
            n_latency,
            PACED_THREADS,
            rate,
            wait_s,
            seconds + 60,
            infra.CpuMeter(topology.pids()),
        )
        offset += n_latency
        settled = wait_settled()
        infra.log(f"gridflow: saturation, {saturation_count} reports from {threads} clients")
        saturation = _phase(
            ctx,
            f"{run_tag}S",
            offset,
            saturation_count,
            threads,
            None,
            wait_s,
            120,
            infra.CpuMeter(topology.pids()),
        )
        alive = topology.alive()
    finally:
        infra.log("gridflow: stopping the services")
        topology.stop()
        connections = watch.stop()
    return {
        "saturation": saturation,
        "latency": latency,
        "latency_low_rate": low,
        "low_rate": low_rate,
        "offered_rate": rate,
        "offered_seconds": seconds,
        "threads": threads,
        "max_workers": workers or "shipped (14)",
        "settled_before_saturation": settled,
        "services_alive_at_end": alive,
        "postgres_connections": connections,
        "log_problems": topology.log_problems(),
    }
