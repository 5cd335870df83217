"""Notify as a nameko service on RabbitMQ and PostgreSQL, delivering to real HTTP servers on
loopback: two replicas racing on the same messages deliver each exactly once; a failing channel
is tried again with a growing backoff while another channel delivers; quiet hours hold what is
not urgent and let an escalation through; and a resident's message goes through intake's
``reporter_contacts`` RPC (service to service, as in the real topology) with a progress link
that opens.

Run under ``nameko test`` (eventlet monkey-patched, psycopg2 green).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_notify import delivery
from gridflow_notify.models import attempts, notifications
from tests.conftest import free_port, lucheng_files
from tests.integration.support import CST, jurisdiction_version, publish
from tests.support.notify_receivers import HttpReceiver, Reply

pytestmark = pytest.mark.integration

SQUAD = "urban_management-330302001"
STATION_DUTY = "P00081"
BUREAU = "urban_management-330302"  # the district bureau: its duty person is told by SMS  # 五马执法中队's duty person (people.csv)
# Far from the other modules' places, so a report here joins none of their cases.
PLACE = {"lat": 28.061, "lon": 120.642}


@pytest.fixture
def sms():
    gateway = HttpReceiver(Reply(200, {"id": "accepted"}))
    yield gateway
    gateway.close()


def own_config(config: dict) -> dict:
    """A replica's config: the same broker and database, an HTTP port of its own."""
    return {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}


def colour(case_id: str, colour_: str, version: int, holder: str = SQUAD) -> dict:
    actions = {v.YELLOW: v.ACTION_REMIND, v.ORANGE: v.ACTION_SUPERVISE, v.RED: v.ACTION_ESCALATE}
    return {
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "colour": colour_,
        "action": actions[colour_],
        "fraction": 1.0,
        "holder": holder,
        "jurisdiction_version": version,
    }


def rows(engine, case_ids: list[str]) -> list:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(notifications).where(notifications.c.case_id.in_(case_ids))
        ).all()


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)  # bounded: by the deadline above; the tick runs once a second
    return predicate()


@pytest.fixture
def city_with(engine):
    """Install Lucheng with extra files for one test; Lucheng as it was afterwards."""
    store = JurisdictionStore(engine)

    def install(files: dict[str, str]) -> int:
        return store.install({**lucheng_files(), **files})

    yield install
    store.install(lucheng_files())


