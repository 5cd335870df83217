"""The delivery worker pushes what adapters other than AMQP and the inbox are given: per unit
in order, one unit's outage holding up nobody else, retries on the schedule then undeliverable,
a circuit breaker per department, and nothing lost across a restart. Real worker, real
database (SQLite file), real threads; the department's system is scripted per unit."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.delivery import RetrySchedule
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_departments.handlers import DEFINITION
from gridflow_departments.models import deliveries
from gridflow_departments.worker import DeliveryWorker, Settings
from tests.unit.scripted_department import NAME, installed
from tests.unit.service_harness import new_case_id
from tests.unit.test_deliveries import adapters_csv, departments, route

FIRE = "fire-330302"
HOUSING = "housing-330302"


class Operational:
    """Operational time under the test's hand (retries and leases run on it)."""

    def __init__(self) -> None:
        self.instant = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)

    def now(self) -> dt.datetime:
        return self.instant

    def seconds(self) -> float:
        return self.instant.timestamp()

    def advance(self, seconds: float) -> None:
        self.instant += dt.timedelta(seconds=seconds)


class Flow:
    def __init__(self, tmp_path, system, rows: str, polls: bool = False, **settings):
        self.system = system
        self.ops = Operational()
        self.polls = polls
        self.settings = Settings(
            **{
                "schedule": RetrySchedule((10, 30)),
                "breaker_failures": 100,
                "poll_seconds": 3600,
                "lease_seconds": 60,
                "concurrency": 4,
                **settings,
            }
        )
        self.service = departments(tmp_path, adapters_csv(rows))
        self.restart()

    def restart(self) -> None:
        """A new runtime and worker over the same database: the service restarted."""
        old = getattr(self, "worker", None)
        if old is not None:
            old.close()
        self.service.runtime = ServiceRuntime(
            DEFINITION.name,
            self.service.engine,
            self.service.clock,
            JurisdictionStore(self.service.engine),
            DEFINITION.tables(),
            lock=threading.RLock(),
            operational_clock=self.ops.now,
        )
        self.worker = DeliveryWorker(
            self.service.runtime,
            self.settings,
            loader=self.system.loader(self.polls),
            monotonic=self.ops.seconds,
        )

    def step(self) -> int:
        started = self.worker.run_pass()
        self.worker.wait(timeout=10)
        return started

    def route(self, holder: str = FIRE, **fields) -> str:
        case_id = new_case_id()
        assert route(self.service, case_id, holder=holder, **fields) == "done"
        return case_id

    def row(self, delivery_id: str) -> dict:
        with self.service.engine.connect() as conn:
            return dict(
                conn.execute(sa.select(deliveries).where(deliveries.c.delivery_id == delivery_id))
                .mappings()
                .one()
            )

    def events(self, event_type: str) -> list[dict]:
        return [p for t, p in self.service.emitted() if t == event_type]

    def close(self) -> None:
        self.worker.close()
        self.service.close()


@pytest.fixture
def flow_factory(tmp_path, monkeypatch):
    system = installed(monkeypatch)
    made: list[Flow] = []

    def make(rows: str = f"fire,{NAME},\nhousing,{NAME},\n", **kwargs) -> Flow:
        flow = Flow(tmp_path, system, rows, **kwargs)
        made.append(flow)
        return flow

    yield make
    for flow in made:
        flow.close()


def lead(case_id: str, unit: str = FIRE) -> str:
    return f"{case_id}-1/{unit}/lead"


def test_a_failing_unit_is_retried_on_the_schedule_then_undeliverable(flow_factory):
    flow = flow_factory()
    flow.system.down.add(FIRE)
    case_id = flow.route()
    flow.service.emitted()
    assert flow.step() == 2  # the fire bureau's lead delivery and housing's assisting one
    row = flow.row(lead(case_id))
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "pending",
        1,
        f"{FIRE} unreachable",
    )
    assert row["next_attempt_at"] == flow.ops.now() + dt.timedelta(seconds=10)
    assert flow.system.received(HOUSING) == [f"{case_id}-1/{HOUSING}/assisting"]
    flow.ops.advance(9.9)
    assert flow.step() == 0
    flow.ops.advance(0.1)
    assert flow.step() == 1
    assert flow.row(lead(case_id))["attempts"] == 2
    flow.ops.advance(29)
    assert flow.step() == 0
    assert flow.events(c.CASE_UNDELIVERABLE) == []
    flow.ops.advance(1)
    assert flow.step() == 1
    assert flow.row(lead(case_id))["state"] == "undeliverable"
    (event,) = flow.events(c.CASE_UNDELIVERABLE)
    assert event == {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "delivery_id": lead(case_id),
        "unit": FIRE,
        "department": "fire",
        "role": "lead",
        "adapter": NAME,
        "attempts": 3,
        "reason": f"{FIRE} unreachable",
        "jurisdiction_version": flow.service.version,
    }
    flow.ops.advance(100_000)
    assert flow.step() == 0


