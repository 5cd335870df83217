"""``POST /api/v1/departments/{code}/updates`` as a department's system and as an attacker would
post it: signed with the department's secret (good, wrong, stale, missing), with a credential of
its own or of another department, for a unit that is not the department's, for a case that does
not exist or that it does not hold, with hostile bodies, twice with one Idempotency-Key, and in
words the city has not mapped. Plus a polling adapter's word (``case_status_received``).

In process, on an embedded Gridflow (SQLite), through ``IntakeApi.handle``: the same
``answer()`` the HTTP servers call.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common import signing
from gridflow_common.domain import status_words as sw
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.access import HOLDER_KEY
from gridflow_common.domain.jurisdiction import AdapterConfig
from gridflow_intake import handlers as h
from gridflow_intake import models
from tests.credentials import bearer
from tests.http_samples import nested
from tests.support.status_back import encoded, install_adapters, signed_headers
from tests.unit.test_intake_cases import _pump

# A streetlight out in Tengqiao: held by the urban-management station there, led by its bureau.
STREETLIGHT = {
    "channel": "web",
    "description": "藤桥戍浦社区门口的路灯不亮",
    "category": "component.streetlight",
    "location": {"lat": 28.05, "lon": 120.64},
}
DEPARTMENT = "urban_management"
STATION = "urban_management-330302104"
BUREAU = "urban_management-330302"
SECRET = "um-secret-for-tests-7f3a"
POLICE_SECRET = "police-secret-for-tests-91c2"
UM_ENV = "GRIDFLOW_TEST_UM_SECRET"
POLICE_ENV = "GRIDFLOW_TEST_POLICE_SECRET"
UPDATES = f"/api/v1/departments/{DEPARTMENT}/updates"


@pytest.fixture
def city(gridflow, monkeypatch):
    """Lucheng with adapters.csv rows for urban management (signed, with its own words) and
    the police (signed with another secret); one streetlight case, dispatched."""
    monkeypatch.setenv(UM_ENV, SECRET)
    monkeypatch.setenv(POLICE_ENV, POLICE_SECRET)
    install_adapters(
        gridflow.store,
        [
            AdapterConfig(
                DEPARTMENT,
                "webhook",
                endpoint="http://127.0.0.1:9/um",
                credential_ref=f"env:{UM_ENV}",
                status_map={"已签收": v.ACCEPTED, "处置完毕": v.RESOLVED},
            ),
            AdapterConfig(
                "police",
                "webhook",
                endpoint="http://127.0.0.1:9/police",
                credential_ref=f"env:{POLICE_ENV}",
            ),
        ],
    )
    api = gridflow.api()
    admin = bearer(gridflow.admin_token)
    answer = api.handle("POST", "/api/v1/reports", encoded(STREETLIGHT), admin)
    assert answer.status == 201, answer.body
    case_id = answer.body["case_id"]
    _pump(gridflow)
    view = api.handle("GET", f"/api/v1/cases/{case_id}", headers=admin).body
    assert (view["handler"], view["lead"], view["status"]) == (STATION, DEPARTMENT, v.DISPATCHED)
    return gridflow, api, case_id


def _post(api, body, *, secret=SECRET, path=UPDATES, at=None, key=None, headers=None):
    raw = encoded(body)
    sent = (
        signed_headers(secret, raw, at=at, key=key)
        if secret
        else {"Content-Type": "application/json"}
    )
    return api.handle("POST", path, raw, {**sent, **(headers or {})})


def _view(gridflow, api, case_id):
    answer = api.handle("GET", f"/api/v1/cases/{case_id}", headers=bearer(gridflow.admin_token))
    assert answer.status == 200, answer.body
    return answer.body


def _timeline_rows(gridflow) -> int:
    with gridflow.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(models.timeline)).scalar_one()


def _unchanged(gridflow, api, case_id, before_rows):
    view = _view(gridflow, api, case_id)
    assert view["status"] == v.DISPATCHED
    assert _timeline_rows(gridflow) == before_rows


# -- signed by the department ----------------------------------------------------------------------


def test_a_request_signed_with_the_departments_secret_is_taken(city):
    gridflow, api, case_id = city
    answer = _post(api, {"case_id": case_id, "status": "accepted", "unit": STATION})
    assert answer.status == 202, answer.body
    assert answer.body["status"] == v.ACCEPTED and answer.body["recognised"] is True
    view = _view(gridflow, api, case_id)
    assert view["status"] == v.ACCEPTED
    assert view["timeline"][-1]["kind"] == v.ACCEPTED
    assert view["timeline"][-1]["sender"] == STATION
    [line] = gridflow.identities().audit_entries(actor=f"department:{DEPARTMENT}")
    assert (line["action"], line["outcome"]) == ("post_department_update", "ok")


def test_the_unit_defaults_to_the_code_and_a_department_answers_for_the_case_it_leads(city):
    gridflow, api, case_id = city
    answer = _post(api, {"case_id": case_id, "status": "in_progress"})
    assert answer.status == 202, answer.body
    assert _view(gridflow, api, case_id)["timeline"][-1]["sender"] == DEPARTMENT


def test_the_departments_own_word_is_taken_with_the_citys_map(city):
    gridflow, api, case_id = city
    answer = _post(api, {"case_id": case_id, "status": "已签收", "unit": STATION})
    assert answer.status == 202, answer.body
    assert answer.body["status"] == v.ACCEPTED
    assert answer.body["word"] == "已签收"
    assert _view(gridflow, api, case_id)["status"] == v.ACCEPTED


def test_a_holder_answering_the_instant_it_received_the_case_is_accepted(city):
    """Never refused for being fast: intake has not seen the dispatch yet, routing says who
    holds the case."""
    gridflow, api, _ = city
    answer = api.handle(
        "POST",
        "/api/v1/reports",
        encoded({**STREETLIGHT, "location": {"lat": 28.06, "lon": 120.64}}),
        bearer(gridflow.admin_token),
    )
    case_id = answer.body["case_id"]
    held = _pump(gridflow, hold_for_intake=True)
    assert any(method == "on_case_dispatched" for method, _ in held)
    assert _view(gridflow, api, case_id)["handler"] is None
    answer = _post(api, {"case_id": case_id, "status": "accepted", "unit": STATION})
    assert answer.status == 202, answer.body
    assert _view(gridflow, api, case_id)["status"] == v.ACCEPTED


# -- refusals --------------------------------------------------------------------------------------


def test_a_request_signed_with_another_secret_is_401_and_changes_nothing(city):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    answer = _post(api, {"case_id": case_id, "status": "accepted"}, secret=POLICE_SECRET)
    assert answer.status == 401, answer.body
    assert answer.body["errors"]["signature"] == [
        "the signature does not match the body and the department's secret"
    ]
    assert SECRET not in json.dumps(answer.body) and POLICE_SECRET not in json.dumps(answer.body)
    _unchanged(gridflow, api, case_id, rows)
    [line] = gridflow.identities().audit_entries(action="post_department_update")
    assert (line["actor"], line["outcome"], line["detail"]["status"]) == (
        "anonymous",
        "refused",
        401,
    )


def test_a_body_changed_after_signing_is_401(city):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    signed = encoded({"case_id": case_id, "status": "accepted"})
    headers = signed_headers(SECRET, signed)
    forged = encoded({"case_id": case_id, "status": "resolved"})
    answer = api.handle("POST", UPDATES, forged, headers)
    assert answer.status == 401
    assert "does not match" in answer.body["errors"]["signature"][0]
    _unchanged(gridflow, api, case_id, rows)


@pytest.mark.parametrize("age", [signing.TOLERANCE_SECONDS + 60, -(signing.TOLERANCE_SECONDS + 60)])
def test_a_stale_or_future_timestamp_is_401_saying_so(city, age):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    answer = _post(api, {"case_id": case_id, "status": "accepted"}, at=time.time() - age)
    assert answer.status == 401
    assert "more than 300 s" in answer.body["errors"]["signature"][0]
    _unchanged(gridflow, api, case_id, rows)


@pytest.mark.parametrize(
    ("drop", "said"),
    [
        (signing.SIGNATURE_HEADER, "X-Gridflow-Signature header is missing"),
        (signing.TIMESTAMP_HEADER, "X-Gridflow-Timestamp header is missing"),
    ],
)
def test_a_missing_signature_header_is_401_naming_it(city, drop, said):
    gridflow, api, case_id = city
    raw = encoded({"case_id": case_id, "status": "accepted"})
    headers = signed_headers(SECRET, raw)
    del headers[drop]
    answer = api.handle("POST", UPDATES, raw, headers)
    assert answer.status == 401
    assert said in answer.body["errors"]["signature"][0]


def test_neither_signature_nor_credential_is_401(city):
    _, api, case_id = city
    answer = _post(api, {"case_id": case_id, "status": "accepted"}, secret=None)
    assert answer.status == 401
    assert "sign the request" in answer.body["errors"]["authorization"][0]


def test_a_department_without_a_signing_secret_cannot_sign(city):
    _, api, case_id = city
    answer = _post(
        api, {"case_id": case_id, "status": "accepted"}, path="/api/v1/departments/fire/updates"
    )
    assert answer.status == 401
    assert "no signing secret is configured for 'fire'" in answer.body["errors"]["signature"][0]


def test_an_unknown_code_is_404(city):
    _, api, case_id = city
    answer = _post(
        api, {"case_id": case_id, "status": "accepted"}, path="/api/v1/departments/nobody/updates"
    )
    assert answer.status == 404
    assert answer.body["errors"]["code"] == ["no department or unit 'nobody'"]


def test_another_departments_credential_is_403(city):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    _, police = gridflow.identities().issue(HOLDER_KEY, label="police system", holder="police")
    raw = encoded({"case_id": case_id, "status": "accepted"})
    answer = api.handle("POST", UPDATES, raw, bearer(police))
    assert answer.status == 403, answer.body
    assert answer.body["errors"]["code"] == [
        "your credential does not answer for 'urban_management'"
    ]
    _unchanged(gridflow, api, case_id, rows)


def test_the_departments_own_credential_is_taken_without_a_signature(city):
    gridflow, api, case_id = city
    _, token = gridflow.identities().issue(HOLDER_KEY, label="um system", holder=DEPARTMENT)
    raw = encoded({"case_id": case_id, "status": "accepted", "unit": STATION})
    answer = api.handle("POST", UPDATES, raw, bearer(token))
    assert answer.status == 202, answer.body
    assert _view(gridflow, api, case_id)["status"] == v.ACCEPTED


def test_a_unit_that_is_not_the_departments_is_403_naming_unit(city):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    answer = _post(api, {"case_id": case_id, "status": "accepted", "unit": "police-330302104"})
    assert answer.status == 403, answer.body
    assert "does not answer for 'police-330302104'" in answer.body["errors"]["unit"][0]
    _unchanged(gridflow, api, case_id, rows)


def test_a_station_cannot_speak_for_its_bureau(city):
    _, api, case_id = city
    path = f"/api/v1/departments/{STATION}/updates"
    # The station has no row of its own: its department's secret signs for it.
    answer = _post(api, {"case_id": case_id, "status": "accepted", "unit": BUREAU}, path=path)
    assert answer.status == 403, answer.body
    assert "unit" in answer.body["errors"]


def test_an_unknown_case_is_404(city):
    _, api, _ = city
    answer = _post(api, {"case_id": "GF-20260105-NOSUCHCASE", "status": "accepted"})
    assert answer.status == 404
    assert answer.body["errors"]["case_id"] == ["no case 'GF-20260105-NOSUCHCASE'"]


def test_another_departments_case_is_the_same_404_as_no_case(city):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    path = "/api/v1/departments/police/updates"
    answer = _post(api, {"case_id": case_id, "status": "accepted"}, secret=POLICE_SECRET, path=path)
    nothing = _post(
        api,
        {"case_id": "GF-20260105-NOSUCHCASE", "status": "accepted"},
        secret=POLICE_SECRET,
        path=path,
    )
    assert answer.status == nothing.status == 404
    assert answer.body["errors"]["case_id"] == [f"no case {case_id!r}"]
    _unchanged(gridflow, api, case_id, rows)


def test_a_unit_of_the_department_that_does_not_hold_the_case_is_409(city):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    answer = _post(api, {"case_id": case_id, "status": "accepted", "unit": BUREAU})
    assert answer.status == 409, answer.body
    assert "does not hold this case" in answer.body["errors"]["from"][0]
    _unchanged(gridflow, api, case_id, rows)


def test_a_status_the_case_cannot_take_now_is_409(city):
    gridflow, api, case_id = city
    assert _post(api, {"case_id": case_id, "status": "resolved", "unit": STATION}).status == 202
    answer = _post(api, {"case_id": case_id, "status": "accepted", "unit": STATION})
    assert answer.status == 409
    assert "cannot become accepted" in answer.body["errors"]["status"][0]


@pytest.mark.parametrize(
    ("body", "field", "said"),
    [
        pytest.param(b"{not json", "_body", "not valid JSON", id="not-json"),
        pytest.param(b"[1, 2]", "_body", "must be a JSON object", id="an-array"),
        pytest.param(nested(5000), "_body", "nested too deeply", id="nested-5000-deep"),
        pytest.param(
            b'{"case_id": "GF-1", "status": "accepted", "hours": ' + b"9" * 4300 + b"}",
            "hours",
            "4300 digits",
            id="hours-of-4300-digits",
        ),
        pytest.param(
            {"case_id": "GF-1", "status": "accep\u0000ted"}, "status", "NUL", id="nul-in-status"
        ),
        pytest.param({"status": "accepted"}, "case_id", "Missing data", id="no-case-id"),
        pytest.param({"case_id": "GF-1", "status": ""}, "status", "Length", id="empty-status"),
        pytest.param({"case_id": "GF-1", "status": 7}, "status", "Not a valid string", id="number"),
        pytest.param(
            {"case_id": "GF-1", "status": "accepted", "hours": 0}, "hours", "greater", id="hours-0"
        ),
    ],
)
def test_a_malformed_body_is_400_naming_the_field(city, body, field, said):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    answer = _post(api, body)
    assert answer.status == 400, answer.body
    assert field in answer.body["errors"], answer.body
    assert any(said.lower() in m.lower() for m in answer.body["errors"][field]), answer.body
    _unchanged(gridflow, api, case_id, rows)


# -- once only ------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["header", "message_id"])
def test_a_repeat_gets_the_first_answer_and_changes_nothing(city, by):
    gridflow, api, case_id = city
    body = {"case_id": case_id, "status": "accepted", "unit": STATION, "note": "到场"}
    key = None
    if by == "header":
        key = "um-msg-0001"
    else:
        body["message_id"] = "um-msg-0001"
    first = _post(api, body, key=key)
    assert first.status == 202, first.body
    rows = _timeline_rows(gridflow)
    outbox = gridflow.runtimes[c.INTAKE].pending_outbox() + gridflow.bus.deliveries.qsize()
    again = _post(api, body, key=key)
    assert (again.status, again.body) == (first.status, first.body)
    assert _timeline_rows(gridflow) == rows
    # No second announcement either.
    assert gridflow.runtimes[c.INTAKE].pending_outbox() + gridflow.bus.deliveries.qsize() == outbox
    kinds = [e["kind"] for e in _view(gridflow, api, case_id)["timeline"]]
    assert kinds.count(v.ACCEPTED) == 1


def test_a_refused_message_is_not_remembered(city):
    """A refusal changed nothing: the same message, once the case can take it, is taken."""
    gridflow, api, case_id = city
    body = {"case_id": case_id, "status": "in_progress", "unit": BUREAU, "message_id": "m-7"}
    assert _post(api, body).status == 409
    body["unit"] = STATION
    assert _post(api, body).status == 202


def test_the_same_key_from_two_departments_is_two_messages(city):
    gridflow, api, case_id = city
    assert _post(api, {"case_id": case_id, "status": "accepted"}, key="k-1").status == 202
    police = _post(
        api,
        {"case_id": "GF-20260105-NOSUCHCASE", "status": "accepted"},
        secret=POLICE_SECRET,
        path="/api/v1/departments/police/updates",
        key="k-1",
    )
    assert police.status == 404


def test_an_answer_older_than_a_day_is_forgotten(city):
    gridflow, api, case_id = city
    body = {"case_id": case_id, "status": "accepted", "unit": STATION}
    assert _post(api, body, key="old").status == 202
    with gridflow.engine.begin() as conn:
        conn.execute(
            sa.update(models.department_messages).values(
                received_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=25)
            )
        )
    again = _post(api, body, key="old")
    # Taken afresh: the case is accepted now, so accepting it again is refused.
    assert again.status == 409


# -- words nobody mapped ---------------------------------------------------------------------------


def test_an_unknown_word_is_kept_shown_and_answered_as_not_recognised(city, caplog):
    gridflow, api, case_id = city
    answer = _post(
        api, {"case_id": case_id, "status": "已派人", "unit": STATION, "note": "明早处理"}
    )
    assert answer.status == 202, answer.body
    assert answer.body["recognised"] is False
    assert answer.body["status"] is None
    assert answer.body["case_status"] == v.DISPATCHED
    assert "已派人" in answer.body["message"]
    view = _view(gridflow, api, case_id)
    assert view["status"] == v.DISPATCHED
    entry = view["timeline"][-1]
    assert entry["kind"] == sw.ENTRY_STATUS_UNRECOGNISED
    assert (entry["word"], entry["note"], entry["sender"]) == ("已派人", "明早处理", STATION)
    # Nothing announced to the other services: nothing happened to the case.
    assert gridflow.bus.deliveries.qsize() == 0


def test_an_unknown_word_for_someone_elses_case_is_404_and_kept_nowhere(city):
    gridflow, api, case_id = city
    rows = _timeline_rows(gridflow)
    answer = _post(
        api,
        {"case_id": case_id, "status": "已派人"},
        secret=POLICE_SECRET,
        path="/api/v1/departments/police/updates",
    )
    assert answer.status == 404
    assert _timeline_rows(gridflow) == rows


# -- a polling adapter's word (case_status_received) ----------------------------------------------


def _received(case_id: str, word: str, unit: str = STATION) -> dict:
    return c.make_event(
        c.DEPARTMENTS,
        c.CASE_STATUS_RECEIVED,
        dt.datetime.now(dt.timezone.utc),
        {
            "case_id": case_id,
            "unit": unit,
            "adapter": "open311",
            "word": word,
            "note": "GeoReport",
            "jurisdiction_version": 1,
        },
    ).to_message()


def _deliver(gridflow, message) -> str:
    return gridflow.runtimes[c.INTAKE].consume(
        "on_case_status_received", message, h.HANDLERS["on_case_status_received"]
    )


def test_a_polled_word_is_mapped_and_applied_as_the_unit(city):
    gridflow, api, case_id = city
    assert _deliver(gridflow, _received(case_id, "处置完毕")) == "done"
    view = _view(gridflow, api, case_id)
    assert view["status"] == v.RESOLVED
    assert (view["timeline"][-1]["kind"], view["timeline"][-1]["sender"]) == (v.RESOLVED, STATION)


def test_a_polled_word_the_case_refuses_is_recorded_not_raised(city):
    gridflow, api, case_id = city
    assert _post(api, {"case_id": case_id, "status": "resolved", "unit": STATION}).status == 202
    # The department's record still says what it said first, and the adapter polls it late.
    assert _deliver(gridflow, _received(case_id, "已签收")) == "done"
    view = _view(gridflow, api, case_id)
    assert view["status"] == v.RESOLVED
    entry = view["timeline"][-1]
    assert entry["kind"] == sw.ENTRY_STATUS_REFUSED
    assert entry["word"] == "已签收" and "cannot become accepted" in entry["errors"]["status"][0]
    assert gridflow.runtimes[c.INTAKE].dead_letters() == []


def test_a_polled_unknown_word_is_kept(city):
    gridflow, api, case_id = city
    assert _deliver(gridflow, _received(case_id, "closed-upstream")) == "done"
    view = _view(gridflow, api, case_id)
    assert view["status"] == v.DISPATCHED
    assert view["timeline"][-1]["kind"] == sw.ENTRY_STATUS_UNRECOGNISED


def test_answers_older_than_a_day_are_forgotten_by_intakes_periodic_work(city):
    gridflow, api, case_id = city
    for key, status in (("old", "accepted"), ("new", "in_progress")):
        assert _post(api, {"case_id": case_id, "status": status}, key=key).status == 202
    with gridflow.engine.begin() as conn:
        conn.execute(
            sa.update(models.department_messages)
            .where(models.department_messages.c.message_key == "old")
            .values(received_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=25))
        )
    intake = gridflow.runtimes[c.INTAKE]
    assert h.DEFINITION.periodic is not None
    assert h.DEFINITION.periodic(intake) == 1
    # At most once a minute: a second call a moment later does nothing.
    assert h.DEFINITION.periodic(intake) == 0
    with gridflow.engine.connect() as conn:
        keys = set(conn.execute(sa.select(models.department_messages.c.message_key)).scalars())
    assert keys == {"new"}


def test_a_note_and_an_extension_request_go_the_way_of_every_holders_report(city):
    gridflow, api, case_id = city
    note = _post(api, {"case_id": case_id, "status": v.NOTE, "unit": STATION, "note": "需协调"})
    assert note.status == 202, note.body
    extension = _post(
        api, {"case_id": case_id, "status": v.EXTENSION_REQUESTED, "unit": STATION, "hours": 24}
    )
    assert extension.status == 202, extension.body
    timeline = _view(gridflow, api, case_id)["timeline"]
    kinds = [e["kind"] for e in timeline]
    assert v.NOTE in kinds and v.EXTENSION_REQUESTED in kinds
    [asked] = [e for e in timeline if e["kind"] == v.EXTENSION_REQUESTED]
    assert asked["hours"] == 24
    assert _view(gridflow, api, case_id)["status"] == v.DISPATCHED


def test_a_pause_is_asked_for_and_ended_over_the_departments_signed_messages(city):
    """Extension (延期) and pause (挂起) requests travel every adapter path: here a department's
    signed status messages; the command center's approval stops the clock until resumed."""
    gridflow, api, case_id = city
    admin = bearer(gridflow.admin_token)
    unexplained = _post(api, {"case_id": case_id, "status": v.PAUSE_REQUESTED, "unit": STATION})
    assert unexplained.status == 400 and "note" in unexplained.body["errors"], unexplained.body
    asked = _post(
        api,
        {"case_id": case_id, "status": v.PAUSE_REQUESTED, "unit": STATION, "note": "等待居民在家"},
    )
    assert asked.status == 202, asked.body
    assert _view(gridflow, api, case_id)["pending"] == "pause"
    order = {"kind": "approve", "reason": "同意挂起"}
    approved = api.handle("POST", f"/api/v1/cases/{case_id}/orders", encoded(order), admin)
    assert approved.status == 202, approved.body
    _pump(gridflow)
    view = _view(gridflow, api, case_id)
    assert (view["pending"], view["colour"], view["due"]) == (None, None, None)
    resumed = _post(api, {"case_id": case_id, "status": v.RESUMED, "unit": STATION})
    assert resumed.status == 202, resumed.body
    _pump(gridflow)
    view = _view(gridflow, api, case_id)
    assert view["colour"] == v.GREEN and view["due"] is not None
    assert [e["kind"] for e in view["timeline"]][-1] == v.RESUMED
