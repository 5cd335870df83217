"""``make bench-intake``: reports accepted per second by the native API (POST /api/v1/reports),
by batch upload (POST /api/v1/reports/batch) and by bulk import (``gridflow import-reports``'s
code path over HTTP), beside PostgreSQL's own insert rate measured in the same run (raw psycopg2
inserts of comparable rows: one commit per row, and 100 rows per commit).

Where: intake's nameko service as the real topology runs it (``nameko run`` with
services/intake/config.yaml), on a RabbitMQ vhost, a PostgreSQL database, a port and a photo
folder of this benchmark's own; intake's events go to one sink queue bound on the vhost (the
other four services are not started: they take no part in accepting a report, and on this
2-core machine they would take CPU from the figure measured). "Accepted" is a 201/200 answer:
the case, its report, its timeline entry and its case_registered outbox row committed.

Figures are printed, never asserted. ``--quick``: a short run (a few hundred reports a path).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import infra
from bench.gridflow import point

VHOST = "gridflow_bench_intake"
DB_NAME = "gridflow_bench_intake"
AMQP_URI = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
DATABASE_URL = f"{infra.PG_SERVER}/{DB_NAME}"
DSN = f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME}"
DESCRIPTION = "藤桥戍浦社区门口的路灯不亮，晚上一片漆黑"
CATEGORY = "component.streetlight"
SINK = "bench-intake-events"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(tag: str, k: int) -> dict:
    # A point of its own on the bench's lattice: no report joins another's case.
    return {
        "channel": "grid_app",
        "external_id": f"{tag}-{k}",
        "description": DESCRIPTION,
        "category": CATEGORY,
        "location": point(k),
    }


class Intake:
    """intake's nameko service on the bench's own vhost, database, port and folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AMQP_URI": AMQP_URI,
                "DATABASE_URL": DATABASE_URL,
                "GRIDFLOW_CLOCK": "real",
                "INTAKE_HTTP": f"127.0.0.1:{self.port}",
                "GRIDFLOW_PHOTOS_DIR": str(self.folder / "photos"),
                "GRIDFLOW_ADMIN_TOKEN_FILE": str(self.folder / "admin-token"),
            }
        )
        env.pop("INTAKE_WORKERS", None)
        return env

    def prepare(self) -> None:
        infra.fresh_vhost(VHOST)
        infra.fresh_database(DB_NAME)
        gridflow = str(infra.ROOT / ".venv" / "bin" / "gridflow")
        for args in (
            ["migrate", "--database-url", DATABASE_URL],
            ["ensure-jurisdiction", "--database-url", DATABASE_URL],
            ["admin-token", "--database-url", DATABASE_URL],
        ):
            subprocess.run(
                [gridflow, *args], env=self.env(), check=True, capture_output=True, timeout=300
            )
        self._sink()

    def _sink(self) -> None:
        """One queue bound to every intake event, so the relay's mandatory publishes are
        routed (and not retried as unroutable); capped, oldest dropped."""
        import kombu

        from gridflow_common import contracts as c

        exchange = kombu.Exchange(c.event_exchange(c.INTAKE), type="topic", durable=True)
        queue = kombu.Queue(
            SINK,
            exchange=exchange,
            routing_key="#",
            durable=True,
            queue_arguments={"x-max-length": 1000, "x-overflow": "drop-head"},
        )
        with kombu.Connection(AMQP_URI, connect_timeout=5) as conn:
            queue(conn.channel()).declare()

    def start(self) -> None:
        log = open(self.folder / "intake.log", "w")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            [
                str(infra.ROOT / ".venv" / "bin" / "nameko"),
                "run",
                "--config",
                "services/intake/config.yaml",
                "gridflow_intake.service:IntakeService",
            ],
            cwd=infra.ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"intake exited; see {self.folder / 'intake.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # bounded: the 60 s deadline above
        raise RuntimeError("intake did not answer /healthz within 60 s")

    @property
    def admin(self) -> dict[str, str]:
        token = (self.folder / "admin-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def channel_key(self) -> dict[str, str]:
        answer = httpx.post(
            f"{self.url}/api/v1/admin/keys",
            json={"channel": "grid_app", "label": "bench", "rate_limit": "1000000/min"},
            headers=self.admin,
            timeout=30,
        )
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _measure(name: str, count: int, pid: int, run) -> dict:
    cpu0 = infra.cpu_seconds(pid) or 0.0
    started = time.perf_counter()
    accepted = run()
    seconds = time.perf_counter() - started
    cpu = (infra.cpu_seconds(pid) or 0.0) - cpu0
    return {
        "path": name,
        "reports": count,
        "accepted": accepted,
        "seconds": seconds,
        "per_second": accepted / seconds if seconds else 0.0,
        "intake_cpu_ms": cpu * 1000 / accepted if accepted else None,
    }


def single_reports(intake: Intake, headers: dict, n: int, threads: int) -> int:
    clients = [
        httpx.Client(base_url=intake.url, headers=headers, timeout=60) for _ in range(threads)
    ]

    def send(k: int) -> bool:
        answer = clients[k % threads].post("/api/v1/reports", json=report("single", k))
        return answer.status_code in (200, 201)

    try:
        with cf.ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(send, range(n)))
    finally:
        for client in clients:
            client.close()


