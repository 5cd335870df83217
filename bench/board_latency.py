"""How long a colour change takes to reach the board, on the real topology.

Five ``nameko run`` processes on the bench's own vhost and database (``deploy/topology.sh up``,
as `make up` and `make bench` start them, here on the simulated clock), nginx in front. Setup:
``BENCH_BL_N`` cases of a two-hour category (井盖, ``component.manhole_cover``: plain hours, so
yellow comes 90 minutes after dispatch whatever the calendar), registered 20 simulated
seconds apart, each dispatched green before the next. Then, case by case in the order of their
yellow instants, the admin moves the simulated clock (``PUT /api/v1/admin/clock``) one second
past that instant, and three observers note the wall-clock instant they see the case turn yellow:

- the broker: SLA's ``case_colour_changed`` on ``sla.events`` (a queue of the bench's own);
- the live feed: a client of ``GET /api/v1/board/events`` (server-sent events) receives the
  case's ``warning`` event, colour yellow;
- the summary: ``GET /api/v1/board/summary`` polled every ``BENCH_BL_SUMMARY_POLL`` s (0.1) lists
  the case among the late ones, yellow.

Every delay is from the moment the clock's PUT was sent. Beside them, in the same run, the
baseline: a row INSERTed into PostgreSQL at a random instant and seen by a loop that SELECTs
every second (the feed's ``POLL_SECONDS``), what a 1 s polling reader costs by itself.

It prints a table and one ``BENCH_JSON`` line. It uses `make bench`'s vhost, database and ports
(``gridflow_bench``, 18000-18005): not both at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import sys
import threading
import time

import httpx

from bench import infra
from bench.gridflow import PROXY_PORT, Topology, point

CATEGORY = "component.manhole_cover"
DESCRIPTION = "人行道井盖破损缺失，有人踩空的危险"
# The category's limit (2 hours) and the fraction at which yellow starts (Lucheng's
# warning_levels.csv: 0.75): yellow is due minus half an hour.
YELLOW_BEFORE_DUE = dt.timedelta(hours=2) * (1 - 0.75)
# Between two cases' registrations: 100 cases span 33 simulated minutes, all before the first
# one's yellow (90 minutes), so the clock only moves forward.
SPACING = dt.timedelta(seconds=20)
START = dt.datetime(2026, 9, 15, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
YELLOW = "yellow"
# GET /board/summary's "late" list is cut at 100 (gridflow_intake.case_search.SUMMARY_LATE_LIMIT).
SUMMARY_LATE_LIMIT = 100


def _env(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    return float(text) if text else default


class SimulatedTopology(Topology):
    def env(self) -> dict[str, str]:
        env = super().env()
        env["GRIDFLOW_CLOCK"] = "simulated"
        return env


class Api:
    """The admin's HTTP client through nginx, as a board's browser reaches intake."""

    def __init__(self, token: str) -> None:
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{PROXY_PORT}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            trust_env=False,
        )

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        answer = self.http.request(method, path, json=body)
        if answer.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json()

    def close(self) -> None:
        self.http.close()


class Seen:
    """The first wall-clock instant each observer saw each case turn yellow."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at: dict[str, dict[str, float]] = {"broker": {}, "feed": {}, "summary": {}}
        self.changed = threading.Condition(self.lock)

    def saw(self, observer: str, case_id: str, when: float) -> None:
        with self.lock:
            self.at[observer].setdefault(case_id, when)
            self.changed.notify_all()

    def wait_all(self, case_ids: list[str], observers: tuple[str, ...], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                if all(c in self.at[o] for c in case_ids for o in observers):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)


