"""A unit's inbox (GET /api/v1/units/{code}/inbox): the cases given to a unit with no push
channel of its own (or to any unit, as a fallback), read by cursor from a browser or a script,
with a long-poll so a small office's script need not hammer the server.

A long-poll looks again every ``POLL_INTERVAL_SECONDS``, each look its own short unit of work:
no database connection, and in the embedded default not the runtime's lock, is held while it
waits. Under nameko the wait is a green sleep (eventlet patches ``time``), but each waiting
request still occupies one of the service's ``max_workers``, the pool the event handlers run in
too: ``Waiters`` lets only so many wait at once, and a request beyond them is answered at once
with what there is (``Retry-After`` telling the client when to ask again).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from gridflow_common.domain import access as a
from gridflow_intake import handlers as h
from gridflow_intake.access import Forbidden

POLL_INTERVAL_SECONDS = 0.5
# The embedded default's threads are not a shared pool: many may wait.
EMBEDDED_WAITERS = 64
# What a request that could not wait is told (seconds).
RETRY_AFTER_SECONDS = 1


class Waiters:
    """How many inbox requests may wait at once in this process."""

    def __init__(self, limit: int):
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @contextlib.contextmanager
    def slot(self) -> Iterator[bool]:
        """True while this request holds a place to wait in; False when all are taken."""
        taken = self._slots.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                self._slots.release()


def waiters_for_workers(max_workers: int) -> Waiters:
    """At most half of a nameko service's workers wait on inboxes: the rest take events, RPC and
    the other requests."""
    return Waiters(max(1, max_workers // 2))


def owner_of(principal: a.Principal, code: str, j: Any) -> bool:
    """Whether ``code`` names a whole department (else one unit); refused with 404 when it
    names neither, 403 when the caller may not read its inbox.

    Unlike a case, whose existence is hidden from whoever may not see it, a unit's code is the
    city's published organisation (units.csv): saying that it exists tells nobody anything."""
    whole_department = j.department(code) is not None
    if not whole_department and j.unit(code) is None:
        raise h.Rejected(404, {"code": [f"no unit or department {code!r} in the jurisdiction"]})
    if not a.may_read_inbox(principal, code, j):
        raise Forbidden(f"your credential does not read the inbox of {code!r}", field="code")
    return whole_department


def read(
    runtime: Any,
    code: str,
    query: dict,
    *,
    whole_department: bool,
    waiters: Waiters,
    pause: Callable[[float], None] | None = None,
) -> tuple[dict, bool]:
    """The page of ``code``'s inbox after ``query['after']``; when it is empty, looked at again
    until something arrives or ``query['wait']`` seconds have passed. Also whether the request
    wanted to wait and could not (every place to wait was taken)."""

    def look() -> dict:
        with runtime.work() as work:
            return h.inbox_page(
                work,
                code,
                whole_department=whole_department,
                after=query["after"],
                limit=query["limit"],
                open_only=query["open_only"],
            )

    deadline = time.monotonic() + query["wait"]
    page = look()
    if page["items"] or query["wait"] <= 0:
        return page, False
    with waiters.slot() as may_wait:
        if not may_wait:
            return page, True
        while not page["items"]:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # time.sleep looked up now, not at import: under nameko it is eventlet's green
            # sleep only once the process is monkey-patched.
            (pause or time.sleep)(min(POLL_INTERVAL_SECONDS, left))
            page = look()
    return page, False
