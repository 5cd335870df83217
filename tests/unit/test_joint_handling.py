"""Joint handling (协同): a gas leak led by the fire brigade with the emergency and housing
bureaus assisting. Assisting departments add notes the lead and the timeline show; only the
lead resolves; the holder asks for more time (申请延期), which waits for the command center.

Through the embedded default's HTTP API (IntakeApi on SQLite, every request with a real
credential), the in-memory bus pumped by hand so routing and the SLA clock hear every update.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import lifecycle as lc
from gridflow_common.domain import vocabulary as v
from gridflow_routing import handlers as routing
from gridflow_sla.models import clocks
from tests.credentials import SignedApi, bearer
from tests.http_samples import report

LEAD_UNIT = "fire-330302"
LEAD = "fire"
ASSISTING = ("emergency", "housing")


@pytest.fixture
def api(gridflow):
    return SignedApi(gridflow)


def _post(api, path: str, body: dict, headers: dict | None = None):
    return api.handle("POST", path, json.dumps(body, ensure_ascii=False).encode(), headers)


def _update(api, case_id: str, headers: dict | None = None, **body):
    return _post(api, f"/api/v1/cases/{case_id}/updates", body, headers)


def _view(api, case_id: str) -> dict:
    answer = api.handle("GET", f"/api/v1/cases/{case_id}")
    assert answer.status == 200, answer.body
    return answer.body


@pytest.fixture
def gas_leak(gridflow, api) -> str:
    """A gas leak in Tengqiao, dispatched: the fire brigade's bureau holds it, fire leads,
    emergency and housing assist."""
    answer = _post(
        api, "/api/v1/reports", report(category="event.gas_leak", description="楼道里闻到煤气味")
    )
    assert answer.status == 201, answer.body
    gridflow.drain()
    view = _view(api, answer.body["case_id"])
    assert (view["handler"], view["lead"], tuple(view["assisting"])) == (LEAD_UNIT, LEAD, ASSISTING)
    return answer.body["case_id"]


def _last_entry(view: dict) -> dict:
    return view["timeline"][-1]


# -- the rules, framework-free ------------------------------------------------------------------


@pytest.mark.parametrize("status", lc.OPEN_STATUSES + (v.ON_HOLD,))
@pytest.mark.parametrize("update", [v.NOTE, v.EXTENSION_REQUESTED])
def test_a_note_or_an_extension_request_leaves_an_unfinished_case_as_it_is(status, update):
    assert lc.apply_update(status, update) == lc.UpdateOutcome(status, hands_back=False)


@pytest.mark.parametrize("status", [v.CLOSED, v.REJECTED])
@pytest.mark.parametrize("update", [v.NOTE, v.EXTENSION_REQUESTED])
def test_a_finished_case_takes_no_note_and_no_extension_request(status, update):
    with pytest.raises(lc.Conflict) as refused:
        lc.apply_update(status, update)
    assert refused.value.field == "status"
    assert status in refused.value.message and "finished" in refused.value.message


def test_the_part_a_sender_plays_in_a_case():
    assisting = ("emergency", "housing")
    role = lc.role_in_case
    assert role("fire-330302", "fire-330302", "fire", assisting, "fire") == v.LEAD
    assert role("fire", "fire-330302", "fire", assisting, "fire") == v.LEAD
    assert role("emergency", "fire-330302", "fire", assisting, "emergency") == v.ASSISTING
    # A unit of an assisting department assists too.
    assert role("emergency-330302", "fire-330302", "fire", assisting, "emergency") == v.ASSISTING
    assert role("police-330302", "fire-330302", "fire", assisting, "police") is None
    assert role("police", None, None, (), "police") is None


@pytest.mark.parametrize("status", v.UPDATE_STATUSES)
def test_an_assisting_department_may_send_only_notes_and_the_lead_anything(status):
    assert lc.may_send(status, v.LEAD)
    assert lc.may_send(status, v.ASSISTING) == (status == v.NOTE)
    assert not lc.may_send(status, None)


def test_an_assisting_departments_resolution_is_refused_saying_only_the_lead_resolves():
    with pytest.raises(lc.Conflict) as refused:
        lc.check_sender(v.RESOLVED, v.ASSISTING)
    assert refused.value.field == "status"
    assert "only the lead department resolves" in refused.value.message
    lc.check_sender(v.NOTE, v.ASSISTING)
    lc.check_sender(v.RESOLVED, v.LEAD)


NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("status", "hours", "due", "field", "why"),
    [
        (v.EXTENSION_REQUESTED, None, None, "hours", "either hours"),
        (v.EXTENSION_REQUESTED, 24, NOW + dt.timedelta(days=1), "hours", "one of them"),
        (v.EXTENSION_REQUESTED, 0, None, "hours", "1 to 2160"),
        (v.EXTENSION_REQUESTED, 2161, None, "hours", "1 to 2160"),
        (v.EXTENSION_REQUESTED, None, NOW + dt.timedelta(days=91), "due", "2160 hours ahead"),
        (v.NOTE, 24, None, "hours", "only an extension_requested"),
        (v.ACCEPTED, None, NOW + dt.timedelta(days=1), "due", "only an extension_requested"),
    ],
)
def test_an_extension_names_how_much_time_and_nothing_else_does(status, hours, due, field, why):
    with pytest.raises(lc.InvalidRequest) as refused:
        lc.check_extension(status, hours, due, NOW)
    assert refused.value.field == field
    assert why in refused.value.message


def test_an_extension_to_an_instant_past_is_refused_for_what_it_asks():
    with pytest.raises(lc.Unprocessable) as refused:
        lc.check_extension(v.EXTENSION_REQUESTED, None, NOW - dt.timedelta(minutes=1), NOW)
    assert (refused.value.field, refused.value.message) == (
        "due",
        "the instant asked for has already passed",
    )


def test_an_extension_in_hours_or_to_an_instant_is_taken():
    lc.check_extension(v.EXTENSION_REQUESTED, 1, None, NOW)
    lc.check_extension(v.EXTENSION_REQUESTED, 2160, None, NOW)
    lc.check_extension(v.EXTENSION_REQUESTED, None, NOW + dt.timedelta(days=90), NOW)
    lc.check_extension(v.NOTE, None, None, NOW)


# -- notes from an assisting department ---------------------------------------------------------


@pytest.mark.parametrize("sender", ["emergency", "emergency-330302", "housing"])
def test_an_assisting_departments_note_is_shown_in_the_timeline_with_its_sender(
    api, gas_leak, sender
):
    answer = _update(api, gas_leak, **{"from": sender, "status": v.NOTE, "note": "已派员到场警戒"})
    assert answer.status == 202, answer.body
    view = _view(api, gas_leak)
    assert view["status"] == v.DISPATCHED
    entry = _last_entry(view)
    assert (entry["kind"], entry["sender"], entry["role"], entry["note"]) == (
        v.NOTE,
        sender,
        v.ASSISTING,
        "已派员到场警戒",
    )


def test_the_lead_reads_an_assisting_departments_note_in_the_case(api, gas_leak):
    assert _update(api, gas_leak, **{"from": "housing", "status": v.NOTE, "note": "燃气管道已关阀"})
    lead = api.handle(
        "GET", f"/api/v1/cases/{gas_leak}", headers=bearer(api.holder_token(LEAD_UNIT))
    )
    assert lead.status == 200
    notes = [e for e in lead.body["timeline"] if e["kind"] == v.NOTE]
    assert [(n["sender"], n["note"]) for n in notes] == [("housing", "燃气管道已关阀")]


def test_the_lead_may_add_a_note_too(api, gas_leak):
    answer = _update(api, gas_leak, **{"from": LEAD_UNIT, "status": v.NOTE, "note": "等待协办"})
    assert answer.status == 202, answer.body
    assert (_last_entry(_view(api, gas_leak))["role"]) == v.LEAD


@pytest.mark.parametrize("status", [v.RESOLVED])
def test_an_assisting_department_cannot_resolve_the_case_only_the_lead_does(
    gridflow, api, gas_leak, status
):
    before = _view(api, gas_leak)
    outbox = gridflow.runtimes[c.INTAKE].pending_outbox()
    answer = _update(api, gas_leak, **{"from": "emergency", "status": status})
    assert answer.status == 409, answer.body
    assert "only the lead department resolves" in answer.body["errors"]["status"][0]
    assert _view(api, gas_leak) == before
    assert gridflow.runtimes[c.INTAKE].pending_outbox() == outbox


@pytest.mark.parametrize("status", [v.ACCEPTED, v.IN_PROGRESS, v.RETURNED, v.BEYOND_AUTHORITY])
def test_an_assisting_department_cannot_make_the_holders_reports(api, gas_leak, status):
    answer = _update(api, gas_leak, **{"from": "housing", "status": status})
    assert answer.status == 409, answer.body
    assert "holder's to report" in answer.body["errors"]["status"][0]
    assert _view(api, gas_leak)["status"] == v.DISPATCHED


def test_an_assisting_department_cannot_ask_for_more_time(api, gas_leak):
    answer = _update(
        api, gas_leak, **{"from": "housing", "status": v.EXTENSION_REQUESTED, "hours": 4}
    )
    assert answer.status == 409, answer.body
    assert "status" in answer.body["errors"]


def test_a_department_with_no_part_in_the_case_cannot_add_a_note(api, gas_leak):
    answer = _update(api, gas_leak, **{"from": "police", "status": v.NOTE, "note": "路过"})
    # Not even told who holds it: the case is hidden from a caller who may not read it.
    assert answer.status == 404, answer.body
    assert "case_id" in answer.body["errors"]
    assert not [e for e in _view(api, gas_leak)["timeline"] if e["kind"] == v.NOTE]


def test_an_assisting_departments_credential_does_not_speak_for_another(api, gas_leak):
    answer = _update(
        api,
        gas_leak,
        headers=bearer(api.holder_token("emergency")),
        **{"from": "housing", "status": v.NOTE, "note": "冒充住建局"},
    )
    assert answer.status == 403, answer.body
    assert "from" in answer.body["errors"]


def test_the_leads_resolution_resolves_the_case_with_assisting_departments_present(
    gridflow, api, gas_leak
):
    assert _update(api, gas_leak, **{"from": "emergency", "status": v.NOTE}).status == 202
    assert _update(api, gas_leak, **{"from": LEAD, "status": v.ACCEPTED}).status == 202
    assert _update(api, gas_leak, **{"from": "housing", "status": v.NOTE}).status == 202
    answer = _update(api, gas_leak, **{"from": LEAD_UNIT, "status": v.RESOLVED, "note": "已处置"})
    assert answer.status == 202, answer.body
    gridflow.drain()
    view = _view(api, gas_leak)
    assert view["status"] == v.RESOLVED
    assert view["colour"] is None  # awaiting verification: the clock stands still


def test_a_closed_case_refuses_a_note(gridflow, api, gas_leak):
    assert _update(api, gas_leak, **{"from": LEAD, "status": v.RESOLVED}).status == 202
    gridflow.drain()
    verified = _post(api, f"/api/v1/cases/{gas_leak}/verification", {"passed": True})
    assert verified.status == 200, verified.body
    gridflow.drain()
    for sender in (LEAD, "emergency"):
        answer = _update(api, gas_leak, **{"from": sender, "status": v.NOTE, "note": "补充"})
        assert answer.status == 409, answer.body
        assert "closed" in answer.body["errors"]["status"][0]
    assert _view(api, gas_leak)["status"] == v.CLOSED


# -- extension requests ---------------------------------------------------------------------------


def test_the_holders_extension_request_waits_for_the_command_center_with_its_hours(
    gridflow, api, gas_leak
):
    answer = _update(
        api,
        gas_leak,
        **{
            "from": LEAD_UNIT,
            "status": v.EXTENSION_REQUESTED,
            "hours": 48,
            "note": "需更换整段管道",
        },
    )
    assert answer.status == 202, answer.body
    view = _view(api, gas_leak)
    assert view["status"] == v.DISPATCHED
    entry = _last_entry(view)
    assert entry["kind"] == v.EXTENSION_REQUESTED
    # The instant asked for: 48 hours after the clock's current due instant.
    asked = dt.datetime.fromisoformat(view["due"]) + dt.timedelta(hours=48)
    assert (entry["sender"], entry["hours"], entry["due"], entry["decision"]) == (
        LEAD_UNIT,
        48,
        asked.isoformat(),
        "pending",
    )
    announced = _published(gridflow, c.CASE_STATUS_REPORTED)
    assert [(p["status"], p["hours"], p["sender"]) for p in announced] == [
        (v.EXTENSION_REQUESTED, 48, LEAD_UNIT)
    ]


def _published(gridflow, event_type: str) -> list[dict]:
    """The payloads of ``event_type`` waiting on the in-memory bus, once each (one delivery
    per consumer)."""
    seen: dict[str, dict] = {}
    for _, _, message in list(gridflow.bus.deliveries.queue):
        if message["event_type"] == event_type:
            seen[message["event_id"]] = message["payload"]
    return list(seen.values())


def test_an_extension_request_may_name_the_due_instant_asked_for(api, gas_leak):
    answer = _update(
        api,
        gas_leak,
        **{"from": LEAD, "status": v.EXTENSION_REQUESTED, "due": "2026-01-09T01:30:00Z"},
    )
    assert answer.status == 202, answer.body
    entry = _last_entry(_view(api, gas_leak))
    assert entry["due"] == "2026-01-09T09:30:00+08:00"  # in the city's zone
    assert entry["hours"] is None


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({}, "hours"),
        ({"hours": 0}, "hours"),
        ({"hours": 2161}, "hours"),
        ({"hours": "12"}, "hours"),
        ({"hours": True}, "hours"),
        ({"hours": 1.5}, "hours"),
        ({"due": "next week"}, "due"),
    ],
)
def test_an_untakeable_extension_request_is_a_400_naming_the_field(api, gas_leak, extra, field):
    before = _view(api, gas_leak)
    answer = _update(api, gas_leak, **{"from": LEAD, "status": v.EXTENSION_REQUESTED, **extra})
    assert answer.status == 400, answer.body
    assert field in answer.body["errors"]
    assert _view(api, gas_leak) == before


def test_hours_beside_any_other_status_is_a_400(api, gas_leak):
    answer = _update(api, gas_leak, **{"from": LEAD, "status": v.ACCEPTED, "hours": 4})
    assert answer.status == 400, answer.body
    assert "only an extension_requested" in answer.body["errors"]["hours"][0]


# -- routing and the SLA clock ignore them ------------------------------------------------------


def _routing_assignment(gridflow, case_id: str) -> dict:
    with gridflow.runtimes[c.ROUTING].work() as work:
        assignment = routing.current_assignment(work, case_id)
    assert assignment is not None
    return assignment


def _clock(gridflow, case_id: str):
    with gridflow.engine.connect() as conn:
        return conn.execute(
            sa.select(clocks).where(clocks.c.case_id == case_id, clocks.c.active)
        ).one()


def test_a_note_or_an_extension_request_neither_moves_the_case_nor_stops_its_clock(
    gridflow, api, gas_leak
):
    assignment = _routing_assignment(gridflow, gas_leak)
    clock = _clock(gridflow, gas_leak)
    assert clock.running_since is not None
    for body in (
        {"from": "emergency", "status": v.NOTE, "note": "现场已疏散"},
        {"from": LEAD, "status": v.NOTE, "note": "正在处置"},
        {"from": LEAD, "status": v.EXTENSION_REQUESTED, "hours": 12},
    ):
        assert _update(api, gas_leak, **body).status == 202
    delivered = gridflow.drain()
    # Each update reached routing and the SLA service (two deliveries each) and caused nothing.
    assert delivered == 6
    assert _routing_assignment(gridflow, gas_leak) == assignment
    after = _clock(gridflow, gas_leak)
    assert (after.assignment_id, after.running_since, after.elapsed_before) == (
        clock.assignment_id,
        clock.running_since,
        clock.elapsed_before,
    )
    # The same path does stop the clock for the lead's resolution: the check above can fail.
    assert _update(api, gas_leak, **{"from": LEAD, "status": v.RESOLVED}).status == 202
    gridflow.drain()
    assert _clock(gridflow, gas_leak).running_since is None


# -- the resident sees none of it -----------------------------------------------------------------


def test_notes_and_extension_requests_stay_out_of_the_residents_progress_page(gridflow, api):
    answer = _post(
        api, "/api/v1/reports", report(category="event.gas_leak", description="闻到煤气")
    )
    gridflow.drain()
    case_id, link = answer.body["case_id"], answer.body["progress_url"]
    _update(
        api,
        case_id,
        **{"from": "housing", "status": v.NOTE, "note": "内部备注：住户电话13800001111"},
    )
    _update(api, case_id, **{"from": LEAD, "status": v.EXTENSION_REQUESTED, "hours": 8})
    page = api.handle("GET", link.replace("http://localhost", ""))
    assert page.status == 200, page.body
    text = json.dumps(page.body, ensure_ascii=False)
    assert "内部备注" not in text and "13800001111" not in text
    kinds = [m["kind"] for m in page.body["milestones"]]
    assert v.NOTE not in kinds and v.EXTENSION_REQUESTED not in kinds
    assert kinds[:2] == ["registered", "dispatched"]


# -- never refused for being fast ------------------------------------------------------------------


def test_an_assisting_departments_note_before_intake_saw_the_dispatch_is_taken_on_routings_word(
    gridflow, api
):
    answer = _post(api, "/api/v1/reports", report(category="event.gas_leak", description="煤气味"))
    case_id = answer.body["case_id"]
    held = []
    for _ in range(200):
        if gridflow.bus.deliveries.empty():
            break
        consumer, method, message = gridflow.bus.deliveries.get_nowait()
        if consumer == c.INTAKE:
            held.append((method, message))
            continue
        handler = gridflow.definitions[consumer].handlers[method]
        assert gridflow.runtimes[consumer].consume(method, message, handler) == "done"
    assert _view(api, case_id)["assisting"] == []  # intake has not heard of the dispatch
    noted = _update(api, case_id, **{"from": "emergency", "status": v.NOTE, "note": "已到场"})
    assert noted.status == 202, noted.body
    view = _view(api, case_id)
    assert (view["handler"], tuple(view["assisting"])) == (LEAD_UNIT, ASSISTING)
    # The dispatch's projection, arriving now, leaves the note and the assignment as they are.
    for method, message in held:
        assert (
            gridflow.runtimes[c.INTAKE].consume(
                method, message, gridflow.definitions[c.INTAKE].handlers[method]
            )
            == "done"
        )
    view = _view(api, case_id)
    assert view["status"] == v.DISPATCHED
    assert [(e["sender"], e["role"]) for e in view["timeline"] if e["kind"] == v.NOTE] == [
        ("emergency", v.ASSISTING)
    ]