def watch_broker(seen: Seen, stop: threading.Event, ready: threading.Event) -> None:
    """SLA's announcements, on a queue of the bench's own bound to its event exchange."""
    import kombu

    from gridflow_common import contracts as c

    exchange = kombu.Exchange(c.event_exchange(c.SLA), type="topic", durable=True)
    queue = kombu.Queue(
        "bench-board-latency",
        exchange=exchange,
        routing_key=c.CASE_COLOUR_CHANGED,
        exclusive=True,
        auto_delete=True,
    )

    def on_message(body, message) -> None:
        when = time.time()
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        payload = data.get("payload", data) if isinstance(data, dict) else {}
        if payload.get("colour") == YELLOW and payload.get("case_id"):
            seen.saw("broker", payload["case_id"], when)

    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(kombu.Connection(infra.AMQP_URI, connect_timeout=10))
        stack.enter_context(
            conn.Consumer(queue, callbacks=[on_message], no_ack=True, accept=["json"])
        )
        ready.set()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn.drain_events(timeout=0.2)


def watch_feed(token: str, seen: Seen, stop: threading.Event, ready: threading.Event) -> None:
    """A board's live feed: each ``case`` event, parsed as it arrives; reconnects with the last
    id when the server ends a stream."""
    last_ids: list[str] = []
    with httpx.Client(
        base_url=f"http://127.0.0.1:{PROXY_PORT}",
        timeout=httpx.Timeout(30, read=60),
        trust_env=False,
    ) as client:
        while not stop.is_set():
            headers = {"Authorization": f"Bearer {token}"}
            if last_ids:
                headers["Last-Event-ID"] = last_ids[-1]
            try:
                _read_feed(client, headers, seen, stop, ready, last_ids)
            except httpx.HTTPError:
                if stop.is_set():
                    return  # the topology is being stopped under the stream
                raise


def _read_feed(
    client: httpx.Client,
    headers: dict[str, str],
    seen: Seen,
    stop: threading.Event,
    ready: threading.Event,
    ids: list[str],
) -> None:
    """One stream of the feed, until the server ends it or the bench stops; each event's id
    appended to ``ids`` (where a reconnection resumes)."""
    with client.stream("GET", "/api/v1/board/events", headers=headers) as feed:
        if feed.status_code != 200:
            raise RuntimeError(f"live feed: {feed.status_code}")
        ready.set()
        event, data = "", ""
        for line in feed.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("id: "):
                ids.append(line[4:])
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "":
                if event == "case" and data:
                    body = json.loads(data)
                    if body.get("kind") == "warning" and body.get("colour") == YELLOW:
                        seen.saw("feed", body["case_id"], time.time())
                event, data = "", ""


def watch_summary(api: Api, seen: Seen, stop: threading.Event, every: float) -> None:
    """The board's summary, polled: a case is seen once it is listed late, yellow."""
    while not stop.is_set():
        summary = api.call("GET", "/api/v1/board/summary")
        when = time.time()
        for item in summary.get("late", []):
            if item.get("colour") == YELLOW:
                seen.saw("summary", item["case_id"], when)
        stop.wait(every)  # bounded: the loop ends when the bench sets stop


def baseline(samples: int, poll: float) -> list[float]:
    """An INSERT at a random instant, seen by a loop that SELECTs every ``poll`` s."""
    import psycopg2

    writer = psycopg2.connect(infra.PSYCOPG2_DSN)
    reader = psycopg2.connect(infra.PSYCOPG2_DSN)
    writer.autocommit = reader.autocommit = True
    with writer.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_latency_probe (id serial PRIMARY KEY)")
        cur.execute("TRUNCATE bench_latency_probe")
    inserted: dict[int, float] = {}
    delays: list[float] = []
    stop = threading.Event()

    def poller() -> None:
        after = 0
        with reader.cursor() as cur:
            while not stop.is_set():
                cur.execute(
                    "SELECT id FROM bench_latency_probe WHERE id > %s ORDER BY id", (after,)
                )
                now = time.time()
                for (row_id,) in cur.fetchall():
                    delays.append(now - inserted[row_id])
                    after = row_id
                stop.wait(poll)  # bounded: the loop ends when the baseline sets stop

    thread = threading.Thread(target=poller, name="bench-baseline-poll", daemon=True)
    thread.start()
    rng = random.Random(8)
    with writer.cursor() as cur:
        for _ in range(samples):
            time.sleep(rng.uniform(0.2, 1.3))  # bounded: a random pause before each insert
            cur.execute("INSERT INTO bench_latency_probe DEFAULT VALUES RETURNING id")
            inserted[cur.fetchone()[0]] = time.time()
    deadline = time.monotonic() + 5 * poll
    while len(delays) < samples and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded by the deadline above
    stop.set()
    thread.join(5)
    writer.close()
    reader.close()
    return delays


