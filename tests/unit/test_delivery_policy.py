"""The retry schedule and the circuit breaker of department deliveries (domain.delivery)."""

from __future__ import annotations

import pytest

from gridflow_common.domain.delivery import (
    CLOSED,
    DEFAULT_RETRY_SCHEDULE,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    RetrySchedule,
)


def test_the_schedule_waits_its_delays_in_order_then_gives_up():
    schedule = RetrySchedule((10, 30, 60))
    assert [schedule.wait_after(n) for n in (1, 2, 3, 4)] == [10, 30, 60, None]
    assert schedule.tries == 4


def test_a_system_that_says_when_to_come_back_is_not_tried_sooner():
    schedule = RetrySchedule((10, 30))
    assert schedule.wait_after(1, retry_after=120) == 120
    assert schedule.wait_after(1, retry_after=2) == 10
    # Retry-After never buys a try beyond the schedule.
    assert schedule.wait_after(3, retry_after=1) is None


def test_the_schedule_is_read_from_its_setting():
    assert RetrySchedule.parse("1, 2.5,0").delays == (1.0, 2.5, 0.0)
    assert RetrySchedule.parse("").delays == DEFAULT_RETRY_SCHEDULE
    assert RetrySchedule.parse(None).delays == DEFAULT_RETRY_SCHEDULE
    with pytest.raises(ValueError, match="'soon' is not a number"):
        RetrySchedule.parse("10,soon")
    with pytest.raises(ValueError, match="'-5'"):
        RetrySchedule.parse("10,-5")
    # An empty schedule: one try, no retry.
    assert RetrySchedule(()).wait_after(1) is None


def test_the_circuit_opens_after_the_threshold_and_lets_one_probe_through_after_cool_down():
    breaker = CircuitBreaker(threshold=3, cool_down=30)
    for now in (0, 1):
        breaker.failed("fire", now)
        assert breaker.allow("fire", now)
    breaker.failed("fire", 2)
    assert breaker.state("fire", 2) == OPEN
    assert not breaker.allow("fire", 31.9)
    # Another department is not affected.
    assert breaker.allow("police", 3)
    assert breaker.state("fire", 32) == HALF_OPEN
    assert breaker.allow("fire", 32)  # the probe
    assert not breaker.allow("fire", 32.5)  # only one at a time
    breaker.failed("fire", 33)  # the probe failed: open again, a full cool-down
    assert not breaker.allow("fire", 62.9)
    assert breaker.allow("fire", 63)
    breaker.succeeded("fire")
    assert breaker.state("fire", 63) == CLOSED
    assert breaker.allow("fire", 63) and breaker.allow("fire", 63)


def test_a_success_resets_the_count_of_failures_in_a_row():
    breaker = CircuitBreaker(threshold=2, cool_down=30)
    breaker.failed("water", 0)
    breaker.succeeded("water")
    breaker.failed("water", 1)
    assert breaker.state("water", 1) == CLOSED


def test_a_probe_released_without_an_outcome_lets_another_probe_through():
    breaker = CircuitBreaker(threshold=1, cool_down=5)
    breaker.failed("x", 0)
    assert breaker.allow("x", 5)
    breaker.released("x")
    assert breaker.allow("x", 5)
