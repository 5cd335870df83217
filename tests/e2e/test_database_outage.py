"""End to end: the real topology while its PostgreSQL database is out of reach.

The outage is this test's own: a database and a RabbitMQ vhost made for it, closed to new
connections (``ALLOW_CONNECTIONS false``) with its backends terminated. The shared servers,
which other test runs use at the same time, keep running.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import httpx
import kombu
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from gridflow_common import contracts as c
from tests.conftest import fresh_database, fresh_vhost, lucheng_files
from tests.e2e.conftest import SERVICES, start_topology

pytestmark = pytest.mark.e2e

# The window the log volume is measured over (the issue measured 20 MB per service in 12 s).
OUTAGE_SECONDS = 12
# Generous against a handful of lines per interval, tiny against megabytes.
MAX_LOG_BYTES_PER_SERVICE = 64 * 1024
BACKLOG = 10


@pytest.fixture
def own_vhost(broker_base_uri):
    """A vhost of this test's own: no message left by another test reaches its services."""
    with fresh_vhost(broker_base_uri) as uri:
        yield uri


@pytest.fixture
def own_database(database_server_url):
    """A database of this test's own, which it may close to every connection."""
    with fresh_database(database_server_url) as url:
        parsed = make_url(url)
        admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            yield admin, parsed.database, url
        finally:
            # Open again, so that fresh_database can drop it whatever the test left behind.
            _reopen(admin, parsed.database)
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


def _get(url: str) -> tuple[int, dict]:
    response = httpx.get(url, timeout=20)
    return response.status_code, response.json()


def test_a_database_outage_backs_off_logs_little_and_loses_nothing(
    own_vhost, own_database, tmp_path
):
    amqp_uri = own_vhost
    admin, name, database_url = own_database
    topo = start_topology(amqp_uri, database_url, tmp_path / "var")
    try:
        status, body = topo.call("PUT", "/api/v1/admin/jurisdiction", {"files": lucheng_files()})
        assert status == 200, body
        version = body["version"]
        intake_health = f"http://{topo.env['INTAKE_HTTP']}/healthz"
        assert _get(intake_health)[0] == 200

        _close(admin, name)
        sizes = {s: (topo.var_dir / f"{s}.log").stat().st_size for s in SERVICES}
        started = time.monotonic()
        # Events already accepted upstream keep arriving while the database is away.
        case_ids = [f"OUT-{uuid.uuid4().hex[:8]}" for _ in range(BACKLOG)]
        with kombu.Connection(amqp_uri) as connection, kombu.Producer(connection) as producer:
            exchange = kombu.Exchange(c.event_exchange(c.INTAKE), type="topic", durable=True)
            for case_id in case_ids:
                envelope = c.make_event(
                    c.INTAKE,
                    c.CASE_REGISTERED,
                    dt.datetime.now(dt.timezone.utc),
                    {
                        "case_id": case_id,
                        "category": "component.streetlight",
                        "area_code": "330302001001001",
                        "description": "路灯不亮",
                        "location": {"lat": 27.995, "lon": 120.556},
                        "jurisdiction_version": version,
                    },
                ).to_message()
                producer.publish(
                    json.dumps(envelope),
                    exchange=exchange,
                    routing_key=c.CASE_REGISTERED,
                    declare=[exchange],
                    content_type="application/json",
                    delivery_mode=2,
                )

        status, health = _get(intake_health)
        assert status == 503
        assert "database" in health["problems"]
        # A caller meanwhile is told to come back (503, Retry-After), never a 500: the identity
        # check and the report both need the database.
        response = topo.http.post(
            "/api/v1/reports",
            json={
                "channel": "hotline",
                "description": "路灯不亮",
                "location": {"lat": 27.995, "lon": 120.556},
            },
            headers={"Authorization": f"Bearer {topo.admin_token}"},
        )
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] and "database" in response.text
        assert _get(f"http://{topo.env['INTAKE_HTTP']}/livez")[0] == 200

        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))  # the window
        grown = {s: (topo.var_dir / f"{s}.log").stat().st_size - sizes[s] for s in SERVICES}
        routing_log = (topo.var_dir / "routing.log").read_text(errors="replace")[sizes["routing"] :]
        print("log bytes written during the outage:", grown)
        assert all(size <= MAX_LOG_BYTES_PER_SERVICE for size in grown.values()), grown
        assert "database_unavailable" in routing_log

        _reopen(admin, name)
        engine = sa.create_engine(database_url)
        try:
            deadline = time.monotonic() + 120
            routed = 0
            while time.monotonic() < deadline and routed < BACKLOG:
                with engine.connect() as conn:
                    routed = conn.execute(
                        sa.text(
                            "SELECT count(*) FROM routing_assignments WHERE case_id = ANY(:ids)"
                        ),
                        {"ids": case_ids},
                    ).scalar_one()
                time.sleep(0.5)  # bounded poll: redeliveries wait out the capped backoff
        finally:
            engine.dispose()
        assert routed == BACKLOG
        assert _get(intake_health)[0] == 200
    finally:
        topo.script("down")
