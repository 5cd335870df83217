"""Status back over AMQP against the real RabbitMQ and PostgreSQL: intake in a nameko container,
department systems as plain kombu programs connecting as their own RabbitMQ users, made by
`gridflow amqp-users sync` (the real command, in the test's vhost).

What an attacker would try is here too: a forged ``user_id`` (the broker refuses it), reading
another unit's queue (ACCESS_REFUSED), a message with no identity, one for another unit's case,
a body that is not JSON, the same message twice.

Run under `nameko test`, as `make test` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import kombu
import pytest
import sqlalchemy as sa
from amqp.exceptions import AccessRefused, PreconditionFailed
from nameko.testing.services import entrypoint_waiter

from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.access import HOLDER_KEY
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models
from gridflow_intake.identity import IdentityStore
from tests.conftest import GRIDFLOW, free_port
from tests.integration.support import dispatched_payload, publish
from tests.support.department_amqp import DepartmentSystem

pytestmark = pytest.mark.integration

HOLDER = "urban_management-330302001"  # Wuma's urban-management squad
OTHER = "police-330302001"  # Wuma's police station
DEPARTMENT = "urban_management"
CODES = (HOLDER, OTHER, DEPARTMENT)
PASSWORD_ENV = "GF_TEST_AMQP_{CODE}"


def _password(code: str) -> str:
    return os.environ[PASSWORD_ENV.replace("{CODE}", code.replace("-", "_").upper())]


@pytest.fixture(scope="module")
def department_users(amqp_uri, database_url, engine):
    """The three systems' RabbitMQ users, made by `gridflow amqp-users sync` with passwords
    kept in the environment, and the queues they read declared; deleted afterwards."""
    env = dict(os.environ)
    for code in CODES:
        name = PASSWORD_ENV.replace("{CODE}", code.replace("-", "_").upper())
        os.environ[name] = env[name] = f"pw-{uuid.uuid4().hex}"
    args = [str(GRIDFLOW), "amqp-users", "sync", "--database-url", database_url]
    args += ["--amqp-uri", amqp_uri, "--password-ref", f"env:{PASSWORD_ENV}", "--declare-queues"]
    for code in CODES:
        args += ["--code", code]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{c.amqp_user(HOLDER)}" in done.stdout
    yield
    for code in CODES:
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_user", c.amqp_user(code)], capture_output=True, timeout=60
        )


@pytest.fixture
def intake(container_factory, config, department_users):
    """Intake, and routing beside it: intake asks routing who holds a case when its own view
    does not show the sender holding it."""
    from gridflow_intake.service import IntakeService
    from gridflow_routing.service import RoutingService

    routing = container_factory(
        RoutingService, {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}
    )
    routing.start()
    container = container_factory(IntakeService, config)
    container.start()
    return container


@pytest.fixture
def runtime(engine):
    return ServiceRuntime(
        c.INTAKE, engine, RealClock(), JurisdictionStore(engine), h.DEFINITION.tables()
    )


@pytest.fixture
def case_id(intake, runtime, broker, engine):
    """A case of its own, held by Wuma's urban-management squad (dispatched, as intake sees)."""
    return _dispatched_case(runtime, broker, engine)


def _dispatched_case(runtime, broker, engine) -> str:
    with runtime.work() as work:
        status, answer = h.register_report(
            work,
            {
                "channel": "hotline",
                "external_id": f"amqp-{uuid.uuid4().hex[:8]}",
                "description": f"五马街道井盖缺失 {uuid.uuid4().hex[:6]}",
                "location": {"grid_code": "330302001001001"},
            },
        )
    assert status == 201, answer
    case = answer["case_id"]
    publish(broker, c.DEPARTMENTS, c.CASE_DISPATCHED, dispatched_payload(engine, case))
    # Polled, not the first on_case_dispatched: the session's vhost may still hold another
    # test's announcements, taken before this one.
    deadline = time.monotonic() + 30
    while _status(engine, case) != v.DISPATCHED and time.monotonic() < deadline:
        time.sleep(0.1)  # bounded by the deadline above
    assert _status(engine, case) == v.DISPATCHED
    return case


@pytest.fixture
def holder(amqp_uri, department_users):
    system = DepartmentSystem(amqp_uri, HOLDER, _password(HOLDER))
    yield system
    system.close()


@pytest.fixture
def other(amqp_uri, department_users):
    system = DepartmentSystem(amqp_uri, OTHER, _password(OTHER))
    yield system
    system.close()


def _status(engine, case_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(models.cases.c.status).where(models.cases.c.case_id == case_id)
        ).scalar_one()


