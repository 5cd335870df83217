"""The shared scenarios against the real topology started on the simulated clock: five
processes read one clock, a clock move reaches the SLA process as an event, and a reset reaches
every service by RPC."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import GRIDFLOW, SHARED
from tests.e2e.conftest import start_topology

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def simulated_topology(amqp_uri, database_url, tmp_path_factory):
    topo = start_topology(amqp_uri, database_url, tmp_path_factory.mktemp("simulated"),
                          clock="simulated")
    try:
        yield topo
    finally:
        topo.script("down")


def test_every_shared_scenario_passes_on_the_real_topology(simulated_topology):
    scenarios = sorted((SHARED / "scenarios").glob("*.yaml"))
    assert scenarios
    result = subprocess.run(
        [str(GRIDFLOW), "replay", *map(str, scenarios), "--url", simulated_topology.base_url],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr + simulated_topology.logs()
    assert result.stdout.strip().splitlines()[-1].endswith(" 0 failed")
