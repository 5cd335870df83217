"""The shared scenarios, replayed by `gridflow replay` against the embedded default.

Each file is one test. A scenario that does not pass yet is listed in
tests.conftest.SCENARIOS_EXPECTED_TO_FAIL (strict xfail, the same list as the real topology's),
so it turns into a failure the day it starts passing and someone moves it to the plain list.
"""

from __future__ import annotations

import pytest

from tests.conftest import (
    assert_replayed_cleanly,
    poll_timeout_for,
    replay,
    scenario_params,
    shared_scenarios,
)


def test_the_shared_scenarios_are_there():
    assert len(shared_scenarios()) >= 7


@pytest.mark.scenario
@pytest.mark.parametrize("scenario", scenario_params())
def test_scenario_replays_cleanly(request, embedded_url, scenario):
    assert_replayed_cleanly(replay(scenario, embedded_url, poll_timeout=poll_timeout_for(request)))