def _timeline(engine, case_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(models.timeline.c.kind)
                .where(models.timeline.c.case_id == case_id)
                .order_by(models.timeline.c.id)
            ).scalars()
        )


def test_a_unit_reports_on_its_case_and_is_answered_accepted_on_its_reply_queue(
    intake, case_id, holder, engine
):
    sent = holder.send({"case_id": case_id, "status": "accepted", "note": "已签收"})
    reply = holder.reply_to(sent)
    assert reply["outcome"] == "accepted", reply
    assert (reply["case_id"], reply["status"], reply["errors"]) == (case_id, v.ACCEPTED, {})
    assert _status(engine, case_id) == v.ACCEPTED
    with engine.connect() as conn:
        actors = conn.execute(
            sa.select(models.audit.c.actor).where(
                models.audit.c.action == "amqp_status_message", models.audit.c.outcome == "ok"
            )
        ).scalars()
        assert f"department:{HOLDER}" in set(actors)


def test_a_status_for_another_units_case_is_refused_and_changes_nothing(
    intake, case_id, other, engine
):
    sent = other.send({"case_id": case_id, "status": "accepted"})
    reply = other.reply_to(sent)
    assert reply["outcome"] == "refused"
    assert reply["errors"] == {"case_id": [f"no case {case_id!r}"]}
    assert _status(engine, case_id) == v.DISPATCHED


def test_a_department_answers_for_its_units_and_not_for_another_departments(
    intake, case_id, amqp_uri, engine
):
    department = DepartmentSystem(amqp_uri, DEPARTMENT, _password(DEPARTMENT))
    try:
        refused = department.reply_to(
            department.send({"case_id": case_id, "status": "accepted", "unit": OTHER})
        )
        assert refused["outcome"] == "refused" and "unit" in refused["errors"]
        taken = department.reply_to(
            department.send({"case_id": case_id, "status": "accepted", "unit": HOLDER})
        )
        assert taken["outcome"] == "accepted", taken
    finally:
        department.close()
    assert _status(engine, case_id) == v.ACCEPTED


def test_a_forged_user_id_is_refused_by_the_broker_and_nothing_is_applied(
    intake, case_id, holder, other, engine
):
    with pytest.raises(PreconditionFailed):
        other.send({"case_id": case_id, "status": "resolved"}, user_id=c.amqp_user(HOLDER))
    # A message sent after it is answered: had the forged one reached intake, it came first.
    fence = holder.reply_to(holder.send({"case_id": case_id, "status": "accepted"}))
    assert fence["outcome"] == "accepted"
    assert _status(engine, case_id) == v.ACCEPTED
    assert v.RESOLVED not in _timeline(engine, case_id)


def test_reading_another_units_queue_is_refused_by_the_broker(intake, holder):
    with pytest.raises(AccessRefused):
        holder.take(c.unit_queue(OTHER), timeout=1)
    with pytest.raises(AccessRefused):
        holder.take(c.reply_queue(OTHER), timeout=1)


def test_writing_anywhere_but_the_status_exchange_is_refused_by_the_broker(intake, holder):
    channel = holder.connection.channel()
    producer = kombu.Producer(channel)
    with pytest.raises(AccessRefused):
        producer.publish(
            b"{}",
            exchange=kombu.Exchange(c.CASE_EXCHANGE, type="topic", durable=True),
            routing_key=f"{DEPARTMENT}.{HOLDER}",
            declare=[],
            retry=False,
        )


def test_a_message_with_no_identity_is_dropped_and_nothing_is_applied(
    intake, case_id, holder, engine
):
    holder.send({"case_id": case_id, "status": "resolved"}, user_id=None)
    fence = holder.reply_to(holder.send({"case_id": case_id, "status": "accepted"}))
    assert fence["outcome"] == "accepted"
    # The message without an identity got no answer (there was no one to answer) ...
    assert all(r["correlation_id"] == fence["correlation_id"] for r in holder.kept)
    # ... and did nothing.
    assert v.RESOLVED not in _timeline(engine, case_id)
    with engine.connect() as conn:
        dropped = conn.execute(
            sa.select(sa.func.count()).where(
                models.audit.c.action == "amqp_status_message",
                models.audit.c.outcome == "refused",
                models.audit.c.actor == "anonymous",
            )
        ).scalar_one()
    assert dropped >= 1