def test_a_system_that_says_when_to_come_back_is_not_tried_sooner(flow_factory):
    flow = flow_factory()
    flow.system.down.add(FIRE)
    flow.system.retry_after = 600
    case_id = flow.route()
    flow.step()
    assert flow.row(lead(case_id))["next_attempt_at"] == flow.ops.now() + dt.timedelta(seconds=600)


def test_a_unit_down_holds_up_only_itself_and_gets_its_backlog_in_order_when_back(flow_factory):
    flow = flow_factory()
    flow.system.down.add(FIRE)
    cases = [flow.route() for _ in range(3)]
    for _ in range(5):
        flow.step()
    # Housing got all three at once, one pass each, while the fire bureau was down.
    assert flow.system.received(HOUSING) == [f"{c_}-1/{HOUSING}/assisting" for c_ in cases]
    assert flow.system.received(FIRE) == []
    # Only the fire bureau's head was tried: the others wait behind it, spending no attempt.
    assert [flow.row(lead(c_))["attempts"] for c_ in cases] == [1, 0, 0]
    flow.system.down.clear()
    flow.ops.advance(10)
    # The whole backlog in one pass: a unit that takes it is not held to one a tick.
    assert flow.step() == 1
    assert flow.system.received(FIRE) == [lead(c_) for c_ in cases]
    assert {flow.row(lead(c_))["state"] for c_ in cases} == {"delivered"}


def test_a_backlog_drains_with_two_statements_a_delivery(flow_factory):
    # What bench/departments.py found: every push of a draining backlog cost four statements
    # (the last one's outcome, then the unit's heads, its rows, its lease) and ~100 pushes/s
    # where the department took 400. The outcome and the next head's lease are now one each.
    flow = flow_factory(concurrency=1)
    flow.system.down.add(FIRE)
    cases = [flow.route(assisting=[]) for _ in range(8)]
    flow.step()
    flow.system.down.clear()
    flow.ops.advance(10)
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa.event.listen(flow.service.engine, "before_cursor_execute", count)
    try:
        assert flow.step() == 1
    finally:
        sa.event.remove(flow.service.engine, "before_cursor_execute", count)
    assert flow.system.received(FIRE) == [lead(c_) for c_ in cases]
    # The pass's own claim (a count, the heads, the rows, a lease), then two a delivery.
    assert len(statements) <= 4 + 2 * len(cases) + 1, statements


def test_a_long_backlog_gives_way_after_a_burst_to_a_unit_that_waited(flow_factory):
    flow = flow_factory(burst=3, concurrency=1)
    flow.system.down.update({FIRE, HOUSING})
    cases = [flow.route() for _ in range(5)]
    flow.step()
    flow.step()
    flow.system.down.clear()
    flow.ops.advance(10)
    flow.step()
    first = FIRE if flow.system.received(FIRE) else HOUSING
    other = HOUSING if first == FIRE else FIRE
    assert len(flow.system.received(first)) == 3
    assert flow.system.received(other) == []
    # Turn and turn about, a burst each: the head that waited longer goes first.
    flow.step()
    assert (len(flow.system.received(first)), len(flow.system.received(other))) == (3, 3)
    flow.step()
    assert (len(flow.system.received(first)), len(flow.system.received(other))) == (5, 3)
    flow.step()
    assert (len(flow.system.received(first)), len(flow.system.received(other))) == (5, 5)
    role = {FIRE: "lead", HOUSING: "assisting"}
    for unit in (FIRE, HOUSING):
        assert flow.system.received(unit) == [f"{c_}-1/{unit}/{role[unit]}" for c_ in cases]


def test_a_refusal_is_undeliverable_at_once_and_the_next_case_goes_on(flow_factory):
    flow = flow_factory()
    flow.system.refusing.add(FIRE)
    refused = flow.route()
    flow.step()
    assert flow.row(lead(refused))["state"] == "undeliverable"
    (event,) = flow.events(c.CASE_UNDELIVERABLE)
    assert (event["attempts"], event["reason"]) == (1, f"{FIRE} answered 422")
    flow.system.refusing.clear()
    taken = flow.route()
    flow.step()
    assert flow.system.received(FIRE) == [lead(taken)]


def test_a_restarted_service_goes_on_where_the_last_one_stopped(flow_factory):
    flow = flow_factory(f"fire,{NAME},\n")
    flow.system.down.add(FIRE)
    cases = [flow.route() for _ in range(2)]
    flow.step()
    flow.restart()
    flow.system.down.clear()
    flow.ops.advance(9)
    assert flow.step() == 0  # the schedule survived the restart too
    flow.ops.advance(1)
    for _ in range(3):
        flow.step()
    assert flow.system.received(FIRE) == [lead(c_) for c_ in cases]
    assert flow.row(lead(cases[0]))["attempts"] == 2


