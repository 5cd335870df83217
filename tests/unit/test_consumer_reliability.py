"""The idempotent consumer, its retry / dead-letter policy, and the transactional outbox.

A ``ServiceRuntime`` is built directly on a temporary SQLite file with its messaging tables plus
one table the test handlers write to, so every side effect can be counted.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.db import make_engine, messaging_tables
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import MAX_ATTEMPTS, ServiceRuntime

SERVICE = c.ROUTING
HANDLER = "on_case_registered"
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

_test_metadata = sa.MetaData()
side_effects = sa.Table(
    "test_side_effects",
    _test_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(40), nullable=False),
    sa.Column("step", sa.String(20), nullable=False),
)


class ManualClock:
    simulated = True

    def __init__(self, now: dt.datetime):
        self._now = now

    def now(self, connection=None) -> dt.datetime:
        return self._now

    def set(self, now: dt.datetime, *, allow_backwards: bool = False) -> dt.datetime:
        self._now = now
        return now

    def advance(self, **delta) -> dt.datetime:
        self._now += dt.timedelta(**delta)
        return self._now


class RecordingPublisher:
    """Takes every message, or raises on the n-th publish call (1-based) when told to."""

    def __init__(self, fail_on_call: int | None = None):
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.published: list[tuple[str, str, str]] = []

    def publish(self, exchange: str, routing_key: str, body: str) -> None:
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise ConnectionError("broker went away")
        self.published.append((exchange, routing_key, body))


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/consumer.sqlite")
    messaging_metadata = sa.MetaData()
    messaging_tables(messaging_metadata, SERVICE)
    messaging_metadata.create_all(engine)
    _test_metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    """The city's clock: simulated, it stands still unless a test moves it."""
    return ManualClock(T0)


@pytest.fixture
def wall():
    """Operational time (retry backoff, relay grace), which the tests move by hand."""
    return ManualClock(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc))


@pytest.fixture
def runtime(engine, clock, wall):
    return ServiceRuntime(
        SERVICE,
        engine,
        clock,
        JurisdictionStore(engine),
        [side_effects],
        operational_clock=wall.now,
    )


def _message(case_id: str = "GF-1") -> dict:
    event = c.make_event(
        c.INTAKE,
        c.CASE_REGISTERED,
        T0,
        {
            "case_id": case_id,
            "category": "event.noise",
            "area_code": "330302104001001",
            "description": "楼上噪音",
            "jurisdiction_version": 1,
        },
    )
    return event.to_message()


def _count(engine, table, *where) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table)
        if where:
            query = query.where(*where)
        return conn.execute(query).scalar_one()


def _failed_rows(runtime) -> list[dict]:
    return runtime.dead_letters()


class FlakyHandler:
    """Writes a side effect, emits an event, then raises while ``broken`` is set."""

    def __init__(self, broken: bool = False):
        self.broken = broken
        self.runs = 0

    def __call__(self, work, event) -> None:
        self.runs += 1
        work.db.execute(
            sa.insert(side_effects).values(case_id=event.payload["case_id"], step="first")
        )
        work.emit(c.CASE_ROUTED, _routed_payload(event.payload["case_id"]))
        if self.broken:
            raise RuntimeError("department system unavailable")
        work.db.execute(
            sa.insert(side_effects).values(case_id=event.payload["case_id"], step="second")
        )


def _routed_payload(case_id: str) -> dict:
    return {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "reason": "new",
        "category": "event.noise",
        "tier": "street",
        "holder": "environment-330302104",
        "lead": "environment",
        "assisting": ["police"],
        "escalations": 0,
        "area_code": "330302104001001",
        "jurisdiction_version": 1,
    }


# ----------------------------------------------------------------------------- idempotence


def test_same_message_delivered_twice_runs_the_handler_once(engine, runtime):
    handler = FlakyHandler()
    message = _message()
    assert runtime.consume(HANDLER, message, handler) == "done"
    assert runtime.consume(HANDLER, message, handler) == "duplicate"
    assert handler.runs == 1
    assert _count(engine, side_effects) == 2  # first + second, once
    assert runtime.pending_outbox() == 1


def test_same_event_for_two_handlers_runs_each_once(engine, runtime):
    handler = FlakyHandler()
    message = _message()
    assert runtime.consume("on_one", message, handler) == "done"
    assert runtime.consume("on_other", message, handler) == "done"
    assert runtime.consume("on_one", message, handler) == "duplicate"
    assert handler.runs == 2


