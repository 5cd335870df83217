"""When to try a delivery to a department's system again, and when to stop trying a system
that keeps failing: framework-free, with operational time passed in (seconds, any origin).

- ``RetrySchedule``: the waits between tries. After the last wait's try fails, the delivery is
  undeliverable there. A system that says when to come back (HTTP Retry-After) is not tried
  sooner than that.
- ``CircuitBreaker``: per key (a department, or a unit with none). After ``threshold`` failures
  in a row the circuit opens for ``cool_down`` seconds: nothing is tried there, and the
  deliveries waiting keep their tries (an open circuit spends none of a delivery's attempts, so
  an outage does not run a backlog through its whole schedule). Then one probe is let through
  (half-open): its success closes the circuit, its failure opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_RETRY_SCHEDULE = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
DEFAULT_BREAKER_THRESHOLD = 5
DEFAULT_BREAKER_COOL_DOWN = 30.0


@dataclass(frozen=True)
class RetrySchedule:
    """``delays[i]`` is the wait after the (i+1)-th failed try; a try beyond them is not made."""

    delays: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE

    def __post_init__(self) -> None:
        if any(d < 0 for d in self.delays):
            raise ValueError("a retry delay cannot be negative")

    @classmethod
    def parse(cls, text: str | None) -> RetrySchedule:
        """``"10,30,60"`` (seconds); empty or None is the default. ``ValueError`` naming the
        bad item otherwise."""
        if text is None or not text.strip():
            return cls()
        delays = []
        for item in text.split(","):
            try:
                delay = float(item)
            except ValueError:
                raise ValueError(
                    f"retry schedule: {item.strip()!r} is not a number of seconds"
                ) from None
            if delay < 0 or delay != delay:
                raise ValueError(f"retry schedule: {item.strip()!r} is not 0 or more seconds")
            delays.append(delay)
        return cls(tuple(delays))

    @property
    def tries(self) -> int:
        """How many tries a delivery gets in all: the first and one after each wait."""
        return len(self.delays) + 1

    def wait_after(self, failed_tries: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next try after ``failed_tries`` tries have failed; None when that
        was the last (the delivery is undeliverable)."""
        if failed_tries < 1:
            raise ValueError("wait_after counts failed tries from 1")
        if failed_tries > len(self.delays):
            return None
        wait = self.delays[failed_tries - 1]
        return max(wait, retry_after) if retry_after is not None else wait


CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass
class _Circuit:
    failures: int = 0
    state: str = CLOSED
    open_until: float = 0.0
    probing: bool = False


@dataclass
class CircuitBreaker:
    threshold: int = DEFAULT_BREAKER_THRESHOLD
    cool_down: float = DEFAULT_BREAKER_COOL_DOWN
    _circuits: dict[str, _Circuit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("a circuit breaker opens after at least one failure")
        if self.cool_down < 0:
            raise ValueError("a cool-down cannot be negative")

    def state(self, key: str, now: float) -> str:
        circuit = self._circuits.get(key)
        if circuit is None:
            return CLOSED
        if circuit.state == OPEN and now >= circuit.open_until:
            return HALF_OPEN
        return circuit.state

    def allow(self, key: str, now: float) -> bool:
        """Whether a try may be made at ``key`` now. In half-open, only one at a time (the
        probe): this call takes the probe's place until ``succeeded`` or ``failed``."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state == CLOSED:
            return True
        if circuit.state == OPEN:
            if now < circuit.open_until:
                return False
            circuit.state = HALF_OPEN
        if circuit.probing:
            return False
        circuit.probing = True
        return True

    def succeeded(self, key: str) -> None:
        self._circuits.pop(key, None)

    def failed(self, key: str, now: float) -> None:
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        if circuit.state == HALF_OPEN or circuit.failures >= self.threshold:
            circuit.state = OPEN
            circuit.open_until = now + self.cool_down
        circuit.probing = False

    def released(self, key: str) -> None:
        """A try let through ended with neither outcome (the process is stopping, say)."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.probing = False