def test_a_push_cut_short_by_a_crash_is_pushed_again_after_its_lease_with_the_same_id(
    flow_factory,
):
    flow = flow_factory(f"fire,{NAME},\n")
    case_id = flow.route()
    (claim,) = flow.worker._claim(1)  # taken and committed; the process dies before the push
    assert claim.delivery_id == lead(case_id)
    flow.restart()
    assert flow.step() == 0  # still leased to the process that died
    flow.ops.advance(60.001)
    assert flow.step() == 1
    assert flow.system.received(FIRE) == [lead(case_id)]
    row = flow.row(lead(case_id))
    assert (row["state"], row["attempts"], row["external_ref"]) == (
        "delivered",
        2,
        f"ext-{case_id}",
    )


def test_the_circuit_of_a_failing_department_opens_and_spends_no_attempts_while_open(
    flow_factory,
):
    flow = flow_factory(
        f"police,{NAME},\n",
        schedule=RetrySchedule((1,) * 10),
        breaker_failures=2,
        breaker_cool_down=30,
    )
    stations = ["police-330302001", "police-330302002", "police-330302005"]
    flow.system.down.update(stations)
    cases = [
        flow.route(holder=s, lead="police", assisting=[], tier=v.STREET, category="event.noise")
        for s in stations
    ]
    leads = [lead(c_, s) for c_, s in zip(cases, stations, strict=True)]
    assert flow.step() == 3
    flow.ops.advance(1)
    assert flow.step() == 0  # open: nobody at the police is tried
    assert [flow.row(i)["attempts"] for i in leads] == [1, 1, 1]
    flow.ops.advance(29)
    assert flow.step() == 1  # half-open: one probe
    assert flow.step() == 0  # which failed: open again
    flow.system.down.clear()
    flow.ops.advance(30)
    assert flow.step() == 1  # the probe succeeds and closes the circuit
    assert flow.step() == 2
    assert sorted(i for s in stations for i in flow.system.received(s)) == sorted(leads)


def test_a_polling_adapter_reports_a_changed_word_once_and_stops_after_closing(flow_factory):
    flow = flow_factory(f"fire,{NAME},\n", polls=True)
    case_id = flow.route()
    flow.step()
    flow.service.emitted()
    flow.system.words[f"ext-{case_id}"] = "已受理"
    assert flow.worker.poll_once() == 1
    (event,) = flow.events(c.CASE_STATUS_RECEIVED)
    assert (event["word"], event["unit"], event["delivery_id"], event["adapter"]) == (
        "已受理",
        FIRE,
        lead(case_id),
        NAME,
    )
    assert flow.row(lead(case_id))["last_word"] == "已受理"
    assert flow.worker.poll_once() == 0  # nothing changed there
    assert flow.service.deliver(
        c.INTAKE, c.CASE_VERIFIED, {"case_id": case_id, "passed": True}
    ) == ("done")
    flow.step()  # the closing change reaches the unit
    flow.system.polled.clear()
    flow.worker.poll_once()
    assert flow.system.polled == []  # a closed case is not asked about


def test_the_worker_signs_links_its_adapters_mail_that_verify_for_that_unit_and_action(
    flow_factory,
):
    import time as _time

    from gridflow_common import links
    from gridflow_common.adapters import Delivery

    flow = flow_factory()
    delivery = Delivery("d", "case", "GF-1", "GF-1-1", FIRE, "fire", "lead", {})
    url = flow.worker.context.sign_link(delivery, v.ACCEPTED, 3600)
    prefix = f"{flow.worker.settings.public_url}{links.LINKS_PATH}/"
    assert url.startswith(prefix)
    claims = links.verify(
        url.removeprefix(prefix), links.LinkSecret(flow.service.engine), _time.time()
    )
    assert (claims.unit, claims.action, claims.case_id) == (FIRE, v.ACCEPTED, "GF-1")


def test_delivery_settings_come_from_the_environment_and_a_wrong_one_is_named():
    settings = Settings.from_environment(
        {
            "GRIDFLOW_DELIVERY_RETRY_SCHEDULE": "5,15",
            "GRIDFLOW_DELIVERY_BREAKER_FAILURES": "3",
            "GRIDFLOW_DELIVERY_BREAKER_COOL_DOWN_SECONDS": "12.5",
            "GRIDFLOW_DELIVERY_POLL_SECONDS": "30",
            "GRIDFLOW_PUBLIC_URL": "https://gridflow.example/",
        }
    )
    assert settings.schedule.delays == (5.0, 15.0)
    assert (settings.breaker_failures, settings.breaker_cool_down) == (3, 12.5)
    assert (settings.poll_seconds, settings.public_url) == (30.0, "https://gridflow.example")
    assert Settings.from_environment({}).schedule.tries == 11
    with pytest.raises(ValueError, match="GRIDFLOW_DELIVERY_POLL_SECONDS='often'"):
        Settings.from_environment({"GRIDFLOW_DELIVERY_POLL_SECONDS": "often"})
    with pytest.raises(ValueError, match="'ten'"):
        Settings.from_environment({"GRIDFLOW_DELIVERY_RETRY_SCHEDULE": "ten"})