def test_different_messages_for_one_case_each_run(engine, runtime):
    handler = FlakyHandler()
    assert runtime.consume(HANDLER, _message("GF-1"), handler) == "done"
    assert runtime.consume(HANDLER, _message("GF-1"), handler) == "done"  # a new event id
    assert handler.runs == 2


# ----------------------------------------------------------------------------- failures


def test_failing_handler_is_rolled_back_and_recorded_for_retry(engine, runtime, wall):
    handler = FlakyHandler(broken=True)
    assert runtime.consume(HANDLER, _message(), handler) == "retrying"
    assert _count(engine, side_effects) == 0
    assert runtime.pending_outbox() == 0
    assert _count(engine, runtime.tables["processed"]) == 0
    [row] = _failed_rows(runtime)
    assert (row["handler"], row["state"], row["attempts"]) == (HANDLER, "retrying", 1)
    assert row["next_attempt_at"] > wall.now()
    assert "department system unavailable" in row["last_error"]


def test_retry_is_not_attempted_before_its_backoff_runs_out(engine, runtime, wall):
    handler = FlakyHandler(broken=True)
    runtime.consume(HANDLER, _message(), handler)
    handler.broken = False
    assert runtime.retry_due({HANDLER: handler}, now=wall.now()) == 0
    assert handler.runs == 1
    assert _failed_rows(runtime)[0]["state"] == "retrying"


def test_retry_after_the_fault_is_gone_succeeds_once_and_removes_the_record(engine, runtime, wall):
    handler = FlakyHandler(broken=True)
    message = _message()
    runtime.consume(HANDLER, message, handler)
    handler.broken = False
    assert runtime.retry_due({HANDLER: handler}, now=wall.now() + dt.timedelta(minutes=1)) == 1
    assert handler.runs == 2
    assert _failed_rows(runtime) == []
    assert _count(engine, side_effects) == 2
    assert runtime.pending_outbox() == 1
    # The broker redelivering the original afterwards changes nothing.
    assert runtime.consume(HANDLER, message, handler) == "duplicate"
    assert handler.runs == 2


def test_retry_that_fails_again_counts_the_attempt_and_backs_off_longer(engine, runtime, wall):
    handler = FlakyHandler(broken=True)
    failed_at = wall.now()
    runtime.consume(HANDLER, _message(), handler)
    first_due = _failed_rows(runtime)[0]["next_attempt_at"]
    wall.advance(minutes=1)
    assert runtime.retry_due({HANDLER: handler}) == 1
    [row] = _failed_rows(runtime)
    assert (row["state"], row["attempts"]) == ("retrying", 2)
    assert row["next_attempt_at"] - wall.now() > first_due - failed_at
    assert _count(engine, side_effects) == 0


def test_message_becomes_dead_after_max_attempts_and_is_no_longer_retried(engine, runtime, wall):
    handler = FlakyHandler(broken=True)
    assert runtime.consume(HANDLER, _message(), handler) == "retrying"
    for attempt in range(2, MAX_ATTEMPTS + 1):
        wall.advance(days=1)
        assert runtime.retry_due({HANDLER: handler}) == 1
        [row] = _failed_rows(runtime)
        assert row["attempts"] == attempt
    assert (row["state"], row["next_attempt_at"]) == ("dead", None)
    assert handler.runs == MAX_ATTEMPTS
    wall.advance(days=30)
    assert runtime.retry_due({HANDLER: handler}) == 0
    assert handler.runs == MAX_ATTEMPTS
    assert _count(engine, side_effects) == 0


def test_replayed_dead_letter_is_retried_and_then_processed(engine, runtime, wall):
    handler = FlakyHandler(broken=True)
    runtime.consume(HANDLER, _message(), handler)
    for _ in range(MAX_ATTEMPTS - 1):
        wall.advance(days=1)
        runtime.retry_due({HANDLER: handler})
    [dead] = _failed_rows(runtime)
    assert dead["state"] == "dead"

    assert runtime.replay_dead_letter(dead["id"]) is True
    [replayed] = _failed_rows(runtime)
    assert (replayed["state"], replayed["attempts"]) == ("retrying", 0)

    handler.broken = False
    assert runtime.retry_due({HANDLER: handler}) == 1
    assert _failed_rows(runtime) == []
    assert _count(engine, side_effects) == 2