def batches(intake: Intake, headers: dict, n: int, size: int, threads: int, offset: int) -> int:
    clients = [
        httpx.Client(base_url=intake.url, headers=headers, timeout=120) for _ in range(threads)
    ]

    def send(b: int) -> int:
        items = [report("batch", offset + b * size + i) for i in range(size)]
        answer = clients[b % threads].post("/api/v1/reports/batch", json={"items": items})
        if answer.status_code != 200:
            infra.log(f"batch {b} not taken: {answer.status_code} {answer.text[:200]}")
            return 0
        return sum(r["outcome"] in ("registered", "joined") for r in answer.json()["results"])

    try:
        with cf.ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(send, range(n // size)))
    finally:
        for client in clients:
            client.close()


def bulk_import(intake: Intake, headers: dict, n: int, folder: Path, offset: int) -> int:
    from gridflow_app import import_reports

    path = folder / "import.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["description", "category", "lat", "lon"])
        for k in range(n):
            p = point(offset + k)
            writer.writerow([f"{DESCRIPTION} {k}", CATEGORY, p["lat"], p["lon"]])
    with (
        httpx.Client(base_url=intake.url, headers=headers, timeout=120) as client,
        open(os.devnull, "w") as quiet,
    ):
        counts = import_reports.run(path, client, channel="grid_app", progress=quiet)
    return counts.get("registered", 0) + counts.get("joined", 0)


def postgres_inserts(n: int, per_commit: int) -> dict:
    """Raw psycopg2: rows shaped like a case and its report (two inserts a report), committed
    one report at a time or ``per_commit`` at a time."""
    import psycopg2
    from psycopg2.extras import execute_values

    conn = psycopg2.connect(DSN)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS bench_cases (case_id text PRIMARY KEY, category text,"
                " description text, lat float8, lon float8, registered_at timestamptz,"
                " observed_at timestamptz);"
                "CREATE TABLE IF NOT EXISTS bench_reports (id serial PRIMARY KEY, case_id text"
                " REFERENCES bench_cases, channel text, external_id text, description text,"
                " received_at timestamptz, UNIQUE (channel, external_id));"
                "TRUNCATE bench_reports, bench_cases"
            )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            for start in range(0, n, per_commit):
                rows = range(start, min(start + per_commit, n))
                cases = [(f"c{per_commit}-{k}", CATEGORY, DESCRIPTION, 28.0, 120.6) for k in rows]
                reports = [(f"c{per_commit}-{k}", "grid_app", f"e{k}", DESCRIPTION) for k in rows]
                execute_values(
                    cur,
                    "INSERT INTO bench_cases VALUES %s",
                    cases,
                    template="(%s, %s, %s, %s, %s, now(), now())",
                )
                execute_values(
                    cur,
                    "INSERT INTO bench_reports (case_id, channel, external_id, description,"
                    " received_at) VALUES %s",
                    reports,
                    template="(%s, %s, %s, %s, now())",
                )
                conn.commit()
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    return {
        "path": f"PostgreSQL raw inserts, {per_commit} per commit",
        "reports": n,
        "accepted": n,
        "seconds": seconds,
        "per_second": n / seconds,
        "intake_cpu_ms": None,
    }


def table(rows: list[dict]) -> str:
    head = (
        f"{'path':<48} {'reports':>8} {'seconds':>8} {'reports/s':>10} {'intake CPU ms/report':>21}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        cpu = f"{r['intake_cpu_ms']:.2f}" if r["intake_cpu_ms"] is not None else "-"
        lines.append(
            f"{r['path']:<48} {r['accepted']:>8} {r['seconds']:>8.2f} "
            f"{r['per_second']:>10.0f} {cpu:>21}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    args = parser.parse_args(argv)
    n_single, n_batch, n_import = (300, 1000, 1000) if args.quick else (2000, 5000, 5000)
    threads = 8
    folder = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    intake = Intake(folder)
    infra.log(f"load {infra.load_average()} before; preparing vhost and database {DB_NAME}")
    intake.prepare()
    intake.start()
    rows: list[dict] = []
    try:
        headers = intake.channel_key()
        pid = intake.proc.pid if intake.proc else 0
        # Warm up: connections, the jurisdiction cache, the first compiled statements.
        single_reports(intake, headers, 20, 4)
        infra.log(f"native API: {n_single} single reports, {threads} clients")
        rows.append(
            _measure(
                f"POST /api/v1/reports ({threads} clients)",
                n_single,
                pid,
                lambda: single_reports(intake, headers, n_single, threads),
            )
        )
        infra.log(f"batch upload: {n_batch} reports in batches of 100, 2 clients")
        rows.append(
            _measure(
                "POST /api/v1/reports/batch (100 a batch, 2 clients)",
                n_batch,
                pid,
                lambda: batches(intake, headers, n_batch, 100, 2, 10_000),
            )
        )
        infra.log(f"bulk import: a CSV file of {n_import} rows")
        rows.append(
            _measure(
                "gridflow import-reports (CSV over the batch API)",
                n_import,
                pid,
                lambda: bulk_import(intake, headers, n_import, folder, 30_000),
            )
        )
        infra.log("PostgreSQL's own insert rate, same database")
        rows.append(postgres_inserts(n_single, 1))
        rows.append(postgres_inserts(n_batch, 100))
    finally:
        intake.stop()
        infra.drop_vhost(VHOST)
    print()
    print(table(rows))
    print(f"\nload average after: {infra.load_average()} (2 cores, shared)")
    print(json.dumps({"bench": "intake", "quick": args.quick, "rows": rows}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
