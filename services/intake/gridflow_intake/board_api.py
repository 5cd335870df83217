"""The command center's pages and the board's live feed: ``GET /`` (the board), ``GET
/cases/<id>`` (the case page), ``GET /static/<path>`` (their scripts and styles),
``GET /api/v1/board/events`` (server-sent events), ``GET /api/v1/cases/<id>/place`` (the case's
grid drawn from the jurisdiction's polygons) and ``GET /api/v1/cases/<id>/notifications`` (the
notices sent for the case, as notify records them).

The pages hold no data: they are the same files for everyone, served without a credential, and
every figure on them comes from the scoped API with the browser's session. They are plain HTML,
CSS and JavaScript from this package (``web/``): no build step, no CDN, nothing fetched from
elsewhere, so the board works offline; a strict Content-Security-Policy allows scripts and styles
from Gridflow's own origin only (no inline script).

The live feed tails intake's timeline table by its id from the database, about once a second, so
it sees what any intake replica (or the embedded default's projections) wrote. Each stream is
bounded in time (``STREAM_SECONDS``; the browser's EventSource then reconnects with
``Last-Event-ID`` and misses nothing), sends a comment line every ``HEARTBEAT_SECONDS`` so proxies
keep it open, and only ``stream_limit()`` streams run at once in a process (503 with Retry-After
beyond). Under nameko the stream is written by the web server's own green thread after the
worker has returned the response, so a stream holds none of the service's ``max_workers``; the
limit bounds the database polling instead.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from werkzeug.security import safe_join

from gridflow_common.domain import access as a
from gridflow_common.domain import lifecycle
from gridflow_common.domain.geo import Polygon
from gridflow_common.logging import get_logger
from gridflow_intake.models import cases, colours, timeline

if TYPE_CHECKING:
    from gridflow_intake.api import Answer, Call

log = get_logger(__name__)

WEB = Path(__file__).parent / "web"
STATIC = WEB / "static"
# The only kinds of file served from /static (anything else there is a 404).
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# Every page and asset: scripts, styles, images and connections from Gridflow's origin only;
# never framed; no plugin; forms post to Gridflow only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # The page shell changes with a release only; the browser checks again every time (cheap).
    "Cache-Control": "no-cache",
}
# Assets have no version in their names: kept five minutes, then checked again.
STATIC_CACHE = "public, max-age=300"

# -- the live feed ---------------------------------------------------------------------------------
POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 300.0
# How long a missing timeline id (a transaction that took its id and has not committed yet, in
# PostgreSQL) is waited for before the cursor moves past it (it was rolled back).
GAP_WAIT_SECONDS = 10.0
# At most this many ids are kept waited for; beyond, the oldest are given up.
MAX_GAPS = 1000
# Rows read per look: a burst is sent over several looks.
BATCH = 500
# Streams per process (GRIDFLOW_BOARD_STREAMS); the browser is told to come back after this.
STREAMS_ENV = "GRIDFLOW_BOARD_STREAMS"
DEFAULT_STREAMS = 50
RETRY_AFTER_SECONDS = 10
# What EventSource waits before reconnecting after the server ended a stream (milliseconds).
RECONNECT_MS = 1000


def stream_limit() -> int:
    text = os.environ.get(STREAMS_ENV, "").strip()
    if not text:
        return DEFAULT_STREAMS
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{STREAMS_ENV}={text!r}: expected a whole number of streams") from None
    if value < 1:
        raise ValueError(f"{STREAMS_ENV}={text!r}: at least 1")
    return value


class Streams:
    """How many live feeds this process serves at once."""

    def __init__(self, limit: int):
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def take(self) -> bool:
        return self._slots.acquire(blocking=False)

    def give_back(self) -> None:
        self._slots.release()


_STREAMS_LOCK = threading.Lock()
_STREAMS: Streams | None = None


def process_streams() -> Streams:
    global _STREAMS
    with _STREAMS_LOCK:
        if _STREAMS is None:
            _STREAMS = Streams(stream_limit())
        return _STREAMS


@dataclass
class TimelineCursor:
    """Where a stream is in the timeline. ``after``: every id up to it has been seen or given up;
    ids above it already sent are in ``seen``; ids above it not seen yet (another transaction
    holds them, or rolled back) are waited for ``GAP_WAIT_SECONDS`` in ``gaps``, so a row that
    commits after a higher id is still sent."""

    after: int
    seen: set[int] = field(default_factory=set)
    gaps: dict[int, float] = field(default_factory=dict)

    def take(self, ids: list[int], now: float) -> list[int]:
        """Which of ``ids`` (read with id > after) are new; moves the cursor."""
        new = [i for i in ids if i > self.after and i not in self.seen]
        self.seen.update(new)
        top = max(self.seen, default=self.after)
        if top - self.after > MAX_GAPS:
            # Too far behind to wait for every missing id: the oldest are given up.
            self.after = top - MAX_GAPS
            self.seen = {i for i in self.seen if i > self.after}
            self.gaps = {i: t for i, t in self.gaps.items() if i > self.after}
        for missing in range(self.after + 1, top):
            if missing not in self.seen:
                self.gaps.setdefault(missing, now)
        while True:
            following = self.after + 1
            if following in self.seen:
                self.seen.discard(following)
                self.gaps.pop(following, None)
            elif following in self.gaps and now - self.gaps[following] >= GAP_WAIT_SECONDS:
                del self.gaps[following]
            else:
                break
            self.after = following
        return new


def _answer(status: int, body: Any, **options: Any) -> Answer:
    # api.py imports this module (IntakeApi inherits the endpoints), so Answer is looked up when
    # an answer is made, by which time both modules are loaded.
    from gridflow_intake.api import Answer

    return Answer(status, body, **options)


def _errors(status: int, field_name: str, message: str, **options: Any) -> Answer:
    return _answer(status, {"errors": {field_name: [message]}}, **options)


def _page(name: str) -> Answer:
    return _answer(
        200,
        (WEB / name).read_bytes(),
        content_type="text/html; charset=utf-8",
        headers=dict(PAGE_HEADERS),
    )


def _rings(polygon: Polygon) -> list[list[list[list[float]]]]:
    """A polygon's parts, each its rings, each [[lon, lat], ...]."""
    return [[[[lon, lat] for lon, lat in ring] for ring in part] for part in polygon.parts]


