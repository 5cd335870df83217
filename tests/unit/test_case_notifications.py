"""The notices sent for a case, on its page: ``GET /api/v1/cases/{id}/notifications`` through the
embedded default's API. Intake asks notify (its ``peers``), having decided the caller may read the
case; notify answers from its own table with every contact masked.

The in-memory bus is pumped by hand (``tests.unit.test_orders.City``), so nothing waits.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from gridflow_app.embedded import EmbeddedPeers
from gridflow_common import contracts as c
from gridflow_common.domain import privacy, recipients
from gridflow_common.domain import vocabulary as v
from gridflow_intake.api import IntakeApi
from gridflow_intake.peers import PeerUnavailable
from gridflow_notify.models import notifications
from tests.unit.test_orders import City

# The urban-management squad of 五马街道 holds a junk pile in Qingyuan; its duty person and the
# bureau's leader, as Lucheng's people.csv names them.
SQUAD_DUTY = ("P00081", "郝琳雪", v.ROLE_STATION_DUTY, "13866000081")
BUREAU_LEADER = ("P00058", "邹秀", v.ROLE_LEADER, "13866000058")
WHOLE_PHONE = re.compile(r"1[3-9]\d{9}")
WHOLE_EMAIL = re.compile(r"[^*@\s]{2,}@")


@pytest.fixture
def city(gridflow) -> City:
    return City(gridflow)


def _notices(city: City, case_id: str, who: str = "command"):
    return city.call("GET", f"/api/v1/cases/{case_id}/notifications", who=who)


def _assert_nothing_whole(body: dict) -> None:
    text = repr(body)
    assert not WHOLE_PHONE.search(text), text
    assert not WHOLE_EMAIL.search(text), text


def test_a_dispatched_case_lists_its_dispatch_notice_to_the_duty_person(city):
    case_id = city.report()
    answer = _notices(city, case_id)
    assert answer.status == 200, answer.body
    assert answer.body["case_id"] == case_id and answer.body["more"] is False
    dispatched = [n for n in answer.body["items"] if n["kind"] == v.DISPATCHED]
    assert len(dispatched) == 1, answer.body
    notice = dispatched[0]
    person_id, name, role, phone = SQUAD_DUTY
    with city.g.runtimes[c.NOTIFY].work() as work:
        squad = work.jurisdiction().unit("urban_management-330302001")
    assert squad is not None and squad.name
    assert notice["recipient"] == {
        "person_id": person_id,
        "name": name,
        "role": role,
        "unit": "urban_management-330302001",
        "unit_name": squad.name,
        "contact": privacy.mask_phone(phone),
    }
    assert notice["recipient"]["contact"] == "138****0081"
    assert (notice["channel"], notice["status"]) == (v.NOTICE_SMS, v.NOTICE_RECORDED)
    # When: the simulated clock's instant, in the city's time.
    at = dt.datetime.fromisoformat(notice["at"])
    assert at.utcoffset() == dt.timedelta(hours=8)
    assert abs(at - dt.datetime(2026, 3, 2, 9, 0, tzinfo=at.tzinfo)) < dt.timedelta(minutes=1)
    _assert_nothing_whole(answer.body)


def test_a_supervise_order_shows_its_reminders_to_the_holder_and_its_leader(city):
    case_id = city.report()
    before = len(_notices(city, case_id).body["items"])
    assert city.order(case_id, kind="supervise", reason="请今日办结").status == 202
    answer = _notices(city, case_id, who="leader")
    assert answer.status == 200, answer.body
    items = answer.body["items"]
    assert len(items) == before + 2
    supervised = items[before:]
    assert {n["kind"] for n in supervised} == {v.ORDER_SUPERVISE}
    got = sorted((n["recipient"]["person_id"], n["recipient"]["name"]) for n in supervised)
    assert got == sorted([SQUAD_DUTY[:2], BUREAU_LEADER[:2]])
    # Oldest first: the registration's and dispatch's notices come before the reminders.
    assert v.DISPATCHED in [n["kind"] for n in items[:before]]
    assert [n["at"] for n in items] == sorted(n["at"] for n in items)
    _assert_nothing_whole(answer.body)


def test_an_outsider_gets_the_404_of_a_case_that_does_not_exist(city):
    """The police's leader: the junk pile is urban management's, none of theirs."""
    case_id = city.report()
    theirs = _notices(city, case_id, who="other_leader")
    none = _notices(city, "GF-20260302-NOSUCHCASE", who="other_leader")
    assert (theirs.status, none.status) == (404, 404), theirs.body
    assert "items" not in theirs.body
    assert repr(theirs.body).replace(case_id, "<case>") == repr(none.body).replace(
        "GF-20260302-NOSUCHCASE", "<case>"
    )


def test_a_case_with_no_notices_answers_an_empty_list(city):
    case_id = city.report()
    with city.g.runtimes[c.NOTIFY].work() as work:
        work.db.execute(notifications.delete().where(notifications.c.case_id == case_id))
    answer = _notices(city, case_id)
    assert answer.status == 200 and answer.body["items"] == [] and answer.body["more"] is False


def test_only_the_latest_notices_are_listed(city):
    case_id = city.report()
    row = {
        "case_id": case_id,
        "assignment_id": "a-walk",
        "person_id": SQUAD_DUTY[0],
        "role": SQUAD_DUTY[2],
        "channel": v.NOTICE_SMS,
        "address": SQUAD_DUTY[3],
        "reason": v.ACTION_REMIND,
        "text": "提醒",
        "created_at": dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.timezone.utc),
    }
    with city.g.runtimes[c.NOTIFY].work() as work:
        work.db.execute(notifications.insert(), [row] * recipients.MAX_LISTED)
    items = _notices(city, case_id).body
    assert len(items["items"]) == recipients.MAX_LISTED and items["more"] is True
    # The dispatch notice, the oldest, is the one left out.
    assert {n["kind"] for n in items["items"]} == {v.ACTION_REMIND}


class _NotifyDown(EmbeddedPeers):
    def case_notifications(self, case_id: str) -> dict:
        raise PeerUnavailable(c.NOTIFY, "did not list the case's notifications within 2 s")


def test_notify_not_answering_is_a_503_naming_notify(city):
    case_id = city.report()
    api = IntakeApi(city.g.runtimes[c.INTAKE], _NotifyDown(city.g))
    answer = api.handle(
        "GET",
        f"/api/v1/cases/{case_id}/notifications",
        b"",
        {"Authorization": f"Bearer {city.tokens['command']}"},
    )
    assert answer.status == 503, answer.body
    assert list(answer.body["errors"]) == [c.NOTIFY]


def test_contacts_are_masked_as_personal_numbers_are():
    assert privacy.mask_contact("13866000081") == "138****0081"
    assert privacy.mask_contact("p00081@lucheng.example.org") == "p***@lucheng.example.org"
    assert privacy.mask_contact("a@x.org") == "***@x.org"
    assert privacy.mask_contact("") == ""
    assert privacy.mask_email("no-at-sign") == "***"


def test_a_listed_notice_names_a_person_who_left_by_id_only(gridflow):
    with gridflow.runtimes[c.NOTIFY].work() as work:
        j = work.jurisdiction()
    notice = recipients.listed_notice(
        j,
        at="2026-03-02T01:00:00+00:00",
        reason=v.DISPATCHED,
        person_id="P99999",
        role=v.ROLE_STATION_DUTY,
        channel=v.NOTICE_SMS,
        address="someone.gone@lucheng.example.org",
    )
    assert notice["recipient"] == {
        "person_id": "P99999",
        "name": None,
        "role": v.ROLE_STATION_DUTY,
        "unit": None,
        "unit_name": None,
        "contact": "s***@lucheng.example.org",
    }
