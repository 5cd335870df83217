"""A unit's inbox (GET /api/v1/units/{code}/inbox): the deliveries of case_dispatched projected
once each, read by cursor, long-polled, and only by whoever speaks for the unit (or oversees).

In process against the embedded default (IntakeApi on SQLite, real credentials), and over real
HTTP against `gridflow run`, whose own threads carry a report to the inbox while a client waits.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import access as a
from gridflow_common.domain import vocabulary as v
from gridflow_intake import handlers as h
from gridflow_intake import inbox as ib
from gridflow_intake.api import IntakeApi
from gridflow_intake.models import inbox
from tests.credentials import SignedApi, bearer
from tests.http_samples import report
from tests.unit.running_server import running_gridflow

FIRE = "fire-330302"
EMERGENCY = "emergency-330302"
HOUSING = "housing-330302"
# Where http_samples.report is: grid 330302104001001, Tengqiao street, its community office.
STATION = "environment-330302104"
OFFICE = "office-330302104001"
DUE = "2026-01-05T10:00:00+08:00"


@pytest.fixture
def api(gridflow):
    return SignedApi(gridflow)


def _post_report(api, **changes) -> str:
    body = report(**changes)
    answer = api.handle("POST", "/api/v1/reports", json.dumps(body, ensure_ascii=False).encode())
    assert answer.status == 201, answer.body
    return answer.body["case_id"]


def _inbox(api, code: str, query: str = "", token: str | None = None):
    headers = bearer(token) if token else None
    return api.handle("GET", f"/api/v1/units/{code}/inbox{query}", headers=headers)


def _intake_handler(gridflow, method: str):
    return gridflow.definitions[c.INTAKE].handlers[method]


def _pump_holding_intakes_dispatch(gridflow) -> list[dict]:
    """Deliver what is on the bus (and what it causes), but keep intake's case_dispatched
    messages back; those, in order."""
    held = []
    for _ in range(200):
        if gridflow.bus.deliveries.empty():
            return held
        consumer, method, message = gridflow.bus.deliveries.get_nowait()
        if (consumer, method) == (c.INTAKE, "on_case_dispatched"):
            held.append(message)
            continue
        handler = gridflow.definitions[consumer].handlers[method]
        assert gridflow.runtimes[consumer].consume(method, message, handler) == "done"
    raise AssertionError("the bus did not drain")


def _with_deliveries(message: dict) -> dict:
    """The announcement as the departments service makes it since issue 7: one delivery to
    the lead's unit and one to each assisting department's bureau, and the due instant."""
    p = message["payload"]
    aid = p["assignment_id"]
    deliveries = [
        {"unit": FIRE, "department": "fire", "role": "lead", "adapter": "amqp"},
        {"unit": EMERGENCY, "department": "emergency", "role": "assisting", "adapter": "inbox"},
        {"unit": HOUSING, "department": "housing", "role": "assisting", "adapter": "webhook"},
    ]
    for d in deliveries:
        d["delivery_id"] = f"{aid}/{d['unit']}"
    payload = {**p, "deliveries": deliveries, "due_at": DUE}
    event = c.make_event(
        c.DEPARTMENTS, c.CASE_DISPATCHED, dt.datetime.fromisoformat(message["occurred_at"]), payload
    )
    return event.to_message()


@pytest.fixture
def gas_leak(gridflow, api) -> tuple[str, dict]:
    """A gas leak given to the fire bureau (lead), emergency and housing (assisting); the
    case_dispatched intake took."""
    case_id = _post_report(
        api, category="event.gas_leak", description="闻到煤气味，住户张三电话13812345678"
    )
    [held] = _pump_holding_intakes_dispatch(gridflow)
    message = _with_deliveries(held)
    assert _deliver(gridflow, message) == "done"
    return case_id, message


def _deliver(gridflow, message: dict) -> str:
    return gridflow.runtimes[c.INTAKE].consume(
        "on_case_dispatched", message, _intake_handler(gridflow, "on_case_dispatched")
    )


def _rows(gridflow) -> list[dict]:
    with gridflow.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(inbox).order_by(inbox.c.cursor)).mappings()]


# -- what an inbox holds ---------------------------------------------------------------------------


def test_each_unit_the_case_was_given_to_finds_it_in_its_inbox_with_its_part(api, gas_leak):
    case_id, _ = gas_leak
    for unit, role in ((FIRE, "lead"), (EMERGENCY, "assisting"), (HOUSING, "assisting")):
        answer = _inbox(api, unit, token=api.holder_token(unit))
        assert answer.status == 200, answer.body
        [item] = answer.body["items"]
        assert (item["case_id"], item["unit"], item["role"]) == (case_id, unit, role)
        assert answer.body["next"] == item["cursor"]
        assert answer.body["more"] is False


def test_an_inbox_item_carries_the_cases_summary_masked(api, gas_leak):
    case_id, message = gas_leak
    [item] = _inbox(api, EMERGENCY, token=api.holder_token(EMERGENCY)).body["items"]
    assert item["status"] == v.DISPATCHED
    assert (item["category"], item["category_name"]) == ("event.gas_leak", "燃气泄漏")
    assert (item["handler"], item["lead"], item["assisting"]) == (
        FIRE,
        "fire",
        ["emergency", "housing"],
    )
    assert item["due_at"] == DUE
    assert item["colour"] == v.GREEN
    assert item["area_code"] == "330302104001001" and item["area_name"]
    assert item["location"] == {"lat": 28.05, "lon": 120.635}
    assert item["assignment_id"] == message["payload"]["assignment_id"] and item["current"]
    # The resident's number never leaves in an inbox.
    assert "13812345678" not in item["description"]
    assert item["description"].startswith("闻到煤气味")


def test_a_department_reads_every_one_of_its_units_deliveries(api):
    first = _post_report(api)  # medical waste: environment's Tengqiao station
    second = _post_report(api, external_id="x-2", location={"lat": 28.051, "lon": 120.636})
    api.gridflow.drain()
    answer = _inbox(api, "environment", token=api.holder_token("environment"))
    assert answer.status == 200, answer.body
    assert [(i["case_id"], i["unit"]) for i in answer.body["items"]] == [
        (first, STATION),
        (second, STATION),
    ]


def test_an_announcement_naming_no_deliveries_reaches_the_holder_as_lead(gridflow, api):
    case_id = _post_report(api)
    # As the departments service announced before issue 7: no deliveries, no due instant.
    [held] = _pump_holding_intakes_dispatch(gridflow)
    payload = {k: v for k, v in held["payload"].items() if k not in ("deliveries", "due_at")}
    older = c.make_event(
        c.DEPARTMENTS,
        c.CASE_DISPATCHED,
        dt.datetime.fromisoformat(held["occurred_at"]),
        payload,
    ).to_message()
    assert older["payload"]["deliveries"] == []
    assert _deliver(gridflow, older) == "done"
    [item] = _inbox(api, STATION, token=api.holder_token(STATION)).body["items"]
    assert (item["case_id"], item["role"], item["due_at"]) == (case_id, "lead", None)


def test_a_repeated_announcement_adds_no_row(gridflow, api, gas_leak):
    _, message = gas_leak
    before = _rows(gridflow)
    assert len(before) == 3
    # The same message again (a redelivery) and the same fact under a new event id (a
    # republished announcement): the inbox stays as it was.
    assert _deliver(gridflow, message) in ("done", "duplicate")
    again = {**message, "event_id": "republished-" + message["event_id"]}
    assert _deliver(gridflow, again) == "done"
    assert _rows(gridflow) == before
    assert len(_inbox(api, HOUSING, token=api.holder_token(HOUSING)).body["items"]) == 1


# -- paging ------------------------------------------------------------------------------------


def test_an_inbox_is_read_page_by_page_by_cursor_oldest_first(api):
    cases = [
        _post_report(api, external_id=f"p-{i}", location={"lat": 28.05 + i / 1000, "lon": 120.635})
        for i in range(5)
    ]
    api.gridflow.drain()
    token = api.holder_token(STATION)
    seen, after, pages = [], 0, 0
    while True:
        answer = _inbox(api, STATION, f"?after={after}&limit=2", token)
        assert answer.status == 200, answer.body
        pages += 1
        seen.extend(i["case_id"] for i in answer.body["items"])
        cursors = [i["cursor"] for i in answer.body["items"]]
        assert cursors == sorted(cursors) and all(c > after for c in cursors)
        after = answer.body["next"]
        if not answer.body["more"]:
            break
        assert pages < 5
    assert seen == cases
    assert pages == 3
    # Past the last: nothing, and the cursor stays where it is.
    empty = _inbox(api, STATION, f"?after={after}", token).body
    assert (empty["items"], empty["next"], empty["more"]) == ([], after, False)


def test_open_true_leaves_out_the_cases_no_longer_to_work_on(gridflow, api):
    done = _post_report(api, external_id="o-1")
    todo = _post_report(api, external_id="o-2", location={"lat": 28.052, "lon": 120.635})
    gridflow.drain()
    update = json.dumps({"from": STATION, "status": v.RESOLVED}).encode()
    assert api.handle("POST", f"/api/v1/cases/{done}/updates", update).status == 202
    gridflow.drain()
    verify = json.dumps({"passed": True}).encode()
    assert api.handle("POST", f"/api/v1/cases/{done}/verification", verify).status == 200
    gridflow.drain()
    token = api.holder_token(STATION)
    every = [i["case_id"] for i in _inbox(api, STATION, "?open=false", token).body["items"]]
    still = [i["case_id"] for i in _inbox(api, STATION, "?open=true", token).body["items"]]
    assert every == [done, todo]
    assert still == [todo]


# -- long-polling --------------------------------------------------------------------------------


class Looks(list):
    """How many items each look of a long-poll found, in order; ``first`` is set at the first
    (the poll is then waiting, or done)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = threading.Event()


