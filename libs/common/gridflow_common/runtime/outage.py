"""What a service does while its database is unreachable: wait longer between attempts, and
say so once per interval with a count instead of once per failure.

Without this a consumer whose failure record cannot be written hands its message straight back
to the broker, which redelivers it at once: about a hundred failures a second per service and
megabytes of log within seconds, enough to fill a disk during a long outage.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from gridflow_common.logging import get_logger

log = get_logger(__name__)

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0
LOG_INTERVAL_SECONDS = 10.0


class Outage:
    """Consecutive failures of one kind (``event``), shared by every worker of a process.

    ``failed()`` counts one and logs only the first and then at most once per
    ``log_interval``, with how many happened since; ``delay()`` is the backoff the caller waits
    before trying again (doubling with every failure, capped); ``recovered()`` ends the
    outage with one line saying how long it lasted and how many failures it cost.
    """

    def __init__(
        self,
        event: str,
        *,
        first_delay: float = FIRST_DELAY_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        log_interval: float = LOG_INTERVAL_SECONDS,
        **context: Any,
    ):
        self.event = event
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.log_interval = log_interval
        self.context = context
        self.failures = 0
        self._unlogged = 0
        self._began = 0.0
        self._logged_at = 0.0
        self._mutex = threading.Lock()

    @property
    def ongoing(self) -> bool:
        return self.failures > 0

    def failed(self, error: BaseException | str, **fields: Any) -> None:
        now = time.monotonic()
        with self._mutex:
            if not self.failures:
                self._began = now
            self.failures += 1
            self._unlogged += 1
            if self.failures > 1 and now - self._logged_at < self.log_interval:
                return
            repeated, self._unlogged, self._logged_at = self._unlogged, 0, now
            total = self.failures
        log.warning(
            self.event,
            **self.context,
            **fields,
            error=_short(error),
            repeated=repeated,
            failures=total,
            seconds=round(now - self._began, 1),
            next_log_within_seconds=self.log_interval,
        )

    def delay(self) -> float:
        """Seconds to wait before the next attempt: doubles with each consecutive failure."""
        exponent = min(max(self.failures - 1, 0), 16)
        return min(self.max_delay, self.first_delay * 2**exponent)

    def recovered(self) -> None:
        if not self.failures:  # the hot path: one attribute read
            return
        with self._mutex:
            failures, self.failures, self._unlogged = self.failures, 0, 0
            seconds = time.monotonic() - self._began
        if failures:
            log.warning(
                f"{self.event}_recovered",
                **self.context,
                failures=failures,
                seconds=round(seconds, 1),
            )


def _short(error: BaseException | str) -> str:
    # The first line says what happened; SQLAlchemy appends the statement and a link.
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text.strip().splitlines()[0][:500] if text.strip() else text
