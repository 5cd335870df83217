"""Rate limits: how many requests one key, user or client address may make in a window, and the
slowdown of sign-in for a user name that keeps failing.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as two numbers): a
``Limit(count, seconds)`` lets ``count`` requests through at once and then one more every
``seconds / count``, so a client that keeps to the rate is never refused and one that bursts
waits exactly until its next request fits. A bucket's state is how many seconds of its window
are spent (the "level", draining at one second per second) and when that was measured: a few
bytes in memory, one short Redis string, and an exact answer to "when may I try again"
(``Retry-After``). Keeping the level rather than the instant it drains at keeps the arithmetic
on small numbers, so rounding cannot add up over a burst of thousands of hits.

Two backends with the same arithmetic: ``MemoryRateLimiter`` for one process (the embedded
default), ``RedisRateLimiter`` for replicas that must share one budget (the real topology). The
Redis one never fails a request because Redis is gone: it limits from this process's memory
until Redis answers again, and says so once.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gridflow_common import metrics
from gridflow_common.logging import get_logger

log = get_logger(__name__)

REDIS_KEY_PREFIX = "gridflow:rl:"
# A dead Redis must cost a request no more than this (connect and each read); a live one on the
# same network answers in well under a millisecond.
REDIS_TIMEOUT_SECONDS = 0.05
# While Redis is unreachable, one request in this interval tries it again; the rest go straight
# to memory.
REDIS_RETRY_SECONDS = 2.0
# Buckets a memory limiter keeps at most; beyond it the least recently used is forgotten.
MAX_MEMORY_BUCKETS = 100_000
# Bucket names longer than this are shortened to a prefix and a digest, so a hostile user name of
# 64 KiB costs no more memory (or Redis key) than a short one.
MAX_BUCKET_CHARS = 128
# A hit that overshoots the window by less than this fraction of it is floating-point rounding,
# not a request too many (with at most MAX_COUNT per window, far less than one request).
_SLACK = 1e-9
MAX_COUNT = 1_000_000
MAX_SECONDS = 366 * 86400.0


@dataclass(frozen=True)
class Limit:
    """``count`` requests per ``seconds``: a burst of ``count``, then one every
    ``seconds / count``."""

    count: int
    seconds: float

    def __post_init__(self) -> None:
        # The bounds keep Redis's arithmetic (microseconds in a double) exact.
        if (
            isinstance(self.count, bool)
            or not isinstance(self.count, int)
            or not 1 <= self.count <= MAX_COUNT
        ):
            raise ValueError(
                f"a rate limit's count must be a whole number from 1 to {MAX_COUNT}, "
                f"not {self.count!r}"
            )
        if not (isinstance(self.seconds, (int, float)) and 0 < self.seconds <= MAX_SECONDS):
            raise ValueError(
                f"a rate limit's window must be more than 0 and at most {MAX_SECONDS:.0f} seconds "
                f"(366 days), not {self.seconds!r}"
            )

    @property
    def interval(self) -> float:
        """Seconds between two requests at the sustained rate."""
        return self.seconds / self.count

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_LIMIT = re.compile(r"\s*(?P<count>[^/\s]+)\s*/\s*(?P<number>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)\s*")


def parse_limit(text: str) -> Limit:
    """``"30/min"``, ``"5/s"``, ``"1000/h"``, ``"20/10s"``, ``"2/1.5s"`` as a Limit; a ValueError
    that quotes the text and says what is wrong with it (an operator wrote it in a variable)."""
    match = _LIMIT.fullmatch(text.lower())
    if not match:
        raise ValueError(
            f"rate limit {text!r}: expected COUNT/UNIT or COUNT/NUMBER UNIT, e.g. 30/min or 20/10s"
        )
    count_text, number, unit = match["count"], match["number"], match["unit"]
    if not count_text.isdigit() or not count_text.isascii():
        raise ValueError(f"rate limit {text!r}: the count {count_text!r} is not a whole number")
    if unit not in _UNITS:
        raise ValueError(f"rate limit {text!r}: unknown unit {unit!r} (use s, min, h or d)")
    try:
        return Limit(int(count_text), float(number or 1) * _UNITS[unit])
    except ValueError as error:
        raise ValueError(f"rate limit {text!r}: {error}") from None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Whole seconds (rounded up, at least 1) after which the refused request would be allowed;
    # 0 when allowed. What ``Retry-After`` says.
    retry_after: int
    # Requests of cost 1 that would still be allowed right now.
    remaining: int


class RateLimiter(Protocol):
    def hit(self, bucket: str, limit: Limit, cost: int = 1) -> Decision:
        """Spend ``cost`` from ``bucket``'s budget if it is there (then allowed), else nothing."""
        ...

    def peek(self, bucket: str, limit: Limit) -> Decision:
        """Whether a hit of 1 would be allowed now, and how many would, spending nothing."""
        ...

    def clear(self, bucket: str) -> None: ...