def _scope_clause() -> Callable[..., Any] | None:
    """``gridflow_intake.scope.case_scope_clause`` once it is there (the cases work brings it):
    it narrows the feed's query in the database; every row is still checked with
    ``access.may_read_case`` below."""
    try:
        module = importlib.import_module("gridflow_intake.scope")
    except ImportError:
        return None
    return getattr(module, "case_scope_clause", None)


class BoardEndpoints:
    """The pages and the board's own endpoints of ``IntakeApi``."""

    # Provided by IntakeApi.
    runtime: Any
    peers: Any

    if TYPE_CHECKING:

        def _readable_case(
            self, work: Any, call: Call, case_id: str
        ) -> tuple[a.CaseFacts, Any]: ...

    # -- pages ---------------------------------------------------------------------------------

    def get_board_page(self, call: Call) -> Answer:
        return _page("board.html")

    def get_case_page(self, call: Call, case_id: str) -> Answer:
        # The same shell for every id: whether the case exists, and whether the caller may see
        # it, is the API's answer to the page's script (404 alike).
        return _page("case.html")

    def get_static(self, call: Call, path: str) -> Answer:
        joined = safe_join(str(STATIC), path)
        suffix = Path(path).suffix.lower()
        if joined is None or suffix not in STATIC_TYPES or not Path(joined).is_file():
            return _errors(404, "path", f"no such file: /static/{path}")
        data = Path(joined).read_bytes()
        headers = dict(PAGE_HEADERS)
        headers["Cache-Control"] = STATIC_CACHE
        return _answer(200, data, content_type=STATIC_TYPES[suffix], headers=headers)

    # -- the case's place ----------------------------------------------------------------------

    def get_case_place(self, call: Call, case_id: str) -> Answer:
        with self.runtime.work() as work:
            facts, j = self._readable_case(work, call, case_id)
            point = work.db.execute(
                sa.select(cases.c.lat, cases.c.lon).where(cases.c.case_id == case_id)
            ).first()
        area = j.area(facts.area_code)
        if area is None:
            return _answer(
                200,
                {"case_id": case_id, "area": None, "neighbours": [], "point": None, "bbox": None},
            )
        box = area.polygon.bbox
        # Its neighbours: the areas of its level whose boxes come within half its size.
        pad_lon = (box.max_lon - box.min_lon) / 2
        pad_lat = (box.max_lat - box.min_lat) / 2
        near = [
            other
            for other in j.areas_at(area.level)
            if other.code != area.code
            and other.polygon.bbox.min_lon <= box.max_lon + pad_lon
            and other.polygon.bbox.max_lon >= box.min_lon - pad_lon
            and other.polygon.bbox.min_lat <= box.max_lat + pad_lat
            and other.polygon.bbox.max_lat >= box.min_lat - pad_lat
        ]
        shown = [area, *near]
        return _answer(
            200,
            {
                "case_id": case_id,
                "area": {
                    "code": area.code,
                    "name": area.name,
                    "level": area.level,
                    "rings": _rings(area.polygon),
                },
                "neighbours": [
                    {"code": o.code, "name": o.name, "level": o.level, "rings": _rings(o.polygon)}
                    for o in near
                ],
                "point": (
                    {"lat": point.lat, "lon": point.lon}
                    if point is not None and point.lat is not None
                    else None
                ),
                "bbox": [
                    min(x.polygon.bbox.min_lon for x in shown),
                    min(x.polygon.bbox.min_lat for x in shown),
                    max(x.polygon.bbox.max_lon for x in shown),
                    max(x.polygon.bbox.max_lat for x in shown),
                ],
            },
        )

    # -- the notices sent for the case ----------------------------------------------------------

    def get_case_notifications(self, call: Call, case_id: str) -> Answer:
        """Who was told what about the case, from notify's own record (notify owns its tables;
        intake asks it, once the caller is known to may read the case, so an outsider learns
        nothing of it, not even whether notify answers)."""
        with self.runtime.work() as work:
            _, j = self._readable_case(work, call, case_id)
        listed = self.peers.case_notifications(case_id)
        items = [
            {**item, "at": j.local(dt.datetime.fromisoformat(item["at"])).isoformat()}
            for item in listed.get("items", ())
        ]
        return _answer(200, {"case_id": case_id, "items": items, "more": bool(listed.get("more"))})

    # -- the live feed -------------------------------------------------------------------------

    def get_board_events(self, call: Call) -> Answer:
        principal = call.principal
        assert principal is not None
        last = call.request.headers.get("Last-Event-ID", "").strip()
        after: int | None = None
        if last:
            if not last.isdigit() or len(last) > 18:
                return _errors(
                    400, "Last-Event-ID", f"expected the id of an event of this feed, not {last!r}"
                )
            after = int(last)
        streams = process_streams()
        if not streams.take():
            return _errors(
                503,
                "streams",
                f"this server serves {streams.limit} live feeds at once; try again shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        try:
            if after is None:
                with self.runtime.work() as work:
                    after = work.db.execute(
                        sa.select(sa.func.coalesce(sa.func.max(timeline.c.id), 0))
                    ).scalar_one()
        except BaseException:
            streams.give_back()
            raise
        # eventlet's web server (nameko) would gather small writes up to 8 KiB before sending:
        # each event goes out as it is made.
        call.request.environ["eventlet.minimum_write_chunk_size"] = 0
        body = _Stream(self._event_stream(principal, TimelineCursor(after)), streams)
        return _answer(
            200,
            body,
            content_type="text/event-stream; charset=utf-8",
            headers={
                "Cache-Control": "no-store",
                # nginx passes each event on at once (it buffers none of intake's answers
                # anyway; this keeps it so for this one should that change).
                "X-Accel-Buffering": "no",
            },
        )

    def _feed_rows(self, principal: a.Principal, after: int) -> list[tuple[Any, bool]]:
        query = (
            sa.select(
                timeline.c.id,
                timeline.c.case_id,
                timeline.c.kind,
                timeline.c.at,
                cases.c.status,
                cases.c.holder,
                cases.c.lead,
                cases.c.assisting,
                cases.c.area_code,
                cases.c.tier,
                cases.c.category,
                cases.c.assignment_id,
                cases.c.jurisdiction_version,
                colours.c.colour,
            )
            .select_from(
                timeline.join(cases, cases.c.case_id == timeline.c.case_id).outerjoin(
                    colours, colours.c.assignment_id == cases.c.assignment_id
                )
            )
            .where(timeline.c.id > after)
            .order_by(timeline.c.id)
            .limit(BATCH)
        )
        with self.runtime.work() as work:
            clause = _scope_clause()
            if clause is not None:
                query = query.where(clause(principal, work.jurisdiction(None)))
            rows = work.db.execute(query).all()
            # Rows the caller may not read still move the cursor: they come back marked.
            return [(r, _readable(work, principal, r)) for r in rows]

    def _event_stream(self, principal: a.Principal, cursor: TimelineCursor) -> Iterator[bytes]:
        started = time.monotonic()
        yield f"retry: {RECONNECT_MS}\n: live feed\n\n".encode()
        beat = time.monotonic()
        while time.monotonic() - started < STREAM_SECONDS:
            rows = self._feed_rows(principal, cursor.after)
            new = set(cursor.take([r.id for r, _ in rows], time.monotonic()))
            sent = False
            for row, readable in rows:
                if readable and row.id in new:
                    yield _event(row, cursor.after, self._local_of(row))
                    sent = True
            if not sent and time.monotonic() - beat >= HEARTBEAT_SECONDS:
                yield f": heartbeat {cursor.after}\n\n".encode()
                sent = True
            if sent:
                beat = time.monotonic()
            if len(rows) < BATCH:
                # time.sleep looked up now: under nameko it is eventlet's green sleep.
                time.sleep(POLL_SECONDS)  # bounded: the poll interval; the stream's life is too
        # The end of this stream's time: the browser reconnects with the last id.
        yield f"event: bye\nid: {cursor.after}\ndata: {{}}\n\n".encode()

    def _local_of(self, row: Any) -> str:
        j = self.runtime.jurisdictions.get(row.jurisdiction_version)
        return j.local(row.at).isoformat()


class _Stream:
    """A feed's body: its events as they come, and its place among the process's streams given
    back once, when the server closes the body (the client went away, or the stream ended),
    or, for a body never sent, when it is dropped."""

    def __init__(self, events: Iterator[bytes], streams: Streams):
        self.events = events
        self.streams: Streams | None = streams

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self.events)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        streams, self.streams = self.streams, None
        if streams is not None:
            streams.give_back()
            close = getattr(self.events, "close", None)
            if close is not None:
                close()

    def __del__(self) -> None:
        self.close()


def _readable(work: Any, principal: a.Principal, row: Any) -> bool:
    facts = a.CaseFacts(row.area_code, row.holder, row.lead, tuple(row.assisting or ()))
    return a.may_read_case(principal, facts, work.jurisdiction(row.jurisdiction_version))


def _event(row: Any, resume_after: int, at: str) -> bytes:
    """One ``case`` event: what changed (the timeline entry's kind) and the case's state now;
    never the entry's detail (notes may hold personal numbers). Its id is where a reconnecting
    browser resumes."""
    data = {
        "case_id": row.case_id,
        "kind": row.kind,
        "at": at,
        "status": row.status,
        "colour": lifecycle.colour_shown(row.status, row.assignment_id is not None, row.colour),
        "holder": row.holder,
        "lead": row.lead,
        "tier": row.tier,
        "category": row.category,
        "area_code": row.area_code,
    }
    text = json.dumps(data, ensure_ascii=False)
    return f"event: case\nid: {resume_after}\ndata: {text}\n\n".encode()
