"""Rate limits in memory (the embedded default's backend) and the sign-in slowdown, on a clock the
test moves; Redis's side is tests/e2e/test_ratelimit_redis.py."""

from __future__ import annotations

import sys
import threading

import pytest
from prometheus_client import REGISTRY

from gridflow_intake.ratelimit import (
    Decision,
    Limit,
    MemoryRateLimiter,
    SignInGuard,
    make_rate_limiter,
    parse_limit,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def limiter(clock):
    return MemoryRateLimiter(clock=clock)


def refused(limiter, bucket: str, limit: Limit) -> Decision:
    decision = limiter.hit(bucket, limit)
    assert not decision.allowed, decision
    return decision


# -- parse_limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("30/min", Limit(30, 60)),
        ("5/s", Limit(5, 1)),
        ("1000/h", Limit(1000, 3600)),
        ("20/10s", Limit(20, 10)),
        ("2/1.5s", Limit(2, 1.5)),
        (" 7 / 2 Minutes ", Limit(7, 120)),
        ("100/day", Limit(100, 86400)),
    ],
)
def test_limits_are_read_as_count_per_window(text, limit):
    assert parse_limit(text) == limit


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "expected COUNT/UNIT"),
        ("30", "expected COUNT/UNIT"),
        ("30/5", "expected COUNT/UNIT"),
        ("30/min/s", "expected COUNT/UNIT"),
        ("30/fortnight", "unknown unit 'fortnight'"),
        ("x/s", "the count 'x' is not a whole number"),
        ("1.5/s", "the count '1.5' is not a whole number"),
        ("-3/s", "the count '-3' is not a whole number"),
        ("٣/s", "is not a whole number"),
        ("0/min", "count must be a whole number from 1"),
        ("5000000/s", "count must be a whole number from 1"),
        ("5/0s", "window must be more than 0"),
        ("5/400d", "window must be more than 0 and at most"),
    ],
)
def test_a_wrong_limit_is_refused_quoting_it_and_naming_the_problem(text, problem):
    with pytest.raises(ValueError) as error:
        parse_limit(text)
    assert repr(text) in str(error.value)
    assert problem in str(error.value)


# -- the memory limiter --------------------------------------------------------------------------


def test_a_burst_of_the_count_is_allowed_then_refused_until_one_request_fits(limiter, clock):
    limit = Limit(10, 60)
    remaining = [limiter.hit("addr:1.2.3.4", limit).remaining for _ in range(10)]
    assert remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert refused(limiter, "addr:1.2.3.4", limit).retry_after == 6  # one every 60/10 s
    clock.now += 5.5
    assert refused(limiter, "addr:1.2.3.4", limit).retry_after == 1  # 0.5 s, rounded up
    clock.now += 0.5
    assert limiter.hit("addr:1.2.3.4", limit) == Decision(True, 0, 0)
    refused(limiter, "addr:1.2.3.4", limit)


def test_refused_hits_spend_nothing_so_hammering_does_not_extend_the_wait(limiter, clock):
    limit = Limit(3, 3)
    for _ in range(3):
        limiter.hit("key:k-1", limit)
    for _ in range(100):
        refused(limiter, "key:k-1", limit)
    clock.now += 1
    assert limiter.hit("key:k-1", limit).allowed


def test_a_client_keeping_to_the_rate_is_never_refused(limiter, clock):
    limit = Limit(10, 60)
    for _ in range(10):
        limiter.hit("key:k-1", limit)
    for _ in range(500):
        clock.now += 6
        assert limiter.hit("key:k-1", limit).allowed


def test_the_whole_budget_comes_back_after_the_window(limiter, clock):
    limit = Limit(5, 10)
    for _ in range(5):
        limiter.hit("user:u-1", limit)
    clock.now += 10
    assert [limiter.hit("user:u-1", limit).allowed for _ in range(6)] == [True] * 5 + [False]