def wait_dispatched(api: Api, case_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = api.call("GET", f"/api/v1/cases/{case_id}")
        if view.get("status") == "dispatched" and view.get("due"):
            return view
        if time.monotonic() > deadline:
            raise RuntimeError(f"case {case_id} not dispatched in {timeout} s: {view}")
        time.sleep(0.05)  # bounded by the deadline above


def seed(api: Api, n: int, tag: str) -> list[tuple[dt.datetime, str]]:
    """``n`` green cases 20 simulated seconds apart: (yellow instant, case id), in order."""
    cases: list[tuple[dt.datetime, str]] = []
    for k in range(n):
        api.call("PUT", "/api/v1/admin/clock", {"now": (START + SPACING * k).isoformat()})
        made = api.call(
            "POST",
            "/api/v1/reports",
            {
                "channel": "grid_app",
                "external_id": f"{tag}-{k}",
                "description": DESCRIPTION,
                "category": CATEGORY,
                "location": point(k * 7),
            },
        )
        view = wait_dispatched(api, made["case_id"])
        if view.get("colour") != "green":
            raise RuntimeError(f"case {made['case_id']} dispatched {view.get('colour')}, not green")
        due = dt.datetime.fromisoformat(view["due"])
        cases.append((due - YELLOW_BEFORE_DUE, made["case_id"]))
    return sorted(cases)


def measure(api: Api, seen: Seen, cases: list[tuple[dt.datetime, str]], timeout: float) -> dict:
    """Per yellow instant (cases sharing one change together): move the clock past it, wait for
    all three observers. The delays of each case, from the PUT being sent."""
    delays: dict[str, list[float]] = {
        "broker": [],
        "feed": [],
        "summary": [],
        "put": [],
        "feed_after_broker": [],
    }
    missed: list[str] = []
    steps: dict[dt.datetime, list[str]] = {}
    for instant, case_id in cases:
        steps.setdefault(instant, []).append(case_id)
    rng = random.Random(8)
    for instant, ids in sorted(steps.items()):
        # A random pause first: moving the clock right after the previous change was seen would
        # land each move just after the feed's poll, always a whole poll interval from the next.
        time.sleep(rng.uniform(0.0, 1.2))  # bounded: a pause of at most 1.2 s
        sent = time.time()
        api.call(
            "PUT", "/api/v1/admin/clock", {"now": (instant + dt.timedelta(seconds=1)).isoformat()}
        )
        delays["put"].append(time.time() - sent)
        if not seen.wait_all(ids, ("broker", "feed", "summary"), timeout):
            missed += ids
        with seen.lock:
            for observer in ("broker", "feed", "summary"):
                delays[observer] += [
                    seen.at[observer][i] - sent for i in ids if i in seen.at[observer]
                ]
            delays["feed_after_broker"] += [
                seen.at["feed"][i] - seen.at["broker"][i]
                for i in ids
                if i in seen.at["feed"] and i in seen.at["broker"]
            ]
    return {"delays": delays, "missed": missed, "steps": len(steps)}


def run(n: int, summary_poll: float, baseline_n: int) -> dict:
    topology = SimulatedTopology()
    topology.stop()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        infra.log("board-latency: deploy/topology.sh up (simulated clock)")
        for line in topology.start().splitlines():
            infra.log(f"board-latency: {line}")
        token = topology.admin_token
        api = Api(token)
        infra.log(f"board-latency: seeding {n} green cases 20 simulated seconds apart")
        seeded_at = time.monotonic()
        cases = seed(api, n, f"bl{os.getpid()}")
        seed_s = time.monotonic() - seeded_at
        seen = Seen()
        broker_ready, feed_ready = threading.Event(), threading.Event()
        summary_api = Api(token)
        threads = [
            threading.Thread(target=watch_broker, args=(seen, stop, broker_ready), daemon=True),
            threading.Thread(target=watch_feed, args=(token, seen, stop, feed_ready), daemon=True),
            threading.Thread(
                target=watch_summary, args=(summary_api, seen, stop, summary_poll), daemon=True
            ),
        ]
        for t in threads:
            t.start()
        if not (broker_ready.wait(30) and feed_ready.wait(30)):
            raise RuntimeError("the broker's queue or the live feed did not open in time")
        infra.log(f"board-latency: {n} colour changes, clock moved one case at a time")
        measured = measure(api, seen, cases, timeout=20)
        stop.set()
        for t in threads:
            t.join(5)
        infra.log(f"board-latency: baseline, {baseline_n} INSERTs seen by a 1 s SELECT loop")
        base = baseline(baseline_n, 1.0)
        api.close()
        summary_api.close()
        alive = topology.alive()
    finally:
        stop.set()
        infra.log("board-latency: stopping the services")
        topology.stop()
    d = measured["delays"]
    return {
        "cases": n,
        "steps": measured["steps"],
        "missed": measured["missed"],
        "seed_s": round(seed_s, 1),
        "summary_poll_s": summary_poll,
        "put_clock": infra.latency_summary(d["put"]),
        "sla_announced_on_broker": infra.latency_summary(d["broker"]),
        "live_feed_event": infra.latency_summary(d["feed"]),
        "board_summary": infra.latency_summary(d["summary"]),
        "feed_after_broker": infra.latency_summary(d["feed_after_broker"]),
        "baseline_insert_seen_by_1s_select": infra.latency_summary(base),
        "services_alive_at_end": alive,
        "load_average_end": infra.load_average(),
    }


def table(r: dict) -> str:
    rows = [
        ("PUT /admin/clock answered", r["put_clock"]),
        ("SLA's case_colour_changed on the broker", r["sla_announced_on_broker"]),
        ("live feed (GET /board/events) event", r["live_feed_event"]),
        ("  of which: from the broker to the feed", r["feed_after_broker"]),
        (f"board summary polled every {r['summary_poll_s']} s", r["board_summary"]),
        ("baseline: INSERT seen by a 1 s SELECT loop", r["baseline_insert_seen_by_1s_select"]),
    ]
    lines = [
        f"board latency: {r['cases']} cases, {r['steps']} clock moves, missed {len(r['missed'])}",
        f"{'from the clock PUT being sent to':<46} {'n':>4} {'p50 ms':>9} {'p90 ms':>9} "
        f"{'p99 ms':>9} {'max ms':>9}",
    ]
    for name, s in rows:
        lines.append(
            f"{name:<46} {s['n']:>4} {s['p50_ms'] or 0:>9.1f} {s['p90_ms'] or 0:>9.1f} "
            f"{s['p99_ms'] or 0:>9.1f} {s['max_ms'] or 0:>9.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    n = int(_env("BENCH_BL_N", 100))
    if not 1 <= n <= SUMMARY_LATE_LIMIT:
        # The summary lists at most this many late cases: more, and a yellow one may not show.
        raise SystemExit(f"BENCH_BL_N={n}: from 1 to {SUMMARY_LATE_LIMIT}")
    summary_poll = _env("BENCH_BL_SUMMARY_POLL", 0.1)
    baseline_n = int(_env("BENCH_BL_BASELINE_N", 60))
    infra.VAR_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    infra.log(f"fresh vhost {infra.VHOST} and database {infra.DB_NAME}; logs in {infra.VAR_DIR}")
    infra.fresh_vhost()
    infra.fresh_database()
    load_start = infra.load_average()
    results = run(n, summary_poll, baseline_n)
    results["load_average_start"] = load_start
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(table(results))
    print("BENCH_JSON " + json.dumps(results, ensure_ascii=False, separators=(",", ":")))
    return 0 if not results["missed"] else 1


if __name__ == "__main__":
    sys.exit(main())
