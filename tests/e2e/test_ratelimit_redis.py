"""Rate limits shared through the real Redis (REDIS_URL, default this machine's), as intake
replicas share them: one budget for every replica, never a request too many under concurrency,
and a Redis that is gone (never there, hung, or killed and started again) failing no request.

Each test works in buckets of its own (a random prefix), so runs side by side do not collide;
the outage tests use a redis-server of their own on a free port, never the shared one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
import redis
from prometheus_client import REGISTRY

from gridflow_common.logging import configure
from gridflow_intake.ratelimit import (
    REDIS_KEY_PREFIX,
    Limit,
    MemoryRateLimiter,
    RedisRateLimiter,
    make_rate_limiter,
)
from tests.conftest import free_port

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def bucket():
    """A bucket name no other test or run uses; its keys are removed afterwards."""
    name = f"test:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{REDIS_KEY_PREFIX}{name}*"):
        client.delete(key)
    client.close()


def backend_errors() -> float:
    return REGISTRY.get_sample_value("gridflow_rate_limit_backend_errors_total") or 0


def log_events(text: str) -> list[str]:
    events = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line).get("event"))
    return events


def wait_until(condition, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)  # bounded poll on an observable result
    raise AssertionError(f"{what} did not hold within {timeout} s")


class RedisServer:
    """A redis-server of the test's own on ``port``: nothing saved, nothing shared."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)

        def answers() -> bool:
            with contextlib.suppress(redis.ConnectionError):
                return bool(client.ping())
            assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
            return False

        wait_until(answers, what=f"redis-server on port {self.port} answering")
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def keys(self) -> list[bytes]:
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            return client.keys(f"{REDIS_KEY_PREFIX}*")
        finally:
            client.close()


@pytest.fixture
def own_redis():
    server = RedisServer(free_port())
    server.start()
    yield server
    server.kill()


def test_two_replicas_share_one_budget(bucket):
    replicas = [RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)]
    limit = Limit(10, 60)
    answers = [replicas[n % 2].hit(bucket, limit) for n in range(16)]
    assert [a.allowed for a in answers] == [True] * 10 + [False] * 6
    assert [a.remaining for a in answers[:10]] == list(range(9, -1, -1))
    assert all(a.retry_after in (5, 6) for a in answers[10:])  # 60/10 s, less what has passed
    assert not any(r.degraded for r in replicas)


def test_fifty_threads_on_two_replicas_never_exceed_the_limit(bucket):
    replicas = [RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)]
    limit = Limit(100, 3600)
    start = threading.Barrier(50)
    allowed: list[int] = []

    def client(n: int) -> None:
        start.wait()
        allowed.append(sum(replicas[n % 2].hit(bucket, limit).allowed for _ in range(10)))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 50
    assert sum(allowed) == 100
    assert not any(r.degraded for r in replicas)


def test_the_window_refills_one_request_at_a_time(bucket):
    limiter = RedisRateLimiter(REDIS_URL)
    limit = Limit(2, 2)  # one back every second: short, yet a busy machine cannot refill it early
    assert [limiter.hit(bucket, limit).allowed for _ in range(3)] == [True, True, False]
    assert limiter.peek(bucket, limit).retry_after == 1
    wait_until(lambda: limiter.peek(bucket, limit).allowed, 5, "a refill")
    assert limiter.hit(bucket, limit).allowed
    assert not limiter.hit(bucket, limit).allowed  # one came back, not the whole budget
    wait_until(lambda: limiter.peek(bucket, limit).remaining == 2, 5, "the whole budget back")


