"""The SLA sweep at scale, on SQLite through the real runtime (no broker): a jump over several
thresholds announces each colour once and in order, a sweep over many due clocks commits in
bounded batches, a sweep with nothing due writes nothing, and the open-clock count is not
taken on every tick."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gridflow_common import contracts as c
from gridflow_common import metrics
from gridflow_common.domain import vocabulary as v
from tests.unit.service_harness import CST, ServiceUnderTest, new_case_id

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
HOLDER = "urban_management-330302001"
WUMA_GRID = "330302001001001"


@pytest.fixture
def sla(tmp_path):
    from gridflow_sla.handlers import DEFINITION

    service = ServiceUnderTest(DEFINITION, tmp_path, T0)
    yield service
    service.close()


def _dispatch(service, case_id: str, at: dt.datetime = T0) -> str:
    return service.deliver(
        c.DEPARTMENTS,
        c.CASE_DISPATCHED,
        {
            "case_id": case_id,
            "assignment_id": f"{case_id}-1",
            "reason": v.REASON_NEW,
            "category": "component.streetlight",
            "tier": v.STREET,
            "holder": HOLDER,
            "lead": None,
            "assisting": [],
            "escalations": 0,
            "area_code": WUMA_GRID,
            "description": "路灯不亮",
            "location": None,
            "queue": c.department_queue(HOLDER),
        },
        at=at,
    )


def _colours_by_clock(sla) -> dict[str, list[tuple[str, str]]]:
    """(colour, occurred_at) of each colour event since the last call, per assignment, in the
    order written."""
    seen: dict[str, list[tuple[str, str]]] = {}
    for key, body in sla.outbox():
        if key == c.CASE_COLOUR_CHANGED:
            p = body["payload"]
            seen.setdefault(p["assignment_id"], []).append((p["colour"], body["occurred_at"]))
    return seen


def _advance(sla, to: dt.datetime) -> str:
    sla.clock.set(to)
    return sla.deliver(c.INTAKE, c.CLOCK_ADVANCED, {"now": to.isoformat()}, at=to)


def test_a_jump_over_every_threshold_announces_yellow_orange_red_once_each_in_order(sla):
    from gridflow_sla.handlers import periodic

    cases = [new_case_id() for _ in range(5)]
    for case_id in cases:
        assert _dispatch(sla, case_id) == "done"
    sla.outbox()
    # A month later: every clock is far past its red.
    later = T0 + dt.timedelta(days=30)
    assert _advance(sla, later) == "done"
    seen = _colours_by_clock(sla)
    assert set(seen) == {f"{case_id}-1" for case_id in cases}
    for entered in seen.values():
        assert [colour for colour, _ in entered] == [v.YELLOW, v.ORANGE, v.RED]
        instants = [dt.datetime.fromisoformat(at) for _, at in entered]
        assert instants == sorted(instants) and len(set(instants)) == 3
        assert instants[-1] <= later
    # The same instant again (another event), the tick's sweep, a later jump: nothing more.
    assert _advance(sla, later) == "done"
    assert periodic(sla.runtime) == 0
    assert _advance(sla, later + dt.timedelta(days=30)) == "done"
    assert _colours_by_clock(sla) == {}


def test_a_redelivered_clock_advanced_announces_nothing_twice(sla):
    from gridflow_common.runtime import ServiceRuntime  # noqa: F401 (the runtime under test)

    case_id = new_case_id()
    _dispatch(sla, case_id)
    sla.outbox()
    later = T0 + dt.timedelta(days=30)
    sla.clock.set(later)
    event = c.make_event(c.INTAKE, c.CLOCK_ADVANCED, later, {"now": later.isoformat()})
    message = event.to_message()
    from gridflow_sla.handlers import DEFINITION

    for _ in range(2):
        sla.runtime.consume(
            "on_clock_advanced", dict(message), DEFINITION.handlers["on_clock_advanced"]
        )
    assert [colour for colour, _ in _colours_by_clock(sla)[f"{case_id}-1"]] == [
        v.YELLOW,
        v.ORANGE,
        v.RED,
    ]


def test_many_due_clocks_are_walked_in_bounded_transactions(sla, monkeypatch):
    from gridflow_sla import handlers

    monkeypatch.setattr(handlers, "SWEEP_BATCH", 4)
    cases = [new_case_id() for _ in range(10)]
    for case_id in cases:
        _dispatch(sla, case_id)
    sla.outbox()
    commits: list[int] = []
    sla.runtime.on_commit(lambda rows: commits.append(len(rows)))
    later = T0 + dt.timedelta(days=30)
    # The message walks one batch; the sweep, on the city's time that has already moved, the
    # rest, each batch in a transaction of its own.
    assert _advance(sla, later) == "done"
    assert commits == [4 * 3]
    assert handlers.sweep_due(sla.runtime) == 6
    assert commits == [12, 12, 6]
    seen = _colours_by_clock(sla)
    assert len(seen) == 10
    assert all([col for col, _ in e] == [v.YELLOW, v.ORANGE, v.RED] for e in seen.values())
    assert handlers.sweep_due(sla.runtime) == 0


def test_with_nothing_due_the_sweep_touches_nothing(sla):
    from gridflow_sla.handlers import sweep_due
    from gridflow_sla.models import clocks

    for _ in range(3):
        _dispatch(sla, new_case_id())
    sla.outbox()
    before = sla.rows(clocks)
    assert sweep_due(sla.runtime) == 0
    assert sla.rows(clocks) == before
    assert sla.outbox() == []


def _gauge() -> dict[str, float]:
    return {s.labels["colour"]: s.value for m in metrics.OPEN_CLOCKS.collect() for s in m.samples}


def test_the_open_clock_count_is_taken_now_and_then_not_on_every_tick(sla, monkeypatch):
    from gridflow_sla import handlers

    metrics.OPEN_CLOCKS.clear()
    _dispatch(sla, new_case_id())
    handlers.periodic(sla.runtime)
    assert _gauge()[v.GREEN] == 1
    _dispatch(sla, new_case_id())
    handlers.periodic(sla.runtime)  # within the interval: the gauge is not counted again
    assert _gauge()[v.GREEN] == 1
    monkeypatch.setattr(handlers, "OPEN_CLOCKS_EVERY_SECONDS", 0.0)
    handlers.periodic(sla.runtime)
    assert _gauge()[v.GREEN] == 2


def test_emit_many_writes_each_event_in_order_under_the_id_of_its_own_row(sla):
    committed: list = []
    sla.runtime.on_commit(committed.extend)
    with sla.runtime.work(now=T0) as work:
        work.emit_many(
            [
                (c.CLOCK_ADVANCED, {"now": (T0 + dt.timedelta(hours=i)).isoformat()}, None)
                for i in range(5)
            ]
        )
    written = {r["id"]: r["body"] for r in sla.rows(sla.runtime.tables["outbox"])}
    assert [row.body for row in committed] == [written[row.id] for row in committed]
    nows = [dt.datetime.fromisoformat(json.loads(row.body)["payload"]["now"]) for row in committed]
    assert nows == [T0 + dt.timedelta(hours=i) for i in range(5)]
    assert [row.id for row in committed] == sorted(row.id for row in committed)
