"""What both halves of the benchmark share: the isolated broker vhost and database, the sink that
timestamps arrivals on the final queues, queue depths, and the statistics.

Timestamps that cross a process boundary are ``time.time()`` (one wall clock for every process on
this machine); durations inside one process are ``time.perf_counter()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BENCH_VAR_DIR", ROOT / "var" / "bench"))
VHOST = "gridflow_bench"
AMQP_URI = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"
DB_NAME = "gridflow_bench"
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
PSYCOPG2_DSN = f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME}"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=check
    )


def fresh_vhost(vhost: str = VHOST) -> None:
    """Our own vhost, emptied: deleting and re-adding it removes every queue a previous (possibly
    crashed) run left behind, and closes any connection still attached to it."""
    listed = _rabbitmqctl("list_vhosts", "name").stdout.split()
    if vhost in listed:
        _rabbitmqctl("delete_vhost", vhost)
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def drop_vhost(vhost: str) -> None:
    _rabbitmqctl("delete_vhost", vhost, check=False)


def fresh_database(name: str = DB_NAME) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # FORCE: a service of a crashed earlier run may still hold a connection.
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def topology_script(action: str, env: dict[str, str]) -> str:
    """deploy/topology.sh ACTION (up, down) with ``env``, from the checkout; what it printed, or
    RuntimeError with all it said."""
    result = subprocess.run(
        [str(ROOT / "deploy" / "topology.sh"), action],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"topology.sh {action} failed: {result.stdout}{result.stderr}")
    return result.stdout


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def queue_depths(names: list[str], amqp_uri: str = AMQP_URI) -> dict[str, int]:
    """Ready messages per queue (passive declare: a queue that does not exist counts as 0)."""
    import kombu
    from amqp.exceptions import NotFound

    depths: dict[str, int] = {}
    with kombu.Connection(amqp_uri, connect_timeout=5) as conn:
        for name in names:
            channel = conn.channel()
            try:
                _, count, _ = channel.queue_declare(name, passive=True)
                depths[name] = count
            except NotFound:
                depths[name] = 0
            finally:
                # A NotFound has already closed the channel.
                with contextlib.suppress(Exception):
                    channel.close()
    return depths


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every core since boot, for the share of CPU in use over a span."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def load_average() -> list[float]:
    """1, 5 and 15 minute load: other work on the machine (tests, a topology) skews every figure."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


class CpuMeter:
    """CPU used by given processes, and the machine's busy share, between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine_before = machine_busy()

    def stop(self, cases: int) -> dict:
        busy0, total0 = self.machine_before
        busy1, total1 = machine_busy()
        per_case = {}
        for name, pid in self.pids.items():
            now, then = cpu_seconds(pid), self.before.get(name)
            if now is not None and then is not None and cases:
                per_case[name] = round((now - then) * 1000 / cases, 2)
        return {
            "cpu_ms_per_case": per_case,
            "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1), 3),
        }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: with 1000 samples p99 is the 990th value, an observed latency."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def latency_summary(seconds: list[float]) -> dict:
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": _r(percentile(ms, 50)),
        "p90_ms": _r(percentile(ms, 90)),
        "p99_ms": _r(percentile(ms, 99)),
        "max_ms": _r(max(ms) if ms else None),
    }


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# -- the sink: a process of its own that timestamps what reaches the final queues ------------------


def sink_main(
    queues: list[tuple[str, ...]], expected, stop, ready, result_path: str, max_seconds: float
) -> None:
    """Consume ``queues`` ((exchange, routing key, queue[, exchange type]), durable, direct
    unless said) and write
    ``[[case_id, received_at, sent_at], ...]`` to ``result_path`` when ``expected.value`` messages
    have arrived, ``stop`` is set, or ``max_seconds`` have passed.

    A process of its own so that the senders' threads cannot delay the receive timestamp; no_ack
    because this is the measuring end, not a stage under test.
    """
    import kombu

    records: list[list] = []

    def on_message(message) -> None:
        received = time.time()
        body = json.loads(message.body)
        # One record per case: the lead's copy (assisting copies and later changes also arrive).
        if body.get("role", "lead") != "lead" or body.get("kind", "case") != "case":
            return
        records.append([body.get("case_id"), received, body.get("sent_at")])

    deadline = time.monotonic() + max_seconds
    with kombu.Connection(AMQP_URI, connect_timeout=10) as conn:
        channel = conn.channel()
        declared = []
        for exchange_name, key, queue_name, *rest in queues:
            kind: str = rest[0] if rest else "direct"
            exchange = kombu.Exchange(exchange_name, type=kind, durable=True)
            queue = kombu.Queue(
                queue_name, exchange=exchange, routing_key=key, durable=True, auto_delete=False
            )
            queue.declare(channel=channel)
            declared.append(queue)
        consumer = kombu.Consumer(channel, queues=declared, on_message=on_message, no_ack=True)
        consumer.consume()
        ready.set()
        while time.monotonic() < deadline and not stop.is_set():
            if 0 <= expected.value <= len(records):
                break
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.2)
    Path(result_path).write_text(json.dumps(records))


class Sink:
    """Runs ``sink_main`` in a spawned process; ``finish`` returns what arrived."""

    def __init__(self, ctx, queues: list[tuple[str, ...]], name: str, max_seconds: float):
        self.expected = ctx.Value("q", -1)
        self.stop = ctx.Event()
        self.ready = ctx.Event()
        self.result_path = str(VAR_DIR / f"sink-{name}.json")
        Path(self.result_path).unlink(missing_ok=True)
        self.process = ctx.Process(
            target=sink_main,
            name=f"bench-sink-{name}",
            args=(queues, self.expected, self.stop, self.ready, self.result_path, max_seconds),
        )

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        if not self.ready.wait(timeout):
            raise RuntimeError("the sink did not declare its queues in time")

    def expect(self, count: int) -> None:
        self.expected.value = count

    def finish(self, timeout: float) -> list[list]:
        """Wait up to ``timeout`` s for the expected count, then stop the sink and read it."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.stop.set()
            self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        path = Path(self.result_path)
        return json.loads(path.read_text()) if path.exists() else []
