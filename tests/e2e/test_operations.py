"""`make up` as an operator meets it (deploy/topology.sh): a fresh database gets the default
jurisdiction, and running `up` again leaves nginx, and the connections through it, alone."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import fresh_database
from tests.credentials import bearer
from tests.e2e.conftest import start_topology

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fresh_topology(amqp_uri, database_server_url, tmp_path_factory):
    """The real topology on a database of its own, nothing imported by the test."""
    with fresh_database(database_server_url) as url:
        topo = start_topology(amqp_uri, url, tmp_path_factory.mktemp("fresh"))
        try:
            yield topo
        finally:
            topo.script("down")


def test_up_loads_the_default_jurisdiction_into_an_empty_database(fresh_topology):
    assert "loaded the default one, Lucheng" in fresh_topology.first_up
    status, body = fresh_topology.call(
        "POST",
        "/api/v1/reports",
        {
            "channel": "hotline",
            "external_id": "ops-default-1",
            "category": "component.streetlight",
            "description": "青园社区门口的路灯不亮",
            "location": {"lat": 27.995, "lon": 120.556},
        },
    )
    assert status == 201, body
    # Once one is installed, `up` leaves it as it is.
    again = fresh_topology.script("up")
    assert "left as it is" in again and "loaded the default" not in again


def test_a_keep_alive_connection_survives_a_second_up(fresh_topology):
    connects: list[str] = []

    def trace(event: str, info: dict) -> None:
        # httpx quietly replaces a pooled connection the server has closed: count the connects.
        if event == "connection.connect_tcp.complete":
            connects.append(event)

    client = httpx.Client(
        base_url=fresh_topology.base_url,
        timeout=30,
        trust_env=False,
        # httpx drops a connection idle for 5 s by default, and `up` may take longer than that:
        # the connection is the server's to keep or close here, not the client's.
        limits=httpx.Limits(max_connections=1, keepalive_expiry=300),
        headers=bearer(fresh_topology.admin_token),
    )
    path = "/api/v1/admin/jurisdiction"
    with client:
        version = client.get(path, extensions={"trace": trace}).json()["version"]
        output = fresh_topology.script("up")
        # Several requests over a second: nginx's old worker may serve one more request on a
        # connection before it closes it after a reload.
        for _ in range(5):
            answer = client.get(path, extensions={"trace": trace})
            assert answer.status_code == 200
            assert answer.json()["version"] == version
            time.sleep(0.2)  # spread over a second, the time a reload takes to reach the worker
    assert len(connects) == 1, f"the connection was closed by the second `up`: {output}"
    assert "reloaded" not in output