def test_redis_and_memory_answer_alike(bucket):
    limit = Limit(5, 3600)
    sequence = [1, 2, 1, 3, 1, 1, 5, 1]
    redis_limiter, memory = RedisRateLimiter(REDIS_URL), MemoryRateLimiter()
    from_redis = [redis_limiter.hit(bucket, limit, cost) for cost in sequence]
    from_memory = [memory.hit(bucket, limit, cost) for cost in sequence]
    assert [(d.allowed, d.remaining) for d in from_redis] == [
        (d.allowed, d.remaining) for d in from_memory
    ]
    assert [d.retry_after for d in from_redis] == [d.retry_after for d in from_memory]
    assert redis_limiter.peek(bucket, limit) == memory.peek(bucket, limit)


def test_clear_and_the_key_expiring_when_the_bucket_has_drained(bucket):
    limiter = RedisRateLimiter(REDIS_URL)
    client = redis.Redis.from_url(REDIS_URL)
    limiter.hit(bucket, Limit(1, 60))
    assert not limiter.hit(bucket, Limit(1, 60)).allowed
    assert 0 < client.pttl(REDIS_KEY_PREFIX + bucket) <= 60_001
    limiter.clear(bucket)
    assert client.exists(REDIS_KEY_PREFIX + bucket) == 0
    assert limiter.hit(bucket, Limit(1, 60)).allowed
    client.close()


def test_a_redis_url_makes_a_redis_limiter():
    limiter = make_rate_limiter(REDIS_URL)
    assert isinstance(limiter, RedisRateLimiter)


def test_no_redis_at_all_falls_back_to_memory_and_still_limits(bucket, capsys):
    configure()
    closed_port = free_port()  # bound and released: nothing listens there
    limiter = RedisRateLimiter(f"redis://:secret@127.0.0.1:{closed_port}/0", retry_seconds=60)
    errors = backend_errors()
    answers = [limiter.hit(bucket, Limit(3, 60)) for _ in range(200)]
    assert [a.allowed for a in answers] == [True] * 3 + [False] * 197
    assert limiter.degraded
    # Redis was tried once, not once per hit: a dead Redis costs the others nothing.
    assert backend_errors() - errors == 1
    stderr = capsys.readouterr().err
    assert log_events(stderr).count("rate_limit_backend_unavailable") == 1
    assert "secret" not in stderr


def test_a_hung_redis_times_out_quickly_and_the_hit_is_decided_in_memory(bucket):
    # Accepts connections (the kernel's backlog) and never answers: the slowest way to fail.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        port = hung.getsockname()[1]
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}/0", retry_seconds=60)
        errors = backend_errors()
        answers = [limiter.hit(bucket, Limit(2, 60)).allowed for _ in range(50)]
    assert answers == [True, True] + [False] * 48
    assert limiter.degraded
    assert backend_errors() - errors == 1


def test_redis_killed_and_started_again_falls_back_then_is_used_again(own_redis, bucket, capsys):
    configure()
    limit = Limit(3, 60)
    replica = RedisRateLimiter(own_redis.url, retry_seconds=0.2)
    other = RedisRateLimiter(own_redis.url, retry_seconds=0.2)
    assert replica.hit(bucket, limit).allowed
    assert own_redis.keys() == [f"{REDIS_KEY_PREFIX}{bucket}".encode()]

    own_redis.kill()
    # Degraded: this replica limits from its own memory (a fresh budget of 3), fails nothing.
    answers = [replica.hit(bucket, limit).allowed for _ in range(5)]
    assert answers == [True, True, True, False, False]
    assert replica.degraded

    own_redis.start()  # empty, on the same port
    wait_until(lambda: replica.hit(bucket, limit) and not replica.degraded, 10, "Redis used again")
    assert own_redis.keys() == [f"{REDIS_KEY_PREFIX}{bucket}".encode()]
    # Shared again: the other replica has what is left of the one budget, 2 of 3.
    assert [other.hit(bucket, limit).allowed for _ in range(3)] == [True, True, False]
    assert not replica.hit(bucket, limit).allowed
    assert not other.degraded

    events = log_events(capsys.readouterr().err)
    assert events.count("rate_limit_backend_unavailable") == 1
    assert events.count("rate_limit_backend_recovered") == 1