def test_only_dead_letters_can_be_replayed(runtime):
    runtime.consume(HANDLER, _message(), FlakyHandler(broken=True))
    [row] = _failed_rows(runtime)
    assert row["state"] == "retrying"
    assert runtime.replay_dead_letter(row["id"]) is False
    assert runtime.replay_dead_letter(row["id"] + 1000) is False


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"event_type": "case_registered"}, id="envelope-missing-fields"),
        pytest.param({**_message(), "occurred_at": "yesterday"}, id="bad-timestamp"),
        pytest.param({**_message(), "version": 99}, id="unknown-version"),
        pytest.param({**_message(), "payload": {"case_id": "GF-1"}}, id="payload-breaks-schema"),
        pytest.param("not even a dict", id="not-a-mapping"),
    ],
)
def test_unreadable_message_goes_straight_to_dead_letters(engine, runtime, message):
    handler = FlakyHandler()
    assert runtime.consume(HANDLER, message, handler) == "dead"
    assert handler.runs == 0
    [row] = _failed_rows(runtime)
    assert (row["state"], row["attempts"], row["event_id"]) == ("dead", 1, None)
    assert "unreadable" in row["last_error"]
    assert _count(engine, side_effects) == 0


def test_replayed_unreadable_message_does_not_multiply_dead_letters(runtime, wall):
    handler = FlakyHandler()
    assert runtime.consume(HANDLER, {"event_type": "case_registered"}, handler) == "dead"
    [dead] = _failed_rows(runtime)
    assert runtime.replay_dead_letter(dead["id"]) is True
    for _ in range(3):
        wall.advance(minutes=5)
        runtime.retry_due({HANDLER: handler})
    rows = _failed_rows(runtime)
    assert len(rows) == 1
    assert rows[0]["state"] == "dead"


# ----------------------------------------------------------------------------- the outbox


def test_events_emitted_in_a_work_unit_that_raises_are_never_published(engine, runtime):
    with pytest.raises(RuntimeError), runtime.work() as work:
        work.emit(c.CASE_ROUTED, _routed_payload("GF-9"))
        work.send_to_unit("environment", "environment-330302", {"case_id": "GF-9"})
        work.db.execute(sa.insert(side_effects).values(case_id="GF-9", step="first"))
        raise RuntimeError("fault after emitting")
    publisher = RecordingPublisher()
    assert runtime.relay(publisher) == 0
    assert publisher.calls == 0
    assert runtime.pending_outbox() == 0
    assert _count(engine, side_effects) == 0


def test_committed_events_are_published_in_order_and_then_removed(runtime):
    with runtime.work() as work:
        for n in range(3):
            work.emit(c.CASE_ROUTED, _routed_payload(f"GF-{n}"))
        work.send_to_unit("environment", "environment-330302", {"case_id": "GF-2"})
    publisher = RecordingPublisher()
    assert runtime.relay(publisher) == 4
    keys = [(exchange, key) for exchange, key, _ in publisher.published]
    assert keys == [(c.event_exchange(SERVICE), c.CASE_ROUTED)] * 3 + [
        (c.CASE_EXCHANGE, "environment.environment-330302")
    ]
    case_ids = [
        c.load_event(json.loads(body)).payload["case_id"] for _, _, body in publisher.published[:3]
    ]
    assert case_ids == ["GF-0", "GF-1", "GF-2"]
    assert runtime.pending_outbox() == 0
    assert runtime.relay(RecordingPublisher()) == 0


def test_publisher_failing_mid_batch_keeps_the_unconfirmed_rows_for_the_next_pass(runtime):
    with runtime.work() as work:
        for n in range(4):
            work.emit(c.CASE_ROUTED, _routed_payload(f"GF-{n}"))
    failing = RecordingPublisher(fail_on_call=3)
    with pytest.raises(ConnectionError):
        runtime.relay(failing)
    assert len(failing.published) == 2
    assert runtime.pending_outbox() == 2

    healthy = RecordingPublisher()
    assert runtime.relay(healthy) == 2
    bodies_first = [body for _, _, body in failing.published]
    bodies_next = [body for _, _, body in healthy.published]
    assert not set(bodies_first) & set(bodies_next)
    assert len(set(bodies_first + bodies_next)) == 4
    assert runtime.pending_outbox() == 0


