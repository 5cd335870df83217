"""The shared scenarios against the real topology started on the simulated clock: five
processes read one clock, a clock move reaches the SLA process as an event, and a reset reaches
every service by RPC. The same strict expected failures as against the embedded default."""

from __future__ import annotations

import pytest

from tests.conftest import assert_replayed_cleanly, poll_timeout_for, replay, scenario_params

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("scenario", scenario_params())
def test_shared_scenario_on_the_real_topology(request, simulated_topology, scenario):
    result = replay(
        scenario, simulated_topology.base_url, timeout=600, poll_timeout=poll_timeout_for(request)
    )
    assert_replayed_cleanly(result, simulated_topology.logs())