def test_buckets_are_independent(limiter):
    limit = Limit(2, 60)
    for _ in range(2):
        limiter.hit("addr:1.1.1.1", limit)
    refused(limiter, "addr:1.1.1.1", limit)
    assert limiter.hit("addr:2.2.2.2", limit).allowed
    assert limiter.hit("key:1.1.1.1", limit).allowed


def test_a_costly_hit_spends_its_cost_and_waits_for_all_of_it(limiter, clock):
    limit = Limit(10, 10)
    assert limiter.hit("key:k-1", limit, cost=6) == Decision(True, 0, 4)
    decision = limiter.hit("key:k-1", limit, cost=6)
    assert decision == Decision(False, 2, 4)  # 4 left; 2 more seconds for 6
    assert limiter.hit("key:k-1", limit, cost=4).allowed
    for cost in (0, -1, 11):
        with pytest.raises(ValueError, match="cost must be from 1 to the limit's count"):
            limiter.hit("key:k-1", limit, cost=cost)


def test_peek_answers_like_a_hit_and_spends_nothing(limiter):
    limit = Limit(2, 60)
    assert limiter.peek("key:k-1", limit) == Decision(True, 0, 2)
    assert limiter.peek("key:k-1", limit) == Decision(True, 0, 2)
    limiter.hit("key:k-1", limit)
    assert limiter.peek("key:k-1", limit) == Decision(True, 0, 1)
    limiter.hit("key:k-1", limit)
    assert limiter.peek("key:k-1", limit) == Decision(False, 30, 0)


def test_clear_gives_the_whole_budget_back(limiter):
    limit = Limit(1, 3600)
    limiter.hit("user:u-1", limit)
    refused(limiter, "user:u-1", limit)
    limiter.clear("user:u-1")
    limiter.clear("user:never-seen")
    assert limiter.hit("user:u-1", limit).allowed


def test_memory_is_bounded_and_drained_buckets_are_forgotten(clock):
    limiter = MemoryRateLimiter(max_buckets=100, clock=clock)
    limit = Limit(1, 60)
    for n in range(1000):
        limiter.hit(f"addr:10.0.{n // 256}.{n % 256}", limit)
    assert len(limiter) == 100
    # The most recent ones are the ones kept, and still limited.
    refused(limiter, "addr:10.0.3.231", limit)  # n = 999
    assert limiter.hit("addr:10.0.0.0", limit).allowed  # forgotten: a fresh budget
    clock.now += 60
    limiter.hit("addr:192.0.2.1", limit)
    assert len(limiter) == 1


def test_long_bucket_names_are_kept_apart_however_alike(limiter):
    limit = Limit(1, 60)
    alike = "signin:user:" + "a" * 100_000
    limiter.hit(alike + "1", limit)
    assert limiter.hit(alike + "2", limit).allowed
    refused(limiter, alike + "1", limit)


def test_a_name_that_is_not_utf8_is_still_its_own_bucket(limiter):
    limit = Limit(1, 60)
    limiter.hit("signin:user:\ud800", limit)
    refused(limiter, "signin:user:\ud800", limit)
    assert limiter.hit("signin:user:\ud801", limit).allowed


