"""A status message that arrives while intake's database is out of reach is not lost: intake
hands it back to the broker unacknowledged, and takes it (and answers it) once the database is
back. On a PostgreSQL database of this test's own, closed to every connection
(``ALLOW_CONNECTIONS false``, backends terminated), and the real RabbitMQ.

Run under `nameko test`, as `make test` does.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import sqlalchemy as sa
from nameko.testing.services import entrypoint_waiter
from sqlalchemy.engine import make_url

from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common import nameko_support as keys
from gridflow_common.clock import RealClock
from gridflow_common.domain import vocabulary as v
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.nameko_support import RequeueLater
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models
from tests.conftest import GRIDFLOW, free_port, fresh_database, lucheng_files
from tests.integration.support import dispatched_payload, publish
from tests.support.department_amqp import DepartmentSystem

pytestmark = pytest.mark.integration

HOLDER = "urban_management-330302001"
PASSWORD_ENV = "GF_TEST_OUTAGE_AMQP_PASSWORD"


@pytest.fixture
def own_database(database_server_url):
    with fresh_database(database_server_url) as url:
        engine = sa.create_engine(url)
        bootstrap.upgrade_all(engine)
        JurisdictionStore(engine).install(lucheng_files())
        parsed = make_url(url)
        admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            yield url, engine, admin, parsed.database
        finally:
            _reopen(admin, parsed.database)
            engine.dispose()
            admin.dispose()


def _close(admin, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )


def _reopen(admin, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))


@pytest.fixture
def squad(amqp_uri, own_database):
    url = own_database[0]
    password = f"pw-{uuid.uuid4().hex}"
    done = subprocess.run(
        [
            str(GRIDFLOW),
            "amqp-users",
            "sync",
            "--database-url",
            url,
            "--amqp-uri",
            amqp_uri,
            "--code",
            HOLDER,
            "--password-ref",
            f"env:{PASSWORD_ENV}",
        ],
        env={**os.environ, PASSWORD_ENV: password},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    system = DepartmentSystem(amqp_uri, HOLDER, password)
    yield system
    system.close()
    subprocess.run(
        ["rabbitmqctl", "-q", "delete_user", c.amqp_user(HOLDER)], capture_output=True, timeout=60
    )


def test_a_status_message_during_a_database_outage_is_taken_once_it_is_back(
    container_factory, amqp_uri, own_database, squad, broker, monkeypatch
):
    from gridflow_intake import service

    # No retrying in place: the first try's failure hands the message back to the broker
    # (what happens once the retry window is spent in a longer outage).
    monkeypatch.setattr(service, "STATUS_RETRY_IN_PLACE_SECONDS", 0.0)

    _, engine, admin, name = own_database
    intake, case_id = _dispatched_on_intake(container_factory, amqp_uri, own_database, broker)

    _close(admin, name)
    try:
        # The first try fails (the database refuses every connection) and hands it back.
        with entrypoint_waiter(intake, "on_status_message") as attempt:
            sent = squad.send({"case_id": case_id, "status": "accepted", "message_id": "o-1"})
        with pytest.raises(RequeueLater):
            attempt.get()
    finally:
        _reopen(admin, name)
        # The test's own pooled connections were terminated with the others.
        engine.dispose()

    reply = squad.reply_to(sent, timeout=60)
    assert (reply["outcome"], reply["status"], reply["message_id"]) == (
        "accepted",
        v.ACCEPTED,
        "o-1",
    )
    with engine.connect() as conn:
        status = conn.execute(
            sa.select(models.cases.c.status).where(models.cases.c.case_id == case_id)
        ).scalar_one()
        kinds = list(
            conn.execute(
                sa.select(models.timeline.c.kind).where(models.timeline.c.case_id == case_id)
            ).scalars()
        )
    assert status == v.ACCEPTED
    assert kinds.count(v.ACCEPTED) == 1


def test_messages_sent_back_to_back_during_an_outage_are_taken_in_their_order_once_it_ends(
    container_factory, amqp_uri, own_database, squad, broker
):
    """Held, not refused and not reordered: the first message is tried again in place while the
    database is down and the second waits behind it; once the database is back both are taken,
    accepted first, and the case ends resolved."""
    _, engine, admin, name = own_database
    _, case_id = _dispatched_on_intake(container_factory, amqp_uri, own_database, broker)

    _close(admin, name)
    try:
        first = squad.send({"case_id": case_id, "status": "accepted", "message_id": "q-1"})
        second = squad.send({"case_id": case_id, "status": "resolved", "message_id": "q-2"})
        # Nothing is answered while the database is down (bounded: 5 s of the outage).
        with pytest.raises(AssertionError, match="no reply"):
            squad.reply_to(first, timeout=5)
    finally:
        _reopen(admin, name)
        engine.dispose()

    replies = [squad.reply_to(sent, timeout=90) for sent in (first, second)]
    assert [(r["outcome"], r["status"], r["message_id"]) for r in replies] == [
        ("accepted", v.ACCEPTED, "q-1"),
        ("accepted", v.RESOLVED, "q-2"),
    ]
    with engine.connect() as conn:
        status = conn.execute(
            sa.select(models.cases.c.status).where(models.cases.c.case_id == case_id)
        ).scalar_one()
        kinds = list(
            conn.execute(
                sa.select(models.timeline.c.kind)
                .where(models.timeline.c.case_id == case_id)
                .order_by(models.timeline.c.id)
            ).scalars()
        )
    assert status == v.RESOLVED
    assert kinds.index(v.ACCEPTED) < kinds.index(v.RESOLVED)


def _dispatched_on_intake(container_factory, amqp_uri, own_database, broker):
    """Intake running on the test's own database with a case of its own, dispatched (as
    intake sees it): the container and the case's id."""
    from gridflow_intake.service import IntakeService

    url, engine, _, _ = own_database
    config = {
        keys.AMQP_URI: amqp_uri,
        keys.DATABASE_URL: url,
        keys.GRIDFLOW_CLOCK: "real",
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
        "max_workers": 4,
    }
    intake = container_factory(IntakeService, config)
    intake.start()
    runtime = ServiceRuntime(
        c.INTAKE, engine, RealClock(), JurisdictionStore(engine), h.DEFINITION.tables()
    )
    with runtime.work() as work:
        _, answer = h.register_report(
            work,
            {
                "channel": "hotline",
                "external_id": f"outage-{uuid.uuid4().hex[:8]}",
                "description": "五马街道井盖缺失",
                "location": {"grid_code": "330302001001001"},
            },
        )
    case_id = answer["case_id"]
    with entrypoint_waiter(intake, "on_case_dispatched"):
        publish(broker, c.DEPARTMENTS, c.CASE_DISPATCHED, dispatched_payload(engine, case_id))
    return intake, case_id
