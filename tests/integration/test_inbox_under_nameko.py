"""A unit's inbox long-polled from the intake service under nameko, on the real PostgreSQL and
RabbitMQ: the waiting requests are green (eventlet), hold no database connection while they
wait, leave the service answering other requests meanwhile, and answer as soon as the
departments service's case_dispatched reaches intake.

Run under `nameko test` (eventlet monkey-patched): the pollers below are green threads.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from gridflow_common import contracts as c
from gridflow_common.domain.access import HOLDER_KEY
from gridflow_common.nameko_support import Runtime
from tests.integration.support import jurisdiction_version, publish

pytestmark = pytest.mark.integration
STATION = "environment-330302104"
HEALTH = "health-330302"


def _token(engine, holder: str) -> dict[str, str]:
    from gridflow_intake.identity import IdentityStore

    _, token = IdentityStore(engine).issue(HOLDER_KEY, label=f"it {holder}", holder=holder)
    return {"Authorization": f"Bearer {token}"}


def _runtime_of(container):
    [provider] = [d for d in container.extensions if isinstance(d, Runtime)]
    return provider.runtime


def test_inbox_long_polls_wait_green_while_the_service_answers_and_end_when_a_case_arrives(
    container_factory, config, engine, broker, admin_headers
):
    from gridflow_intake.service import IntakeService

    container = container_factory(IntakeService, config)
    container.start()
    base = f"http://{config['WEB_SERVER_ADDRESS']}"
    station, health = _token(engine, STATION), _token(engine, HEALTH)

    # A case intake has registered (routing is not running: nobody holds it yet).
    answer = httpx.post(
        f"{base}/api/v1/reports",
        json={
            "channel": "hotline",
            "external_id": f"inbox-{uuid.uuid4().hex[:8]}",
            "description": "一户民房内存放大量医疗废弃物",
            "category": "event.medical_waste",
            "location": {"lat": 28.05, "lon": 120.635},
        },
        headers=admin_headers,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    case_id = answer.json()["case_id"]
    after = {
        code: httpx.get(f"{base}/api/v1/units/{code}/inbox", headers=headers, timeout=10).json()[
            "next"
        ]
        for code, headers in ((STATION, station), (HEALTH, health))
    }

    got: dict[str, tuple[float, httpx.Response]] = {}

    def poll(code: str, headers: dict[str, str]) -> None:
        started = time.monotonic()
        response = httpx.get(
            f"{base}/api/v1/units/{code}/inbox",
            params={"after": after[code], "wait": 20},
            headers=headers,
            timeout=40,
        )
        got[code] = (time.monotonic() - started, response)

    pollers = [
        threading.Thread(target=poll, args=(STATION, station)),
        threading.Thread(target=poll, args=(HEALTH, health)),
    ]
    for poller in pollers:
        poller.start()

    # Meanwhile: nothing has been dispatched, so both polls are out; the service answers others
    # at once, and the waiting polls hold none of its database connections.
    runtime = _runtime_of(container)
    checked_out = []
    for _ in range(10):
        started = time.monotonic()
        me = httpx.get(f"{base}/api/v1/me", headers=station, timeout=10)
        assert me.status_code == 200, me.text
        assert time.monotonic() - started < 1.0
        checked_out.append(runtime.engine.pool.checkedout())
        time.sleep(0.1)  # bounded: ten samples over about a second
    assert all(p.is_alive() for p in pollers), got
    assert min(checked_out) == 0, checked_out

    # The departments service announces the dispatch with its deliveries.
    assignment_id = f"{case_id}-1"
    publish(
        broker,
        c.DEPARTMENTS,
        c.CASE_DISPATCHED,
        {
            "case_id": case_id,
            "assignment_id": assignment_id,
            "seq": 1,
            "reason": "new",
            "category": "event.medical_waste",
            "tier": "street",
            "holder": STATION,
            "lead": "environment",
            "assisting": ["health"],
            "escalations": 0,
            "area_code": "330302104001001",
            "jurisdiction_version": jurisdiction_version(engine),
            "queue": c.department_queue("environment"),
            "deliveries": [
                {
                    "unit": STATION,
                    "department": "environment",
                    "role": "lead",
                    "adapter": "inbox",
                    "delivery_id": f"{assignment_id}/{STATION}",
                },
                {
                    "unit": HEALTH,
                    "department": "health",
                    "role": "assisting",
                    "adapter": "inbox",
                    "delivery_id": f"{assignment_id}/{HEALTH}",
                },
            ],
            "due_at": "2026-03-03T17:30:00+08:00",
        },
    )
    for poller in pollers:
        poller.join(timeout=30)
    assert not any(p.is_alive() for p in pollers)
    for code, role in ((STATION, "lead"), (HEALTH, "assisting")):
        seconds, response = got[code]
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [(i["case_id"], i["role"]) for i in items] == [(case_id, role)]
        assert items[0]["category_name"] == "医疗废弃物违规堆放"
        # They ended when the case arrived, not when their 20 s ran out.
        assert seconds < 15, seconds


# -- cursors in commit order ---------------------------------------------------------------------

PARALLEL = 8
PER_THREAD = 6


def test_a_reader_following_the_cursor_misses_nothing_committed_concurrently(database_url, engine):
    """Eight green threads, each its own connection, project dispatches at once while a reader
    follows the inbox by cursor: every delivery is read exactly once. (Cursors handed out
    without the lock would clash, or, from a sequence, be committed out of order and skipped.)"""
    import datetime as dt
    import json

    import sqlalchemy as sa

    from gridflow_common.clock import RealClock
    from gridflow_common.jurisdictions import JurisdictionStore
    from gridflow_common.runtime import ServiceRuntime
    from gridflow_intake import handlers as h
    from gridflow_intake import models

    pool = sa.create_engine(database_url, pool_size=PARALLEL + 2, max_overflow=PARALLEL)
    runtime = ServiceRuntime(
        c.INTAKE, pool, RealClock(), JurisdictionStore(pool), h.DEFINITION.tables()
    )
    version = jurisdiction_version(engine)
    unit = f"office-it-{uuid.uuid4().hex[:6]}"  # a code of the test's own: only its rows
    now = dt.datetime.now(dt.timezone.utc)
    case_ids = [f"IT-{uuid.uuid4().hex[:10]}" for _ in range(PARALLEL * PER_THREAD)]
    with pool.begin() as conn:
        conn.execute(
            sa.insert(models.cases),
            [
                dict(
                    case_id=case_id,
                    status="registered",
                    category="event.junk_pile",
                    description="堆物",
                    area_code="330302104001001",
                    assisting=[],
                    escalations=0,
                    reporters=1,
                    jurisdiction_version=version,
                    registered_at=now,
                )
                for case_id in case_ids
            ],
        )

    def dispatched(case_id: str) -> dict:
        aid = f"{case_id}-1"
        payload = {
            "case_id": case_id,
            "assignment_id": aid,
            "seq": 1,
            "reason": "new",
            "category": "event.junk_pile",
            "tier": "community",
            "holder": unit,
            "lead": None,
            "assisting": [],
            "escalations": 0,
            "area_code": "330302104001001",
            "jurisdiction_version": version,
            "queue": c.department_queue(unit),
            "deliveries": [
                {"unit": unit, "role": "lead", "adapter": "inbox", "delivery_id": f"{aid}/{unit}"}
            ],
        }
        event = c.make_event(c.DEPARTMENTS, c.CASE_DISPATCHED, now, payload)
        return json.loads(json.dumps(event.to_message()))

    outcomes: list[str] = []
    handler = h.HANDLERS["on_case_dispatched"]

    def project(chunk: list[str]) -> None:
        for case_id in chunk:
            outcomes.append(runtime.consume("on_case_dispatched", dispatched(case_id), handler))

    threads = [
        threading.Thread(target=project, args=(case_ids[i::PARALLEL],)) for i in range(PARALLEL)
    ]
    for thread in threads:
        thread.start()
    seen: list[str] = []
    after = 0
    deadline = time.monotonic() + 60
    while len(seen) < len(case_ids) and time.monotonic() < deadline:
        with runtime.work() as work:
            page = h.inbox_page(
                work, unit, whole_department=False, after=after, limit=7, open_only=False
            )
        seen.extend(item["case_id"] for item in page["items"])
        after = page["next"]
        time.sleep(0.01)  # bounded by the deadline above; lets the writers run between reads
    for thread in threads:
        thread.join(timeout=60)
    pool.dispose()
    assert outcomes == ["done"] * len(case_ids)
    assert sorted(seen) == sorted(case_ids)
    assert len(seen) == len(set(seen))