def test_fifty_threads_on_one_bucket_get_exactly_the_limit():
    # Threads switch every microsecond instead of every 5 ms, and ten rounds run, so a read and
    # a write of a bucket that are not one step get interleaved (without the lock, 250 to 850
    # of 2,000 hits got through in every run of ten rounds).
    limiter = MemoryRateLimiter()
    limit = Limit(100, 3600)

    def one_round(bucket: str) -> list[int]:
        start = threading.Barrier(50)
        allowed: list[int] = []

        def client():
            start.wait()
            allowed.append(sum(limiter.hit(bucket, limit).allowed for _ in range(40)))

        threads = [threading.Thread(target=client) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return allowed

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        rounds = [one_round(f"key:shared-{n}") for n in range(10)]
    finally:
        sys.setswitchinterval(interval)
    assert [len(allowed) for allowed in rounds] == [50] * 10
    assert [sum(allowed) for allowed in rounds] == [100] * 10


def test_refusals_are_counted_by_bucket_kind(limiter):
    def refusals(kind: str) -> float:
        return REGISTRY.get_sample_value("gridflow_rate_limited_total", {"bucket_kind": kind}) or 0

    before_addr, before_other = refusals("addr"), refusals("other")
    limit = Limit(1, 60)
    for bucket in ("addr:203.0.113.9", "no-colon-here"):
        limiter.hit(bucket, limit)
        for _ in range(3):
            refused(limiter, bucket, limit)
    assert refusals("addr") - before_addr == 3
    assert refusals("other") - before_other == 3


def test_without_a_redis_url_the_limiter_is_in_memory():
    assert isinstance(make_rate_limiter(None), MemoryRateLimiter)
    assert isinstance(make_rate_limiter(""), MemoryRateLimiter)


# -- sign-in -------------------------------------------------------------------------------------


@pytest.fixture
def guard(limiter):
    return SignInGuard(limiter)


def fail(guard: SignInGuard, username: str, times: int, address: str | None = None) -> None:
    for _ in range(times):
        assert guard.check(username, address).allowed
        guard.failed(username, address)


def test_ten_wrong_passwords_in_a_row_lock_the_name_for_a_sensible_while(guard, clock):
    fail(guard, "alice", 9)
    assert guard.check("alice") == Decision(True, 0, 1)
    guard.failed("alice")
    locked = guard.check("alice")
    assert not locked.allowed
    assert 1 <= locked.retry_after <= 60
    clock.now += locked.retry_after - 1
    assert not guard.check("alice").allowed
    clock.now += 1
    assert guard.check("alice").allowed


def test_a_guesser_gets_one_more_try_per_interval_not_another_ten(guard, clock):
    fail(guard, "alice", 10)
    clock.now += 6
    fail(guard, "alice", 1)
    assert not guard.check("alice").allowed


def test_checking_while_locked_does_not_lengthen_the_lock(guard, clock):
    fail(guard, "alice", 10)
    for _ in range(50):
        assert not guard.check("alice").allowed
    clock.now += 6
    assert guard.check("alice").allowed


def test_a_success_forgets_the_failures(guard):
    fail(guard, "alice", 9)
    guard.succeeded("alice")
    fail(guard, "alice", 10)
    assert not guard.check("alice").allowed


def test_another_user_is_not_slowed_by_alices_failures(guard):
    fail(guard, "alice", 10)
    assert not guard.check("alice").allowed
    assert guard.check("bob") == Decision(True, 0, 10)


def test_spelling_the_name_differently_does_not_reset_the_count(guard):
    fail(guard, "alice", 5)
    fail(guard, "Alice", 3)
    fail(guard, " ALICE ", 2)
    assert not guard.check("alice").allowed


def test_one_address_guessing_at_many_users_is_slowed_too(guard):
    for n in range(30):
        fail(guard, f"user{n}", 1, address="198.51.100.7")
    assert not guard.check("someone-else", "198.51.100.7").allowed
    assert guard.check("someone-else", "198.51.100.8").allowed
    assert guard.check("someone-else").allowed


def test_signing_in_to_ones_own_account_does_not_reset_the_address_count(guard):
    for n in range(29):
        fail(guard, f"victim{n}", 1, address="198.51.100.7")
    guard.succeeded("attacker")
    fail(guard, "victim29", 1, address="198.51.100.7")
    assert not guard.check("victim30", "198.51.100.7").allowed


def test_the_guard_counts_its_refusals_as_signin(guard):
    def refusals() -> float:
        return (
            REGISTRY.get_sample_value("gridflow_rate_limited_total", {"bucket_kind": "signin"}) or 0
        )

    before = refusals()
    fail(guard, "carol", 10)
    guard.check("carol")
    assert refusals() - before == 1
