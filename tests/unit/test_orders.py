"""The command center's orders (指令), end to end on the embedded default: each kind's outcome
through ``POST /api/v1/cases/{id}/orders`` and the events routing, SLA and notify act on; each
refusal (the case's state, the caller's role and scope, the body); and two orders on one case at
once, on PostgreSQL, taken one after the other.

The in-memory bus is pumped by hand, so nothing waits on background threads.
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.db import make_engine, platform_metadata
from gridflow_common.domain import access as a
from gridflow_common.domain import vocabulary as v
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models, orders
from gridflow_intake.models import cases
from gridflow_notify import handlers as notify_handlers
from gridflow_sla.models import clocks
from tests.conftest import fresh_database, lucheng_files
from tests.unit.test_consumer_reliability import ManualClock
from tests.unit.test_intake_cases import _pump

CST = dt.timezone(dt.timedelta(hours=8))
MONDAY_0900 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)
# Qingyuan community, 五马街道: a junk pile there is the urban-management squad's (五马执法中队).
QINGYUAN = {"lat": 27.995, "lon": 120.556}
SQUAD = "urban_management-330302001"
COMMAND = "command-330302"
JUNK = {
    "channel": "wechat",
    "description": "青园社区门口空地上堆了很多装修垃圾和旧家具",
    "category": "event.junk_pile",
    "location": QINGYUAN,
}


class City:
    """The embedded Gridflow seen through its HTTP API, with a user of each role that matters
    to orders."""

    def __init__(self, gridflow):
        self.g = gridflow
        self.api = gridflow.api()
        self.tokens = {"admin": gridflow.admin_token}
        for who, role, scope in (
            ("command", a.COMMAND_CENTER, None),
            ("leader", a.LEADER, "urban_management-330302"),
            ("other_leader", a.LEADER, "police-330302"),
            ("department", a.DEPARTMENT, "urban_management"),
            ("grid_worker", a.GRID_WORKER, "330302001001001"),
        ):
            self.tokens[who] = self._user(who, role, scope)
        self.tokens["holder_key"] = self.call(
            "POST", "/api/v1/admin/keys", {"holder": "urban_management"}
        ).body["token"]
        self.clock(MONDAY_0900)

    def _user(self, who: str, role: str, scope: str | None) -> str:
        made = self.call(
            "POST",
            "/api/v1/admin/users",
            {"username": f"orders-{who.replace('_', '-')}", "role": role, "scope": scope},
        )
        assert made.status == 201, made.body
        _, token = self.g.identities().issue(
            "bearer", label=f"orders {who}", user_id=made.body["user"]["user_id"]
        )
        return token

    def call(self, method: str, path: str, body=None, who: str = "admin", raw: bytes | None = None):
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.api.handle(method, path, data, headers)

    def clock(self, instant: dt.datetime) -> None:
        answer = self.call("PUT", "/api/v1/admin/clock", {"now": instant.isoformat()})
        assert answer.status == 200, answer.body
        _pump(self.g)

    def report(self, **changes) -> str:
        answer = self.call("POST", "/api/v1/reports", {**JUNK, **changes})
        assert answer.status == 201, answer.body
        _pump(self.g)
        return answer.body["case_id"]

    def view(self, case_id: str) -> dict:
        answer = self.call("GET", f"/api/v1/cases/{case_id}")
        assert answer.status == 200, answer.body
        return answer.body

    def order(self, case_id: str, who: str = "command", **body):
        answer = self.call("POST", f"/api/v1/cases/{case_id}/orders", body, who=who)
        _pump(self.g)
        return answer

    def update(self, case_id: str, sender: str, status: str, **extra):
        """A holder's report with the holder's own credential (the command center's user for
        the command center)."""
        who = "command" if sender == COMMAND else f"key:{sender}"
        if who not in self.tokens:
            made = self.call("POST", "/api/v1/admin/keys", {"holder": sender})
            self.tokens[who] = made.body["token"]
        answer = self.call(
            "POST",
            f"/api/v1/cases/{case_id}/updates",
            {"from": sender, "status": status, **extra},
            who=who,
        )
        assert answer.status == 202, answer.body
        _pump(self.g)

    def case_row(self, case_id: str):
        with self.g.engine.connect() as conn:
            return conn.execute(sa.select(cases).where(cases.c.case_id == case_id)).first()

    def orders_in_timeline(self, case_id: str) -> list[dict]:
        return [e for e in self.view(case_id)["timeline"] if e["kind"] == v.ENTRY_ORDER]


@pytest.fixture
def city(gridflow) -> City:
    return City(gridflow)


def _at_command(city: City) -> str:
    """A junk pile its squad returned without naming a category: the command center holds it."""
    case_id = city.report()
    city.clock(MONDAY_0900 + dt.timedelta(minutes=20))
    city.update(case_id, SQUAD, v.RETURNED, note="场地属小区物业管理范围")
    view = city.view(case_id)
    assert (view["handler"], view["lead"], view["escalations"]) == (COMMAND, None, 0)
    return case_id


def _instant(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


# -- each order's outcome --------------------------------------------------------------------


def test_assign_after_a_return_gives_the_unit_the_case_with_a_new_clock_and_no_escalation(city):
    case_id = _at_command(city)
    city.clock(MONDAY_0900 + dt.timedelta(minutes=30))
    answer = city.order(
        case_id, kind="assign", unit=SQUAD, category="event.junk_pile", reason="属公共区域"
    )
    assert answer.status == 202, answer.body
    view = city.view(case_id)
    assert (view["status"], view["tier"], view["handler"], view["lead"]) == (
        v.DISPATCHED,
        v.STREET,
        SQUAD,
        "urban_management",
    )
    assert view["escalations"] == 0 and view["colour"] == v.GREEN
    # One working day from Monday 09:30.
    assert _instant(view["due"]) == dt.datetime(2026, 3, 3, 17, 30, tzinfo=CST)
    row = city.case_row(case_id)
    assert row.due_at == _instant(view["due"]) and row.colour == v.GREEN
    (entry,) = city.orders_in_timeline(case_id)
    assert entry["order"] == "assign" and entry["by"] == "user:orders-command"
    assert entry["reason"] == "属公共区域" and entry["unit"] == SQUAD


def test_the_command_center_returning_a_case_it_holds_waits_for_an_order(city):
    """A case at the top that nobody can take waits for an order: it no longer bounces."""
    case_id = _at_command(city)
    before = city.view(case_id)
    for status in (v.RETURNED, v.BEYOND_AUTHORITY):
        city.update(case_id, COMMAND, status, note="无法处置")
    view = city.view(case_id)
    assert (view["handler"], view["escalations"], view["tier"]) == (COMMAND, 0, v.DISTRICT)
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds.count(v.AWAITING_ORDER) == 2
    # No new assignment, so no new dispatch: the same clock runs.
    assert kinds.count(v.DISPATCHED) == [e["kind"] for e in before["timeline"]].count(v.DISPATCHED)
    assert view["due"] == before["due"]


def test_escalate_goes_one_tier_up_and_counts_and_is_refused_at_the_top(city):
    case_id = city.report()
    answer = city.order(case_id, kind="escalate", reason="久拖未决")
    assert answer.status == 202, answer.body
    view = city.view(case_id)
    assert (view["tier"], view["handler"], view["escalations"]) == (
        v.DISTRICT,
        "urban_management-330302",
        1,
    )
    assert city.order(case_id, kind="escalate").status == 202
    assert city.view(case_id)["handler"] == COMMAND
    refused = city.order(case_id, kind="escalate")
    assert refused.status == 409 and "kind" in refused.body["errors"], refused.body
    assert city.view(case_id)["escalations"] == 2


def test_hold_stops_the_clock_and_release_moves_the_due_later_by_the_working_time_on_hold(city):
    case_id = city.report()
    city.update(case_id, SQUAD, v.ACCEPTED)
    due = _instant(city.view(case_id)["due"])
    assert due == dt.datetime(2026, 3, 3, 17, 30, tzinfo=CST)  # the next working day's close
    city.clock(MONDAY_0900 + dt.timedelta(hours=1))
    held = city.order(case_id, kind="hold", reason="涉及产权争议")
    assert held.status == 202, held.body
    assert (held.body["status"], held.body["colour"], held.body["due"]) == (v.ON_HOLD, None, None)
    row = city.case_row(case_id)
    assert (row.due_at, row.colour) == (None, None)
    with city.g.engine.connect() as conn:
        clock = conn.execute(sa.select(clocks).where(clocks.c.active)).one()
    assert clock.running_since is None and clock.next_transition_at is None
    # Released on Wednesday 09:00: on hold from Monday 10:00, 5 h 30 of Monday's working day
    # (08:30-12:00, 14:00-17:30), 7 h of Tuesday's and 30 minutes of Wednesday's move the due
    # 13 working hours later: from Tuesday 17:30 to Thursday 16:30.
    city.clock(dt.datetime(2026, 3, 4, 9, 0, tzinfo=CST))
    released = city.order(case_id, kind="release", reason="产权已明确")
    assert released.status == 202, released.body
    view = city.view(case_id)
    assert view["status"] == v.ACCEPTED  # the status it had
    assert view["colour"] == v.GREEN
    assert _instant(view["due"]) == dt.datetime(2026, 3, 5, 16, 30, tzinfo=CST)
    assert city.case_row(case_id).due_at == _instant(view["due"])
    with city.g.engine.connect() as conn:
        clock = conn.execute(sa.select(clocks).where(clocks.c.active)).one()
    assert clock.running_since is not None and clock.due == _instant(view["due"])
    # Nothing turned while on hold, and the clock turns again once released.
    city.clock(dt.datetime(2026, 3, 5, 17, 0, tzinfo=CST))
    assert city.view(case_id)["colour"] in (v.ORANGE, v.RED)


def test_reject_finishes_the_case_with_no_clock(city):
    case_id = city.report(description="他欠我两万块钱不还", category="event.neighbour_dispute")
    answer = city.order(case_id, kind="reject", reason="债务纠纷属民事诉讼范围")
    assert answer.status == 202, answer.body
    view = city.view(case_id)
    assert (view["status"], view["colour"], view["due"]) == (v.REJECTED, None, None)
    assert view["closed_at"] is not None
    with city.g.engine.connect() as conn:
        assert not conn.execute(sa.select(clocks).where(clocks.c.active)).all()
    # A finished case takes no further order but a comment.
    assert city.order(case_id, kind="hold", reason="x").status == 409
    assert city.order(case_id, kind="comment", reason="处理得当").status == 202
    assert city.view(case_id)["comments"] == 1


def test_the_reporter_is_told_of_a_refusal_to_register_and_why(city):
    answer = city.call(
        "POST",
        "/api/v1/reports",
        {**JUNK, "description": "他欠我两万块钱不还", "category": "event.neighbour_dispute"},
    )
    assert answer.status == 201, answer.body
    _pump(city.g)
    token = answer.body["progress_url"].rstrip("/").rpartition("/")[2]
    case_id = answer.body["case_id"]
    assert city.order(case_id, kind="supervise").status == 202
    assert city.order(case_id, kind="reject", reason="债务纠纷属民事诉讼范围").status == 202
    progress = city.api.handle("GET", f"/api/v1/progress/{token}")
    assert progress.status == 200, progress.body
    assert progress.body["status"] == v.REJECTED
    kinds = [m["kind"] for m in progress.body["milestones"]]
    assert kinds[-1] == "rejected" and "supervise" not in kinds
    assert progress.body["milestones"][-1]["name"] == "不予立案：债务纠纷属民事诉讼范围"


def test_reopen_sends_a_closed_case_back_to_its_last_holder_as_rework(city):
    case_id = city.report()
    city.update(case_id, SQUAD, v.RESOLVED, note="已清运")
    assert (
        city.call("POST", f"/api/v1/cases/{case_id}/verification", {"passed": True}).status == 200
    )
    _pump(city.g)
    assert city.view(case_id)["status"] == v.CLOSED
    answer = city.order(case_id, kind="reopen", reason="群众反映又有堆放")
    assert answer.status == 202, answer.body
    view = city.view(case_id)
    assert (view["status"], view["handler"], view["closed_at"]) == (v.DISPATCHED, SQUAD, None)
    assert view["colour"] == v.GREEN and view["due"] is not None
    routed = [e for e in view["timeline"] if e["kind"] == v.ENTRY_ROUTED]
    assert routed[-1]["reason"] == v.REASON_REWORK
    again = city.order(case_id, kind="reopen")
    assert again.status == 409 and "only a closed case" in again.body["errors"]["kind"][0]


def test_merge_joins_one_case_to_another_and_refuses_itself_and_a_closed_one(city):
    first = city.report()
    second = city.report(location={"lat": 27.996, "lon": 120.556})  # 110 m away: its own case
    assert first != second
    assert city.order(second, kind="merge", into=second).status == 409
    missing = city.order(second, kind="merge", into="GF-20260302-NOSUCHCASE")
    assert missing.status == 404
    answer = city.order(second, kind="merge", into=first, reason="同一堆放点")
    assert answer.status == 202, answer.body
    assert city.view(second)["status"] == v.CLOSED
    target = city.view(first)
    assert target["reporters"] == 2 and target["status"] == v.DISPATCHED
    assert [e for e in target["timeline"] if e["kind"] == v.ENTRY_MERGED_FROM]
    third = city.report(location={"lat": 27.997, "lon": 120.556})
    into_closed = city.order(third, kind="merge", into=second)
    assert into_closed.status == 409 and "into" in into_closed.body["errors"]


def test_supervise_reminds_the_holder_and_its_leader_and_changes_nothing_else(city):
    case_id = city.report()
    before = city.view(case_id)
    answer = city.order(case_id, kind="supervise", reason="请今日办结")
    assert answer.status == 202, answer.body
    with city.g.runtimes[c.NOTIFY].work() as work:
        notices = [
            n
            for n in notify_handlers.notifications_for(work, case_id)
            if n["reason"] == v.ORDER_SUPERVISE
        ]
    roles = sorted(n["role"] for n in notices)
    assert roles == [v.ROLE_LEADER, v.ROLE_STATION_DUTY], notices
    assert all("督办" in n["text"] and "请今日办结" in n["text"] for n in notices)
    after = city.view(case_id)
    for name in ("status", "handler", "due", "colour", "escalations"):
        assert after[name] == before[name], name


def test_a_leader_comments_and_the_view_counts_comments(city):
    case_id = city.report()
    assert city.view(case_id)["comments"] == 0
    answer = city.order(case_id, kind="comment", reason="处置进度偏慢", who="leader")
    assert answer.status == 202, answer.body
    assert city.order(case_id, kind="comment", reason="请加快", who="command").status == 202
    view = city.view(case_id)
    assert view["comments"] == 2
    assert [e["by"] for e in city.orders_in_timeline(case_id)] == [
        "user:orders-leader",
        "user:orders-command",
    ]
    assert view["pending"] is None and view["extensions"] == 0


def test_an_extension_request_shows_as_pending(city):
    case_id = city.report()
    city.update(case_id, SQUAD, v.EXTENSION_REQUESTED, due="2026-03-06T17:30:00+08:00")
    assert city.view(case_id)["pending"] == "extension"


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "order", "why"),
    [
        ("closed", {"kind": "hold", "reason": "x"}, "cannot be given hold"),
        ("open", {"kind": "reopen"}, "only a closed case"),
        ("open", {"kind": "release"}, "only a case on the long-term list"),
        ("closed", {"kind": "assign", "unit": SQUAD}, "cannot be given assign"),
        ("closed", {"kind": "supervise"}, "only a case a unit holds"),
    ],
)
def test_an_order_illegal_in_the_cases_state_is_a_409_that_changes_nothing(city, setup, order, why):
    case_id = city.report()
    if setup == "closed":
        city.update(case_id, SQUAD, v.RESOLVED)
        city.call("POST", f"/api/v1/cases/{case_id}/verification", {"passed": True})
        _pump(city.g)
    before = city.view(case_id)
    answer = city.order(case_id, **order)
    assert answer.status == 409, answer.body
    assert why in answer.body["errors"]["kind"][0]
    assert city.view(case_id) == before
    assert city.g.runtimes[c.INTAKE].pending_outbox() == 0


def test_a_second_hold_is_refused_and_a_release_of_a_case_not_held_too(city):
    case_id = city.report()
    assert city.order(case_id, kind="hold", reason="x").status == 202
    assert city.order(case_id, kind="hold", reason="x").status == 409
    assert city.order(case_id, kind="release").status == 202
    assert city.order(case_id, kind="release").status == 409


@pytest.mark.parametrize(
    ("who", "kind", "status"),
    [
        ("leader", "hold", 403),  # a leader comments, and only that
        ("department", "comment", 403),
        ("grid_worker", "supervise", 403),
        ("holder_key", "supervise", 403),  # not a signed-in user
        ("other_leader", "comment", 404),  # a case of another department: no case at all
    ],
)
def test_orders_are_the_command_centers_and_a_leader_only_comments(city, who, kind, status):
    case_id = city.report()
    before = city.view(case_id)
    body = {"kind": kind, "reason": "看看"}
    answer = city.order(case_id, who=who, **body)
    assert answer.status == status, answer.body
    if status == 404:
        none = city.order("GF-20260302-NOSUCHCASE", who=who, **body)
        assert (none.status, none.body) == (
            404,
            {"errors": {"case_id": ["no case 'GF-20260302-NOSUCHCASE'"]}},
        )
        assert answer.body == {"errors": {"case_id": [f"no case {case_id!r}"]}}
    assert city.view(case_id) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "tidy_up"}, "kind"),
        ({}, "kind"),
        ({"kind": "hold"}, "reason"),
        ({"kind": "reject", "reason": "   "}, "reason"),
        ({"kind": "hold", "reason": "长" * 501}, "reason"),
        ({"kind": "assign"}, "unit"),
        ({"kind": "hold", "reason": "x", "unit": SQUAD}, "unit"),
        ({"kind": "merge"}, "into"),
        ({"kind": "comment", "reason": "ok", "colour": "red"}, "colour"),
        ({"kind": "hold", "reason": 12345678901234567890123456789}, "reason"),
        ({"kind": ["hold"], "reason": "x"}, "kind"),
        ({"kind": {"a": {"b": {"c": {}}}}, "reason": "x"}, "kind"),
    ],
)
def test_a_body_wrong_whatever_the_case_is_a_400_naming_the_field(city, body, field):
    case_id = city.report()
    before = city.view(case_id)
    answer = city.order(case_id, **body)
    assert answer.status == 400, answer.body
    assert field in answer.body["errors"], answer.body
    assert city.view(case_id) == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": "hold", "reason": "a\\u0000b"}',
        b"[" * 5000 + b"]" * 5000,
        b"\xff\xfe not json",
        b'{"kind": "hold", "reason": 1e999999}',
    ],
)
def test_hostile_bodies_are_refused_with_a_400_and_change_nothing(city, raw):
    case_id = city.report()
    before = city.view(case_id)
    answer = city.call("POST", f"/api/v1/cases/{case_id}/orders", raw=raw, who="command")
    assert answer.status == 400, (answer.status, answer.body)
    assert answer.body["errors"]
    assert city.view(case_id) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "assign", "unit": "nobody-1"}, "unit"),
        ({"kind": "assign", "unit": SQUAD, "category": "event.nothing"}, "category"),
    ],
)
def test_a_unit_or_category_the_city_lacks_is_a_422_naming_it(city, body, field):
    case_id = _at_command(city)
    answer = city.order(case_id, **body)
    assert answer.status == 422 and field in answer.body["errors"], answer.body
    assert city.view(case_id)["handler"] == COMMAND


# -- two orders on one case at once -----------------------------------------------------------------


@pytest.fixture
def intake_on_postgresql(database_server_url):
    """Intake's service layer on a PostgreSQL database of its own, with no process-wide lock:
    only the database orders two units of work on one case."""
    with fresh_database(database_server_url) as url:
        engine = make_engine(url)
        platform_metadata.create_all(engine)
        h.DEFINITION.metadata.create_all(engine)
        store = JurisdictionStore(engine)
        version = store.install(lucheng_files())
        runtime = ServiceRuntime(
            c.INTAKE, engine, ManualClock(MONDAY_0900), store, h.DEFINITION.tables()
        )
        yield runtime, version
        engine.dispose()


def test_ten_holds_at_once_give_one_202_and_nine_409s(intake_on_postgresql):
    runtime, version = intake_on_postgresql
    with runtime.work() as work:
        work.db.execute(
            sa.insert(models.cases),
            dict(
                case_id="GF-20260302-PARALLEL",
                status=v.DISPATCHED,
                category="event.junk_pile",
                description="x",
                area_code="330302001001001",
                assisting=[],
                holder=SQUAD,
                lead="urban_management",
                assignment_id="GF-20260302-PARALLEL-1",
                assignment_seq=1,
                escalations=0,
                reporters=1,
                jurisdiction_version=version,
                registered_at=MONDAY_0900,
                due_at=MONDAY_0900 + dt.timedelta(days=1),
                colour=v.GREEN,
            ),
        )
    outcomes = orders_at_once(
        runtime,
        "GF-20260302-PARALLEL",
        {"kind": "hold", "reason": "并发", "unit": None, "category": None},
    )
    assert sorted(outcomes) == [202] + [409] * 9, outcomes
    with runtime.work() as work:
        row = work.db.execute(sa.select(models.cases)).one()
        entries = work.db.execute(
            sa.select(sa.func.count()).select_from(models.timeline)
        ).scalar_one()
    assert (row.status, row.held_from, row.due_at) == (v.ON_HOLD, v.DISPATCHED, None)
    assert entries == 1
    assert runtime.pending_outbox() == 1


def orders_at_once(runtime, case_id: str, order: dict, n: int = 10) -> list[object]:
    """``n`` threads give the same order on one case at the same instant: the status each got
    (202, or the refusal's)."""
    start = threading.Barrier(n)
    outcomes: list[object] = []

    def give() -> None:
        start.wait()
        try:
            with runtime.work() as work:
                orders.give_order(work, case_id, dict(order), by="user:racer")
            outcomes.append(202)
        except h.Rejected as exc:
            outcomes.append(exc.status)

    threads = [threading.Thread(target=give) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes
