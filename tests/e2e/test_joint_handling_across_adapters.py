"""End to end, every Gridflow service its own process (deploy/topology.sh): one gas leak handled
jointly (协同) by three departments, each reached through its own adapter, and what happens when
one of them cannot be reached.

A gas leak (event.gas_leak) is led by the fire brigade with emergency management and housing
assisting (the Lucheng fixtures' categories.csv). The city's adapters.csv, installed through the
admin API, says:

- fire stays on AMQP (no row): its bureau's system is a plain kombu program of its own
  (tests/support/department_amqp.py) reading ``gridflow.unit.fire-330302`` as its own RabbitMQ
  user;
- emergency is reached by webhook: a department system on loopback, in a process of its own
  (tests/support/department_http.py's DepartmentDouble), which checks each push's signature and
  posts its notes back signed with the same secret;
- housing has no system: its bureau reads mail, from a real aiosmtpd server here.

The departments process runs with a short retry schedule and circuit breaker so an outage ends
in ``undeliverable`` within seconds, not hours.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction import AdapterConfig
from tests.conftest import GRIDFLOW, REPO, lucheng_files
from tests.e2e.conftest import running_topology
from tests.support.department_http import DepartmentDouble, post_status
from tests.support.email_harness import SmtpServer
from tests.support.status_back import adapters_csv

pytestmark = pytest.mark.e2e

LEAD = "fire-330302"  # 鹿城区消防救援大队: leads a gas leak
WEBHOOK_UNIT = "emergency-330302"  # 鹿城区应急管理局: assists, by webhook
MAIL_UNIT = "housing-330302"  # 鹿城区住房和城乡建设局: assists, by mail
MAILBOX = "duty@housing.lucheng.example.cn"
# people.csv: the assisting bureaus' duty people, and the lead bureau's.
EMERGENCY_DUTY, HOUSING_DUTY, FIRE_DUTY = "P00065", "P00061", "P00067"

SECRET_ENV = "GF_E2E_EMERGENCY_SECRET"
PASSWORD_ENV = "GF_E2E_FIRE_AMQP_PASSWORD"
SECRET = f"emergency-{uuid.uuid4().hex}"
# Four tries two seconds apart: an unreachable unit is given up on within seconds.
RETRY_SCHEDULE = "2,2,2"
TRIES = 4
# Long enough that deliveries are still pending when the departments process is killed.
PATIENT_SCHEDULE = ",".join(["1"] + ["2"] * 40)


def gas_leak(n: int) -> dict:
    # Points a few metres apart in Tengqiao: each report its own case, none merged.
    return {
        "channel": "hotline",
        "description": f"藤桥镇戍浦社区{n}号楼一楼闻到很重的煤气味，疑似燃气泄漏",
        "category": "event.gas_leak",
        "location": {"lat": 28.05 + n * 0.0004, "lon": 120.64 + (n % 5) * 0.0004},
    }


def _poll(fn, timeout: float = 60.0, interval: float = 0.2):
    """``fn()`` once it is truthy, else its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = fn()
    while not last and time.monotonic() < deadline:
        time.sleep(interval)  # bounded poll on an observable result
        last = fn()
    return last


# -- the departments' systems --------------------------------------------------------------------


@pytest.fixture(scope="module")
def double():
    """Emergency management's system: a webhook receiver holding the department's secret."""
    system = DepartmentDouble(SECRET)
    try:
        yield system
    finally:
        system.close()


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def topo(amqp_uri, database_url, tmp_path_factory, double, smtp):
    """The real topology with Lucheng and its adapters.csv installed."""
    extra = {
        SECRET_ENV: SECRET,
        "GRIDFLOW_DELIVERY_RETRY_SCHEDULE": RETRY_SCHEDULE,
        "GRIDFLOW_DELIVERY_BREAKER_COOL_DOWN_SECONDS": "2",
        # A push killed mid-way is taken again after this (longer than the webhook's timeouts).
        "GRIDFLOW_DELIVERY_LEASE_SECONDS": "15",
    }
    rows = [
        AdapterConfig(
            "emergency",
            "webhook",
            endpoint=double.endpoint,
            credential_ref=f"env:{SECRET_ENV}",
            options={"connect_timeout": 1.0, "read_timeout": 5.0},
        ),
        AdapterConfig(
            "housing",
            "email",
            endpoint=f"mailto:{MAILBOX}",
            options={"smtp_url": smtp.url, "timeout": 5.0},
        ),
    ]
    var_dir = tmp_path_factory.mktemp("joint")
    with running_topology(amqp_uri, database_url, var_dir, extra_env=extra) as topology:
        files = {**lucheng_files(), "adapters.csv": adapters_csv(rows)}
        status, body = topology.call("PUT", "/api/v1/admin/jurisdiction", {"files": files})
        assert status == 200, body
        yield topology


@pytest.fixture(scope="module")
def database(database_url):
    engine = sa.create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def fire_system(topo, amqp_uri, database_url, tmp_path_factory):
    """The fire bureau's own system: its RabbitMQ user made by `gridflow amqp-users sync`, then
    a kombu program of its own that accepts each case the instant it arrives and resolves it
    once the file ``resolve_when`` exists. Yields (log file, that file)."""
    password = f"pw-{uuid.uuid4().hex}"
    sync = subprocess.run(
        [
            str(GRIDFLOW),
            "amqp-users",
            "sync",
            "--database-url",
            database_url,
            "--amqp-uri",
            amqp_uri,
            "--code",
            LEAD,
            "--password-ref",
            f"env:{PASSWORD_ENV}",
        ],
        env={**os.environ, PASSWORD_ENV: password},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sync.returncode == 0, sync.stderr
    folder = tmp_path_factory.mktemp("fire")
    log, resolve_when = folder / "fire.jsonl", folder / "resolve-now"
    log.touch()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.department_amqp",
            "--amqp-uri",
            amqp_uri,
            "--unit",
            LEAD,
            "--password-env",
            PASSWORD_ENV,
            "--log",
            str(log),
            "--resolve-after",
            "0",
            "--resolve-when",
            str(resolve_when),
        ],
        cwd=REPO,
        env={**os.environ, PASSWORD_ENV: password},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        consuming = _poll(
            lambda: [e for e in _entries(log) if e["kind"] in ("consuming", "no_queue")], 90
        )
        assert consuming and consuming[0]["kind"] == "consuming", _entries(log)
        yield log, resolve_when
    finally:
        process.terminate()
        process.wait(timeout=10)
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_user", c.amqp_user(LEAD)],
            capture_output=True,
            timeout=60,
        )


# -- what each side saw ----------------------------------------------------------------------------


def _entries(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]


def _report(topo, n: int) -> str:
    status, body = topo.call("POST", "/api/v1/reports", gas_leak(n))
    assert status == 201, body
    return body["case_id"]


def _view(topo, case_id: str) -> dict:
    status, body = topo.call("GET", f"/api/v1/cases/{case_id}")
    assert status == 200, body
    return body


def _pushes_for(double, case_id: str) -> list[dict]:
    return [p for p in double.pushes() if (p.get("message") or {}).get("case_id") == case_id]


def _mails_for(smtp, case_id: str) -> list:
    return [m for m in smtp.received if m.message["X-Gridflow-Case"] == case_id]


def _timeline(topo, case_id: str, kind: str) -> list[dict]:
    return [e for e in _view(topo, case_id)["timeline"] if e["kind"] == kind]


def _deliveries(database, unit: str, case_ids: list[str]) -> list:
    with database.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT seq, delivery_id, case_id, state, attempts FROM departments_deliveries"
                " WHERE unit = :unit AND kind = 'case' AND case_id = ANY(:cases) ORDER BY seq"
            ),
            {"unit": unit, "cases": case_ids},
        ).all()


def _pending(database, unit: str) -> list:
    """Every delivery still to be pushed to ``unit``, of any case."""
    with database.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT delivery_id, state, attempts FROM departments_deliveries"
                " WHERE unit = :unit AND state = 'pending' ORDER BY seq"
            ),
            {"unit": unit},
        ).all()


def _notified(database, case_id: str) -> set[tuple[str, str]]:
    with database.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT person_id, reason FROM notify_notifications WHERE case_id = :c"),
            {"c": case_id},
        ).all()
    return {(r[0], r[1]) for r in rows}


# -- joint handling ---------------------------------------------------------------------------------


def test_a_gas_leak_is_worked_jointly_by_three_departments_each_through_its_own_adapter(
    topo, fire_system, double, smtp, database
):
    log, resolve_when = fire_system
    case_id = _report(topo, 1)

    # The lead's own system has it, marked lead, with its due time and where it is.
    received = _poll(
        lambda: [e for e in _entries(log) if e["kind"] == "received" and e["case_id"] == case_id],
        60,
    )
    assert received, f"{c.unit_queue(LEAD)} never had {case_id}: {_entries(log)}\n{topo.logs()}"
    lead = received[0]
    assert (lead["kind_of"], lead["role"]) == ("case", "lead")
    due_at = dt.datetime.fromisoformat(lead["due_at"])
    # A gas leak is due within the hour (categories.csv: 1 hour), in the city's zone.
    assert dt.timedelta(0) < due_at - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(hours=1)
    assert due_at.utcoffset() == dt.timedelta(hours=8)
    assert lead["location"]["point"] == gas_leak(1)["location"]
    assert lead["location"]["street"] and lead["location"]["grid"]

    # Emergency management's system received it, marked assisting, signed with its secret.
    [push] = _poll(lambda: _pushes_for(double, case_id), 60) or [None]
    assert push is not None, f"no push for {case_id}: {double.pushes()}\n{topo.logs()}"
    assert push["signature_ok"], push["signature_problem"]
    message = push["message"]
    assert (message["role"], message["unit"], message["lead"]) == (
        "assisting",
        WEBHOOK_UNIT,
        "fire",
    )
    assert push["idempotency_key"] == message["delivery_id"] == push["delivery_id"]
    assert message["handler"] == LEAD and message["due_at"] == lead["due_at"]

    # Housing's duty office got a Chinese mail saying it assists.
    [mail] = _poll(lambda: _mails_for(smtp, case_id), 60) or [None]
    assert mail is not None, f"no mail for {case_id}\n{topo.logs()}"
    assert mail.rcpt_tos == [MAILBOX]
    assert mail.message["X-Gridflow-Role"] == "assisting"
    assert "请协办" in mail.message["Subject"] and "燃气泄漏" in mail.message["Subject"]
    assert "协办" in mail.text() and case_id in mail.text()

    # The lead accepted the instant it arrived, over AMQP, and was not refused for it.
    assert _poll(lambda: _view(topo, case_id)["status"] == v.ACCEPTED, 60), _view(topo, case_id)

    # Emergency management adds a note through its own door, signed with its secret.
    note = "已派员到场检测，燃气浓度正常后撤离"
    answer = post_status(
        topo.base_url,
        "emergency",
        {
            "case_id": case_id,
            "status": v.NOTE,
            "note": note,
            "unit": WEBHOOK_UNIT,
            "message_id": f"{case_id}-note-1",
        },
        SECRET,
    )
    assert answer.status_code == 202, answer.text
    notes = _timeline(topo, case_id, v.NOTE)
    assert [(e.get("sender"), e.get("note")) for e in notes] == [(WEBHOOK_UNIT, note)]
    # A note is not the lead's status: the case is still accepted.
    assert _view(topo, case_id)["status"] == v.ACCEPTED

    # The lead's system resolves it; the case is resolved.
    resolve_when.touch()
    assert _poll(lambda: _view(topo, case_id)["status"] == v.RESOLVED, 60), (
        f"{_view(topo, case_id)}\n{_entries(log)}"
    )
    replies = [e for e in _entries(log) if e["kind"] == "reply" and e.get("case_id") == case_id]
    assert replies and all(r["outcome"] == "accepted" for r in replies), replies
    kinds = [(e["kind"], e.get("sender")) for e in _view(topo, case_id)["timeline"]]
    assert (v.ACCEPTED, LEAD) in kinds and (v.RESOLVED, LEAD) in kinds

    # notify told the assisting bureaus' duty people (and the lead's, as for any dispatch).
    wanted = {
        (EMERGENCY_DUTY, "assisting"),
        (HOUSING_DUTY, "assisting"),
        (FIRE_DUTY, "dispatched"),
    }
    got = _poll(lambda: (found := _notified(database, case_id)) >= wanted and found, 30)
    assert got, _notified(database, case_id)


# -- outages ------------------------------------------------------------------------------------------