def test_publisher_failing_on_the_first_message_publishes_and_deletes_nothing(runtime):
    with runtime.work() as work:
        work.emit(c.CASE_ROUTED, _routed_payload("GF-1"))
        work.emit(c.CASE_ROUTED, _routed_payload("GF-2"))
    with pytest.raises(ConnectionError):
        runtime.relay(RecordingPublisher(fail_on_call=1))
    assert runtime.pending_outbox() == 2


def test_failed_handler_emits_nothing_to_the_relay(runtime):
    runtime.consume(HANDLER, _message(), FlakyHandler(broken=True))
    publisher = RecordingPublisher()
    assert runtime.relay(publisher) == 0
    assert publisher.published == []


def test_fast_path_publishes_just_committed_rows_and_leaves_the_unconfirmed_to_the_sweep(runtime):
    handed_over = []
    runtime.on_commit(handed_over.extend)
    with runtime.work() as work:
        for n in range(3):
            work.emit(c.CASE_ROUTED, _routed_payload(f"GF-{n}"))
    assert [row.routing_key for row in handed_over] == [c.CASE_ROUTED] * 3

    failing = RecordingPublisher(fail_on_call=2)
    with pytest.raises(ConnectionError):
        runtime.publish_rows(handed_over, failing)
    assert len(failing.published) == 1
    assert runtime.pending_outbox() == 2
    # Rows younger than the grace period belong to the fast path; then the sweep takes them.
    assert runtime.relay(RecordingPublisher(), older_than=3600) == 0
    healthy = RecordingPublisher()
    assert runtime.relay(healthy) == 2
    assert {b for _, _, b in healthy.published} == {r.body for r in handed_over[1:]}
    assert runtime.pending_outbox() == 0


def test_a_rolled_back_unit_hands_nothing_to_the_relay(runtime):
    handed_over = []
    runtime.on_commit(handed_over.extend)
    with pytest.raises(RuntimeError), runtime.work() as work:
        work.emit(c.CASE_ROUTED, _routed_payload("GF-1"))
        raise RuntimeError("handler fault")
    assert handed_over == []
    assert runtime.pending_outbox() == 0


