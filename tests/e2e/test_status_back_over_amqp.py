"""End to end: a department's own system, a separate plain-kombu process (not nameko) connecting
as its own RabbitMQ user (made by `gridflow amqp-users sync`), consumes its unit's queue
``gridflow.unit.<unit>``, answers ``accepted`` over the status exchange the instant a case
arrives and ``resolved`` a moment later, and reads Gridflow's answers on its reply queue. Every
Gridflow service is its own process (deploy/topology.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from tests.conftest import GRIDFLOW, REPO
from tests.e2e.test_real_topology import _poll
from tests.support.department_amqp import DepartmentSystem

pytestmark = pytest.mark.e2e

UNIT = "urban_management-330302104"  # Tengqiao's urban-management squad
PASSWORD_ENV = "GF_E2E_AMQP_PASSWORD"
# A streetlight out in Tengqiao: held by the squad above.
STREETLIGHT = {
    "channel": "hotline",
    "description": "藤桥戍浦社区门口的路灯不亮",
    "category": "component.streetlight",
    "location": {"lat": 28.05, "lon": 120.64},
}


@pytest.fixture(scope="module")
def squad_password(topology, amqp_uri, database_url):
    """The squad's RabbitMQ user, made by the real command in the topology's vhost; deleted
    afterwards."""
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
            UNIT,
            "--password-ref",
            f"env:{PASSWORD_ENV}",
        ],
        env={**os.environ, PASSWORD_ENV: password},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sync.returncode == 0, sync.stderr
    yield password
    subprocess.run(
        ["rabbitmqctl", "-q", "delete_user", c.amqp_user(UNIT)], capture_output=True, timeout=60
    )


@pytest.fixture
def department_system(squad_password, amqp_uri, tmp_path):
    """The squad's own system, a process of its own, running."""
    log = tmp_path / "department.jsonl"
    log.touch()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.department_amqp",
            "--amqp-uri",
            amqp_uri,
            "--unit",
            UNIT,
            "--password-env",
            PASSWORD_ENV,
            "--log",
            str(log),
            "--resolve-after",
            "1",
        ],
        cwd=REPO,
        env={**os.environ, PASSWORD_ENV: squad_password},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield log, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_status_message_reaches_intakes_own_process_and_is_answered_on_the_reply_queue(
    topology, squad_password, amqp_uri
):
    """The status exchange, intake's consumer, its outbox and relay, the reply queue: each
    service its own process, the unit's system on its own RabbitMQ user."""
    status, body = topology.call("POST", "/api/v1/reports", STREETLIGHT)
    assert status == 201, body
    case_id = body["case_id"]
    held = _poll(lambda: topology.call("GET", f"/api/v1/cases/{case_id}")[1].get("handler"), 30)
    assert held == UNIT, topology.logs()
    system = DepartmentSystem(amqp_uri, UNIT, squad_password)
    try:
        reply = system.reply_to(
            system.send({"case_id": case_id, "status": "accepted", "message_id": "e2e-1"}), 30
        )
        refused = system.reply_to(
            system.send({"case_id": "GF-20260105-NOSUCHCASE", "status": "accepted"}), 30
        )
    finally:
        system.close()
    assert (reply["outcome"], reply["status"], reply["message_id"]) == (
        "accepted",
        v.ACCEPTED,
        "e2e-1",
    )
    assert refused["outcome"] == "refused" and "case_id" in refused["errors"]
    assert topology.call("GET", f"/api/v1/cases/{case_id}")[1]["status"] == v.ACCEPTED


def _entries(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]


def test_a_units_own_system_accepts_at_once_and_resolves_over_amqp(topology, department_system):
    log, process = department_system
    consuming = _poll(
        lambda: [e for e in _entries(log) if e["kind"] in ("consuming", "no_queue")], 90
    )
    assert consuming and consuming[0]["kind"] == "consuming", (
        f"the department system cannot consume {c.unit_queue(UNIT)}: {_entries(log)}"
    )
    status, body = topology.call(
        "POST", "/api/v1/reports", {**STREETLIGHT, "location": {"lat": 28.052, "lon": 120.642}}
    )
    assert status == 201, body
    case_id = body["case_id"]

    received = _poll(
        lambda: [e for e in _entries(log) if e["kind"] == "received" and e["case_id"] == case_id],
        30,
    )
    assert received, (
        f"the case never reached {c.unit_queue(UNIT)}: {_entries(log)}\n{topology.logs()}"
    )

    def replies() -> dict[str, dict]:
        # This case's messages only: the same system answers the module's other cases too.
        sent = {
            e["correlation_id"]: e["status"]
            for e in _entries(log)
            if e["kind"] == "sent" and e["case_id"] == case_id
        }
        return {
            sent[e["correlation_id"]]: e
            for e in _entries(log)
            if e["kind"] == "reply" and e.get("correlation_id") in sent
        }

    answered = _poll(lambda: (r := replies()) and len(r) == 2 and r, 30)
    assert answered, f"replies: {replies()}\n{_entries(log)}\n{topology.logs()}"
    # Answered the instant it arrived, and never refused for being fast.
    assert answered[v.ACCEPTED]["outcome"] == "accepted", answered
    assert answered[v.ACCEPTED]["status"] == v.ACCEPTED
    assert answered[v.RESOLVED]["outcome"] == "accepted", answered
    assert answered[v.RESOLVED]["message_id"] == f"{case_id}-resolved"

    view = topology.call("GET", f"/api/v1/cases/{case_id}")[1]
    assert view["status"] == v.RESOLVED, view
    kinds = [(e["kind"], e.get("sender")) for e in view["timeline"]]
    assert (v.ACCEPTED, UNIT) in kinds and (v.RESOLVED, UNIT) in kinds
    assert process.poll() is None, process.stdout.read() if process.stdout else ""