def test_an_unreachable_department_is_given_up_on_in_the_timeline_and_holds_up_nobody(
    topo, fire_system, double, smtp, database
):
    log, _ = fire_system
    double.go_down()
    try:
        case_id = _report(topo, 2)
        # The other units get it while emergency management's system is being tried again.
        mail = _poll(lambda: _mails_for(smtp, case_id), 60)
        mail_seen = time.time()
        assert mail, f"housing never got {case_id}\n{topo.logs()}"
        assert _poll(
            lambda: [
                e for e in _entries(log) if e["kind"] == "received" and e["case_id"] == case_id
            ],
            30,
        )
        # After the last try, the command center sees it on the case's timeline.
        entries = _poll(lambda: _timeline(topo, case_id, v.ENTRY_UNDELIVERABLE), 90)
        assert entries, f"{_view(topo, case_id)}\n{topo.logs()}"
        [entry] = entries
        assert (entry["unit"], entry["role"], entry["adapter"], entry["attempts"]) == (
            WEBHOOK_UNIT,
            "assisting",
            "webhook",
            TRIES,
        )
        assert entry["reason"], entry
        given_up = dt.datetime.fromisoformat(entry["at"]).timestamp()
        assert mail_seen < given_up, "housing's mail waited for emergency's retries"
        # The outage tells the command center's duty people (notify), not only the timeline.
        assert _poll(
            lambda: any(r == "undeliverable" for _, r in _notified(database, case_id)), 30
        ), _notified(database, case_id)
        # The case itself goes on: its lead still holds it.
        assert _view(topo, case_id)["handler"] == LEAD
    finally:
        double.come_back()

    # Back up: the next case reaches it (the circuit, opened by the outage, lets it through).
    later = _report(topo, 3)
    pushes = _poll(lambda: _pushes_for(double, later), 60)
    assert pushes, f"no push for {later} after the system came back\n{topo.logs()}"
    assert pushes[0]["signature_ok"] and pushes[0]["message"]["role"] == "assisting"


def test_a_departments_restart_during_an_outage_loses_no_pending_delivery(
    topo, double, smtp, database
):
    # What earlier tests gave the unit has gone out first: a push the double took but whose
    # outcome the kill below cut off would be the unit's head again, and rightly keep the
    # cases of this test behind it while the double is down.
    assert _poll(lambda: not _pending(database, WEBHOOK_UNIT), 60), _pending(database, WEBHOOK_UNIT)
    # A schedule long enough that the deliveries below are still being tried when the
    # departments process is killed.
    topo.sigkill("departments")
    topo.env["GRIDFLOW_DELIVERY_RETRY_SCHEDULE"] = PATIENT_SCHEDULE
    topo.script("up")
    double.go_down()
    try:
        case_ids: list[str] = []
        for n in range(4, 8):
            case_id = _report(topo, n)
            case_ids.append(case_id)
            # Recorded for emergency management before the next report is made: the order in
            # which the unit must get them.
            assert _poll(lambda one=case_id: _deliveries(database, WEBHOOK_UNIT, [one]), 60), (
                f"no delivery recorded for {case_id}\n{topo.logs()}"
            )
        rows = _deliveries(database, WEBHOOK_UNIT, case_ids)
        assert [r.case_id for r in rows] == case_ids
        # The head has been tried and failed: the worker is in the middle of it.
        assert _poll(lambda: _deliveries(database, WEBHOOK_UNIT, case_ids)[0].attempts >= 1, 60)
        topo.sigkill("departments")
        pending = _deliveries(database, WEBHOOK_UNIT, case_ids)
        assert [r.state for r in pending] == ["pending"] * len(case_ids), pending
    finally:
        double.come_back()
    topo.script("up")

    def arrived() -> list[str]:
        seen: list[str] = []
        for push in double.pushes():
            case_id = (push.get("message") or {}).get("case_id")
            if case_id in case_ids and case_id not in seen:
                seen.append(case_id)
        return seen

    got = _poll(lambda: len(arrived()) == len(case_ids), 120)
    assert got, f"arrived: {arrived()} of {case_ids}\n{topo.logs()}"
    # Each arrived, first in the order they were given; any copy carries the same key.
    assert arrived() == case_ids
    for push in double.pushes():
        if (push.get("message") or {}).get("case_id") in case_ids:
            assert push["signature_ok"], push["signature_problem"]
            assert push["idempotency_key"] == push["message"]["delivery_id"]
    assert _poll(
        lambda: (
            [r.state for r in _deliveries(database, WEBHOOK_UNIT, case_ids)]
            == ["delivered"] * len(case_ids)
        ),
        30,
    ), _deliveries(database, WEBHOOK_UNIT, case_ids)
    for case_id in case_ids:
        assert not _timeline(topo, case_id, v.ENTRY_UNDELIVERABLE)
