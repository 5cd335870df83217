"""One key's work in the order it arrived, other keys' work beside it.

A queue consumer hands deliveries to its workers in the order the broker delivered them, and
the workers then run side by side: two messages from one sender, sent back to back, can be
applied together or the second first. ``InOrder.turn(key)`` is taken where deliveries still
arrive one at a time (the consumer's own thread), and entered in the worker: a turn waits for
the turn taken before it on the same key, and a turn on another key waits for nothing.

A turn that ends by raising marks itself failed; the turns already waiting behind it on the
same key see ``after_failure`` (their message was delivered after one that is being handed back
to the broker, so it is handed back too, keeping the order). Turns taken later start afresh.

Threading primitives only: under eventlet's monkey-patching (nameko) they are green.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any


class Turn:
    """One delivery's place in its key's line; a context manager."""

    def __init__(self, owner: InOrder | None, key: Hashable, before: Turn | None):
        self._owner = owner
        self._key = key
        self._before = before
        self._done = threading.Event()
        self.failed = False
        self.after_failure = False

    @classmethod
    def alone(cls) -> Turn:
        """A turn in no line (a caller that did not come through a consumer)."""
        return cls(None, None, None)

    def __enter__(self) -> Turn:
        before = self._before
        if before is not None:
            before._done.wait()
            self.after_failure = before.failed or before.after_failure
            self._before = None  # nothing behind it needs the chain any more
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.failed = exc_type is not None
        self._done.set()
        if self._owner is not None:
            self._owner._finished(self._key, self)


class InOrder:
    """The lines, one per key, each holding only its last turn (a turn holds the one before)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[Hashable, Turn] = {}

    def turn(self, key: Hashable) -> Turn:
        with self._lock:
            turn = Turn(self, key, self._last.get(key))
            self._last[key] = turn
            return turn

    def _finished(self, key: Hashable, turn: Turn) -> None:
        with self._lock:
            if self._last.get(key) is turn:
                del self._last[key]

    def __len__(self) -> int:
        """How many keys have a turn waiting or running."""
        with self._lock:
            return len(self._last)