@pytest.fixture
def looks(monkeypatch) -> Looks:
    found = Looks()
    page_of = h.inbox_page

    def inbox_page(*args, **kwargs):
        page = page_of(*args, **kwargs)
        found.append(len(page["items"]))
        found.first.set()
        return page

    monkeypatch.setattr(h, "inbox_page", inbox_page)
    return found


def test_a_long_poll_answers_as_soon_as_a_case_arrives(gridflow, api, looks):
    token = api.holder_token(STATION)
    got: dict = {}

    def poll() -> None:
        started = time.monotonic()
        got["answer"] = _inbox(api, STATION, "?wait=20", token)
        got["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=poll)
    waiter.start()
    assert looks.first.wait(5), "the poll never looked"
    # It found nothing and waits; a case is reported and carried to the inbox meanwhile.
    case_id = _post_report(api)
    gridflow.drain()
    waiter.join(timeout=20)
    assert not waiter.is_alive()
    answer = got["answer"]
    assert answer.status == 200, answer.body
    assert [i["case_id"] for i in answer.body["items"]] == [case_id]
    assert looks[0] == 0 and looks[-1] == 1
    assert got["seconds"] < 5  # it did not sit out its 20 s


def test_a_long_poll_with_nothing_arriving_answers_empty_when_its_wait_ends(api, looks):
    started = time.monotonic()
    answer = _inbox(api, STATION, "?wait=1.2&after=0", api.holder_token(STATION))
    seconds = time.monotonic() - started
    assert answer.status == 200, answer.body
    assert (answer.body["items"], answer.body["next"]) == ([], 0)
    assert 1.1 <= seconds < 4
    # It looked about every half second, not once and not in a busy loop.
    assert 3 <= len(looks) <= 5


def test_a_long_poll_holds_no_database_lock_while_it_waits(gridflow, api, looks):
    """The embedded default's units of work take turns on one lock: a waiting poll must not
    keep a report from being registered meanwhile."""
    token = api.holder_token(STATION)
    waiter = threading.Thread(target=lambda: _inbox(api, STATION, "?wait=3", token))
    waiter.start()
    try:
        assert looks.first.wait(5), "the poll never looked"
        started = time.monotonic()
        _post_report(api)
        assert time.monotonic() - started < 1.5
        assert waiter.is_alive()  # still waiting: the report has not reached the inbox
    finally:
        waiter.join(timeout=10)


def test_a_request_that_finds_every_place_to_wait_taken_is_answered_at_once(gridflow):
    waiters = ib.Waiters(1)
    api = SignedApi(gridflow)
    api.api = IntakeApi(gridflow.runtimes[c.INTAKE], api.api.peers, waiters)
    with waiters.slot() as mine:
        assert mine
        started = time.monotonic()
        answer = _inbox(api, STATION, "?wait=10", api.holder_token(STATION))
        assert time.monotonic() - started < 2
    assert answer.status == 200 and answer.body["items"] == []
    assert answer.headers["Retry-After"] == str(ib.RETRY_AFTER_SECONDS)


def test_a_long_poll_over_http_on_gridflow_run_answers_when_a_case_arrives(tmp_path):
    """`gridflow run` as a person starts it: its own threads carry the report through routing
    and departments to the inbox while the client waits; another request is answered meanwhile."""
    with running_gridflow(tmp_path) as server:
        key = httpx.post(
            f"{server.url}/api/v1/admin/keys",
            json={"holder": STATION},
            headers=server.admin,
            timeout=30,
        )
        assert key.status_code == 201, key.text
        station = bearer(key.json()["token"])
        got: dict = {}

        def poll() -> None:
            started = time.monotonic()
            got["answer"] = httpx.get(
                f"{server.url}/api/v1/units/{STATION}/inbox",
                params={"wait": 25},
                headers=station,
                timeout=40,
            )
            got["seconds"] = time.monotonic() - started

        waiter = threading.Thread(target=poll)
        waiter.start()
        # While the poll is out (nothing can end it yet: no case exists), others are answered.
        started = time.monotonic()
        me = httpx.get(f"{server.url}/api/v1/me", headers=station, timeout=10)
        assert me.status_code == 200 and time.monotonic() - started < 2
        assert waiter.is_alive()
        answer = httpx.post(
            f"{server.url}/api/v1/reports", json=report(), headers=server.admin, timeout=10
        )
        assert answer.status_code == 201, answer.text
        waiter.join(timeout=40)
        assert not waiter.is_alive()
        polled = got["answer"]
        assert polled.status_code == 200, polled.text
        assert [i["case_id"] for i in polled.json()["items"]] == [answer.json()["case_id"]]
        assert got["seconds"] < 20


# -- who may read an inbox -----------------------------------------------------------------------


def _user_token(gridflow, username: str, role: str, scope: str | None) -> str:
    store = gridflow.identities()
    user = store.create_user(gridflow.store.active()[1], username, role, scope=scope)
    from gridflow_intake.identity import BEARER

    return store.issue(BEARER, label="test", user_id=user["user_id"])[1]


@pytest.mark.parametrize(
    ("who", "code", "status"),
    [
        ("unit:" + STATION, STATION, 200),
        ("unit:environment", STATION, 200),  # its department's credential
        ("unit:environment", "environment", 200),
        ("user:department:environment-330302104", STATION, 200),
        ("user:community:330302104001", OFFICE, 200),
        ("user:street:330302104", OFFICE, 200),
        ("user:command_center:", STATION, 200),
        ("user:command_center:330302", STATION, 200),
        ("admin", STATION, 200),
        ("unit:police-330302104", STATION, 403),  # another unit
        ("unit:" + STATION, "environment", 403),  # a station does not read its department's
        ("unit:police", STATION, 403),
        ("user:department:police", STATION, 403),
        ("user:community:330302001001", OFFICE, 403),  # another community
        ("user:leader:environment-330302", STATION, 403),
        ("user:grid_worker:330302104001001", OFFICE, 403),
        ("channel:hotline", STATION, 403),
        ("admin", "no-such-unit", 404),
        ("unit:" + STATION, "no-such-unit", 404),
    ],
)
def test_only_whoever_speaks_for_the_unit_or_oversees_reads_its_inbox(
    gridflow, api, who, code, status
):
    kind, _, rest = who.partition(":")
    if kind == "admin":
        token = gridflow.admin_token
    elif kind == "unit":
        token = api.holder_token(rest)
    elif kind == "channel":
        token = gridflow.identities().issue(a.CHANNEL_KEY, label="t", channel=rest)[1]
    else:
        role, _, scope = rest.partition(":")
        token = _user_token(gridflow, f"u-{role}-{scope or 'all'}", role, scope or None)
    answer = _inbox(api, code, token=token)
    assert answer.status == status, answer.body
    if status == 403:
        assert answer.body["errors"].keys() & {"code", "authorization"}
    if status == 404:
        assert "no-such-unit" in answer.body["errors"]["code"][0]


def test_an_inbox_read_without_a_credential_is_a_401(api):
    answer = api.api.handle("GET", f"/api/v1/units/{STATION}/inbox")
    assert answer.status == 401


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("?after=-1", "after"),
        ("?after=abc", "after"),
        ("?after=1.5", "after"),
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?limit=", "limit"),
        ("?wait=31", "wait"),
        ("?wait=-1", "wait"),
        ("?wait=nan", "wait"),
        ("?wait=inf", "wait"),
        ("?open=yes", "open"),
        ("?open=1", "open"),
        ("?after=1&after=2", "after"),
        ("?since=3", "since"),
    ],
)
def test_an_untakeable_parameter_is_a_400_naming_it(api, query, param):
    answer = _inbox(api, STATION, query, api.holder_token(STATION))
    assert answer.status == 400, answer.body
    assert param in answer.body["errors"]
