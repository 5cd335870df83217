"""The SLA sweep on PostgreSQL and RabbitMQ: two SLA replicas (two nameko containers, each with
its own connections) sweep the same clocks after the simulated clock jumps over yellow, orange
and red, and every clock's colours are announced exactly once each, in order; a sweep with
nothing due touches no row; the sweep's query can use the partial index of due clocks."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common import nameko_support as keys
from gridflow_common.clock import RealClock, SimulatedClock
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from tests.conftest import free_port
from tests.integration.support import dispatched_payload, observe, publish, take

pytestmark = pytest.mark.integration

CLOCKS = 300


def _count(engine, assignment_ids: list[str]) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM sla_clocks WHERE assignment_id = ANY(:ids)"),
            {"ids": assignment_ids},
        ).scalar_one()


def test_two_replicas_announce_each_crossed_colour_once_in_order_after_a_jump(
    container_factory, config, broker, engine, monkeypatch
):
    from gridflow_sla import handlers
    from gridflow_sla.service import SlaService

    # Small batches, so that the jump is many transactions that the two replicas' sweeps (the
    # message's own batch, each replica's 0.25 s timer and 1 s tick) take from each other.
    monkeypatch.setattr(handlers, "SWEEP_BATCH", 20)
    clock = SimulatedClock(engine)
    before = clock.now()
    start = max(before, dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc))
    clock.set(start)
    simulated = {**config, keys.GRIDFLOW_CLOCK: "simulated"}
    colours = observe(broker, c.SLA, c.CASE_COLOUR_CHANGED)
    replicas = []
    for _ in range(2):
        replica = container_factory(
            SlaService, {**simulated, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}
        )
        replica.start()
        replicas.append(replica)
    try:
        tag = uuid.uuid4().hex[:6]
        ids = []
        for i in range(CLOCKS):
            payload = dispatched_payload(engine, f"IT-{tag}-{i}")
            ids.append(payload["assignment_id"])
            publish(broker, c.DEPARTMENTS, c.CASE_DISPATCHED, payload, occurred_at=start)
        for _ in range(200):
            if _count(engine, ids) == CLOCKS:
                break
            take(broker, colours.name, want=1, timeout=0.1)  # bounded: 200 polls of 0.1 s
        assert _count(engine, ids) == CLOCKS
        # A month later: every clock (two wall-clock hours) is past yellow, orange and red.
        later = start + dt.timedelta(days=30)
        clock.set(later)
        advanced = publish(broker, c.INTAKE, c.CLOCK_ADVANCED, {"now": later.isoformat()})
        # The same event again (a redelivery), and another event for the same instant.
        publish(
            broker,
            c.INTAKE,
            c.CLOCK_ADVANCED,
            {"now": later.isoformat()},
            event_id=advanced["event_id"],
        )
        publish(broker, c.INTAKE, c.CLOCK_ADVANCED, {"now": later.isoformat()})
        mine = set(ids)
        # Per clock, each distinct event (by event id) in the order it first arrived, and how
        # many copies of each arrived. The relays of the two replicas never publish the same
        # outbox row twice (each holds its rows locked until their delete commits); only a
        # crash between a confirm and the delete could, and there is none here.
        seen: dict[str, dict[str, tuple[str, dt.datetime]]] = defaultdict(dict)
        copies: Counter[str] = Counter()

        def collect(timeout: float) -> None:
            for message in take(broker, colours.name, want=10_000, timeout=timeout):
                p = message["payload"]
                if p["assignment_id"] in mine:
                    at = dt.datetime.fromisoformat(message["occurred_at"])
                    seen[p["assignment_id"]].setdefault(message["event_id"], (p["colour"], at))
                    copies[message["event_id"]] += 1

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and sum(len(e) for e in seen.values()) < 3 * CLOCKS:
            collect(timeout=1.0)
        # And whatever a second walk would announce: a further look by either replica.
        collect(timeout=2.0)
        assert set(seen) == mine
        wrong = {
            aid: [col for col, _ in got.values()]
            for aid, got in seen.items()
            if [col for col, _ in got.values()] != ["yellow", "orange", "red"]
            or [at for _, at in got.values()] != sorted(at for _, at in got.values())
        }
        assert wrong == {}
        assert [event_id for event_id, n in copies.items() if n > 1] == []
        with engine.connect() as conn:
            left = conn.execute(
                sa.text(
                    "SELECT count(*) FROM sla_clocks WHERE assignment_id = ANY(:ids) "
                    "AND (colour <> 'red' OR next_transition_at IS NOT NULL)"
                ),
                {"ids": ids},
            ).scalar_one()
        assert left == 0
    finally:
        for replica in replicas:
            replica.stop()
        clock.set(before, allow_backwards=True)


def _runtime(engine) -> ServiceRuntime:
    from gridflow_sla.handlers import DEFINITION

    return ServiceRuntime(
        DEFINITION.name, engine, RealClock(), JurisdictionStore(engine), DEFINITION.tables()
    )


def test_with_nothing_due_the_sweep_touches_no_row(engine):
    from gridflow_sla.handlers import sweep_due

    runtime = _runtime(engine)
    snapshot = sa.text(
        "SELECT assignment_id, xmin::text, colour, next_transition_at FROM sla_clocks "
        "ORDER BY assignment_id"
    )
    with engine.connect() as conn:
        rows = conn.execute(snapshot).all()
        outbox = conn.execute(sa.text("SELECT count(*) FROM sla_outbox")).scalar_one()
    # Before any clock's next colour: nothing is due, nothing is locked, written or emitted.
    assert sweep_due(runtime, until=dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)) == 0
    with engine.connect() as conn:
        assert conn.execute(snapshot).all() == rows
        assert conn.execute(sa.text("SELECT count(*) FROM sla_outbox")).scalar_one() == outbox


def test_the_sweeps_query_can_use_the_partial_index_of_due_clocks(engine):
    with engine.connect() as conn:
        indexdef = conn.execute(
            sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_sla_clocks_due'")
        ).scalar_one()
        assert "WHERE (active AND (next_transition_at IS NOT NULL))" in indexdef
        # Whatever the table's size here, the planner may use the index only if the sweep's
        # WHERE implies the index's: forbid the alternatives and read the plan.
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        conn.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                sa.text(
                    "EXPLAIN SELECT assignment_id FROM sla_clocks WHERE active AND "
                    "next_transition_at <= now() ORDER BY next_transition_at LIMIT 500 "
                    "FOR UPDATE SKIP LOCKED"
                )
            )
        )
    assert "ix_sla_clocks_due" in plan