def test_a_credential_in_the_header_stands_for_its_unit(intake, case_id, amqp_uri, broker, engine):
    """A system that cannot set user_id (here: publishing through Gridflow's own user) proves
    who it is with its Gridflow credential."""
    _, token = IdentityStore(engine).issue(HOLDER_KEY, label="wuma squad", holder=HOLDER)
    status = kombu.Exchange(c.STATUS_EXCHANGE, type="topic", durable=True)
    with entrypoint_waiter(intake, "on_status_message"), kombu.Producer(broker) as producer:
        producer.publish(
            json.dumps({"case_id": case_id, "status": "in_progress"}),
            exchange=status,
            routing_key=HOLDER,
            headers={"gridflow-credential": token},
            content_type="application/json",
            declare=[status],
        )
    assert _status(engine, case_id) == v.IN_PROGRESS


def test_a_malformed_message_from_a_known_sender_is_refused_naming_the_problem(
    intake, case_id, holder, engine
):
    not_json = holder.reply_to(holder.send(b"{case_id: oops", content_type="text/plain"))
    assert not_json["outcome"] == "refused"
    assert "not valid JSON" in not_json["errors"]["_body"][0]
    no_case = holder.reply_to(holder.send({"status": "accepted"}))
    assert no_case["outcome"] == "refused" and "case_id" in no_case["errors"]
    nul = holder.reply_to(holder.send({"case_id": case_id, "status": "acc\u0000epted"}))
    assert nul["outcome"] == "refused" and "NUL" in nul["errors"]["status"][0]
    assert _status(engine, case_id) == v.DISPATCHED


def test_the_same_message_id_twice_gets_the_same_answer_and_one_timeline_entry(
    intake, case_id, holder, engine
):
    message = {"case_id": case_id, "status": "accepted", "message_id": "wuma-0001"}
    first = holder.reply_to(holder.send(message))
    again = holder.reply_to(holder.send(message))
    assert first["outcome"] == again["outcome"] == "accepted"
    assert {k: v_ for k, v_ in first.items() if k != "correlation_id"} == {
        k: v_ for k, v_ in again.items() if k != "correlation_id"
    }
    assert _timeline(engine, case_id).count(v.ACCEPTED) == 1


def test_an_unknown_word_is_accepted_as_not_recognised_and_kept(intake, case_id, holder, engine):
    reply = holder.reply_to(holder.send({"case_id": case_id, "status": "已派人", "note": "明早"}))
    assert (reply["outcome"], reply["status"], reply["recognised"]) == ("accepted", None, False)
    assert _status(engine, case_id) == v.DISPATCHED
    assert _timeline(engine, case_id)[-1] == "status_unrecognised"


def test_without_the_management_api_rabbitmqctl_makes_the_same_users(
    amqp_uri, database_url, engine
):
    code = "fire-330302"
    password = f"pw-{uuid.uuid4().hex}"
    done = subprocess.run(
        [
            str(GRIDFLOW),
            "amqp-users",
            "sync",
            "--database-url",
            database_url,
            "--amqp-uri",
            amqp_uri,
            "--code",
            code,
            "--password-ref",
            "env:GF_TEST_FIRE_PASSWORD",
            # Nothing listens there: the management API is "not enabled".
            "--management-url",
            f"http://127.0.0.1:{free_port()}",
        ],
        env={**os.environ, "GF_TEST_FIRE_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert done.returncode == 0, done.stderr
        system = DepartmentSystem(amqp_uri, code, password)
        try:
            # Its reply queue was declared by the sync and is its to read; another's is not.
            assert system.take(c.reply_queue(code), timeout=0.2) == []
            with pytest.raises(AccessRefused):
                system.take(c.unit_queue(HOLDER), timeout=1)
        finally:
            system.close()
    finally:
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_user", c.amqp_user(code)], capture_output=True, timeout=60
        )


def test_a_units_messages_sent_back_to_back_are_taken_in_the_order_it_sent_them(
    intake, runtime, broker, holder, engine
):
    """Three statuses per case, for several cases, published without waiting for a reply: each
    is accepted (none refused for arriving before the one sent ahead of it) and each case's
    timeline holds them in the order sent, though the intake container runs several workers."""
    cases = [_dispatched_case(runtime, broker, engine) for _ in range(4)]
    words = (v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED)
    sent = [
        (case, word, holder.send({"case_id": case, "status": word}))
        for case in cases
        for word in words
    ]
    for case, word, correlation_id in sent:
        reply = holder.reply_to(correlation_id, timeout=30)
        assert (reply["outcome"], reply["case_id"], reply["status"]) == ("accepted", case, word), (
            reply
        )
    for case in cases:
        assert _status(engine, case) == v.RESOLVED
        taken = [kind for kind in _timeline(engine, case) if kind in words]
        assert taken == list(words)