def test_relay_loop_publishes_after_each_commit_and_empties_the_outbox(runtime):
    from gridflow_common.runtime import RelayLoop

    publisher = RecordingPublisher()
    loop = RelayLoop(runtime, lambda: publisher, interval=0.05)
    loop.start()
    try:
        for n in range(3):
            with runtime.work() as work:
                work.emit(c.CASE_ROUTED, _routed_payload(f"GF-{n}"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            len(publisher.published) < 3 or runtime.pending_outbox()
        ):
            time.sleep(0.01)  # bounded poll on the relay's outcome
    finally:
        loop.stop()
    assert [json.loads(body)["payload"]["case_id"] for _, _, body in publisher.published] == [
        "GF-0",
        "GF-1",
        "GF-2",
    ]
    assert runtime.pending_outbox() == 0


# ----------------------------------------------------------------------------- operational time


def test_failed_message_is_retried_after_its_backoff_while_the_simulated_clock_stands_still(
    engine, clock
):
    # Real operational time (the default), a city clock nobody moves.
    runtime = ServiceRuntime(SERVICE, engine, clock, JurisdictionStore(engine), [side_effects])
    handler = FlakyHandler(broken=True)
    assert runtime.consume(HANDLER, _message(), handler) == "retrying"
    handler.broken = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _failed_rows(runtime):
        runtime.retry_due({HANDLER: handler})
        time.sleep(0.05)  # bounded poll: the first backoff is one second of real time
    assert _failed_rows(runtime) == []
    assert handler.runs == 2
    assert clock.now() == T0
    assert _count(engine, side_effects) == 2


def test_replayed_dead_letter_is_due_at_once_on_a_simulated_clock_in_the_past(engine, clock):
    clock.set(T0 - dt.timedelta(days=365))
    runtime = ServiceRuntime(SERVICE, engine, clock, JurisdictionStore(engine), [side_effects])
    handler = FlakyHandler()
    assert runtime.consume(HANDLER, {"event_type": "case_registered"}, handler) == "dead"
    [dead] = _failed_rows(runtime)
    assert runtime.replay_dead_letter(dead["id"]) is True
    assert runtime.retry_due({HANDLER: handler}) == 1


# ----------------------------------------------------------------------------- one connection


def test_a_unit_of_work_reads_clock_and_jurisdiction_on_its_own_connection(tmp_path):
    """A pool of one connection: any second checkout inside a unit would time out."""
    from gridflow_common.clock import SimulatedClock
    from gridflow_common.db import platform_metadata
    from tests.conftest import lucheng_files

    url = f"sqlite:///{tmp_path}/one.sqlite"
    setup = make_engine(url)
    platform_metadata.create_all(setup)
    messaging_tables(sa.MetaData(), SERVICE)["processed"].metadata.create_all(setup)
    _test_metadata.create_all(setup)
    version = JurisdictionStore(setup).install(lucheng_files())
    SimulatedClock(setup).set(T0)
    setup.dispose()

    engine = sa.create_engine(
        url, pool_size=1, max_overflow=0, pool_timeout=1, connect_args={"check_same_thread": False}
    )
    # A fresh store: its cache is empty, as after every restart.
    runtime = ServiceRuntime(
        SERVICE, engine, SimulatedClock(engine), JurisdictionStore(engine), [side_effects]
    )
    with runtime.work() as work:
        assert work.now == T0
        assert work.city_now() == T0
        active_version, active = work.active_jurisdiction()
        assert active_version == version
        assert work.jurisdiction(version) is active
    engine.dispose()


# ----------------------------------------------------------------------------- retention


def test_processed_ids_older_than_the_retention_window_are_pruned(engine, runtime, wall):
    handler = FlakyHandler()
    old = _message("GF-old")
    assert runtime.consume(HANDLER, old, handler) == "done"
    wall.advance(days=8)
    recent = _message("GF-recent")
    assert runtime.consume(HANDLER, recent, handler) == "done"
    assert runtime.prune_processed(dt.timedelta(days=7)) == 1
    with engine.connect() as conn:
        left = conn.execute(sa.select(runtime.tables["processed"].c.event_id)).scalars().all()
    assert left == [recent["event_id"]]
    # Within the window a redelivery is still recognised.
    assert runtime.consume(HANDLER, recent, handler) == "duplicate"


# ----------------------------------------------------------------------------- relay deletes


def test_confirmed_rows_whose_delete_fails_once_are_not_published_again(engine, runtime):
    from gridflow_common.runtime import RelayLoop

    failures = {"left": 1}

    def fail_once() -> int:
        if failures["left"]:
            failures["left"] -= 1
            return 1
        return 0

    # A real DELETE refused by the database once (a trigger), the next one committed.
    @sa.event.listens_for(engine, "connect")
    def _register(dbapi_connection, _record):
        dbapi_connection.create_function("fail_once", 0, fail_once)

    engine.dispose()
    outbox = runtime.tables["outbox"].name
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TRIGGER blip BEFORE DELETE ON {outbox} WHEN fail_once() "
            "BEGIN SELECT RAISE(ABORT, 'database blip'); END"
        )

    publisher = RecordingPublisher()
    loop = RelayLoop(runtime, lambda: publisher, interval=0.05)
    loop.SWEEP_GRACE_SECONDS = 0.0  # the sweep may take any row at once
    loop.start()
    try:
        for batch in range(5):
            with runtime.work() as work:
                for n in range(100):
                    work.emit(c.CASE_ROUTED, _routed_payload(f"GF-{batch}-{n}"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (failures["left"] or runtime.pending_outbox()):
            time.sleep(0.02)  # bounded poll on the relay's outcome
        # A few more passes of the loop, sweeps included, after the outbox emptied.
        settle = time.monotonic() + 0.3
        while time.monotonic() < settle:
            time.sleep(0.02)  # bounded: lets further sweeps run if any row were left
    finally:
        loop.stop()
    assert failures["left"] == 0
    bodies = [body for _, _, body in publisher.published]
    assert len(bodies) == 500
    assert len(set(bodies)) == 500
    assert runtime.pending_outbox() == 0


def test_the_periodic_tick_prunes_processed_ids_past_retention(engine, runtime, wall):
    handler = FlakyHandler()
    assert runtime.consume(HANDLER, _message("GF-old"), handler) == "done"
    wall.advance(days=8)
    runtime.tick({HANDLER: handler})
    assert _count(engine, runtime.tables["processed"]) == 0