def decide(level: float, limit: Limit, cost: int, spend: bool) -> tuple[Decision, float]:
    """The GCRA step both backends take (Redis's in Lua, in microseconds): ``level`` is the
    seconds of the window the bucket has spent now; the answer, and the level after it."""
    slack = limit.seconds * _SLACK
    after = level + cost * limit.interval
    if after > limit.seconds + slack:
        wait = after - limit.seconds - slack
        return Decision(False, max(1, math.ceil(wait)), _remaining(level, limit)), level
    if not spend:
        return Decision(True, 0, _remaining(level, limit)), level
    return Decision(True, 0, _remaining(after, limit)), after


def _remaining(level: float, limit: Limit) -> int:
    return max(0, int((limit.seconds * (1 + _SLACK) - level) // limit.interval))


def bucket_kind(bucket: str) -> str:
    """The metric label of a bucket: its name up to the first ':' ("addr", "key", "signin").
    A name without one is "other", so a careless bucket name cannot make one label per client."""
    kind, colon, _ = bucket.partition(":")
    return kind if colon and kind else "other"


def _short(bucket: str) -> str:
    """The bucket's name as kept: itself, or when too long or not valid UTF-8 (a Redis key is
    bytes), a readable start and a digest of the whole."""
    if len(bucket) <= MAX_BUCKET_CHARS:
        try:
            bucket.encode("utf-8")
            return bucket
        except UnicodeEncodeError:
            pass
    digest = hashlib.sha256(bucket.encode("utf-8", "surrogatepass")).hexdigest()
    return bucket[:64].encode("utf-8", "replace").decode("utf-8") + "#" + digest


def _check_cost(limit: Limit, cost: int) -> None:
    if not 1 <= cost <= limit.count:
        raise ValueError(
            f"a hit's cost must be from 1 to the limit's count ({limit.count}), not {cost}"
        )


class _Limiter:
    """What both backends share: argument checks, bucket names, the refusals counter."""

    def hit(self, bucket: str, limit: Limit, cost: int = 1) -> Decision:
        _check_cost(limit, cost)
        return self._counted(bucket, self._apply(_short(bucket), limit, cost, True))

    def peek(self, bucket: str, limit: Limit) -> Decision:
        return self._counted(bucket, self._apply(_short(bucket), limit, 1, False))

    def clear(self, bucket: str) -> None:
        self._clear(_short(bucket))

    @staticmethod
    def _counted(bucket: str, decision: Decision) -> Decision:
        if not decision.allowed:
            metrics.RATE_LIMITED.labels(bucket_kind(bucket)).inc()
        return decision

    def _apply(self, bucket: str, limit: Limit, cost: int, spend: bool) -> Decision:
        raise NotImplementedError

    def _clear(self, bucket: str) -> None:
        raise NotImplementedError


class MemoryRateLimiter(_Limiter):
    """One process's buckets, behind one lock (the embedded default serves with threads; under
    eventlet the lock is a green one). At most ``max_buckets`` are kept: the least recently
    spent is forgotten first, and a bucket whose budget is whole again holds nothing worth
    keeping, so it goes as soon as it is the oldest."""

    def __init__(
        self, max_buckets: int = MAX_MEMORY_BUCKETS, clock: Callable[[], float] = time.monotonic
    ):
        # bucket -> (when measured, level then), least recently spent first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_buckets = max_buckets
        self._clock = clock
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _apply(self, bucket: str, limit: Limit, cost: int, spend: bool) -> Decision:
        with self._lock:
            now = self._clock()
            at, level = self._buckets.get(bucket, (now, 0.0))
            decision, after = decide(max(level - (now - at), 0.0), limit, cost, spend)
            if decision.allowed and spend:
                self._buckets[bucket] = (now, after)
                self._buckets.move_to_end(bucket)
                self._forget(now)
            return decision

    def _clear(self, bucket: str) -> None:
        with self._lock:
            self._buckets.pop(bucket, None)

    def _forget(self, now: float) -> None:
        while self._buckets:
            at, level = next(iter(self._buckets.values()))
            if at + level > now and len(self._buckets) <= self._max_buckets:
                return
            self._buckets.popitem(last=False)


# The GCRA step of ``decide`` in microseconds on Redis's clock (TIME), so replicas whose clocks
# disagree still share one budget; the state is "<measured at> <level>". One script is one atomic
# step: no two replicas can both spend the last request. Numbers go out through string.format
# because Redis writes a Lua number with 14 significant digits, fewer than an instant in
# microseconds has. The key expires when its level has drained: an idle bucket costs nothing.
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local spend = ARGV[4] == '1'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local level = 0
local state = redis.call('GET', KEYS[1])
if state then
  local at, spent = string.match(state, '^(%d+) (%S+)$')
  if at then level = math.max(tonumber(spent) - (now - tonumber(at)), 0) end
end
local slack = window * tonumber(ARGV[5])
local after = level + cost * interval
if after > window + slack then
  return {0, math.ceil(after - window - slack), math.floor((window + slack - level) / interval)}
end
if not spend then
  return {1, 0, math.floor((window + slack - level) / interval)}
end
redis.call('SET', KEYS[1], string.format('%.0f %.17g', now, after),
           'PX', string.format('%.0f', math.ceil(after / 1000) + 1))
return {1, 0, math.floor((window + slack - after) / interval)}
"""


class RedisRateLimiter(_Limiter):
    """Buckets in Redis (keys ``gridflow:rl:<bucket>``), one budget for every replica.

    When Redis does not answer (stopped, refused, slower than ``timeout``), the hit is decided by
    a MemoryRateLimiter of this process instead: degraded (each replica then allows the whole
    budget), never failing. The outage is logged once and counted in
    ``gridflow_rate_limit_backend_errors_total``; one request every ``retry_seconds`` tries
    Redis again, and the first answer ends the outage. Works with plain threads and under
    eventlet (redis-py's sockets are the patched ones).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = REDIS_TIMEOUT_SECONDS,
        retry_seconds: float = REDIS_RETRY_SECONDS,
        fallback: MemoryRateLimiter | None = None,
    ):
        # No retries inside redis-py (its default is three, with backoff): the fallback is the
        # retry, and a dead Redis must cost a request one timeout at most.
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._redis.register_script(_GCRA_LUA)
        self._fallback = fallback or MemoryRateLimiter()
        self._retry_seconds = retry_seconds
        self._next_try = 0.0
        self._down_since: float | None = None  # monotonic; None while Redis answers
        self._failed_tries = 0
        self._lock = threading.Lock()
        where = urlsplit(url)
        # Host, port and database only: the URL may carry a password.
        self._where = f"{where.hostname}:{where.port or 6379}{where.path}"

    @property
    def degraded(self) -> bool:
        """True while limits come from this process's memory instead of Redis."""
        return self._down_since is not None

    def _apply(self, bucket: str, limit: Limit, cost: int, spend: bool) -> Decision:
        if self._redis_worth_trying():
            try:
                allowed, wait_us, remaining = self._script(
                    keys=[REDIS_KEY_PREFIX + bucket],
                    args=[limit.interval * 1e6, limit.seconds * 1e6, cost, int(spend), _SLACK],
                )
            except redis.RedisError as error:
                self._went_down(error)
            else:
                self._came_back()
                retry_after = max(1, math.ceil(wait_us / 1e6)) if not allowed else 0
                return Decision(bool(allowed), retry_after, int(remaining))
        return self._fallback._apply(bucket, limit, cost, spend)

    def _clear(self, bucket: str) -> None:
        # Memory too: what was spent there during an outage must not come back at the next one.
        self._fallback._clear(bucket)
        if self._redis_worth_trying():
            try:
                self._redis.delete(REDIS_KEY_PREFIX + bucket)
            except redis.RedisError as error:
                self._went_down(error)
            else:
                self._came_back()

    def _redis_worth_trying(self) -> bool:
        if self._down_since is None:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._next_try:
                return False
            # This caller tries; the others keep to memory until the next interval.
            self._next_try = now + self._retry_seconds
            return True

    def _went_down(self, error: redis.RedisError) -> None:
        now = time.monotonic()
        with self._lock:
            self._next_try = now + self._retry_seconds
            self._failed_tries += 1
            first = self._down_since is None
            if first:
                self._down_since = now
        metrics.RATE_LIMIT_BACKEND_ERRORS.inc()
        if first:
            log.warning(
                "rate_limit_backend_unavailable",
                redis=self._where,
                error=f"{type(error).__name__}: {error}"[:300],
                fallback="memory of this process, until Redis answers",
                retry_seconds=self._retry_seconds,
            )

    def _came_back(self) -> None:
        if self._down_since is None:  # the hot path: one attribute read
            return
        with self._lock:
            since, self._down_since = self._down_since, None
            failed_tries, self._failed_tries = self._failed_tries, 0
        if since is not None:
            log.warning(
                "rate_limit_backend_recovered",
                redis=self._where,
                seconds=round(time.monotonic() - since, 1),
                failed_tries=failed_tries,
            )


def make_rate_limiter(redis_url: str | None) -> RateLimiter:
    """Redis at ``redis_url`` shared by every replica; without one (None or empty), memory."""
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()


class SignInGuard:
    """Slows down guessing passwords: after ``failures`` failed sign-ins for one user name (by
    default 10 in a minute) that name is refused until its budget refills (one more attempt every
    ``seconds / count``: 6 s by default), and the same for one client address with
    ``address_failures`` (higher: an office behind one address has many users who mistype).

    Call ``check`` before checking a password and answer 429 with its ``retry_after`` when it is
    refused, whether or not the password would have been right; ``failed`` after a wrong one;
    ``succeeded`` after a right one, which forgets that user's failures but not the address's
    (else one account of an attacker's own would wipe the count between guesses at others).
    User names are compared case-folded and stripped, so ``Alice `` counts as ``alice``: a guard
    that merges two spellings is stricter, one that separates them could be walked around.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        failures: Limit = Limit(10, 60),
        address_failures: Limit = Limit(30, 60),
    ):
        self.limiter = limiter
        self.failures = failures
        self.address_failures = address_failures

    @staticmethod
    def _user(username: str) -> str:
        return "signin:user:" + username.strip().casefold()

    @staticmethod
    def _address(address: str) -> str:
        return "signin:addr:" + address

    def check(self, username: str, address: str | None = None) -> Decision:
        decisions = [self.limiter.peek(self._user(username), self.failures)]
        if address:
            decisions.append(self.limiter.peek(self._address(address), self.address_failures))
        refused = [d for d in decisions if not d.allowed]
        if refused:
            return Decision(False, max(d.retry_after for d in refused), 0)
        return Decision(True, 0, min(d.remaining for d in decisions))

    def failed(self, username: str, address: str | None = None) -> None:
        self.limiter.hit(self._user(username), self.failures)
        if address:
            self.limiter.hit(self._address(address), self.address_failures)

    def succeeded(self, username: str) -> None:
        self.limiter.clear(self._user(username))
