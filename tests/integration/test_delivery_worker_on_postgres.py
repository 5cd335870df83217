"""The delivery worker on PostgreSQL: replicas share the work without ever pushing one unit's
deliveries twice or out of order (row locks, SKIP LOCKED, leases), and the departments service
pushes from its tick under nameko, its state surviving a restart of the service."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from nameko.testing.services import entrypoint_waiter

from gridflow_common import contracts as c
from gridflow_common.clock import make_clock
from gridflow_common.db import make_engine
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.delivery import RetrySchedule
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_departments.handlers import DEFINITION
from gridflow_departments.models import deliveries
from gridflow_departments.worker import RETRY_SCHEDULE_ENV, DeliveryWorker, Settings
from tests.conftest import lucheng_files
from tests.integration.support import CST, publish
from tests.unit.scripted_department import NAME, installed

pytestmark = pytest.mark.integration

FIRE = "fire-330302"
HOUSING = "housing-330302"


@pytest.fixture
def scripted_city(engine, monkeypatch):
    """Lucheng with the fire and housing bureaus on the scripted adapter, for this test only."""
    system = installed(monkeypatch)
    store = JurisdictionStore(engine)
    version = store.install(
        {**lucheng_files(), "adapters.csv": f"code,adapter\nfire,{NAME}\nhousing,{NAME}\n"}
    )
    yield system, version
    store.install(lucheng_files())
    # What this test left waiting is nobody else's to push.
    with engine.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.adapter == NAME, deliveries.c.state == "pending")
            .values(state="withdrawn")
        )


def gas_leak(case_id: str, version: int) -> dict:
    return {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "reason": v.REASON_NEW,
        "category": "event.gas_leak",
        "tier": v.DISTRICT,
        "holder": FIRE,
        "lead": "fire",
        "assisting": ["emergency", "housing"],
        "escalations": 0,
        "area_code": "330302001001001",
        "description": "闻到煤气味",
        "location": None,
        "jurisdiction_version": version,
    }


def replica(database_url: str) -> ServiceRuntime:
    engine = make_engine(database_url, pool_size=4)
    return ServiceRuntime(
        DEFINITION.name,
        engine,
        make_clock(engine, "real"),
        JurisdictionStore(engine),
        DEFINITION.tables(),
    )


def ours(system, unit: str, cases: list[str]) -> list[str]:
    return [d for d in system.received(unit) if d.split("-1/")[0] in cases]


def test_two_replicas_push_each_delivery_once_and_each_unit_in_order(scripted_city, database_url):
    system, version = scripted_city
    first, second = replica(database_url), replica(database_url)
    cases = [f"RP-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    for case_id in cases:
        event = c.make_event(
            c.ROUTING, c.CASE_ROUTED, dt.datetime.now(CST), gas_leak(case_id, version)
        )
        outcome = first.consume(
            "on_case_routed", event.to_message(), DEFINITION.handlers["on_case_routed"]
        )
        assert outcome == "done"
    settings = Settings(schedule=RetrySchedule((0.1,) * 5), concurrency=4, poll_seconds=3600)
    workers = [DeliveryWorker(rt, settings, loader=system.loader()) for rt in (first, second)]
    want = {
        FIRE: [f"{c_}-1/{FIRE}/lead" for c_ in cases],
        HOUSING: [f"{c_}-1/{HOUSING}/assisting" for c_ in cases],
    }

    def drive(worker: DeliveryWorker, stop: threading.Event) -> None:
        while not stop.is_set():
            worker.run_pass()
            worker.wait(timeout=10)

    stop = threading.Event()
    threads = [threading.Thread(target=drive, args=(w, stop)) for w in workers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        len(ours(system, unit, cases)) < len(ids) for unit, ids in want.items()
    ):
        time.sleep(0.05)  # bounded poll: both replicas push
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    for worker in workers:
        worker.close()
    for rt in (first, second):
        rt.engine.dispose()
    # Exactly once each (no unit pushed by both replicas at once), in the order given.
    assert {unit: ours(system, unit, cases) for unit in want} == want


def test_the_service_pushes_from_its_tick_and_a_restart_keeps_the_backlog_in_order(
    scripted_city, container_factory, config, broker, engine, monkeypatch
):
    from gridflow_departments.service import DepartmentsService

    system, version = scripted_city
    monkeypatch.setenv(RETRY_SCHEDULE_ENV, "0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5")
    system.down.add(FIRE)
    container = container_factory(DepartmentsService, config)
    container.start()
    cases = [f"SV-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for case_id in cases:  # one after another: the order the units must get them in
        with entrypoint_waiter(container, "on_case_routed"):
            publish(broker, c.ROUTING, c.CASE_ROUTED, gas_leak(case_id, version))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(ours(system, HOUSING, cases)) < 3:
        time.sleep(0.05)  # bounded poll: the tick pushes once a second
    # Housing was served while the fire bureau was down; the fire bureau's head was tried.
    assert ours(system, HOUSING, cases) == [f"{c_}-1/{HOUSING}/assisting" for c_ in cases]
    assert ours(system, FIRE, cases) == []
    with engine.connect() as conn:
        tried = conn.execute(
            sa.select(deliveries.c.attempts).where(
                deliveries.c.delivery_id == f"{cases[0]}-1/{FIRE}/lead"
            )
        ).scalar_one()
    assert tried >= 1
    container.stop()

    system.down.clear()
    restarted = container_factory(DepartmentsService, config)
    restarted.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(ours(system, FIRE, cases)) < 3:
        time.sleep(0.05)  # bounded poll: the restarted service goes on
    assert ours(system, FIRE, cases) == [f"{c_}-1/{FIRE}/lead" for c_ in cases]
    restarted.stop()
