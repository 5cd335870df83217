"""What one rate-limit hit costs a request, on each backend: ``python -m bench.ratelimit_cost``.

Prints p50 / p99 / mean microseconds of one ``hit`` (and one ``SignInGuard.check``) from one
thread, and hits per second from BENCH_RL_THREADS threads on one bucket: in memory, on the real
Redis (REDIS_URL, default this machine's), and on a Redis that is gone (a closed port: the
fallback to memory, after the one failed try). Measures, asserts nothing.

Options (environment): REDIS_URL, BENCH_RL_HITS (20000 per measurement), BENCH_RL_THREADS (8).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import redis

from bench.infra import percentile
from gridflow_intake.ratelimit import (
    REDIS_KEY_PREFIX,
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    SignInGuard,
)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
HITS = int(os.environ.get("BENCH_RL_HITS", 20_000))
THREADS = int(os.environ.get("BENCH_RL_THREADS", 8))
# Large enough that most hits are allowed and spend (the write path), as in normal traffic.
LIMIT = Limit(1_000_000, 3600)


def one_thread(call: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(n, 500)):  # warm: connections made, script loaded
        call()
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def threads_rate(call: Callable[[], object], n: int, threads: int) -> float:
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(n // threads):
            call()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    return (n // threads) * threads / (time.perf_counter() - began)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def row(label: str, seconds: list[float], rate: float | None) -> str:
    us = [s * 1e6 for s in seconds]
    p50, p99 = percentile(us, 50), percentile(us, 99)
    mean = sum(us) / len(us)
    rate_cell = f"{rate:>12,.0f}" if rate is not None else f"{'':>12}"
    return f"{label:44} {p50:>8.1f} {p99:>8.1f} {mean:>8.1f} {rate_cell}"


def main() -> int:
    prefix = f"bench:{uuid.uuid4().hex[:8]}"
    backends: list[tuple[str, RateLimiter]] = [
        ("memory", MemoryRateLimiter()),
        (f"redis ({REDIS_URL})", RedisRateLimiter(REDIS_URL)),
        ("redis gone (closed port: memory fallback)", RedisRateLimiter(f"redis://127.0.0.1:{closed_port()}/0")),
    ]  # fmt: skip
    print(f"one rate-limit hit, {HITS} per measurement, {os.cpu_count()} cores")
    print(f"{'':44} {'p50 µs':>8} {'p99 µs':>8} {'mean µs':>8} {f'{THREADS} thr/s':>12}")
    for name, limiter in backends:
        bucket = f"{prefix}:{name[:5]}"
        hits = one_thread(lambda: limiter.hit(bucket, LIMIT), HITS)  # noqa: B023
        rate = threads_rate(lambda: limiter.hit(bucket + ":t", LIMIT), HITS, THREADS)  # noqa: B023
        print(row(f"hit, {name}", hits, rate))
        guard = SignInGuard(limiter)
        checks = one_thread(lambda: guard.check("alice", "192.0.2.1"), HITS)  # noqa: B023
        print(row("  SignInGuard.check (user and address)", checks, None))
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{REDIS_KEY_PREFIX}{prefix}*"):
        client.delete(key)
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