def test_two_replicas_racing_deliver_every_message_exactly_once(
    container_factory, config, broker, engine, sms, monkeypatch
):
    from gridflow_notify.service import NotifyService

    monkeypatch.setenv(delivery.CHANNELS_ENV, json.dumps({"sms": {"url": sms.url("/send")}}))
    replicas = [container_factory(NotifyService, own_config(config)) for _ in range(2)]
    for replica in replicas:
        replica.start()
    version = jurisdiction_version(engine)
    cases = [f"RX-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    for case_id in cases:
        publish(broker, c.SLA, c.CASE_COLOUR_CHANGED, colour(case_id, v.RED, version))
    # The same warnings announced again (a second SLA replica, a redelivery): nothing more.
    for case_id in cases[:10]:
        publish(broker, c.SLA, c.CASE_COLOUR_CHANGED, colour(case_id, v.RED, version))

    def settled() -> bool:
        found = rows(engine, cases)
        return len({r.case_id for r in found}) == len(cases) and all(
            r.status == delivery.SENT for r in found
        )

    assert wait_for(settled, 60), Counter(r.status for r in rows(engine, cases))
    keys = [r.message_key for r in rows(engine, cases)]
    assert len(keys) >= len(cases) and len(set(keys)) == len(keys)
    received = Counter(
        p.headers["idempotency-key"]
        for p in sms.taken()
        if p.json()["message_id"].split("|")[1] in cases
    )
    # Every message once at the gateway: none twice, none missing.
    assert received == Counter(keys)
    # Each row tried once, recorded once.
    with engine.connect() as conn:
        tries = conn.execute(
            sa.select(attempts.c.notification_id, sa.func.count())
            .where(attempts.c.notification_id.in_([r.id for r in rows(engine, cases)]))
            .group_by(attempts.c.notification_id)
        ).all()
    assert {n for _, n in tries} == {1}


def test_a_failing_channel_is_retried_with_backoff_while_another_delivers(
    container_factory, config, broker, engine, sms, city_with, monkeypatch
):
    from gridflow_notify.service import NotifyService

    # The squad's duty person is told by the city's own system (webhook); the bureau's by SMS.
    # No quiet hours: this is about retries, at whatever hour the test runs.
    version = city_with(
        {
            "notify.csv": f"person,channels\n{STATION_DUTY},webhook\n",
            "settings.csv": "key,value\nquiet_hours,none\n",
        }
    )
    hook = HttpReceiver(Reply(503, None))
    try:
        monkeypatch.setenv("NOTIFY_HOOK_KEY", "hook-key-1")
        monkeypatch.setenv(
            delivery.CHANNELS_ENV,
            json.dumps(
                {
                    "sms": {"url": sms.url("/send")},
                    "webhook": {"url": hook.url("/hook"), "secret_ref": "env:NOTIFY_HOOK_KEY"},
                }
            ),
        )
        monkeypatch.setenv(delivery.BACKOFF_ENV, "0.5,4")
        container = container_factory(NotifyService, own_config(config))
        container.start()
        case_id, other = f"RF-{uuid.uuid4().hex[:8]}", f"RS-{uuid.uuid4().hex[:8]}"
        publish(broker, c.SLA, c.CASE_COLOUR_CHANGED, colour(case_id, v.ORANGE, version))
        publish(broker, c.SLA, c.CASE_COLOUR_CHANGED, colour(other, v.ORANGE, version, BUREAU))

        def hooked():
            return next((r for r in rows(engine, [case_id]) if r.channel == "webhook"), None)

        def tries() -> list:
            row = hooked()
            if row is None:
                return []
            with engine.connect() as conn:
                return conn.execute(
                    sa.select(attempts.c.at, attempts.c.outcome)
                    .where(attempts.c.notification_id == row.id)
                    .order_by(attempts.c.id)
                ).all()

        # The others are told by SMS while the webhook keeps failing.
        assert wait_for(lambda: len(tries()) >= 3, 30), (tries(), rows(engine, [case_id]))
        others = rows(engine, [other])
        assert others and all(r.status == delivery.SENT for r in others), others
        assert any(other in p.json()["text"] for p in sms.taken())
        assert hooked().status == delivery.PENDING
        # Each wait at least the backoff's: 0.5 s, then 1 s, ...
        at = [t.at for t in tries()]
        gaps = [(b - a).total_seconds() for a, b in zip(at, at[1:], strict=False)]
        assert gaps[0] >= 0.5 and gaps[1] >= 1.0, gaps
        assert all(t.outcome == delivery.OUTCOME_RETRY for t in tries()), tries()
        # The city's system comes back: the message goes, once.
        hook.default = Reply(200, {"ok": True})
        assert wait_for(lambda: hooked().status == delivery.SENT, 30), tries()
        taken = [p for p in hook.taken() if p.json()["case_id"] == case_id]
        assert len(taken) == 1 and "橙色预警" in taken[0].json()["text"]
        # The person by name, never a contact: the receiver is the city's system.
        assert taken[0].json()["recipient"] == "郝琳雪"
        assert "13866000081" not in taken[0].body.decode()
        assert len(hook.failed) >= 3
    finally:
        hook.close()


def test_quiet_hours_hold_a_yellow_warning_and_let_an_escalation_through(
    container_factory, config, broker, engine, sms, city_with, monkeypatch
):
    from gridflow_notify.service import NotifyService

    now = dt.datetime.now(CST)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    version = city_with({"settings.csv": f"key,value\nquiet_hours,{start:%H:%M}-{end:%H:%M}\n"})
    monkeypatch.setenv(delivery.CHANNELS_ENV, json.dumps({"sms": {"url": sms.url("/send")}}))
    container = container_factory(NotifyService, own_config(config))
    container.start()
    quiet, urgent = f"RQ-{uuid.uuid4().hex[:8]}", f"RU-{uuid.uuid4().hex[:8]}"
    publish(broker, c.SLA, c.CASE_COLOUR_CHANGED, colour(quiet, v.YELLOW, version))
    publish(broker, c.SLA, c.CASE_COLOUR_CHANGED, colour(urgent, v.RED, version))

    def escalated() -> bool:
        found = rows(engine, [urgent])
        return bool(found) and all(r.status == delivery.SENT for r in found)

    assert wait_for(escalated, 30), rows(engine, [urgent])
    assert wait_for(lambda: bool(rows(engine, [quiet])), 10)
    # The pass that sent the escalation found the yellow warning not yet due: held, untried.
    held = rows(engine, [quiet])
    assert all(r.status == delivery.PENDING and r.attempts == 0 for r in held), held
    morning = end.replace(second=0, microsecond=0)
    assert all(r.not_before == morning for r in held), [r.not_before for r in held]
    assert not any(quiet in p.json()["text"] for p in sms.taken())
    assert any(urgent in p.json()["text"] for p in sms.taken())


def test_a_resident_hears_through_intakes_reporter_contacts_rpc_with_a_link_that_opens(
    container_factory, config, engine, sms, city_with, monkeypatch
):
    from gridflow_intake.service import IntakeService
    from gridflow_notify.service import NotifyService

    city_with({"settings.csv": "key,value\nquiet_hours,none\n"})  # whatever the hour

    monkeypatch.setenv(delivery.CHANNELS_ENV, json.dumps({"sms": {"url": sms.url("/send")}}))
    notify = container_factory(NotifyService, own_config(config))
    notify.start()
    intake_config = own_config(config)
    intake = container_factory(IntakeService, intake_config)
    intake.start()
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    answer = httpx.post(
        f"http://{intake_config['WEB_SERVER_ADDRESS']}/api/v1/reports",
        json={
            "channel": "web",
            "description": "小区门口的井盖不见了，晚上很危险",
            "category": "component.manhole_cover",
            "location": PLACE,
            "reporter": {"name": "赵先生", "phone": phone},
        },
        timeout=10,
    )
    assert answer.status_code in (200, 201), answer.text
    case_id = answer.json()["case_id"]

    def to_resident() -> list:
        return [p.json() for p in sms.taken() if p.json()["to"] == phone]

    assert wait_for(lambda: bool(to_resident()), 30), rows(engine, [case_id])
    (message,) = to_resident()
    assert "已立案" in message["text"] and case_id in message["text"]
    assert "井盖" in message["text"]  # the category, as intake knows it
    link = next(w for w in message["text"].split() if "/api/v1/progress/" in w)
    path = link[link.index("/api/v1/progress/") :].rstrip("。，")
    page = httpx.get(f"http://{intake_config['WEB_SERVER_ADDRESS']}{path}", timeout=10)
    assert page.status_code == 200 and page.json()["case_id"] == case_id
    # The resident's row carries the contact masked, never whole.
    (row,) = [r for r in rows(engine, [case_id]) if r.role == delivery.REPORTER and r.text]
    assert phone not in row.address and row.status == delivery.SENT
