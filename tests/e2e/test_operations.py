"""`make up` as an operator meets it (deploy/topology.sh): a fresh database gets the default
jurisdiction, and running `up` again leaves nginx, and the connections through it, alone."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import fresh_database
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
    # http.client on purpose: one socket, no pool that would quietly open a new connection.
    parts = urlsplit(fresh_topology.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", "/api/v1/admin/jurisdiction")
        first = connection.getresponse()
        assert first.status == 200, first.read()
        version = json.loads(first.read())["version"]
        sock = connection.sock

        output = fresh_topology.script("up")

        # Several requests over a second: nginx's old worker may serve one more request on a
        # connection before it closes it after a reload.
        for _ in range(5):
            connection.request("GET", "/api/v1/admin/jurisdiction")
            second = connection.getresponse()
            assert second.status == 200
            assert json.loads(second.read())["version"] == version
            assert connection.sock is sock  # the same connection, not a reconnect
            time.sleep(0.2)  # spread over a second, the time a reload takes to reach the worker
        assert "reloaded" not in output
    finally:
        connection.close()
