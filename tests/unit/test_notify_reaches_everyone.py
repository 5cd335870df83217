"""Notify on the embedded default, at a real SMS gateway on loopback: every reporter of a case
hears, each once (one who reported twice, one who joined later, one whose case was merged in);
a warning names the case's category though the colour event does not carry it; and messages
recorded while no channel was configured are sent once one is (or expire, counted, when too
old), never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from prometheus_client import REGISTRY

from gridflow_common.domain import vocabulary as v
from gridflow_notify import delivery
from tests.unit.test_orders import JUNK, MONDAY_0900, SQUAD, City, _pump
from tests.unit.test_residents_hear_back import Gateway

FIRST = "13900000001"
SECOND = "13900000002"
LATE = "13900000003"
MERGED = "13900000004"
STAFF_PHONE_PREFIX = "1"  # every phone in people.csv starts with 1 too: tell them apart by set


@pytest.fixture
def gateway():
    g = Gateway()
    yield g
    g.close()


def use_sms(gridflow, gateway, monkeypatch) -> None:
    """Configure SMS for notify (a fresh worker reads it, as a restarted process would)."""
    monkeypatch.setenv(delivery.CHANNELS_ENV, json.dumps({"sms": {"url": gateway.url}}))
    notify = gridflow.runtimes["notify"]
    old = notify.extras.pop(delivery.WORKER_KEY, None)
    if old is not None:
        old.close()


def texts_to(gateway: Gateway, phone: str) -> list[str]:
    return [body["text"] for body, _ in gateway.received if body["to"] == phone]


def deliver(gridflow, passes: int = 3) -> None:
    for _ in range(passes):
        delivery.run_deliveries(gridflow.runtimes["notify"])


def join(city: City, phone: str, **changes) -> str:
    answer = city.call("POST", "/api/v1/reports", {**JUNK, "reporter": {"phone": phone}, **changes})
    assert answer.status in (200, 201), answer.body
    _pump(city.g)
    return answer.body["case_id"]


def resolve(city: City, case_id: str) -> None:
    city.update(case_id, SQUAD, v.RESOLVED, note="已清运")
    answer = city.call("POST", f"/api/v1/cases/{case_id}/verification", {"passed": True})
    assert answer.status == 200, answer.body
    _pump(city.g)


def test_every_reporter_hears_each_message_once_joined_late_or_merged_in(
    gridflow, gateway, monkeypatch
):
    use_sms(gridflow, gateway, monkeypatch)
    city = City(gridflow)
    case_id = city.report(reporter={"name": "王女士", "phone": FIRST})
    assert join(city, SECOND) == case_id  # the same junk pile, reported again: joined
    assert join(city, FIRST) == case_id  # the first resident, a second time
    deliver(gridflow)
    for phone in (FIRST, SECOND):
        texts = texts_to(gateway, phone)
        assert len(texts) == 2, (phone, texts)  # registered and dispatched, once each
        assert any("已立案" in t and case_id in t for t in texts)
    # One more resident joins after the first messages went; another case is merged in.
    assert join(city, LATE) == case_id
    elsewhere = join(
        city,
        MERGED,
        location={"lat": 28.02, "lon": 120.66},
        description="路边堆了很多建筑垃圾",
    )
    assert elsewhere != case_id
    merged = city.order(elsewhere, kind=v.ORDER_MERGE, into=case_id, reason="同一处堆物")
    assert merged.status == 202, merged.body
    deliver(gridflow)
    before = {p: len(texts_to(gateway, p)) for p in (FIRST, SECOND, LATE, MERGED)}
    resolve(city, case_id)
    deliver(gridflow)
    deliver(gridflow)  # nothing more: each once
    for phone in (FIRST, SECOND, LATE, MERGED):
        new = texts_to(gateway, phone)[before[phone] :]
        assert len(new) == 2, (phone, new)
        assert any("已办结" in t for t in new) and any("评价" in t for t in new), new
    # Each reporter's message is listed once, contact masked; the case-wide row is not.
    listed = city.call("GET", f"/api/v1/cases/{case_id}/notifications", who="command").body
    resolved = [n for n in listed["items"] if n["kind"] == "resident_resolved"]
    assert len(resolved) == 4 and all(n["status"] == "sent" for n in resolved)
    assert all(n["recipient"]["role"] == "reporter" for n in resolved)
    assert not any(p in json.dumps(listed) for p in (FIRST, SECOND, LATE, MERGED))


def test_a_warning_names_the_category_the_colour_event_does_not_carry(
    gridflow, gateway, monkeypatch
):
    use_sms(gridflow, gateway, monkeypatch)
    city = City(gridflow)
    case_id = city.report()
    # The junk pile's limit is one working day: Wednesday morning it is long overdue.
    city.clock(MONDAY_0900 + dt.timedelta(days=2, hours=1))
    deliver(gridflow)
    warnings = [
        body["text"]
        for body, _ in gateway.received
        if "预警" in body["text"] and case_id in body["text"]
    ]
    assert warnings, [b["text"] for b, _ in gateway.received]
    assert all("堆物堆料" in t for t in warnings), warnings
    assert not any("待分类" in t for t in warnings), warnings


def unsent(reason: str) -> float:
    return REGISTRY.get_sample_value("gridflow_notify_unsent_total", {"reason": reason}) or 0.0


def test_messages_recorded_with_no_channel_are_sent_once_one_is_configured_or_expire_counted(
    gridflow, gateway, monkeypatch
):
    monkeypatch.delenv(delivery.CHANNELS_ENV, raising=False)
    monkeypatch.setenv(delivery.BACKLOG_ENV, "1")
    city = City(gridflow)
    no_channel, adopted, expired = unsent("no_channel"), unsent("adopted"), unsent("expired")
    old_case = city.report(reporter={"phone": FIRST})
    city.clock(MONDAY_0900 + dt.timedelta(hours=2))
    new_case = city.report(
        reporter={"phone": SECOND},
        location={"lat": 28.02, "lon": 120.66},
        description="路边堆了很多建筑垃圾",
    )
    deliver(gridflow)
    assert gateway.received == []
    listed = city.call("GET", f"/api/v1/cases/{new_case}/notifications", who="command").body
    assert listed["items"] and all(n["status"] == "recorded" for n in listed["items"])
    assert unsent("no_channel") > no_channel  # counted, not silently lost

    use_sms(gridflow, gateway, monkeypatch)
    deliver(gridflow)
    # The newer case's messages go (its resident's and its staff's); the older are expired.
    assert len(texts_to(gateway, SECOND)) == 2
    assert texts_to(gateway, FIRST) == []
    assert not any(old_case in body["text"] for body, _ in gateway.received)
    old = city.call("GET", f"/api/v1/cases/{old_case}/notifications", who="command").body
    assert old["items"] and all(n["status"] == "expired" for n in old["items"])
    new = city.call("GET", f"/api/v1/cases/{new_case}/notifications", who="command").body
    assert all(n["status"] == "sent" for n in new["items"]), new
    assert unsent("adopted") > adopted and unsent("expired") > expired
    # Taken up once: another pass sends nothing again.
    count = len(gateway.received)
    deliver(gridflow)
    assert len(gateway.received) == count
