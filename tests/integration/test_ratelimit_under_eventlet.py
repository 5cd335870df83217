"""The Redis rate limiter inside an eventlet-patched process, as nameko runs intake: green threads
share one budget exactly, and a Redis that never answers stalls no green thread for long."""

from __future__ import annotations

import os
import socket
import uuid

import eventlet
import pytest
import redis
from eventlet import patcher

from gridflow_intake.ratelimit import REDIS_KEY_PREFIX, Limit, RedisRateLimiter

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def bucket():
    name = f"test:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(REDIS_KEY_PREFIX + name)
    client.close()


def test_the_process_is_eventlet_patched():
    assert patcher.is_monkey_patched("socket")


def test_fifty_green_threads_on_two_replicas_get_exactly_the_limit(bucket):
    replicas = [RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)]
    limit = Limit(100, 3600)
    pool = eventlet.GreenPool(50)
    allowed = list(
        pool.imap(
            lambda n: sum(replicas[n % 2].hit(bucket, limit).allowed for _ in range(10)),
            range(50),
        )
    )
    assert len(allowed) == 50
    assert sum(allowed) == 100
    assert not any(r.degraded for r in replicas)


def test_green_threads_facing_a_hung_redis_are_all_answered_from_memory(bucket):
    with socket.socket() as hung:  # accepts connections, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(128)
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{hung.getsockname()[1]}/0")
        pool = eventlet.GreenPool(40)
        with eventlet.Timeout(10):
            answers = list(pool.imap(lambda _: limiter.hit(bucket, Limit(5, 60)), range(40)))
    assert len(answers) == 40
    assert sum(a.allowed for a in answers) == 5
    assert limiter.degraded
